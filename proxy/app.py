"""`create_app(settings)`: the FastAPI application. Route handlers parse, call, return."""

# No `from __future__ import annotations` here: FastAPI reads the request model
# built inside create_app() from the live annotation.

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from proxy.chat import ChatPipeline
from proxy.chat_template import ChatTemplate
from proxy.event_stream import EventStreamResponse
from proxy.health import HealthTracker
from proxy.http_errors import install_error_handlers
from proxy.errors import UpstreamError
from proxy.inference_server import InferenceServer
from proxy.metrics import ProxyMetrics
from proxy.request_log import RequestLogMiddleware
from proxy.schemas import chat_request_model
from proxy.settings import Settings, load_settings
from proxy.sse import PING, frame_chat_stream
from proxy.stream_record import StreamRecord, recorded
from proxy.upstream import TGIClient


def create_app(settings: Settings | None = None, inference_server: InferenceServer | None = None) -> FastAPI:
    """`inference_server`: the TGI child we launched, if any; /health follows its state, and
    shutting the app down stops it (nothing can use it after that)."""
    settings = settings or load_settings()
    StreamChatRequest = chat_request_model(settings)
    metrics = ProxyMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        upstream = TGIClient(settings)
        app.state.upstream = upstream
        app.state.pipeline = ChatPipeline(settings, ChatTemplate(), upstream)
        app.state.health = HealthTracker(upstream, inference_server)
        try:
            yield
        finally:
            await upstream.aclose()
            if inference_server is not None:
                await asyncio.to_thread(inference_server.stop)

    app = FastAPI(title="Therapist streaming endpoint", version="1.0", lifespan=lifespan)
    app.state.metrics = metrics
    app.add_middleware(RequestLogMiddleware, metrics=metrics)
    install_error_handlers(app, settings, metrics)

    @app.post("/stream_chat", response_class=EventStreamResponse)
    async def stream_chat(body: StreamChatRequest, request: Request) -> EventStreamResponse:
        events = await app.state.pipeline.start(body)
        record = request.state.stream_record = StreamRecord(started_at=request.state.started_at)
        return EventStreamResponse(
            frame_chat_stream(recorded(events, record, metrics)),
            keepalive_s=settings.keepalive_interval_s,
            keepalive_chunk=PING,
        )

    @app.get("/health")
    async def health() -> JSONResponse:
        status = await app.state.health.status()
        body = {"status": status, "model": settings.model_name}
        metrics.upstream_up.set(status == "healthy")
        if status == "healthy":
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(settings.retry_after_unavailable_s)})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        try:
            relayed, problem = await app.state.upstream.metrics_text(), ""
        except UpstreamError as exc:
            relayed, problem = None, exc.message
        metrics.upstream_up.set(relayed is not None)
        return Response(metrics.render(relayed, problem), media_type=CONTENT_TYPE_LATEST)

    return app
