"""Chat Completions on the wire: chat.completion.chunk events, or one chat.completion object.

Stream: a first chunk with the assistant role, a chunk of `delta.content` per token, a last choice
chunk with `finish_reason`, with `include_usage` a chunk with empty `choices` and the usage, then
`data: [DONE]`. A failure after the first byte is an `{"error": {...}}` event (the openai SDK raises
on it), then `[DONE]`. The crisis detector's verdict, when it ran, is the extension field `safety`
of the last choice chunk and of the chat.completion object. Pure functions: no I/O.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from proxy.asgi.event_stream import Framing
from proxy.core.chat import ChatEvent, Notice, StreamEnd
from proxy.faces.openai.errors import error_object

DONE = b"data: [DONE]\n\n"


def completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def usage(end: StreamEnd) -> dict[str, int]:
    prompt = end.prompt_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": end.completion_tokens,
            "total_tokens": prompt + end.completion_tokens}  # fmt: skip


def safety_field(end: StreamEnd) -> dict[str, Any]:
    return {} if end.safety is None else {"safety": end.safety.as_json()}


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode("ascii") + b"\n\n"


@dataclass(frozen=True)
class CompletionChunks:
    """The chunks of one completion: everything but the token text is the same in each, so the
    bytes around it are made once per stream."""

    id: str
    created: int
    model: str
    include_usage: bool

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": choices}  # fmt: skip
        if self.include_usage:
            chunk["usage"] = None  # OpenAI: every chunk but the last has usage null
        chunk.update(extra)
        return chunk

    def _choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def framing(self) -> Framing:
        """The role chunk opens the stream, in the same write as the first token."""
        head, _, tail = _data(self._chunk([self._choice({"content": "\0"})])).partition(b'"\\u0000"')

        def frame(event: ChatEvent) -> bytes:
            if type(event) is str:
                return head + json.dumps(event).encode("ascii") + tail
            if type(event) is Notice:
                return head + json.dumps(event.text).encode("ascii") + tail
            return self._last(event)

        return Framing(frame, opening=_data(self._chunk([self._choice({"role": "assistant", "content": ""})])))

    def whole(self, text: str, end: StreamEnd) -> dict[str, Any]:
        """The whole reply as one chat.completion object (the stream ended without an error)."""
        message = {"role": "assistant", "content": text}
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": end.finish_reason}],
            "usage": usage(end),
            **safety_field(end),
        }

    def _last(self, end: StreamEnd) -> bytes:
        if end.error is not None:
            return _data({"error": error_object(end.error)}) + DONE
        frames = _data(self._chunk([self._choice({}, end.finish_reason)], **safety_field(end)))
        if self.include_usage:
            frames += _data(self._chunk([], usage=usage(end)))
        return frames + DONE
