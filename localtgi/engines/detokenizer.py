"""TGI's incremental detokenization (Model.decode_token in text_generation_server/models/model.py).

Each new token's text is the difference between decoding a short window that ends with it
and the same window without it, so byte-level BPE pieces and leading spaces come out right.
While the window ends inside a multi-byte UTF-8 character (decoded text ends with U+FFFD)
the text is "" and the window grows until the character is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

_INCOMPLETE_CHARACTER = "\ufffd"
_PROMPT_CONTEXT_TOKENS = 5  # TGI starts the window this many tokens before the prompt's end


class Decoder(Protocol):
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Decoder, prompt_length: int) -> None:
        self._tokenizer = tokenizer
        self._prefix_offset = max(prompt_length - _PROMPT_CONTEXT_TOKENS, 0)
        self._read_offset = prompt_length

    def next_text(self, all_ids: Sequence[int]) -> str:
        """Text of the last id in `all_ids` (prompt + generated so far); special tokens included, as TGI."""
        prefix_text = self._tokenizer.decode(all_ids[self._prefix_offset : self._read_offset])
        new_text = self._tokenizer.decode(all_ids[self._prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(_INCOMPLETE_CHARACTER):
            self._prefix_offset, self._read_offset = self._read_offset, len(all_ids)
            return new_text[len(prefix_text) :]
        return ""
