"""Fit a conversation into the model's context: drop the oldest history turns first.

The system prompt and the latest message always stay. The budget is the engine's own limit
(`ContextLimits`, from the upstream) with room kept for the whole reply: min(max_input_tokens,
max_total_tokens - max_tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from proxy.core.chat import Turn
from proxy.core.errors import PromptTooLong


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    text: str
    dropped_turns: int  # history turns left out, oldest first


# Every token of a byte-level BPE or byte-fallback tokenizer stands for at least one byte of
# text; a tokenizer may add a few of its own (BOS, a leading-space piece).
_TOKENS_ADDED_AT_MOST = 8


def surely_fits(prompt: str, budget: int) -> bool:
    """A bound that needs no tokenizer: no more tokens than UTF-8 bytes. Most prompts pass it, and
    skip the tokenizer on the way to the first token."""
    return len(prompt.encode()) + _TOKENS_ADDED_AT_MOST <= budget


def fit_conversation(
    history: Sequence[Turn],
    render: Callable[[Sequence[Turn]], str],
    count_tokens: Callable[[str], int],
    budget: int,
) -> FittedPrompt:
    """The prompt with the fewest history turns dropped that fits in `budget` tokens.

    `render(kept_history)` renders system prompt + kept history + latest message.
    """

    def kept_from(dropped: int) -> Sequence[Turn]:
        kept = history[dropped:]
        # Do not start the kept history with a reply whose question was dropped.
        return kept[1:] if dropped and kept and kept[0].role == "assistant" else kept

    def fits(dropped: int) -> str | None:
        prompt = render(kept_from(dropped))
        return prompt if surely_fits(prompt, budget) or count_tokens(prompt) <= budget else None

    prompt = fits(0)
    if prompt is not None:
        return FittedPrompt(prompt, 0)
    if fits(len(history)) is None:
        raise PromptTooLong(
            f"the message is too long for the model: with the system prompt it exceeds the {budget} tokens "
            f"left for the prompt once max_tokens are reserved; shorten it or lower max_tokens"
        )
    low, high = 1, len(history)  # fits(high) holds; find the smallest such count
    while low < high:
        middle = (low + high) // 2
        if fits(middle) is not None:
            high = middle
        else:
            low = middle + 1
    kept = kept_from(low)
    return FittedPrompt(render(kept), len(history) - len(kept))
