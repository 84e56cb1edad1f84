"""OpenAI-style requests (Chat Completions, Responses) as the chat service's `ChatInput`.

Both APIs say the same things in different fields; the decisions live here, once:
- The system prompt is the therapist's. A client's `system` / `developer` messages and `instructions`
  are added after it as context from the application (proxy/service/prompt.py), never instead of it.
- `temperature` takes OpenAI's range, 0 to 2, and means what it means there; above 1 it is capped
  at 1, the therapist's highest (the guide's range is 0 to 1). Left out, it and `top_p` are the
  therapist's defaults, as on /stream_chat.
- The conversation must end with the user's message: that is the one the model answers.
- The same limits as /stream_chat: message size, history items and characters, max tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from proxy.core.chat import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, ChatInput, Sampling, Turn
from proxy.core.errors import InvalidRequest, ModelNotFound
from proxy.settings import Settings

THERAPIST_MAX_TEMPERATURE = 1.0
# TGI's --max-stop-sequences is 4 by default, and the end-of-turn marker takes one.
MAX_STOP_SEQUENCES = 3

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Said:
    """One message of the request, as text, and where it stands in the body (for error messages)."""

    role: str  # "system" | "developer" | "user" | "assistant"
    text: str
    loc: Loc


def invalid(loc: Loc, message: str, value: Any = None) -> InvalidRequest:
    return InvalidRequest([{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": value}])


def check_model(requested: str | None, settings: Settings) -> None:
    """Any model name but the served one is unknown here (a typo must not reach another model)."""
    if requested is not None and requested != settings.model_name:
        raise ModelNotFound(requested, settings.model_name)


def chat_input(
    said: Sequence[Said], sampling: Sampling, settings: Settings, instructions: str | None = None
) -> ChatInput:
    if not said or said[-1].role != "user":
        loc = said[-1].loc if said else ()
        raise invalid(loc, "the conversation must end with a user message: it is the one the model answers")
    last = said[-1]
    if not last.text.strip():
        raise invalid(last.loc, "the user message is blank")
    if len(last.text) > settings.max_message_chars:
        raise invalid(last.loc, f"the user message holds {len(last.text)} characters; the limit is "
                                f"{settings.max_message_chars}")  # fmt: skip
    context = [instructions] if instructions and instructions.strip() else []
    history: list[Turn] = []
    for item in said[:-1]:
        if item.role in ("system", "developer"):
            if item.text.strip():
                context.append(item.text)
        else:
            history.append(Turn("user" if item.role == "user" else "assistant", item.text))
    if len(history) > settings.max_history_items:
        raise invalid((), f"the conversation holds {len(history)} earlier turns; the limit is "
                          f"{settings.max_history_items}")  # fmt: skip
    characters = sum(len(turn.content) for turn in history) + sum(len(text) for text in context)
    if characters > settings.max_history_chars:
        raise invalid((), f"the earlier turns and system text hold {characters} characters; the limit is "
                          f"{settings.max_history_chars}")  # fmt: skip
    return ChatInput(tuple(history), last.text, sampling, "\n\n".join(context) or None)


def sampling(
    settings: Settings,
    *,
    max_tokens: int | None,
    max_tokens_field: str,
    temperature: float | None,
    top_p: float | None,
    seed: int | None = None,
    stop: str | list[str] | None = None,
) -> Sampling:
    if max_tokens is None:
        max_tokens = settings.default_max_tokens
    elif max_tokens > settings.max_tokens_limit:
        raise invalid((max_tokens_field,), f"at most {settings.max_tokens_limit} tokens here", max_tokens)
    return Sampling(
        max_tokens=max_tokens,
        temperature=DEFAULT_TEMPERATURE if temperature is None else min(temperature, THERAPIST_MAX_TEMPERATURE),
        top_p=DEFAULT_TOP_P if top_p is None else top_p,
        seed=seed,
        stop=_stop_sequences(stop),
    )


def _stop_sequences(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid(("stop",), f"at most {MAX_STOP_SEQUENCES} stop sequences here", stops)
    if any(not text for text in stops):
        raise invalid(("stop",), "a stop sequence cannot be empty", stops)
    return tuple(stops)
