"""Read TGI /generate_stream bodies strictly: exactly `data: <json>\\n\\n` blocks or `:` keep-alives."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Iterator
from urllib.parse import urlsplit

import httpx


def post_stream(base_url: str, body: dict, path: str = "/generate_stream") -> tuple[httpx.Response, bytes]:
    """POST and read the whole streamed body; returns the response and its raw bytes."""
    with httpx.stream("POST", f"{base_url}{path}", json=body, timeout=30) as response:
        return response, response.read()


def data_payloads(raw: bytes, keep_alives: list[bytes] | None = None) -> list[str]:
    """The JSON texts of the events, in order; keep-alive comments go to `keep_alives`."""
    blocks = raw.split(b"\n\n")
    if blocks[-1] != b"":
        raise AssertionError(f"stream does not end with a blank line: {raw[-80:]!r}")
    payloads = []
    for block in blocks[:-1]:
        if block.startswith(b":"):
            if keep_alives is not None:
                keep_alives.append(block)
            continue
        if not block.startswith(b"data: ") or b"\n" in block:
            raise AssertionError(f"not one `data: ` line: {block[:120]!r}")
        payloads.append(block[len(b"data: ") :].decode("utf-8"))
    return payloads


def events(raw: bytes) -> list[dict]:
    return [json.loads(payload) for payload in data_payloads(raw)]


def shape(payload: str) -> object:
    """Keys in document order with value types (null kept as None), to compare wire layouts."""

    def walk(value: object) -> object:
        if isinstance(value, tuple):
            return tuple((key, walk(item)) for key, item in value)
        if isinstance(value, list):
            return [walk(item) for item in value]
        return None if value is None else type(value).__name__

    return walk(json.loads(payload, object_pairs_hook=tuple))


@contextlib.contextmanager
def raw_connection(base_url: str, path: str, body: dict, wait_for: bytes = b"") -> Iterator[socket.socket]:
    """A bare socket with a POST sent, after `wait_for` has arrived; closing it is a client
    disconnect with nothing in between (no pool, no half-close)."""
    url = urlsplit(base_url)
    content = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as client:
        client.sendall(head.encode() + content)
        received = b""
        while wait_for not in received:
            chunk = client.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed before {wait_for!r}: {received[-200:]!r}")
            received += chunk
        yield client
