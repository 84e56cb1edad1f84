"""The upstream inference server behind a small interface: stream tokens, health, info, metrics.

TGI is the server today; anything that speaks TGI's /generate_stream wire format can take
its place. One pooled `httpx.AsyncClient` is shared by every request.
"""

from __future__ import annotations

import enum
from typing import Any, AsyncIterator

import httpx
from httpx_sse import EventSource
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from proxy.errors import (
    UpstreamGenerationFailed,
    UpstreamOverloaded,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.settings import Settings
from proxy.tgi_wire import TGIStreamEvent, parse_stream_event

# Failures that prove TGI never started on the request, so sending it again is safe.
_NOT_STARTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class UpstreamHealth(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # answered, but not healthy
    UNREACHABLE = "unreachable"  # nothing listening (TGI binds only once the model is loaded)


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_connections,
    )
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.stream_idle_timeout_s,
        write=settings.connect_timeout_s,
        pool=settings.connect_timeout_s,
    )
    return httpx.AsyncClient(base_url=settings.tgi_url, limits=limits, timeout=timeout)


class UpstreamStream:
    """One /generate_stream response whose first event has already been read.

    Iterating yields every event (the first one included) and ends after the final event;
    mid-stream failures surface as `UpstreamError`s. `aclose()` drops the connection at once
    when the stream was not read to its end, which makes TGI cancel the generation.
    """

    def __init__(self, response: httpx.Response, events: AsyncIterator[TGIStreamEvent], first: TGIStreamEvent):
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
        # Reading to the end hands the connection back to the pool for the next request.
        async for _ in self._events:
            pass

    async def aclose(self) -> None:
        await self._response.aclose()


async def _parsed_events(response: httpx.Response) -> AsyncIterator[TGIStreamEvent]:
    try:
        async for sse in EventSource(response).aiter_sse():
            yield parse_stream_event(sse.data)
    except httpx.ReadTimeout:
        raise UpstreamTimeout("inference server went silent") from None
    except httpx.TransportError as exc:
        raise UpstreamGenerationFailed(f"connection to the inference server was lost: {exc!r}") from None


class TGIClient:
    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._http = http or build_http_client(settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def open_stream(self, inputs: str, parameters: dict[str, Any]) -> UpstreamStream:
        """Start a generation and read its first event, so errors come before any byte is sent."""
        response = await self._send_with_retry({"inputs": inputs, "parameters": parameters})
        try:
            if not _is_event_stream(response):
                await response.aread()
                raise _error_for_status(response)
            events = _parsed_events(response)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                raise UpstreamGenerationFailed("inference server closed the stream before any event") from None
            return UpstreamStream(response, events, first)
        except BaseException:
            await response.aclose()
            raise

    async def _send_with_retry(self, body: dict[str, Any]) -> httpx.Response:
        request = self._http.build_request("POST", "/generate_stream", json=body)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.connect_attempts),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            retry=retry_if_exception_type(_NOT_STARTED),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._http.send(request, stream=True)
        except (httpx.TransportError, httpx.PoolTimeout) as exc:
            raise UpstreamUnavailable(f"inference server unreachable at {self._settings.tgi_url}: {exc!r}") from None
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def health(self) -> UpstreamHealth:
        try:
            response = await self._http.get("/health", timeout=self._settings.health_timeout_s)
        except httpx.TransportError:
            return UpstreamHealth.UNREACHABLE
        return UpstreamHealth.HEALTHY if response.status_code == 200 else UpstreamHealth.UNHEALTHY

    async def info(self) -> dict[str, Any] | None:
        """TGI's /info, or None when it cannot be had right now."""
        try:
            response = await self._http.get("/info", timeout=self._settings.health_timeout_s)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError):
            return None

    async def metrics_text(self) -> str:
        try:
            response = await self._http.get("/metrics", timeout=self._settings.health_timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"inference server metrics unavailable: {exc!r}") from None
        return response.text


def _is_event_stream(response: httpx.Response) -> bool:
    # TGI answers 200 + SSE even for its own errors; anything else comes from axum or a proxy in between.
    return response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream")


def _error_for_status(response: httpx.Response) -> Exception:
    status = response.status_code
    detail = f"inference server answered {status}: {response.text[:200]!r}"
    if status == 429:
        return UpstreamOverloaded(detail)
    if status in (400, 413, 422):
        return UpstreamRejected(detail)
    if status in (502, 503, 504):
        return UpstreamUnavailable(detail)
    return UpstreamProtocolError(detail)
