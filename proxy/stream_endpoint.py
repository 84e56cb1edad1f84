"""POST /stream_chat as a plain ASGI app, served ahead of FastAPI.

Every token of every stream goes through whatever wraps the endpoint's `send`: under FastAPI,
six layers (its error, telemetry and exception middlewares, its routing); and before the handler
starts, FastAPI's request handling takes 0.3 ms (docs/benchmarks.md, "What the profiles said").
So this route is served here, and FastAPI keeps the rest (/health, /metrics, the docs, and the
405 for other methods on /stream_chat). The request body is read and validated the way FastAPI
reads a model body parameter: same status codes, same 422 detail. Errors become responses in
proxy/http_errors.py, as on every route.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from fastapi.exceptions import HTTPException, RequestValidationError
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.chat import ChatPipeline
from proxy.event_stream import EventStreamResponse
from proxy.health import HealthTracker
from proxy.http_errors import ErrorResponses
from proxy.metrics import ProxyMetrics
from proxy.schemas import ChatRequest
from proxy.settings import Settings
from proxy.sse import PING, frame_chat_stream
from proxy.stream_record import StreamRecord, recorded
from proxy.stream_slots import StreamSlots
from proxy.upstream import TGIClient

STREAM_CHAT_PATH = "/stream_chat"


class RouteLabel(NamedTuple):
    """What the request log reads from scope["route"] (Starlette puts its route object there)."""

    path: str


class Services(NamedTuple):
    """What start-up builds (the app's lifespan) and requests use."""

    upstream: TGIClient
    pipeline: ChatPipeline
    health: HealthTracker


class ClientLeft(Exception):
    """The client went away before its request body was complete: nothing to answer."""


class StreamChatEndpoint:
    def __init__(
        self,
        settings: Settings,
        request_model: type[ChatRequest],
        metrics: ProxyMetrics,
        errors: ErrorResponses,
    ) -> None:
        self.services: Services | None = None  # set at start-up, by the app's lifespan
        self._settings = settings
        self._request_model = request_model
        self._metrics = metrics
        self._errors = errors
        self._slots = StreamSlots(settings.max_streams_per_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request = self._validated(await _read_body(receive), scope)
            response = await self._start_stream(request, scope.setdefault("state", {}))
        except ClientLeft:
            return
        except Exception as exc:
            response = self._errors.response_for(exc)  # raises again what it does not know
        await response(scope, receive, send)

    def _validated(self, body: bytes, scope: Scope) -> ChatRequest:
        """FastAPI's reading of a JSON body parameter: parsed only when declared JSON, "missing" when
        empty, validated in Python mode (JSON has no NaN, but json.loads has), errors under "body"."""
        if not body:
            missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
            raise RequestValidationError([missing], body=None)
        try:
            content = json.loads(body) if _declares_json(scope) else body
        except json.JSONDecodeError as exc:
            error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
            raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}], body=exc.doc) from None
        except Exception:  # not UTF-8, nested too deep: FastAPI's answer too
            raise HTTPException(status_code=400, detail="There was an error parsing the body") from None
        try:
            return self._request_model.model_validate(content, from_attributes=True)
        except ValidationError as exc:
            errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
            raise RequestValidationError(errors, body=content) from None

    async def _start_stream(self, request: ChatRequest, state: dict[str, Any]) -> EventStreamResponse:
        services = self.services
        key_id = state.get("api_key_id")
        release_slot = self._slots.acquire(key_id) if key_id else None
        try:
            prompt, events = await services.pipeline.start(request)
            services.health.saw_upstream_serving()
        except BaseException:
            if release_slot:
                release_slot()
            raise
        record = state["stream_record"] = StreamRecord(started_at=state["started_at"])
        record.history_dropped = prompt.dropped_turns
        return EventStreamResponse(
            frame_chat_stream(recorded(events, record, self._metrics, on_close=release_slot)),
            keepalive_s=self._settings.keepalive_interval_s,
            keepalive_chunk=PING,
            headers={"x-history-dropped": str(prompt.dropped_turns)} if prompt.dropped_turns else None,
        )


class StreamChatFirst:
    """POST /stream_chat to its endpoint; everything else (lifespan included) to `app`."""

    def __init__(self, stream_chat: ASGIApp, app: ASGIApp) -> None:
        self._stream_chat = stream_chat
        self._app = app
        self._route = RouteLabel(STREAM_CHAT_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _route_path(scope) == STREAM_CHAT_PATH:
            scope["route"] = self._route
            await self._stream_chat(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the app routes on: behind a prefix (uvicorn --root-path /api), ASGI's `path` starts
    with `root_path`, and FastAPI matches what follows it."""
    path, root_path = scope["path"], scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] == "/":
        return path[len(root_path) :]
    return path


def _declares_json(scope: Scope) -> bool:
    """application/json or application/*+json, parameters ignored (what FastAPI parses as JSON)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type = value.decode("latin-1").partition(";")[0].strip().lower()
            main, slash, sub = media_type.partition("/")
            if not slash or main != "application" or "/" in sub:
                return False
            return sub == "json" or sub.endswith("+json")
    return False


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientLeft
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
