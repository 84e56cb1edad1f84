"""The adapter's chat template has one reader: what `adapters check` reports is what the proxy renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters import AdapterInvalid, read_chat_template
from proxy.core.chat import Turn
from proxy.service.chat_template import CHATML_TEMPLATE, load_chat_template
from tests.support.fixtures import REPO_ROOT

NAMED = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"


def write_tokenizer_config(adapter: Path, text: str) -> None:
    (adapter / "tokenizer_config.json").write_text(text)


def check_json(adapter: Path) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "adapters", "check", str(adapter), "--json"], cwd=REPO_ROOT, capture_output=True,
        text=True,
    )  # fmt: skip
    return result.returncode, json.loads(result.stdout)


def test_named_templates_the_proxy_renders_the_default_one_check_reports(adapter_copy: Path) -> None:
    named = [{"name": "tool_use", "template": "tools: {{ messages }}"}, {"name": "default", "template": NAMED}]
    write_tokenizer_config(adapter_copy, json.dumps({"chat_template": named}))

    assert load_chat_template(adapter_copy).render([Turn("user", "hi")]) == "<user>hi<assistant>"
    code, report = check_json(adapter_copy)
    assert code == 0 and report["chat_template_file"] == "tokenizer_config.json"


def test_named_templates_without_a_default_are_refused_by_both(adapter_copy: Path) -> None:
    write_tokenizer_config(adapter_copy, json.dumps({"chat_template": [{"name": "tool_use", "template": NAMED}]}))

    with pytest.raises(AdapterInvalid, match="none named 'default'"):
        load_chat_template(adapter_copy)
    code, report = check_json(adapter_copy)
    assert code != 0 and report["error"] == "AdapterInvalid"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"chat_template": "{{ x }}",', "tokenizer_config.json is not valid JSON"),
        ('["not", "an", "object"]', "tokenizer_config.json is not a JSON object"),
        ('{"chat_template": 42}', "is a int, not a template string"),
        ('{"chat_template": "{% for m in messages %}"}', "is not valid Jinja"),
    ],
)
def test_a_malformed_tokenizer_config_is_one_clear_error_for_both(adapter_copy: Path, text: str, problem: str) -> None:
    write_tokenizer_config(adapter_copy, text)

    with pytest.raises(AdapterInvalid, match=problem) as caught:
        load_chat_template(adapter_copy)
    assert str(adapter_copy) in str(caught.value)
    code, report = check_json(adapter_copy)
    assert code != 0 and any(problem in line for line in report["problems"])


def test_no_template_files_mean_chatml_for_the_proxy_and_none_for_check(adapter_copy: Path) -> None:
    write_tokenizer_config(adapter_copy, json.dumps({"eos_token": "<|im_end|>"}))

    assert read_chat_template(adapter_copy) is None
    assert load_chat_template(adapter_copy).source == CHATML_TEMPLATE
    assert check_json(adapter_copy)[1]["chat_template_file"] is None
