"""vLLM's /v1/completions answers, read: stream chunks, and errors into the proxy's error tree.

Errors are `{"error": {"message", "type", "param", "code"}}` (docs/wire-vllm.md §3). Before the
stream, the status says what went wrong; once it has started, a failure is one `{"error": ...}`
event, then `[DONE]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.decoder import scanstring
from typing import Any

from proxy.core.errors import (
    AdapterNotServed,
    UpstreamError,
    UpstreamGenerationFailed,
    UpstreamMisconfigured,
    UpstreamOverloaded,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)

DONE = "[DONE]"
# vLLM's finish reasons -> the contract's; "abort" and "error" are failures (see chunk_of)
_FINISH_REASONS = {"stop": "stop", "length": "length", "repetition": "stop"}
# The 503s vLLM answers when its optional queue limits are full: busy, worth a retry soon.
_BUSY_TYPES = {"Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    finish_reason: str | None = None  # the contract's, once the choice is finished
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens, on the last chunk


# Every chunk in the middle of a stream reads `{"id":...,"choices":[{"index":0,"text":"...",
# "logprobs":null,"finish_reason":null,...`: its text is read straight off those bytes (wire.md §2), and
# anything else goes through the full parse. On every token: the full parse costs several times as much.
_TEXT_STARTS = ',"choices":[{"index":0,"text":"'
_MIDDLE_AFTER_TEXT = ',"logprobs":null,"finish_reason":null'


def plain_text(data: str) -> str | None:
    """The text of a chunk in the middle of a stream, or None when it is any other kind of chunk."""
    start = data.find(_TEXT_STARTS)
    if start < 0:
        return None
    try:
        text, end = scanstring(data, start + len(_TEXT_STARTS))
    except ValueError:
        return None
    return text if data.startswith(_MIDDLE_AFTER_TEXT, end) else None


def chunk_of(data: str) -> Chunk:
    """One `data:` payload of a completion stream (not `[DONE]`)."""
    try:
        payload = json.loads(data)
    except ValueError:
        raise UpstreamProtocolError(f"inference server sent an event that is not JSON: {data[:200]!r}") from None
    if not isinstance(payload, dict):
        raise UpstreamProtocolError(f"inference server sent an unexpected event: {data[:200]!r}")
    if "error" in payload:
        raise UpstreamGenerationFailed(_message(payload["error"]))
    choices = payload.get("choices")
    usage = payload.get("usage")
    if choices == [] and isinstance(usage, dict):
        try:
            return Chunk("", usage=(int(usage["prompt_tokens"]), int(usage["completion_tokens"])))
        except (KeyError, TypeError, ValueError):
            raise UpstreamProtocolError(f"inference server sent unreadable usage: {data[:200]!r}") from None
    try:
        choice = choices[0]
        text, reason = choice["text"], choice.get("finish_reason")
    except (TypeError, KeyError, IndexError):
        raise UpstreamProtocolError(f"inference server sent an unexpected event: {data[:200]!r}") from None
    if not isinstance(text, str):
        raise UpstreamProtocolError(f"inference server sent an unexpected event: {data[:200]!r}")
    if reason in ("abort", "error"):
        raise UpstreamGenerationFailed(f"inference server ended the generation: finish_reason {reason!r}")
    return Chunk(text, _FINISH_REASONS.get(reason, "stop") if reason is not None else None)


def error_for_status(status: int, body: str) -> UpstreamError:
    """An answer other than 200 + an event stream, before anything was streamed."""
    error = _error_object(body)
    message = _message(error) if error is not None else body[:200]
    detail = f"inference server answered {status}: {message}"
    if status == 404 and (error is None or error.get("param") in (None, "model")):
        return AdapterNotServed(detail)
    if status == 401:
        return UpstreamMisconfigured(f"{detail} (the server wants an API key: the proxy sends none to it)")
    if status in (400, 413, 422):
        return UpstreamRejected(detail)
    if status == 429 or (status == 503 and error is not None and error.get("type") in _BUSY_TYPES):
        return UpstreamOverloaded(detail)
    if status in (502, 503, 504):
        return UpstreamUnavailable(detail)
    if status >= 500:
        return UpstreamGenerationFailed(detail)
    return UpstreamProtocolError(detail)


def _error_object(body: str) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else None


def _message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return str(error)[:200]
