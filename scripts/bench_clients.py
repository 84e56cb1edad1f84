"""The upstream client in isolation: what it costs to read TGI's /generate_stream, per event.

The proxy's upstream client reads every token, so its per-event CPU is a floor under the proxy's.
This measures the two candidates the same way, in this process, against the same localtgi:

- httpx + httpx-sse: the design's first choice (and what the proxy used before);
- aiohttp + the proxy's own SSE decoder (proxy/upstream/sse_decoder.py): what the proxy uses now.

Each parses every event with the proxy's parse_stream_event, as the proxy does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import aiohttp
import httpx
from httpx_sse import EventSource

from proxy.upstream.sse_decoder import EventStreamDecoder
from proxy.upstream.tgi.wire import parse_stream_event


@dataclass
class ClientResult:
    client: str
    concurrency: int
    events_per_s: float
    cpu_share: float  # of one core

    @property
    def us_per_event(self) -> float:
        return self.cpu_share / self.events_per_s * 1e6 if self.events_per_s else float("nan")


class _Counter:
    events = 0


async def _httpx_stream(client: httpx.AsyncClient, body: dict, counter: _Counter) -> None:
    async with client.stream("POST", "/generate_stream", json=body) as response:
        async for sse in EventSource(response).aiter_sse():
            parse_stream_event(sse.data)
            counter.events += 1


async def _aiohttp_stream(session: aiohttp.ClientSession, url: str, body: dict, counter: _Counter) -> None:
    async with session.post(f"{url}/generate_stream", json=body) as response:
        decoder = EventStreamDecoder()
        while chunk := await response.content.readany():
            for data in decoder.feed(chunk):
                parse_stream_event(data)
                counter.events += 1


async def _measure(
    stream: Callable[[_Counter], Awaitable[None]], concurrency: int, warmup_s: float, window_s: float
) -> tuple[float, float]:
    counter = _Counter()

    async def user() -> None:
        while True:
            await stream(counter)

    users = [asyncio.ensure_future(user()) for _ in range(concurrency)]
    try:
        await asyncio.sleep(warmup_s)
        cpu, wall, events = time.process_time(), time.perf_counter(), counter.events
        await asyncio.sleep(window_s)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return (counter.events - events) / wall, cpu / wall
    finally:
        for task in users:
            task.cancel()
        await asyncio.gather(*users, return_exceptions=True)


async def compare_clients(
    url: str, body: dict, concurrency: int, warmup_s: float = 1.5, window_s: float = 6.0
) -> list[ClientResult]:
    """Both clients against `url`, one after the other, `concurrency` streams each."""
    results = []
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:
        rate, share = await _measure(lambda c: _httpx_stream(client, body, c), concurrency, warmup_s, window_s)
        results.append(ClientResult("httpx + httpx-sse", concurrency, rate, share))
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(sock_read=60.0)) as session:
        rate, share = await _measure(lambda c: _aiohttp_stream(session, url, body, c), concurrency, warmup_s, window_s)
        results.append(ClientResult("aiohttp", concurrency, rate, share))
    return results
