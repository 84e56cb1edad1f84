"""HTTP to an inference server, for every engine's client: one pooled `aiohttp.ClientSession`.

aiohttp rather than httpx: the client sits in the path of every token, and httpx with httpx-sse
costs two to four times as much CPU per event (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import asyncio
import codecs
import json
from typing import Any, AsyncGenerator

import aiohttp

from proxy.core.errors import UpstreamError, UpstreamGenerationFailed, UpstreamTimeout, UpstreamUnavailable
from proxy.settings import Settings
from proxy.upstream.silence import SilenceWatch
from proxy.upstream.sse_decoder import EventStreamDecoder

# Failures before the response headers: nothing has reached the client, so sending again is safe.
# ClientOSError covers refused connects (ClientConnectorError is one) and a pooled connection the
# server closed while we were writing to it.
_NOT_STARTED = (aiohttp.ClientOSError, aiohttp.ConnectionTimeoutError, aiohttp.ServerDisconnectedError)
# Idle pooled connections are dropped before servers drop them (uvicorn after 5 s), so a request
# rarely goes out on a connection that is being closed under it.
_POOL_IDLE_S = 4.0
_READ_TO_THE_END_S = 1.0
# aiohttp's timeouts are TimeoutErrors, most of them ClientErrors as well.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)
_JSON_HEADERS = {"Content-Type": "application/json"}


class UpstreamHTTP:
    """The pooled session (built on first use: aiohttp wants a running event loop) and the requests
    every engine client makes through it."""

    def __init__(self, settings: Settings, base_url: str) -> None:
        self._settings = settings
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._idle_timeout_s = settings.stream_idle_timeout_s
        self._silence = SilenceWatch(settings.stream_idle_timeout_s)
        probe = settings.health_timeout_s  # per step, as for streams: connect, then each read
        self._probe_timeout = aiohttp.ClientTimeout(total=None, connect=probe, sock_connect=probe, sock_read=probe)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = _build_session(self._settings)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post_json(self, url: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST `body`; a failure before the response headers is retried (PROXY_CONNECT_ATTEMPTS) and
        then raised as UpstreamUnavailable; headers that do not come within the idle timeout raise
        UpstreamTimeout."""
        # The same bytes httpx sent for json=body: compact UTF-8, NaN refused.
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        attempts = self._settings.connect_attempts
        # A plain loop rather than tenacity: this is on the way to the first token, and tenacity's
        # set-up costs more than the rest of this method on every request, failing or not.
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(self._idle_timeout_s):
                    return await self.session.post(url, data=data, headers=_JSON_HEADERS, allow_redirects=False)
            except _NOT_STARTED as exc:
                if attempt == attempts:
                    raise self._unreachable(exc) from None
            except aiohttp.ClientError as exc:
                raise self._unreachable(exc) from None
            except TimeoutError:
                raise UpstreamTimeout("inference server went silent before answering") from None
            await asyncio.sleep(min(0.1 * 2 ** (attempt - 1), 1.0))  # 0.1 s, 0.2 s, ... up to 1 s
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _unreachable(self, exc: Exception) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"inference server unreachable at {self.base_url}: {exc!r}")

    async def get(self, url: str) -> tuple[int, str]:
        """A small GET read whole, with the probe timeout: (status, text). Raises TRANSPORT_ERRORS."""
        async with self.session.get(url, timeout=self._probe_timeout, allow_redirects=False) as response:
            return response.status, await read_text(response)

    async def sse_payloads(self, response: aiohttp.ClientResponse) -> AsyncGenerator[str, None]:
        """The `data` of each server-sent event of the response, as it arrives; a lost connection or a
        silence over the idle timeout raises."""
        decoder = EventStreamDecoder(_charset(response))
        body = response.content
        read = self._silence.watch(response)
        try:
            while chunk := await body.readany():
                for data in decoder.feed(chunk):
                    yield data
        except TimeoutError:
            raise UpstreamTimeout("inference server went silent") from None
        except aiohttp.ClientError as exc:
            raise UpstreamGenerationFailed(f"connection to the inference server was lost: {exc!r}") from None
        finally:
            self._silence.done(read)
        for data in decoder.close():
            yield data


def _build_session(settings: Settings) -> aiohttp.ClientSession:
    """`connect` covers waiting for a pooled connection and opening one. No `sock_read`: it would arm
    a timer per chunk, that is per token; the idle timeout is the SilenceWatch's (and, before the
    response headers, post_json's)."""
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_max_connections, limit_per_host=0, keepalive_timeout=_POOL_IDLE_S
    )
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.connect_timeout_s,
        sock_connect=settings.connect_timeout_s,
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def is_event_stream(response: aiohttp.ClientResponse) -> bool:
    return response.status == 200 and response.headers.get("content-type", "").startswith("text/event-stream")


def _charset(response: aiohttp.ClientResponse) -> str:
    """The body's declared charset when Python knows it, else UTF-8."""
    charset = response.charset
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


async def read_text(response: aiohttp.ClientResponse) -> str:
    return (await response.read()).decode(_charset(response), "replace")


async def read_error_body(response: aiohttp.ClientResponse) -> str:
    try:
        return await read_text(response)
    except TRANSPORT_ERRORS as exc:
        raise UpstreamUnavailable(f"inference server answered {response.status}, then failed: {exc!r}") from None


async def read_to_the_end(payloads: AsyncGenerator[str, None]) -> None:
    """After the final event: reading the rest hands the connection back to the pool for the next
    request, and lets the reading generator finish here rather than in the event loop's finalizer.
    Engines end their response right after the final event; one that does not is not waited for
    long, and a failure here only costs the connection (let_go drops it)."""
    try:
        async with asyncio.timeout(_READ_TO_THE_END_S):
            async for _ in payloads:
                pass
    except (UpstreamError, TimeoutError):
        pass


def let_go(response: aiohttp.ClientResponse) -> None:
    """A response read to its end goes back to the pool; any other closes its connection, so the
    server sees the client go and cancels the generation."""
    if response.content.is_eof():
        response.release()
    else:
        response.close()
