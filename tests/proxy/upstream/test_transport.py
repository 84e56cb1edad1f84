"""The idle timeout without aiohttp's per-read timer: silence before the headers and between reads."""

from __future__ import annotations

import asyncio

import pytest

from proxy.core.errors import UpstreamTimeout
from proxy.settings import Settings
from proxy.upstream.transport import UpstreamHTTP

IDLE_S = 0.3
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def serve(answer) -> tuple[asyncio.Server, str]:
    """A loopback server that reads the request head, then plays `answer(writer)`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await answer(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def read_events(answer) -> tuple[list[str], BaseException | None]:
    server, url = await serve(answer)
    http = UpstreamHTTP(Settings(stream_idle_timeout_s=IDLE_S), url)
    events: list[str] = []
    try:
        response = await http.post_json(f"{url}/generate_stream", {"inputs": "x"})
        async for data in http.sse_payloads(response):
            events.append(data)
    except UpstreamTimeout as exc:
        return events, exc
    finally:
        await http.aclose()
        server.close()
    return events, None


def test_headers_that_never_come_are_an_upstream_timeout() -> None:
    async def never_answer(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    events, error = asyncio.run(read_events(never_answer))
    assert events == [] and isinstance(error, UpstreamTimeout) and "before answering" in error.message


def test_a_stream_silent_for_the_idle_timeout_ends_with_an_upstream_timeout() -> None:
    async def two_events_then_silence(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(b"data: one\n\n") + chunk(b"data: two\n\n"))
        await asyncio.sleep(5)

    events, error = asyncio.run(read_events(two_events_then_silence))
    assert events == ["one", "two"]
    assert isinstance(error, UpstreamTimeout) and "went silent" in error.message


@pytest.mark.parametrize("gap_s", [IDLE_S / 2, IDLE_S * 0.8])
def test_a_stream_with_gaps_shorter_than_the_idle_timeout_is_read_to_its_end(gap_s: float) -> None:
    # Five gaps add up to far more than the timeout: each byte starts the count again.
    async def slow_but_steady(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        for number in range(5):
            await asyncio.sleep(gap_s)
            writer.write(chunk(b"data: %d\n\n" % number))
        writer.write(b"0\r\n\r\n")

    events, error = asyncio.run(read_events(slow_but_steady))
    assert error is None and events == ["0", "1", "2", "3", "4"]
