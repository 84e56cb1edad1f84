"""A small, real LoRA adapter for the local base model, standing in for the therapist adapter.

Its weights are random but seeded, so the same command always writes the same adapter,
and large enough to change the base model's greedy output (peft's default zero lora_B would not).
"""

from __future__ import annotations

from pathlib import Path

from adapters.basemodel import SMOLLM2_ID, resolve_base_model
from adapters.staging import staged_dir

THERAPIST_SYSTEM_PROMPT = (
    "You are a warm, patient therapist. Listen closely, reflect what the person feels, "
    "and ask one gentle, open question at a time. If someone may be in danger, "
    "encourage them to contact local emergency services."
)

# ChatML, as Qwen2.5 and SmolLM2 use it, with the therapist system prompt as the default.
THERAPIST_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + THERAPIST_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)

DEV_RANK = 8
DEV_ALPHA = 16  # scale alpha/r = 2: output changes within a few tokens yet stays readable
DEV_TARGET_MODULES = ["q_proj", "v_proj"]


def make_dev_adapter(
    out_dir: Path,
    *,
    base_model: str = SMOLLM2_ID,
    cache_dir: Path | None = None,
    seed: int = 0,
    replace: bool = False,
) -> Path:
    """Write the dev adapter (weights, adapter_config.json, tokenizer with chat template) to `out_dir`."""
    base_dir = resolve_base_model(base_model, cache_dir)
    with staged_dir(out_dir, replace=replace) as staging:
        _write_dev_adapter(staging, base_dir, base_model, seed)
    return out_dir


def _write_dev_adapter(out_dir: Path, base_dir: Path, base_model: str, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    # peft records the model's name_or_path as base_model_name_or_path: name the portable id,
    # not the cache folder the weights came from.
    model.name_or_path = model.config.name_or_path = base_model
    config = LoraConfig(
        r=DEV_RANK,
        lora_alpha=DEV_ALPHA,
        target_modules=DEV_TARGET_MODULES,
        init_lora_weights=False,  # random lora_A and lora_B, so the adapter has a visible effect
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):  # seed peft's init without disturbing the caller's RNG
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    # Embeddings are not adapted; saying so stops peft from asking the hub about the vocabulary.
    peft_model.save_pretrained(out_dir, safe_serialization=True, save_embedding_layers=False)

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tokenizer.chat_template = THERAPIST_CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir, save_jinja_files=False)  # template inside tokenizer_config.json
