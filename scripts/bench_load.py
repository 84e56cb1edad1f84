"""The benchmark's load generator: lean HTTP/1.1 + SSE clients on asyncio, httptools parsing.

One keep-alive connection per simulated user, reused for its streams, as a browser or SDK would.
Per event the client only takes a timestamp and tells the event's kind from its bytes; JSON is
parsed once per stream (the final event). Both targets are measured the same way:

- direct: TGI's POST /generate_stream, one event per generated token (the final one included); or
  vLLM's POST /v1/completions (streaming, with usage), one chunk per visible token;
- proxied: the proxy's POST /stream_chat, one event per visible token, then the final event;
- chat completions: the proxy's POST /v1/chat/completions (streaming, with usage), a role chunk,
  one chunk per visible token, the finish chunk, the usage chunk, then `[DONE]`.

A token is "visible" when it has text and is not special: what a chat client shows. TTFT is the
time to the first visible token; inter-token latency is the gap between visible tokens that are
adjacent in the generation (so a character split over several byte tokens does not count as a
slow token); throughput counts generated tokens, as TGI does.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import httptools

clock = time.perf_counter


@dataclass
class Tally:
    """What one phase measured. Tokens count towards throughput and ITL inside the window only;
    streams that start at or after `ttft_from` give TTFT samples."""

    window_start: float = math.inf
    window_end: float = math.inf
    ttft_from: float = math.inf
    tokens: int = 0  # generated tokens received inside the window
    itl: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    streams: int = 0  # streams that ended with their final event
    errors: list[str] = field(default_factory=list)

    def open_window(self, now: float, seconds: float) -> None:
        self.window_start, self.window_end, self.ttft_from = now, now + seconds, now


class Observer(Protocol):
    def on_event(self, event: bytes, now: float) -> None: ...

    def outcome(self, status: int) -> str | None:
        """None when the stream ended as expected, else what went wrong."""
        ...


class _Stream:
    """The bookkeeping both observers share: progress through the generation, by position."""

    __slots__ = ("tally", "started", "first_at", "last_pos", "last_visible_pos", "last_visible_at", "final")

    def __init__(self, tally: Tally, started: float) -> None:
        self.tally = tally
        self.started = started
        self.first_at: float | None = None
        self.last_pos = -1
        self.last_visible_pos = -2
        self.last_visible_at = 0.0
        self.final: dict | None = None

    def advance(self, pos: int, now: float, visible: bool) -> None:
        tally = self.tally
        in_window = tally.window_start <= now < tally.window_end
        if in_window:
            tally.tokens += pos - self.last_pos
        self.last_pos = pos
        if not visible:
            return
        if self.first_at is None:
            self.first_at = now
            if self.started >= tally.ttft_from:
                tally.ttft.append(now - self.started)
        elif in_window and pos == self.last_visible_pos + 1:
            tally.itl.append(now - self.last_visible_at)
        self.last_visible_pos, self.last_visible_at = pos, now

    def outcome(self, status: int) -> str | None:
        if status != 200:
            return f"HTTP {status}"
        if self.final is None:
            return "no final event"
        return None


class DirectStream(_Stream):
    """TGI events: the n-th event is the n-th generated token."""

    __slots__ = ("visible",)

    def __init__(self, tally: Tally, started: float, visible: Sequence[bool]) -> None:
        super().__init__(tally, started)
        self.visible = visible

    def on_event(self, event: bytes, now: float) -> None:
        pos = self.last_pos + 1
        if b'"generated_text":null' in event:
            self.advance(pos, now, self.visible[pos])
            return
        payload = json.loads(event[5:])
        if "error" in payload:
            self.tally.errors.append(f"upstream error event: {payload['error']}")
            return
        self.advance(pos, now, self.visible[pos])
        self.final = payload


class ProxiedStream(_Stream):
    """/stream_chat events: the n-th token event is the n-th visible token."""

    __slots__ = ("positions", "count")

    def __init__(self, tally: Tally, started: float, positions: Sequence[int]) -> None:
        super().__init__(tally, started)
        self.positions = positions
        self.count = 0

    def on_event(self, event: bytes, now: float) -> None:
        if b'"done": false' in event:
            self.advance(self.positions[self.count], now, True)
            self.count += 1
            return
        payload = json.loads(event[5:])
        if payload.get("finish_reason") == "error":
            self.tally.errors.append(f"stream error: {payload.get('error')}")
            return
        self.advance(payload["usage"]["completion_tokens"] - 1, now, False)
        self.final = payload


class VllmDirectStream(_Stream):
    """vLLM's /v1/completions chunks: the n-th chunk with text is the n-th visible token (the stand-in
    holds nothing back without stop strings); the finish chunk may carry the last one."""

    __slots__ = ("positions", "count")

    def __init__(self, tally: Tally, started: float, positions: Sequence[int]) -> None:
        super().__init__(tally, started)
        self.positions = positions
        self.count = 0

    def on_event(self, event: bytes, now: float) -> None:
        if b'"finish_reason":null' in event:
            self.advance(self.positions[self.count], now, True)
            self.count += 1
            return
        if event.startswith(b"data: [DONE]"):
            return
        payload = json.loads(event[5:])
        if "error" in payload:
            self.tally.errors.append(f"upstream error event: {payload['error']}")
        elif payload.get("usage"):
            self.advance(payload["usage"]["completion_tokens"] - 1, now, False)
            self.final = payload
        elif payload["choices"][0]["text"]:
            self.advance(self.positions[self.count], now, True)
            self.count += 1


class ChatCompletionStream(_Stream):
    """/v1/chat/completions chunks: the n-th content chunk is the n-th visible token."""

    __slots__ = ("positions", "count")

    def __init__(self, tally: Tally, started: float, positions: Sequence[int]) -> None:
        super().__init__(tally, started)
        self.positions = positions
        self.count = 0

    def on_event(self, event: bytes, now: float) -> None:
        if b'"finish_reason":null' in event:
            if b'"role":"assistant"' not in event:  # the first chunk only names the role
                self.advance(self.positions[self.count], now, True)
                self.count += 1
            return
        if event.startswith(b"data: [DONE]"):
            return
        payload = json.loads(event[5:])
        if "error" in payload:
            self.tally.errors.append(f"stream error: {payload['error']}")
        elif payload.get("usage"):
            self.advance(payload["usage"]["completion_tokens"] - 1, now, False)
            self.final = payload


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; `request()` sends a request and feeds each SSE event
    of the response to a callback with the time its bytes arrived."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser: httptools.HttpResponseParser | None = None
        self._done: asyncio.Future[int] | None = None
        self._on_event: Callable[[bytes, float], None] | None = None
        self._buffer = b""

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    async def request(self, raw: bytes, on_event: Callable[[bytes, float], None]) -> int:
        """Send `raw`, return the status once the whole response has been read."""
        self._parser = httptools.HttpResponseParser(self)
        self._on_event = on_event
        self._buffer = b""
        self._done = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._done

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()  # mid-stream: the server sees the client leave at once

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(exc or ConnectionError("connection closed by the server"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        now = clock()  # one timestamp per read: events that arrive together arrived together
        buffer = self._buffer + body if self._buffer else body
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer
            return
        self._buffer = buffer[end + 2 :]
        for event in buffer[:end].split(b"\n\n"):
            if event.startswith(b"data:"):  # comments (keep-alives) are not events
                self._on_event(event, now)

    def on_message_complete(self) -> None:
        self._finish(self._parser.get_status_code())

    def _finish(self, result: int | BaseException) -> None:
        done = self._done
        if done is None or done.done():
            return
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)


@dataclass
class Target:
    """Where requests go and how their events are read: `direct` (TGI), `proxied` or `chat completions`."""

    name: str
    host: str
    port: int
    path: str
    body: Callable[[int], dict]  # max tokens -> request body
    observer: Callable[[Tally, float], Observer]
    _requests: dict[int, bytes] = field(default_factory=dict)

    def request(self, max_tokens: int) -> bytes:
        raw = self._requests.get(max_tokens)
        if raw is None:
            body = json.dumps(self.body(max_tokens)).encode()
            head = (
                f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            raw = self._requests[max_tokens] = head.encode() + body
        return raw


async def _stream_once(connection: Connection, target: Target, tally: Tally, max_tokens: int) -> None:
    observer = target.observer(tally, clock())
    try:
        status = await connection.request(target.request(max_tokens), observer.on_event)
    except (ConnectionError, httptools.HttpParserError) as exc:
        tally.errors.append(f"{target.name}: {exc!r}")
        return
    problem = observer.outcome(status)
    if problem:
        tally.errors.append(f"{target.name}: {problem}")
    else:
        tally.streams += 1


async def run_user(target: Target, tally: Tally, first_tokens: int, stream_tokens: int, delay_s: float) -> None:
    """A chat user: streams back to back on one connection until cancelled. The first stream is
    `first_tokens` long so that users do not all start and finish in step."""
    await asyncio.sleep(delay_s)
    connection = await Connection.open(target.host, target.port)
    try:
        max_tokens = first_tokens
        while True:
            if connection.closed:
                connection = await Connection.open(target.host, target.port)
            await _stream_once(connection, target, tally, max_tokens)
            max_tokens = stream_tokens
    finally:
        connection.close()


async def run_probe(target: Target, tally: Tally, interval_s: float, max_tokens: int = 1) -> None:
    """TTFT samples: one short request every `interval_s`, on its own connection."""
    connection = await Connection.open(target.host, target.port)
    try:
        due = clock()
        while True:
            if connection.closed:
                connection = await Connection.open(target.host, target.port)
            await _stream_once(connection, target, tally, max_tokens)
            due += interval_s
            wait_s = due - clock()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            else:
                due = clock()  # fell behind: do not burst to catch up
    finally:
        connection.close()


def start_users(
    target: Target, tally: Tally, concurrency: int, stream_tokens: int, ramp_s: float, seed: int = 1
) -> list[asyncio.Task]:
    rng = random.Random(seed)
    return [
        asyncio.ensure_future(
            run_user(target, tally, rng.randint(1, stream_tokens), stream_tokens, ramp_s * i / concurrency)
        )
        for i in range(concurrency)
    ]


async def stop(tasks: Sequence[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN without samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
