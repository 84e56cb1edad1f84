"""TGI (or anything that speaks its /generate_stream wire) as the upstream interface."""

from __future__ import annotations

import json
from typing import AsyncGenerator

import aiohttp

from proxy.core.chat import ChatEvent, Sampling, StreamEnd
from proxy.core.errors import AdapterNotServed, UpstreamError, UpstreamGenerationFailed, UpstreamUnavailable
from proxy.settings import Settings
from proxy.upstream.interface import ContextLimits, UpstreamHealth
from proxy.upstream.tgi.parameters import tgi_parameters
from proxy.upstream.tgi.stop_text import without_stop_text
from proxy.upstream.tgi.wire import TGIStreamEvent, error_for_status, parse_stream_event
from proxy.upstream.transport import (
    TRANSPORT_ERRORS,
    UpstreamHTTP,
    is_event_stream,
    let_go,
    read_error_body,
    read_to_the_end,
)

# TGI's finish reasons -> the contract's
_FINISH_REASONS = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


class TGIClient:
    def __init__(self, settings: Settings, http: UpstreamHTTP | None = None) -> None:
        self._http = http or UpstreamHTTP(settings, settings.upstream_url)
        self._end_of_turn = settings.end_of_turn
        self._adapter_id = settings.upstream_adapter_id
        base = self._http.base_url
        self._generate_url = f"{base}/generate_stream"
        self._health_url, self._info_url, self._metrics_url = f"{base}/health", f"{base}/info", f"{base}/metrics"
        self._limits: ContextLimits | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def open_stream(self, prompt: str, sampling: Sampling) -> AsyncGenerator[ChatEvent, None]:
        """Start a generation and read its first event, so errors come before any byte is sent."""
        parameters = tgi_parameters(sampling, self._end_of_turn, self._adapter_id)
        response = await self._http.post_json(self._generate_url, {"inputs": prompt, "parameters": parameters})
        try:
            if not is_event_stream(response):
                raise error_for_status(response.status, await read_error_body(response))
            payloads = self._http.sse_payloads(response)
            try:
                first = parse_stream_event(await anext(payloads))
            except StopAsyncIteration:
                raise UpstreamGenerationFailed("inference server closed the stream before any event") from None
        except AdapterNotServed as exc:
            let_go(response)
            raise self._adapter_not_served(exc) from None
        except BaseException:
            let_go(response)
            raise
        events = _chat_events(response, payloads, first, self._end_of_turn)
        return without_stop_text(events, sampling.stop) if sampling.stop else events

    def _adapter_not_served(self, refusal: AdapterNotServed) -> AdapterNotServed:
        return AdapterNotServed(
            f"the inference server at {self._http.base_url} does not serve the LoRA adapter "
            f"{self._adapter_id!r} that the proxy asks for ({refusal.message}). Start it with that adapter "
            f"(TGI: --lora-adapters {self._adapter_id}=<adapter folder>), or set PROXY_ADAPTER_ID to an "
            "adapter it serves, or to an empty value for its base model"
        )

    async def health(self) -> UpstreamHealth:
        try:
            status, _ = await self._http.get(self._health_url)
        except TRANSPORT_ERRORS:
            return UpstreamHealth.UNREACHABLE
        return UpstreamHealth.HEALTHY if status == 200 else UpstreamHealth.UNHEALTHY

    async def check_setup(self) -> None:
        """TGI cannot say: it lists no adapters, and answers an unknown adapter_id with its base model
        (wire.md §5). A refusal from a TGI-compatible server is caught on the first request instead."""

    async def limits(self) -> ContextLimits | None:
        """From TGI's /info, read once; None while it cannot be had."""
        if self._limits is None:
            try:
                status, text = await self._http.get(self._info_url)
                if 200 <= status < 300:
                    info = json.loads(text)
                    self._limits = ContextLimits(info["max_input_tokens"], info["max_total_tokens"])
            except (*TRANSPORT_ERRORS, ValueError, KeyError, TypeError):
                pass
        return self._limits

    async def metrics_text(self) -> str:
        try:
            status, text = await self._http.get(self._metrics_url)
        except TRANSPORT_ERRORS as exc:
            raise UpstreamUnavailable(f"inference server metrics unavailable: {exc!r}") from None
        if not 200 <= status < 300:
            raise UpstreamUnavailable(f"inference server metrics unavailable: it answered {status}")
        return text


async def _chat_events(
    response: aiohttp.ClientResponse, payloads: AsyncGenerator[str, None], first: TGIStreamEvent, end_of_turn: str
) -> AsyncGenerator[ChatEvent, None]:
    """Visible token texts, then exactly one StreamEnd; lets go of the response however it ends.

    One generator for reading, parsing and reshaping: each layer is paid for on every token.
    """
    received = 1
    event = first
    try:
        token = event.token
        # Special tokens (<|im_end|>, eos) and the empty texts of split characters are not text.
        if token.text and not token.special and token.text != end_of_turn:
            yield token.text
        if not event.is_final:
            async for data in payloads:
                event = parse_stream_event(data)
                received += 1
                token = event.token
                if token.text and not token.special and token.text != end_of_turn:
                    yield token.text
                if event.is_final:
                    break
            else:
                raise UpstreamGenerationFailed("inference server ended the stream without a final event")
        details = event.details
        if details is None:
            yield StreamEnd("stop", None, received)
        else:
            yield StreamEnd(_FINISH_REASONS.get(details.finish_reason.value, "stop"), details.input_length,
                            details.generated_tokens)  # fmt: skip
        await read_to_the_end(payloads)
    except UpstreamError as exc:
        yield StreamEnd("error", None, received, exc)
    finally:
        let_go(response)  # first: the server sees a client that left at once
        await payloads.aclose()
