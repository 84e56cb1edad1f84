"""Fold a LoRA adapter into its base model, for architectures TGI cannot serve LoRA for (Qwen3...).

The result is an ordinary model folder TGI serves with `--model-id OUT` and no `adapter_id`.
"""

from __future__ import annotations

from pathlib import Path

from adapters.basemodel import resolve_base_model
from adapters.chat_template import read_chat_template
from adapters.staging import staged_dir
from adapters.validate import check_adapter

_TOKENIZER_VOCAB_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def merge_adapter(
    adapter: str | Path,
    out_dir: Path,
    *,
    base_model: str | None = None,
    cache_dir: Path | None = None,
    replace: bool = False,
) -> Path:
    """Write base model + adapter as one HF folder (weights, tokenizer, chat template) to `out_dir`.

    `base_model` overrides the adapter's base_model_name_or_path, e.g. with a local download of it.
    """
    report = check_adapter(adapter, cache_dir)
    base_dir = resolve_base_model(base_model or report.base_model, cache_dir)
    with staged_dir(out_dir, replace=replace) as staging:
        _write_merged(staging, base_dir, report.path)
    return out_dir


def _write_merged(out_dir: Path, base_dir: Path, adapter_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    PeftModel.from_pretrained(model, adapter_dir).merge_and_unload().save_pretrained(out_dir, safe_serialization=True)

    # Training may have saved the tokenizer with the adapter; it wins over the base model's.
    ships_tokenizer = any((adapter_dir / name).is_file() for name in _TOKENIZER_VOCAB_FILES)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if ships_tokenizer else base_dir)
    template = read_chat_template(adapter_dir)
    if template:
        tokenizer.chat_template = template.source
    tokenizer.save_pretrained(out_dir, save_jinja_files=False)  # TGI reads the template from tokenizer_config.json
