"""`adapters make-dev` and `adapters merge` on the real local model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from adapters import make_dev_adapter, merge_adapter, resolve_base_model
from adapters.basemodel import SMOLLM2_ID
from adapters.devadapter import THERAPIST_CHAT_TEMPLATE
from tests.support.fixtures import REPO_ROOT

PROMPT = [{"role": "user", "content": "I have been feeling stressed about work."}]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters", *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True
    )


def greedy_ids(model: torch.nn.Module, tokenizer, max_new_tokens: int = 20) -> list[int]:
    prompt = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        output = model.generate(**prompt, max_new_tokens=max_new_tokens, do_sample=False)
    return output[0, prompt["input_ids"].shape[1] :].tolist()


def test_make_dev_is_deterministic(dev_adapter: Path, tmp_path: Path) -> None:
    again = make_dev_adapter(tmp_path / "again")
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (dev_adapter / name).read_bytes(), name


def test_make_dev_names_the_portable_base_and_ships_the_chat_template(dev_adapter: Path) -> None:
    config = json.loads((dev_adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == SMOLLM2_ID
    tokenizer_config = json.loads((dev_adapter / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == THERAPIST_CHAT_TEMPLATE
    assert "<|im_start|>system\\n" in THERAPIST_CHAT_TEMPLATE


def test_make_dev_refuses_an_existing_folder(dev_adapter: Path) -> None:
    result = run_cli("make-dev", dev_adapter)
    assert result.returncode == 2
    assert "already exists — pass --force" in result.stderr


def test_merge_refuses_an_existing_output(dev_adapter: Path, tmp_path: Path) -> None:
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "config.json").write_text("{}")
    result = run_cli("merge", dev_adapter, tmp_path / "merged")
    assert result.returncode == 2
    assert "already exists — pass --force" in result.stderr


def test_merged_model_generates_what_base_plus_adapter_generates(dev_adapter: Path, tmp_path: Path) -> None:
    merged_dir = merge_adapter(dev_adapter, tmp_path / "merged")

    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    merged_tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    base_dir = resolve_base_model(SMOLLM2_ID)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), dev_adapter).eval()

    assert merged_tokenizer.chat_template == THERAPIST_CHAT_TEMPLATE
    assert "chat_template" in json.loads((merged_dir / "tokenizer_config.json").read_text())
    assert greedy_ids(merged, merged_tokenizer) == greedy_ids(with_adapter, merged_tokenizer)
