"""The /stream_chat wire format: pure functions from events to bytes, no I/O.

Each event is one `data: <json>\\n\\n` chunk. JSON is ASCII-only (`\\uXXXX` escapes), so a
client that splits chunks on newlines or decodes without `stream: true` never sees a
character cut in half.
"""

from __future__ import annotations

import json

from proxy.core.chat import ChatEvent, Notice, StreamEnd

PING = b": ping\n\n"


def frame(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=True).encode("ascii") + b"\n\n"


def final_payload(end: StreamEnd) -> dict:
    payload = {
        "token": "",
        "done": True,
        "finish_reason": end.finish_reason,
        "usage": {"prompt_tokens": end.prompt_tokens, "completion_tokens": end.completion_tokens},
    }
    if end.error is not None:
        payload["error"] = {"type": end.error.kind, "message": end.error.message}
    if end.safety is not None:
        payload["safety"] = end.safety.as_json()
    return payload


def frame_token(text: str) -> bytes:
    """Byte for byte what frame({"token": text, "done": False}) writes, built by hand: this runs for
    every token, and only the text needs encoding (json.dumps of a str is ASCII-escaped in C)."""
    return b'data: {"token": ' + json.dumps(text).encode("ascii") + b', "done": false}\n\n'


def frame_chat_event(event: ChatEvent) -> bytes:
    if type(event) is str:
        return frame_token(event)
    if type(event) is Notice:  # the guide's clients show token text; `notice` lets the page show it apart
        return frame({"token": event.text, "done": False, "notice": event.kind})
    return frame(final_payload(event))
