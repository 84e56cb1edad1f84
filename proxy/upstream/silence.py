"""The idle timeout of upstream streams: one clock for all of them, not a timer per read.

aiohttp's `sock_read` timeout re-arms a timer on every chunk it receives, which on an event stream
is every token; that was a tenth of the proxy's CPU per token (docs/benchmarks.md). Here one task
per process looks a few times per timeout at the bytes each stream has received (aiohttp counts
them as they arrive, so the token path does nothing for it). A stream whose count stood still for
the whole timeout gets a TimeoutError in its read, as from `sock_read`; it is noticed up to one
look (a tenth of the timeout, at most 1 s) late.
"""

from __future__ import annotations

import asyncio

import aiohttp

_LOOKS_PER_TIMEOUT = 10
_MAX_LOOK_S = 1.0


class WatchedRead:
    """One stream's response, with the bytes it had received at the last look and since when."""

    __slots__ = ("response", "seen", "quiet_since")

    def __init__(self, response: aiohttp.ClientResponse, now: float) -> None:
        self.response = response
        self.seen = response.content.total_bytes
        self.quiet_since = now


class SilenceWatch:
    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._look_s = min(timeout_s / _LOOKS_PER_TIMEOUT, _MAX_LOOK_S)
        self._reads: set[WatchedRead] = set()
        self._watching: asyncio.Task | None = None

    def watch(self, response: aiohttp.ClientResponse) -> WatchedRead:
        read = WatchedRead(response, asyncio.get_running_loop().time())
        self._reads.add(read)
        if self._watching is None:
            self._watching = asyncio.get_running_loop().create_task(self._look_while_reading())
        return read

    def done(self, read: WatchedRead) -> None:
        self._reads.discard(read)

    async def _look_while_reading(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._reads:
                await asyncio.sleep(self._look_s)
                now = loop.time()
                for read in list(self._reads):
                    received = read.response.content.total_bytes
                    if received != read.seen:
                        read.seen, read.quiet_since = received, now
                    elif now - read.quiet_since >= self._timeout_s:
                        self._reads.discard(read)
                        read.response.content.set_exception(TimeoutError())  # wakes the waiting read
        finally:
            self._watching = None
