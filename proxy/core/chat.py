"""The chat service's vocabulary, shared by every face and every engine.

In: a `ChatInput` (the conversation's turns and the generation parameters), whatever wire format
it arrived in. Out: `ChatEvent`s — visible text as a plain `str` (one per token: the token path has
measured costs, so no wrapper object), a `Notice` the service itself produced, and exactly one
`StreamEnd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proxy.core.errors import ProxyError

Role = Literal["system", "user", "assistant"]

# The therapist's sampling when a request says nothing: the same on every face.
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Sampling:
    """How to generate, in the contract's terms; each engine maps these onto its own parameters."""

    max_tokens: int
    temperature: float  # 0 means greedy
    top_p: float  # 1 means no nucleus cut
    seed: int | None = None
    stop: tuple[str, ...] = ()  # the client's stop sequences; the reply ends before any of them

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True, slots=True)
class ChatInput:
    """One request to the chat service: earlier turns (user and assistant), then the new user message.

    The system prompt is the service's own, never the client's: what a client says in a system or
    developer message (or `instructions`) arrives as `context`, which the prompt adds after it.
    """

    history: tuple[Turn, ...]
    message: str
    sampling: Sampling
    context: str | None = None

    def with_texts(self, history: tuple[Turn, ...], message: str, context: str | None) -> ChatInput:
        return ChatInput(history, message, self.sampling, context)


@dataclass(frozen=True, slots=True)
class Notice:
    """Text the service produced itself (not the model), sent before or instead of the model's reply."""

    kind: str  # what produced it, e.g. "crisis_resources"
    text: str


SafetyCategory = Literal["suicide", "self_harm", "harm_to_others", "abuse"]


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """What the crisis detector made of a request (proxy/policies/crisis/)."""

    flagged: bool
    category: SafetyCategory | None = None

    def as_json(self) -> dict[str, object]:
        return {"flagged": self.flagged, "category": self.category}


@dataclass(frozen=True, slots=True)
class StreamEnd:
    finish_reason: FinishReason
    prompt_tokens: int | None  # None when the engine failed before reporting it, or was not called
    completion_tokens: int
    error: ProxyError | None = None  # an UpstreamError, or ShuttingDown when a drain ended the stream
    safety: SafetyVerdict | None = None  # the crisis detector's, when it ran (set by the chat service)


ChatEvent = str | Notice | StreamEnd
