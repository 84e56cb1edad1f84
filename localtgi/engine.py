"""The contract between localtgi's HTTP server and the engines that produce tokens.

The server owns everything TGI's router owns: request parsing and validation,
concurrency permits, max_new_tokens, stop sequences, finish reasons, SSE framing,
metrics and fault injection. An engine only turns a prompt into tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Protocol


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Validated generation parameters, as TGI's router hands them to a shard."""

    max_new_tokens: int
    do_sample: bool
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0  # always set: drawn at random by the server when the client sent none
    adapter_id: str | None = None
    typical_p: float = 1.0

    @property
    def sampling(self) -> bool:
        # TGI's rule (server/text_generation_server/utils/tokens.py): any of these turns sampling on.
        return self.do_sample or self.temperature != 1.0 or self.top_k != 0 or self.top_p < 1.0 or self.typical_p < 1.0


@dataclass(frozen=True, slots=True)
class GeneratedToken:
    """One decoded token, exactly the `token` object of a TGI stream event."""

    id: int
    text: str  # "" while a multi-byte character is incomplete, as TGI's incremental detokenizer does
    logprob: float | None
    special: bool
    is_eos: bool = False  # the model ended its turn on its own (TGI finish_reason "eos_token")


class Engine(Protocol):
    model_id: str
    max_position_embeddings: int  # the default for --max-total-tokens when not given
    adapter_ids: frozenset[str]  # names loaded with --lora-adapters

    def count_input_tokens(self, inputs: str) -> int:
        """Tokens in a prompt, as the model's tokenizer counts them."""
        ...

    def generate(self, inputs: str, params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        """Yield tokens until EOS (yielded with is_eos=True, then stop) or until closed.

        The server stops early (max_new_tokens, stop sequence, client gone) by calling
        `aclose()` on the iterator; an engine must stop its work promptly when that happens.
        """
        ...
