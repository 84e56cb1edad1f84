"""The Responses API on the wire: its event sequence, or one response object. No I/O.

Stream, each event `event: <type>` + `data: <json>` with a `sequence_number` from 0:
response.created, response.in_progress, response.output_item.added, response.content_part.added,
response.output_text.delta (one per token), response.output_text.done, response.content_part.done,
response.output_item.done, then response.completed, or response.incomplete (the token limit), or,
when the model failed mid-stream, response.failed right after the last delta. The crisis
detector's verdict, when it ran, is the extension field `safety` of the final response object.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from proxy.asgi.event_stream import Framing
from proxy.core.chat import ChatEvent, Notice, StreamEnd


def _new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _usage(end: StreamEnd) -> dict[str, Any]:
    prompt = end.prompt_tokens or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": end.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + end.completion_tokens,
    }


def _status(end: StreamEnd) -> str:
    if end.error is not None:
        return "failed"
    return "incomplete" if end.finish_reason == "length" else "completed"


@dataclass
class ResponseBuilder:
    """One response: its ids and settings, the same in every event that carries the response."""

    model: str
    instructions: str | None
    max_output_tokens: int | None
    temperature: float
    top_p: float
    id: str = field(default_factory=lambda: _new_id("resp_"))
    message_id: str = field(default_factory=lambda: _new_id("msg_"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def response(self, status: str, output: list[dict[str, Any]], end: StreamEnd | None = None) -> dict[str, Any]:
        error = incomplete = None
        if end is not None and end.error is not None:
            error = {"code": "server_error", "message": end.error.message}
        elif end is not None and end.finish_reason == "length":
            incomplete = {"reason": "max_output_tokens"}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": False,
            "previous_response_id": None,
            "store": False,
            "temperature": self.temperature,
            "text": {"format": {"type": "text"}},
            "tool_choice": "none",
            "tools": [],
            "top_p": self.top_p,
            "truncation": "disabled",
            "usage": _usage(end) if end is not None else None,
            "metadata": {},
            **({} if end is None or end.safety is None else {"safety": end.safety.as_json()}),
        }

    def message(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [self.text_part(text)]
        return {"id": self.message_id, "type": "message", "status": status, "role": "assistant", "content": content}

    @staticmethod
    def text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def whole(self, text: str, end: StreamEnd) -> dict[str, Any]:
        """The response object of a generation that ended without an error."""
        status = _status(end)
        return self.response(status, [self.message("completed" if status == "completed" else "incomplete", text)],
                             end)  # fmt: skip


class ResponseReply:
    def __init__(self, builder: ResponseBuilder) -> None:
        self._builder = builder
        self._sequence = 0

    def whole(self, text: str, end: StreamEnd) -> dict[str, Any]:
        return self._builder.whole(text, end)

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        body = json.dumps(payload, separators=(",", ":")).encode("ascii")
        return b"event: " + kind.encode("ascii") + b"\ndata: " + body + b"\n\n"

    def framing(self) -> Framing:
        """The opening events go out in the same write as the first token: fewer writes before it."""
        builder = self._builder
        where = {"item_id": builder.message_id, "output_index": 0, "content_index": 0}
        # The bytes around a delta's text are the same every time but for the sequence number.
        head = (b"event: response.output_text.delta\ndata: "
                + json.dumps({"type": "response.output_text.delta", **where}, separators=(",", ":"))[:-1].encode()
                + b',"delta":')  # fmt: skip
        texts: list[str] = []
        opening = b"".join((
            self._event("response.created", response=builder.response("in_progress", [])),
            self._event("response.in_progress", response=builder.response("in_progress", [])),
            self._event("response.output_item.added", output_index=0, item=builder.message("in_progress", None)),
            self._event("response.content_part.added", **where, part=builder.text_part("")),
        ))  # fmt: skip

        def frame(event: ChatEvent) -> bytes:
            if type(event) is Notice:
                event = event.text
            if type(event) is not str:
                return self._ending("".join(texts), event, where)
            texts.append(event)
            sequence, self._sequence = self._sequence, self._sequence + 1
            return (head + json.dumps(event).encode("ascii") + b',"logprobs":[],"sequence_number":'
                    + str(sequence).encode() + b"}\n\n")  # fmt: skip

        return Framing(frame, opening)

    def _ending(self, text: str, end: StreamEnd, where: dict[str, Any]) -> bytes:
        builder = self._builder
        if end.error is not None:
            return self._event("response.failed", response=builder.response("failed", [builder.message(
                "incomplete", text)], end))  # fmt: skip
        whole = builder.whole(text, end)
        item = whole["output"][0]
        return b"".join((
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event("response.content_part.done", **where, part=builder.text_part(text)),
            self._event("response.output_item.done", output_index=0, item=item),
            self._event(f"response.{whole['status']}", response=whole),
        ))  # fmt: skip
