"""Read a /stream_chat response the strict way: every block must be one `data:` line or a comment."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx


@dataclass
class ChatStream:
    status: int
    headers: httpx.Headers
    events: list[dict] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    body: bytes = b""

    @property
    def text(self) -> str:
        return "".join(event["token"] for event in self.events if not event["done"])

    @property
    def final(self) -> dict:
        return self.events[-1]


def parse_event_stream(body: bytes) -> tuple[list[dict], list[str]]:
    assert body.endswith(b"\n\n"), f"stream does not end with a blank line: {body[-80:]!r}"
    events, comments = [], []
    for block in body[:-2].split(b"\n\n"):
        assert b"\n" not in block, f"an event spans several lines: {block!r}"
        block.decode("ascii")  # raises if the stream is not pure ASCII
        if block.startswith(b":"):
            comments.append(block.decode())
            continue
        assert block.startswith(b"data: "), f"not a data line: {block!r}"
        events.append(json.loads(block[len(b"data: ") :]))
    return events, comments


def stream_chat(base_url: str, body: dict | bytes, *, timeout: float = 30.0, headers: dict | None = None) -> ChatStream:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    with httpx.stream("POST", f"{base_url}/stream_chat", timeout=timeout, headers=headers, **kwargs) as response:
        raw = response.read()
    result = ChatStream(response.status_code, response.headers, body=raw)
    if response.status_code == 200:
        result.events, result.comments = parse_event_stream(raw)
    return result
