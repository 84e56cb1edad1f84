"""Which base architectures each engine can serve a LoRA adapter for.

TGI applies LoRA only in modeling files built with TensorParallelMultiAdapterLinear
(see shared/fixtures/tgi/wire.md §8). Everything else, Qwen3 included, needs the
adapter merged into the base weights (`python -m adapters merge`). vLLM serves LoRA
for every model class that declares SupportsLoRA, Qwen3 included (docs/wire-vllm.md §6).
"""

from __future__ import annotations

import re

# config.json model_type values whose TGI modeling file applies LoRA.
# gemma (v1) is absent on purpose: flash_gemma_modeling.py has no adapter layers.
TGI_LORA_MODEL_TYPES = frozenset(
    {
        "llama",
        "phi3",
        "granite",
        "baichuan",
        "phimoe",
        "mistral",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "qwen2",
        "starcoder2",
    }
)

# config.json model_type values whose vLLM 0.34 model class supports LoRA (the ones this project may
# meet; vllm/model_executor/models/<type>.py: SupportsLoRA, or a subclass of LlamaForCausalLM).
VLLM_LORA_MODEL_TYPES = frozenset(
    {"llama", "mistral", "mixtral", "phi3", "granite", "gemma2", "gemma3", "gemma3_text", "qwen2", "qwen3",
     "qwen3_moe"}
)  # fmt: skip
LORA_MODEL_TYPES = {"tgi": TGI_LORA_MODEL_TYPES, "vllm": VLLM_LORA_MODEL_TYPES}

# Used only when no config.json is on disk. First match wins, so specific names go first.
_MODEL_TYPE_BY_NAME = (
    (r"qwen3", "qwen3"),
    (r"qwen2(\.5)?-vl", "qwen2_vl"),
    (r"qwen(1\.5|2(\.5)?)", "qwen2"),
    (r"mixtral", "mixtral"),
    (r"mistral", "mistral"),
    (r"gemma-?3", "gemma3"),
    (r"gemma-?2", "gemma2"),
    (r"gemma", "gemma"),
    (r"starcoder-?2", "starcoder2"),
    (r"phi-?[34]", "phi3"),
    (r"llama|smollm", "llama"),
)


def model_type_from_name(model_name: str) -> str | None:
    lowered = model_name.lower()
    for pattern, model_type in _MODEL_TYPE_BY_NAME:
        if re.search(pattern, lowered):
            return model_type
    return None


def tgi_serves_lora(model_type: str) -> bool:
    return serves_lora("tgi", model_type)


def serves_lora(engine: str, model_type: str) -> bool:
    return model_type in LORA_MODEL_TYPES[engine]
