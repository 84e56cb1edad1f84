"""Errors raised by adapter handling. Each message names the path and the fix."""

from __future__ import annotations

from pathlib import Path

# The product guide's troubleshooting advice, reused so operators see one wording everywhere.
TRAINING_HINT = "make sure training completed: `modal volume ls training-data`"


class AdapterError(Exception):
    """Base class for everything this package raises on purpose."""


class AdapterNotFound(AdapterError):
    """No adapter at the given path (missing, or a folder without adapter files)."""

    def __init__(self, path: Path, detail: str = "") -> None:
        self.path = path
        suffix = f" ({detail})" if detail else ""
        super().__init__(f"Model not found at {path}{suffix} — {TRAINING_HINT}")


class AdapterInvalid(AdapterError):
    """An adapter folder exists but TGI could not load it as it is."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listed = "; ".join(problems)
        super().__init__(
            f"Adapter at {path} is invalid: {listed} — re-save it from training "
            f"(`model.save_pretrained(...)`) or {TRAINING_HINT}"
        )


class InvalidLoraSpec(AdapterError, ValueError):
    """A name or path that cannot be written into TGI's LORA_ADAPTERS list."""


class BaseModelNotFound(AdapterError):
    """A base model id that is neither a local HF folder nor a model we can build offline."""


class LoraUnsupported(AdapterError):
    """LoRA adapters were given for a base architecture TGI cannot apply them to (Qwen3...)."""

    def __init__(self, model_type: str, model_id: str) -> None:
        super().__init__(
            f"TGI serves no LoRA adapters for {model_type} models like {model_id} — merge the adapter "
            "(`python -m adapters merge ADAPTER OUT`) and serve OUT without adapter_id"
        )
