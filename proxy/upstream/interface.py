"""What the chat service needs from an inference server, whichever engine it is.

An implementation maps the contract's `Sampling` onto its engine's parameters, speaks its wire,
turns its errors into the proxy's error tree (`proxy/core/errors.py`) and its events into
`ChatEvent`s: visible text, then exactly one `StreamEnd`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import AsyncGenerator, Protocol

from proxy.core.chat import ChatEvent, Sampling


class UpstreamHealth(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # answered, but not healthy
    UNREACHABLE = "unreachable"  # nothing listening (TGI binds only once the model is loaded)


@dataclass(frozen=True, slots=True)
class ContextLimits:
    """The engine's token limits for one request."""

    max_input_tokens: int
    max_total_tokens: int  # prompt + reply

    def prompt_budget(self, max_tokens: int) -> int:
        """Tokens a prompt may take and still leave room for the whole reply."""
        return min(self.max_input_tokens, self.max_total_tokens - max_tokens)


class Upstream(Protocol):
    async def open_stream(self, prompt: str, sampling: Sampling) -> AsyncGenerator[ChatEvent, None]:
        """Start generating from `prompt` (already rendered with the chat template).

        Errors before the first token raise here, as `UpstreamError`s, before anything reaches the
        client. The events that follow end with exactly one `StreamEnd`: a failure mid-stream is its
        `error`. Closing the generator early (the client left) stops the generation.
        """
        ...

    async def health(self) -> UpstreamHealth: ...

    async def check_setup(self) -> None:
        """Raise UpstreamMisconfigured when the server is plainly set up otherwise than the settings say
        (it does not serve the adapter asked for); return when it is, or when it cannot tell."""
        ...

    async def limits(self) -> ContextLimits | None:
        """The server's token limits, or None while it cannot say."""
        ...

    async def metrics_text(self) -> str:
        """The server's own Prometheus metrics, relayed as they are; raises UpstreamUnavailable."""
        ...

    async def aclose(self) -> None: ...
