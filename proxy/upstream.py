"""The upstream inference server behind a small interface: stream tokens, health, info, metrics.

TGI is the server today; anything that speaks TGI's /generate_stream wire format can take
its place. One pooled `aiohttp.ClientSession` is shared by every request. aiohttp rather than
httpx: the client sits in the path of every token, and httpx with httpx-sse costs two to four
times as much CPU per event (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import asyncio
import codecs
import enum
import json
from typing import Any, AsyncIterator

import aiohttp

from proxy.errors import (
    UpstreamError,
    UpstreamGenerationFailed,
    UpstreamOverloaded,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.settings import Settings
from proxy.sse_reader import EventStreamDecoder
from proxy.tgi_wire import TGIStreamEvent, parse_stream_event

# Failures before the response headers: nothing has reached the client, so sending again is safe.
# ClientOSError covers refused connects (ClientConnectorError is one) and a pooled connection the
# server closed while we were writing to it.
_NOT_STARTED = (aiohttp.ClientOSError, aiohttp.ConnectionTimeoutError, aiohttp.ServerDisconnectedError)
# Idle pooled connections are dropped before servers drop them (uvicorn after 5 s), so a request
# rarely goes out on a connection that is being closed under it.
_POOL_IDLE_S = 4.0
# TGI ends its response right after the final event; a server that does not is not waited for long.
_DRAIN_S = 1.0
# aiohttp's timeouts are TimeoutErrors, most of them ClientErrors as well.
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)
_JSON_HEADERS = {"Content-Type": "application/json"}


class UpstreamHealth(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # answered, but not healthy
    UNREACHABLE = "unreachable"  # nothing listening (TGI binds only once the model is loaded)


def build_http_client(settings: Settings) -> aiohttp.ClientSession:
    """Needs a running event loop. `connect` covers waiting for a pooled connection and opening one;
    `sock_read` is the longest silence allowed, before the response headers and between reads."""
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_max_connections, limit_per_host=0, keepalive_timeout=_POOL_IDLE_S
    )
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.connect_timeout_s,
        sock_connect=settings.connect_timeout_s,
        sock_read=settings.stream_idle_timeout_s,
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


class UpstreamStream:
    """One /generate_stream response whose first event has already been read.

    Iterating yields every event (the first one included) and ends after the final event;
    mid-stream failures surface as `UpstreamError`s. `aclose()` drops the connection at once
    when the stream was not read to its end, which makes TGI cancel the generation.
    """

    def __init__(self, response: aiohttp.ClientResponse, events: AsyncIterator[TGIStreamEvent], first: TGIStreamEvent):
        self._response = response
        self._events = events
        self.first = first

    async def __aiter__(self) -> AsyncIterator[TGIStreamEvent]:
        yield self.first
        if self.first.is_final:
            await self._drain()
            return
        async for event in self._events:
            yield event
            if event.is_final:
                await self._drain()
                return
        raise UpstreamGenerationFailed("inference server ended the stream without a final event")

    async def _drain(self) -> None:
        # Reading to the end hands the connection back to the pool for the next request. The final
        # event is already out, so a failure here only costs the connection (aclose drops it).
        try:
            async with asyncio.timeout(_DRAIN_S):
                async for _ in self._events:
                    pass
        except (UpstreamError, TimeoutError):
            pass

    async def aclose(self) -> None:
        _let_go(self._response)


async def _parsed_events(response: aiohttp.ClientResponse) -> AsyncIterator[TGIStreamEvent]:
    decoder = EventStreamDecoder(_charset(response))
    body = response.content
    try:
        while chunk := await body.readany():
            for data in decoder.feed(chunk):
                yield parse_stream_event(data)
    except TimeoutError:
        raise UpstreamTimeout("inference server went silent") from None
    except aiohttp.ClientError as exc:
        raise UpstreamGenerationFailed(f"connection to the inference server was lost: {exc!r}") from None
    for data in decoder.close():
        yield parse_stream_event(data)


class TGIClient:
    def __init__(self, settings: Settings, http: aiohttp.ClientSession | None = None) -> None:
        self._settings = settings
        self._http = http  # built on first use: aiohttp wants a running event loop
        base = settings.tgi_url.rstrip("/")
        self._generate_url = f"{base}/generate_stream"
        self._health_url, self._info_url, self._metrics_url = f"{base}/health", f"{base}/info", f"{base}/metrics"
        probe = settings.health_timeout_s  # per step, as for streams: connect, then each read
        self._probe_timeout = aiohttp.ClientTimeout(total=None, connect=probe, sock_connect=probe, sock_read=probe)

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = build_http_client(self._settings)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def open_stream(self, inputs: str, parameters: dict[str, Any]) -> UpstreamStream:
        """Start a generation and read its first event, so errors come before any byte is sent."""
        response = await self._send_with_retry({"inputs": inputs, "parameters": parameters})
        try:
            if not _is_event_stream(response):
                raise _error_for_status(response, await _read_error_body(response))
            events = _parsed_events(response)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                raise UpstreamGenerationFailed("inference server closed the stream before any event") from None
            return UpstreamStream(response, events, first)
        except BaseException:
            _let_go(response)
            raise

    async def _send_with_retry(self, body: dict[str, Any]) -> aiohttp.ClientResponse:
        # The same bytes httpx sent for json=body: compact UTF-8, NaN refused.
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        attempts = self._settings.connect_attempts
        # A plain loop rather than tenacity: this is on the way to the first token, and tenacity's
        # set-up costs more than the rest of this method on every request, failing or not.
        for attempt in range(1, attempts + 1):
            try:
                return await self._session.post(
                    self._generate_url, data=data, headers=_JSON_HEADERS, allow_redirects=False
                )
            except _NOT_STARTED as exc:
                if attempt == attempts:
                    raise self._unreachable(exc) from None
            except _TRANSPORT_ERRORS as exc:
                raise self._unreachable(exc) from None
            await asyncio.sleep(min(0.1 * 2 ** (attempt - 1), 1.0))  # 0.1 s, 0.2 s, ... up to 1 s
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _unreachable(self, exc: Exception) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"inference server unreachable at {self._settings.tgi_url}: {exc!r}")

    async def _get(self, url: str) -> tuple[int, str]:
        """A small GET read whole: (status, text). Raises aiohttp's errors."""
        async with self._session.get(url, timeout=self._probe_timeout, allow_redirects=False) as response:
            return response.status, await _read_text(response)

    async def health(self) -> UpstreamHealth:
        try:
            status, _ = await self._get(self._health_url)
        except _TRANSPORT_ERRORS:
            return UpstreamHealth.UNREACHABLE
        return UpstreamHealth.HEALTHY if status == 200 else UpstreamHealth.UNHEALTHY

    async def info(self) -> dict[str, Any] | None:
        """TGI's /info, or None when it cannot be had right now."""
        try:
            status, text = await self._get(self._info_url)
            return json.loads(text) if 200 <= status < 300 else None
        except (*_TRANSPORT_ERRORS, ValueError):
            return None

    async def metrics_text(self) -> str:
        try:
            status, text = await self._get(self._metrics_url)
        except _TRANSPORT_ERRORS as exc:
            raise UpstreamUnavailable(f"inference server metrics unavailable: {exc!r}") from None
        if not 200 <= status < 300:
            raise UpstreamUnavailable(f"inference server metrics unavailable: it answered {status}")
        return text


def _is_event_stream(response: aiohttp.ClientResponse) -> bool:
    # TGI answers 200 + SSE even for its own errors; anything else comes from axum or a proxy in between.
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


async def _read_text(response: aiohttp.ClientResponse) -> str:
    return (await response.read()).decode(_charset(response), "replace")


async def _read_error_body(response: aiohttp.ClientResponse) -> str:
    try:
        return await _read_text(response)
    except _TRANSPORT_ERRORS as exc:
        raise UpstreamUnavailable(f"inference server answered {response.status}, then failed: {exc!r}") from None


def _let_go(response: aiohttp.ClientResponse) -> None:
    """A response read to its end goes back to the pool; any other closes its connection, so TGI
    sees the client go and cancels the generation."""
    if response.content.is_eof():
        response.release()
    else:
        response.close()


def _error_for_status(response: aiohttp.ClientResponse, text: str) -> Exception:
    status = response.status
    detail = f"inference server answered {status}: {text[:200]!r}"
    if status == 429:
        return UpstreamOverloaded(detail)
    if status in (400, 413, 422):
        return UpstreamRejected(detail)
    if status in (502, 503, 504):
        return UpstreamUnavailable(detail)
    return UpstreamProtocolError(detail)
