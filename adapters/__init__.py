"""LoRA adapter handling for TGI: find and validate, build LORA_ADAPTERS, make the dev adapter, merge.

Importing this package is cheap (no torch); make-dev and merge load torch when called.
"""

from adapters.basemodel import SMOLLM2_ID, bundled_qwen_tokenizer_path, default_cache_dir, resolve_base_model
from adapters.chat_template import ShippedChatTemplate, read_chat_template
from adapters.devadapter import make_dev_adapter
from adapters.errors import (
    AdapterError,
    AdapterInvalid,
    AdapterNotFound,
    BaseModelNotFound,
    InvalidLoraSpec,
    LoraUnsupported,
)
from adapters.lora_arg import format_lora_adapters, parse_lora_adapters
from adapters.merge import merge_adapter
from adapters.validate import AdapterReport, check_adapter

__all__ = [
    "SMOLLM2_ID",
    "ShippedChatTemplate",
    "AdapterError",
    "AdapterInvalid",
    "AdapterNotFound",
    "AdapterReport",
    "BaseModelNotFound",
    "InvalidLoraSpec",
    "LoraUnsupported",
    "bundled_qwen_tokenizer_path",
    "check_adapter",
    "default_cache_dir",
    "format_lora_adapters",
    "make_dev_adapter",
    "merge_adapter",
    "parse_lora_adapters",
    "read_chat_template",
    "resolve_base_model",
]
