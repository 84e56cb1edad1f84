"""`create_app(settings)`: the proxy as an ASGI application. Route handlers parse, call, return."""

# No `from __future__ import annotations` here: FastAPI reads the request model
# built inside create_app() from the live annotation.

import asyncio
import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp

from proxy.auth import ApiKeyMiddleware, ApiKeys
from proxy.body_limit import BodyLimitMiddleware
from proxy.chat import ChatPipeline
from proxy.chat_template import load_chat_template
from proxy.errors import UpstreamError
from proxy.event_stream import EventStreamResponse
from proxy.health import HealthTracker
from proxy.http_errors import ErrorResponses, install_error_handlers
from proxy.inference_server import InferenceServer
from proxy.metrics import ProxyMetrics
from proxy.prompt_safety import PromptGuard
from proxy.request_log import RequestLogMiddleware
from proxy.schemas import chat_request_model
from proxy.settings import Settings, load_settings
from proxy.stream_endpoint import STREAM_CHAT_PATH, Services, StreamChatEndpoint, StreamChatFirst
from proxy.tokenizer import load_prompt_tokenizer
from proxy.upstream import TGIClient


def create_app(settings: Settings | None = None, inference_server: InferenceServer | None = None) -> ASGIApp:
    """`inference_server`: the TGI child we launched, if any; /health follows its state, and
    shutting the app down stops it (nothing can use it after that).

    POST /stream_chat is served by StreamChatEndpoint ahead of FastAPI (proxy/stream_endpoint.py
    says why), every other route by FastAPI; the middleware below wraps both."""
    settings = settings or load_settings()
    StreamChatRequest = chat_request_model(settings)
    metrics = ProxyMetrics()
    errors = ErrorResponses(settings, metrics)
    stream_chat_endpoint = StreamChatEndpoint(settings, StreamChatRequest, metrics, errors)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        upstream = TGIClient(settings)
        tokenizer = load_prompt_tokenizer(settings.tokenizer_path, settings.adapter_dir)
        guard = PromptGuard(tokenizer.added_tokens() if tokenizer else ())
        template = load_chat_template(settings.adapter_dir)
        pipeline = ChatPipeline(settings, template, upstream, guard, tokenizer)
        services = Services(upstream, pipeline, HealthTracker(upstream, inference_server))
        stream_chat_endpoint.services = app.state.services = services
        try:
            yield
        finally:
            await upstream.aclose()
            if inference_server is not None:
                await asyncio.to_thread(inference_server.stop)

    app = FastAPI(title="Therapist streaming endpoint", version="1.0", lifespan=lifespan)
    install_error_handlers(app, errors)

    # Documents POST /stream_chat in /openapi.json and gives other methods their 405; the POST itself
    # never reaches FastAPI (StreamChatFirst). status_code: FastAPI's OpenAPI generator finds none in
    # EventStreamResponse.__init__ and would fail (500).
    @app.post(STREAM_CHAT_PATH, response_class=EventStreamResponse, status_code=200)
    async def stream_chat(body: StreamChatRequest) -> EventStreamResponse:
        raise RuntimeError("POST /stream_chat is served by StreamChatEndpoint")

    @app.get("/health")
    async def health() -> JSONResponse:
        status = await app.state.services.health.status()
        body = {"status": status, "model": settings.model_name}
        metrics.upstream_up.set(status == "healthy")
        if status == "healthy":
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(settings.retry_after_unavailable_s)})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        try:
            relayed, problem = await app.state.services.upstream.metrics_text(), ""
        except UpstreamError as exc:
            relayed, problem = None, exc.message
        metrics.upstream_up.set(relayed is not None)
        return Response(metrics.render(relayed, problem), media_type=CONTENT_TYPE_LATEST)

    return with_middleware(StreamChatFirst(stream_chat_endpoint, app), settings, metrics)


def with_middleware(app: ASGIApp, settings: Settings, metrics: ProxyMetrics) -> ASGIApp:
    """Outermost first: request log (sees every answer), CORS (answers preflights), API keys, body size."""
    app = BodyLimitMiddleware(app, max_bytes=settings.max_body_bytes)
    api_keys = ApiKeys.from_settings(settings.api_keys, settings.api_keys_file)
    if api_keys.enabled:
        app = ApiKeyMiddleware(app, keys=api_keys)
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:
        app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "X-History-Dropped"],
            max_age=600,
        )
    return RequestLogMiddleware(app, metrics=metrics)


def freeze_startup_objects() -> None:
    """Move what start-up built (modules, classes, the app: ~90,000 objects) out of the garbage
    collector's reach. Otherwise every full collection walks all of them, and the event loop, with
    every stream on it, stalls for 20 to 70 ms (docs/benchmarks.md). They live as long as the
    process anyway; objects made later are collected as before."""
    gc.collect()
    gc.freeze()
