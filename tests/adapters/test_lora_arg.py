"""TGI's --lora-adapters / LORA_ADAPTERS value, as a library call and as `adapters lora-arg`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters import InvalidLoraSpec, format_lora_adapters, parse_lora_adapters
from tests.support.fixtures import REPO_ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapters", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_format_joins_name_path_pairs_with_commas() -> None:
    value = format_lora_adapters({"therapist": Path("/data/qwen_therapist_lora"), "dev": "/tmp/dev"})
    assert value == "therapist=/data/qwen_therapist_lora,dev=/tmp/dev"


def test_parse_reads_back_what_format_writes() -> None:
    adapters = {"therapist": "/data/qwen_therapist_lora", "dev": "/tmp/dev"}
    assert parse_lora_adapters(format_lora_adapters(adapters)) == adapters


@pytest.mark.parametrize(
    ("name", "path", "reserved"),
    [
        ("a=b", "/data/x", "="),
        ("a@b", "/data/x", "@"),
        ("a,b", "/data/x", ","),
        ("therapist", "/data/x@v2", "@"),
        ("therapist", "/data/a,b", ","),
    ],
)
def test_reserved_characters_are_refused(name: str, path: str, reserved: str) -> None:
    with pytest.raises(InvalidLoraSpec, match=f"contains {reserved}"):
        format_lora_adapters({name: path})


@pytest.mark.parametrize("name", ["", " therapist"])
def test_empty_or_padded_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidLoraSpec, match="empty or has surrounding spaces"):
        format_lora_adapters({name: "/data/x"})


def test_no_adapters_is_an_error() -> None:
    with pytest.raises(InvalidLoraSpec, match="at least one"):
        format_lora_adapters({})


def test_parse_refuses_duplicate_names_and_bare_ids() -> None:
    with pytest.raises(InvalidLoraSpec, match="given twice"):
        parse_lora_adapters("a=/x,a=/y")
    with pytest.raises(InvalidLoraSpec, match="is not NAME=PATH"):
        parse_lora_adapters("predibase/dbpedia")


def test_cli_prints_the_value() -> None:
    result = run_cli("lora-arg", "therapist=/data/qwen_therapist_lora", "dev=/tmp/dev")
    assert result.returncode == 0
    assert result.stdout == "therapist=/data/qwen_therapist_lora,dev=/tmp/dev\n"


def test_cli_usage_error_for_a_bad_spec() -> None:
    result = run_cli("lora-arg", "therapist=/data/a,b")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "contains ," in result.stderr
