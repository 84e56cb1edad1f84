"""The client's stop sequences, kept out of the text: TGI ends the generation at one but keeps its
text in the reply (wire.md §3), where OpenAI's API and vLLM leave it out.

Text that might be the start of a stop sequence is held back until the next token says whether it
is; a stop sequence found cuts the reply just before it. Only streams with client stop sequences
pay for this: the service's own end-of-turn marker is a special token, never text.
"""

from __future__ import annotations

from typing import AsyncGenerator, Sequence

from proxy.core.chat import ChatEvent


async def without_stop_text(
    events: AsyncGenerator[ChatEvent, None], stops: Sequence[str]
) -> AsyncGenerator[ChatEvent, None]:
    pending = ""
    stopped = False
    try:
        async for event in events:
            if type(event) is not str:
                if pending and not stopped:
                    yield pending
                pending = ""
                yield event
                continue
            if stopped:
                continue  # the server has not seen the stop yet (it may span tokens differently)
            pending += event
            cut = _first_stop(pending, stops)
            if cut is not None:
                stopped = True
                if cut:
                    yield pending[:cut]
                pending = ""
                continue
            keep = _held_back(pending, stops)
            if keep < len(pending):
                yield pending[: len(pending) - keep]
                pending = pending[len(pending) - keep :]
    finally:
        await events.aclose()


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of `text` could begin a stop sequence."""
    longest = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:length]):
                longest = length
                break
    return longest
