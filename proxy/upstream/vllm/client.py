"""vLLM's OpenAI-compatible server as the upstream interface."""

from __future__ import annotations

import json
from typing import Any, AsyncGenerator

import aiohttp

from proxy.core.chat import ChatEvent, Sampling, StreamEnd
from proxy.core.errors import AdapterNotServed, UpstreamError, UpstreamGenerationFailed, UpstreamUnavailable
from proxy.settings import Settings
from proxy.upstream.interface import ContextLimits, UpstreamHealth
from proxy.upstream.transport import (
    TRANSPORT_ERRORS,
    UpstreamHTTP,
    is_event_stream,
    let_go,
    read_error_body,
    read_to_the_end,
)
from proxy.upstream.vllm.parameters import completion_body
from proxy.upstream.vllm.wire import DONE, chunk_of, error_for_status, plain_text


class VLLMClient:
    def __init__(self, settings: Settings, http: UpstreamHTTP | None = None) -> None:
        self._http = http or UpstreamHTTP(settings, settings.upstream_url)
        self._adapter_id = settings.upstream_adapter_id  # None: the base model
        base = self._http.base_url
        self._completions_url = f"{base}/v1/completions"
        self._health_url, self._models_url, self._metrics_url = f"{base}/health", f"{base}/v1/models", f"{base}/metrics"
        self._cards: list[dict[str, Any]] | None = None  # /v1/models, once it answered

    async def aclose(self) -> None:
        await self._http.aclose()

    async def open_stream(self, prompt: str, sampling: Sampling) -> AsyncGenerator[ChatEvent, None]:
        """Start a completion and read its first chunk, so errors come before any byte is sent."""
        model = await self._model()
        response = await self._http.post_json(self._completions_url,
                                              completion_body(prompt, sampling, model))  # fmt: skip
        try:
            if not is_event_stream(response):
                raise error_for_status(response.status, await read_error_body(response))
            payloads = self._http.sse_payloads(response)
            try:
                first = await anext(payloads)
            except StopAsyncIteration:
                raise UpstreamGenerationFailed("inference server closed the stream before any event") from None
            if first != DONE:
                first_chunk = chunk_of(first)  # an error event before any token raises here
            else:
                raise UpstreamGenerationFailed("inference server ended the stream before any token")
        except AdapterNotServed as exc:
            let_go(response)
            raise self._adapter_not_served(exc.message) from None
        except BaseException:
            let_go(response)
            raise
        return _chat_events(response, payloads, first_chunk)

    def _adapter_not_served(self, refusal: str) -> AdapterNotServed:
        return AdapterNotServed(
            f"the inference server at {self._http.base_url} does not serve the LoRA adapter {self._adapter_id!r} "
            f"that the proxy asks for ({refusal}). Start it with that adapter (vLLM: --enable-lora --lora-modules "
            f"{self._adapter_id}=<adapter folder>), or set PROXY_ADAPTER_ID to a model it serves, or to an empty "
            "value for its base model"
        )

    async def _model(self) -> str:
        if self._adapter_id:
            return self._adapter_id
        base = _base_model(await self._models())
        if base is None:
            raise UpstreamUnavailable(f"inference server at {self._http.base_url} did not list its base model")
        return base["id"]

    async def _models(self) -> list[dict[str, Any]]:
        """The model cards of /v1/models, read once; empty while they cannot be had."""
        if self._cards is None:
            try:
                status, text = await self._http.get(self._models_url)
                cards = json.loads(text)["data"] if 200 <= status < 300 else None
            except (*TRANSPORT_ERRORS, ValueError, KeyError, TypeError):
                return []
            if not isinstance(cards, list):
                return []
            self._cards = [card for card in cards if isinstance(card, dict)]
        return self._cards

    async def check_setup(self) -> None:
        """vLLM lists every adapter it serves as a model of its own: one not listed would be a 404."""
        cards = await self._models()
        served = [card.get("id") for card in cards]
        if self._adapter_id and cards and self._adapter_id not in served:
            raise self._adapter_not_served(f"it serves {', '.join(map(repr, served))}")

    async def health(self) -> UpstreamHealth:
        try:
            status, _ = await self._http.get(self._health_url)
        except TRANSPORT_ERRORS:
            return UpstreamHealth.UNREACHABLE
        return UpstreamHealth.HEALTHY if status == 200 else UpstreamHealth.UNHEALTHY

    async def limits(self) -> ContextLimits | None:
        """vLLM's prompt limit is max_model_len, and the reply must fit in it too."""
        base = _base_model(await self._models())
        length = base.get("max_model_len") if base else None
        return ContextLimits(length, length) if isinstance(length, int) else None

    async def metrics_text(self) -> str:
        try:
            status, text = await self._http.get(self._metrics_url)
        except TRANSPORT_ERRORS as exc:
            raise UpstreamUnavailable(f"inference server metrics unavailable: {exc!r}") from None
        if not 200 <= status < 300:
            raise UpstreamUnavailable(f"inference server metrics unavailable: it answered {status}")
        return text


def _base_model(cards: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first card without a parent (an adapter's parent is its base model)."""
    return next((card for card in cards if card.get("parent") is None and isinstance(card.get("id"), str)), None)


async def _chat_events(
    response: aiohttp.ClientResponse, payloads: AsyncGenerator[str, None], first: Any
) -> AsyncGenerator[ChatEvent, None]:
    """Visible text, then exactly one StreamEnd (from the finish and usage chunks); lets go of the
    response however it ends. vLLM skips special tokens and EOS, so every text is visible."""
    received = 0
    finish: str | None = None
    chunk = first
    try:
        while True:
            if chunk.text:
                received += 1
                yield chunk.text
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
            if chunk.usage is not None:
                prompt, completion = chunk.usage
                yield StreamEnd(finish or "stop", prompt, completion)
                await read_to_the_end(payloads)
                return
            async for data in payloads:
                text = plain_text(data)
                if text is None:
                    break
                if text:
                    received += 1
                    yield text
            else:
                data = None
            if data is None or data == DONE:
                if finish is None:
                    raise UpstreamGenerationFailed("inference server ended the stream without finishing the reply")
                yield StreamEnd(finish, None, received)  # no usage chunk: count what came
                return
            chunk = chunk_of(data)
    except UpstreamError as exc:
        yield StreamEnd("error", None, received, exc)
    finally:
        let_go(response)  # first: the server sees a client that left at once
        await payloads.aclose()
