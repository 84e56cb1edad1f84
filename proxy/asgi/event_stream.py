"""An ASGI response for long-lived SSE streams: keep-alive comments and prompt cleanup.

Starlette's StreamingResponse cannot send anything while its iterator is waiting, and a
client that goes away is only noticed at the next write. Here a watcher task listens for
the disconnect (and ends the stream at once, so upstream is closed and TGI stops
generating) and writes a comment whenever the stream has been quiet for `keepalive_s`.

The response frames the events itself, with the face's `Framing`, rather than reading a
generator of frames: a generator between the events and the socket costs on every token.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Callable, Mapping, NamedTuple

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx and friends: do not buffer the stream
}


class Framing(NamedTuple):
    """A face's wire format for one stream: `opening` goes out in the same write as the first
    event (one write less before the first token); `frame` turns each event into its bytes."""

    frame: Callable[[Any], bytes]
    opening: bytes = b""


class EventStreamResponse(Response):
    # A Response subclass so FastAPI passes it through; Response.__init__ is skipped on purpose,
    # as it would add `content-length: 0`.

    media_type = "text/event-stream"  # what /openapi.json documents for the 200 response

    def __init__(
        self,
        events: AsyncGenerator[Any, None],
        framing: Framing,
        *,
        keepalive_s: float,
        keepalive_chunk: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self._events = events
        self._framing = framing
        self._keepalive_s = keepalive_s
        self._keepalive_chunk = keepalive_chunk
        merged = {**SSE_HEADERS, **(headers or {})}
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]
        self._last_write = 0.0
        self._writing = False
        self._client_left = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The stream runs in the request's own task; the watcher cancels it when the client leaves.
        # One task per stream, not two plus a wait: this is on the way to every first token.
        loop = asyncio.get_running_loop()
        self._last_write = loop.time()
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        streaming = asyncio.current_task()
        watching = loop.create_task(self._watch(receive, send, streaming))
        try:
            await self._stream(send)
        except asyncio.CancelledError:
            if not self._client_left:
                raise  # cancelled from outside: the server is shutting down
            streaming.uncancel()
        finally:
            watching.cancel()

    async def _stream(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        events = self._events
        frame, opening = self._framing
        try:
            async for event in events:
                chunk = frame(event)
                if opening:
                    chunk, opening = opening + chunk, b""
                self._writing = True
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self._writing = False
                self._last_write = loop.time()
            self._writing = True  # for good: no keep-alive may follow the end of the body
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            # Runs to its end even when cancelled: it closes the upstream connection.
            await events.aclose()

    async def _watch(self, receive: Receive, send: Send, streaming: asyncio.Task) -> None:
        """Cancel the stream when the client disconnects; in the meantime keep a quiet stream alive."""
        loop = asyncio.get_running_loop()
        while True:
            wait_s = self._last_write + self._keepalive_s - loop.time()
            if wait_s <= 0:
                if not self._writing:
                    await send({"type": "http.response.body", "body": self._keepalive_chunk, "more_body": True})
                self._last_write = loop.time()
                continue
            try:
                async with asyncio.timeout(wait_s):  # unlike wait_for (3.11), no extra task per stream
                    message = await receive()
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                self._client_left = True
                streaming.cancel()
                return
