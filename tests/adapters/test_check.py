"""`adapters check`: a real peft adapter (made by make-dev), and the ways a folder can be wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from adapters import AdapterInvalid, AdapterNotFound, check_adapter, read_chat_template
from adapters.devadapter import THERAPIST_CHAT_TEMPLATE
from tests.support.fixtures import REPO_ROOT

WEIGHTS = "adapter_model.safetensors"


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters", *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True
    )


def edit_config(adapter: Path, **changes: object) -> None:
    config = json.loads((adapter / "adapter_config.json").read_text())
    for key, value in changes.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (adapter / "adapter_config.json").write_text(json.dumps(config))


def write_q_proj_adapter(folder: Path, base_model: str, target_modules: list[str] | str, rank: int, size: int) -> Path:
    """A one-module LoRA adapter (layer 0 q_proj, in = out = size), written without peft."""
    folder.mkdir()
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": target_modules,
        "base_model_name_or_path": base_model,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    module = "base_model.model.model.layers.0.self_attn.q_proj"
    tensors = {
        f"{module}.lora_A.weight": np.zeros((rank, size), np.float32),
        f"{module}.lora_B.weight": np.zeros((size, rank), np.float32),
    }
    save_file(tensors, folder / WEIGHTS)
    return folder


def test_dev_adapter_is_valid_and_servable(dev_adapter: Path) -> None:
    report = check_adapter(dev_adapter)

    assert report.path == dev_adapter
    assert report.picked_checkpoint is None
    assert report.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert report.model_type == "llama"
    assert report.model_type_source.endswith("config.json")
    assert report.tgi_serves_lora is True and not report.needs_merge
    assert (report.rank, report.lora_alpha) == (8, 16)
    assert sorted(report.target_modules) == ["q_proj", "v_proj"]
    assert report.lora_modules == 2 * 30  # q_proj and v_proj in each of SmolLM2's 30 layers
    assert report.weights_file == WEIGHTS
    assert "tokenizer.json" in report.tokenizer_files
    assert report.chat_template_file == "tokenizer_config.json"
    assert read_chat_template(dev_adapter).source == THERAPIST_CHAT_TEMPLATE
    assert report.warnings == []


def test_missing_path_names_path_and_training_hint(tmp_path: Path) -> None:
    missing = tmp_path / "qwen_therapist_lora"
    with pytest.raises(AdapterNotFound) as caught:
        check_adapter(missing)
    assert str(caught.value).startswith(f"Model not found at {missing}")
    assert "modal volume ls training-data" in str(caught.value)


def test_empty_folder_is_not_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(AdapterNotFound, match="no adapter_config.json and no checkpoint"):
        check_adapter(tmp_path)


def test_config_that_is_not_json(adapter_copy: Path) -> None:
    (adapter_copy / "adapter_config.json").write_text('{"r": 8,')
    with pytest.raises(AdapterInvalid, match="adapter_config.json is not valid JSON"):
        check_adapter(adapter_copy)


def test_config_missing_keys_lists_each(adapter_copy: Path) -> None:
    edit_config(adapter_copy, r=None, target_modules=None)
    with pytest.raises(AdapterInvalid) as caught:
        check_adapter(adapter_copy)
    assert caught.value.problems == ["adapter_config.json lacks 'r'", "adapter_config.json lacks 'target_modules'"]
    assert str(adapter_copy) in str(caught.value)


def test_non_lora_peft_type(adapter_copy: Path) -> None:
    edit_config(adapter_copy, peft_type="IA3")
    with pytest.raises(AdapterInvalid, match="TGI serves only LORA"):
        check_adapter(adapter_copy)


def test_missing_weights(adapter_copy: Path) -> None:
    (adapter_copy / WEIGHTS).unlink()
    with pytest.raises(AdapterInvalid, match="no weights file"):
        check_adapter(adapter_copy)


def test_truncated_weights(adapter_copy: Path) -> None:
    weights = adapter_copy / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(AdapterInvalid, match="truncated"):
        check_adapter(adapter_copy)


def test_rank_disagreeing_with_config(adapter_copy: Path) -> None:
    tensors = load_file(adapter_copy / WEIGHTS)
    name = "base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight"
    tensors[name] = np.zeros((tensors[name].shape[0], 4), dtype=np.float32)  # r=4 where the config says 8
    save_file(tensors, adapter_copy / WEIGHTS)

    with pytest.raises(AdapterInvalid) as caught:
        check_adapter(adapter_copy)
    assert caught.value.problems == [
        "model.layers.3.self_attn.q_proj: lora_A [8, 576] and lora_B [576, 4] do not match r=8 "
        "(expected lora_A [r, in], lora_B [out, r])"
    ]


def test_adapter_for_another_model_size(adapter_copy: Path) -> None:
    tensors = load_file(adapter_copy / WEIGHTS)
    name = "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"
    tensors[name] = np.zeros((8, 896), dtype=np.float32)  # Qwen2.5-0.5B's hidden size, not SmolLM2's 576
    save_file(tensors, adapter_copy / WEIGHTS)

    with pytest.raises(AdapterInvalid, match=r"in=896, out=192 but the base model's layer is in=576, out=192"):
        check_adapter(adapter_copy)


def test_lora_weights_outside_target_modules(adapter_copy: Path) -> None:
    edit_config(adapter_copy, target_modules=["q_proj"])
    with pytest.raises(AdapterInvalid, match="v_proj has LoRA weights but is not among target_modules"):
        check_adapter(adapter_copy)


def test_checkpoints_folder_picks_latest_complete_step(dev_adapter: Path, tmp_path: Path) -> None:
    for step in (100, 200):
        shutil.copytree(dev_adapter, tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-1000").mkdir()  # an interrupted save: no adapter_config.json

    report = check_adapter(tmp_path)

    assert report.path == tmp_path / "checkpoint-200"
    assert report.picked_checkpoint == "checkpoint-200"
    assert report.warnings == ["skipped checkpoint-1000: no adapter_config.json (interrupted save?)"]


def test_qwen3_base_named_only_is_flagged_for_merge(tmp_path: Path) -> None:
    adapter = write_q_proj_adapter(tmp_path / "lora", "Qwen/Qwen3-0.6B", ["q_proj"], rank=4, size=64)

    report = check_adapter(adapter)

    assert (report.model_type, report.model_type_source) == ("qwen3", "name")
    assert report.tgi_serves_lora is False and report.needs_merge


def test_the_advice_follows_the_engine_qwen3_needs_no_merge_on_vllm(tmp_path: Path) -> None:
    adapter = write_q_proj_adapter(tmp_path / "lora", "Qwen/Qwen3-0.6B", ["q_proj"], rank=4, size=64)

    on_tgi = run_cli("check", adapter)
    on_vllm = run_cli("check", adapter, "--engine", "vllm")

    assert on_tgi.returncode == 3 and "TGI cannot serve LoRA for qwen3" in on_tgi.stdout
    assert "vLLM serves LoRA for it as it is" in on_tgi.stdout
    assert on_vllm.returncode == 0 and "vLLM LoRA      supported" in on_vllm.stdout
    assert "merge" not in on_vllm.stdout
    body = json.loads(run_cli("check", adapter, "--json").stdout)
    assert (body["needs_merge_on_tgi"], body["needs_merge_on_vllm"]) == (True, False)


def test_base_config_on_disk_decides_architecture(tmp_path: Path) -> None:
    base = tmp_path / "my-base"  # a name that says nothing; only config.json tells
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    adapter = write_q_proj_adapter(tmp_path / "lora", str(base), "(.*)q_proj", rank=2, size=64)

    report = check_adapter(adapter)

    assert report.model_type_source == str(base / "config.json")
    assert report.needs_merge


def test_cli_json_for_a_good_adapter(dev_adapter: Path) -> None:
    result = run_cli("check", dev_adapter, "--json")
    assert result.returncode == 0
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert body["path"] == str(dev_adapter)
    assert body["tgi_serves_lora"] is True


def test_cli_text_for_a_good_adapter(dev_adapter: Path) -> None:
    result = run_cli("check", dev_adapter)
    assert result.returncode == 0
    assert result.stdout.startswith(f"OK  {dev_adapter}")
    assert "TGI LoRA       supported" in result.stdout


def test_cli_exit_codes_and_json_errors(adapter_copy: Path, tmp_path: Path) -> None:
    missing = run_cli("check", tmp_path / "nope", "--json")
    assert missing.returncode == 4
    assert json.loads(missing.stdout)["error"] == "AdapterNotFound"
    assert "modal volume ls training-data" in missing.stderr

    edit_config(adapter_copy, lora_alpha=None)
    invalid = run_cli("check", adapter_copy, "--json")
    assert invalid.returncode == 1
    body = json.loads(invalid.stdout)
    assert (body["ok"], body["error"], body["problems"]) == (
        False,
        "AdapterInvalid",
        ["adapter_config.json lacks 'lora_alpha'"],
    )

    assert run_cli("check").returncode == 2


def test_cli_exit_code_3_and_merge_advice_for_qwen3(adapter_copy: Path) -> None:
    edit_config(adapter_copy, base_model_name_or_path="Qwen/Qwen3-8B")
    result = run_cli("check", adapter_copy)
    assert result.returncode == 3
    assert "TGI cannot serve LoRA for qwen3" in result.stdout
    assert "python -m adapters merge" in result.stdout
