"""ASGI responses that react to the client: SSE with keep-alives, cancellation on disconnect,
and the deliberately broken response of the --drop-after fault.

Disconnects are watched on `receive()` (uvicorn reports `http.disconnect` when the socket
closes), so a generation is cancelled even while it waits for the engine, not only when a write
fails.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncGenerator, Awaitable, TypeVar

from starlette.types import Receive, Scope, Send

from localtgi.errors import ConnectionDropped
from localtgi.wire import KEEP_ALIVE

T = TypeVar("T")
logger = logging.getLogger("localtgi")

_UVICORN_INCOMPLETE_RESPONSE = "ASGI callable returned without completing response."


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> tuple[bool, T | None]:
    """Run `work` until it finishes or the client goes away, whichever comes first.

    Returns (finished, result); on disconnect `work` is cancelled and awaited.
    """
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work_task.cancel()
        raise
    finally:
        watcher.cancel()
    if work_task.done():
        return True, work_task.result()
    work_task.cancel()
    try:
        await work_task
    except asyncio.CancelledError:
        pass
    return False, None


def _raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class EventStreamResponse:
    """200 text/event-stream; each chunk of `events` is one framed event, sent as it comes.

    A keep-alive comment goes out whenever `keep_alive_seconds` pass without any event (axum's
    KeepAlive). When the client disconnects, `events` is cancelled and closed, so the generation
    behind it stops. When `events` raises ConnectionDropped, the response is left unfinished.
    """

    def __init__(self, events: AsyncGenerator[bytes, None], headers: dict[str, str], keep_alive_seconds: float) -> None:
        self.events = events
        self.headers = {"content-type": "text/event-stream", "cache-control": "no-cache", **headers}
        self.keep_alive_seconds = keep_alive_seconds
        self._last_sent = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _raw_headers(self.headers)})
        await cancel_on_disconnect(receive, self._send_events(send))

    async def _send_events(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        keep_alive = asyncio.ensure_future(self._send_keep_alives(send))
        try:
            async for event in self.events:
                self._last_sent = loop.time()
                await send({"type": "http.response.body", "body": event, "more_body": True})
        except ConnectionDropped:
            logger.info("drop fault: closing the connection mid-stream")
            return
        finally:
            keep_alive.cancel()
            await self.events.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_keep_alives(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._last_sent + self.keep_alive_seconds - loop.time())
            if loop.time() - self._last_sent >= self.keep_alive_seconds:
                self._last_sent = loop.time()
                await send({"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True})


class DroppedResponse:
    """Headers, the start of a body, then nothing: returning without finishing the response
    makes uvicorn close the connection, so the client sees an incomplete chunked body."""

    def __init__(self, headers: dict[str, str], partial_body: bytes) -> None:
        self.headers = headers
        self.partial_body = partial_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        logger.info("drop fault: closing the connection mid-response")
        await send({"type": "http.response.start", "status": 200, "headers": _raw_headers(self.headers)})
        await send({"type": "http.response.body", "body": self.partial_body, "more_body": True})


class _HideDeliberateDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _UVICORN_INCOMPLETE_RESPONSE


def quiet_deliberate_drops() -> None:
    """uvicorn logs an error for every response left unfinished; for localtgi that is the fault
    the user asked for, and it is already logged as such."""
    logging.getLogger("uvicorn.error").addFilter(_HideDeliberateDrops())
