"""`create_app(settings)`: the FastAPI application. Route handlers parse, call, return."""

# No `from __future__ import annotations` here: FastAPI reads the request model
# built inside create_app() from the live annotation.

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from proxy.chat import ChatPipeline
from proxy.chat_template import ChatTemplate
from proxy.event_stream import EventStreamResponse
from proxy.health import HealthTracker
from proxy.http_errors import install_error_handlers
from proxy.schemas import chat_request_model
from proxy.settings import Settings, load_settings
from proxy.sse import PING, frame_chat_stream
from proxy.upstream import TGIClient


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    StreamChatRequest = chat_request_model(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        upstream = TGIClient(settings)
        app.state.pipeline = ChatPipeline(settings, ChatTemplate(), upstream)
        app.state.health = HealthTracker(upstream)
        try:
            yield
        finally:
            await upstream.aclose()

    app = FastAPI(title="Therapist streaming endpoint", version="1.0", lifespan=lifespan)
    install_error_handlers(app, settings)

    @app.post("/stream_chat", response_class=EventStreamResponse)
    async def stream_chat(body: StreamChatRequest) -> EventStreamResponse:
        events = await app.state.pipeline.start(body)
        return EventStreamResponse(
            frame_chat_stream(events), keepalive_s=settings.keepalive_interval_s, keepalive_chunk=PING
        )

    @app.get("/health")
    async def health() -> JSONResponse:
        status = await app.state.health.status()
        body = {"status": status, "model": settings.model_name}
        if status == "healthy":
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(settings.retry_after_unavailable_s)})

    return app
