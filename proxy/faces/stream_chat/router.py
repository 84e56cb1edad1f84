"""POST /stream_chat: parse the guide's body, ask the chat service, frame its events as the guide's SSE.

Served on the fast ASGI path (proxy/asgi/routing.py says why); FastAPI documents the route in
/openapi.json and answers other methods with 405.
"""

# No `from __future__ import annotations` here: FastAPI reads the request model of the documenting
# route, built at run time, from the live annotation.

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.event_stream import EventStreamResponse, Framing
from proxy.asgi.json_body import ClientLeft, read_body, validated_body
from proxy.asgi.routing import Routes
from proxy.core.errors import ProxyError
from proxy.faces.stream_chat.framing import PING, frame_chat_event
from proxy.faces.stream_chat.protocol import chat_request_model
from proxy.observability.request_context import RequestContext
from proxy.service.chat_service import ChatService
from proxy.settings import Settings

PATH = "/stream_chat"


class StreamChatEndpoint:
    def __init__(self, settings: Settings, service: ChatService, errors: ErrorResponder) -> None:
        self.request_model = chat_request_model(settings)
        self._keepalive_s = settings.keepalive_interval_s
        self._service = service
        self._errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._service.refuse_if_full()
            request = validated_body(await read_body(receive), scope, self.request_model)
            stream = await self._service.start(request.chat_input(), RequestContext.of(scope))
        except ClientLeft:
            return
        except ProxyError as exc:
            await self._errors.send(exc, scope, receive, send)
            return
        dropped = stream.dropped_turns
        response = EventStreamResponse(
            stream.events,
            Framing(frame_chat_event),
            keepalive_s=self._keepalive_s,
            keepalive_chunk=PING,
            headers={"x-history-dropped": str(dropped)} if dropped else None,
        )
        await response(scope, receive, send)


def add_stream_chat(
    app: FastAPI, routes: Routes, settings: Settings, service: ChatService, errors: ErrorResponder
) -> None:
    endpoint = StreamChatEndpoint(settings, service, errors)
    routes.add_fast("POST", PATH, endpoint)
    StreamChatRequest = endpoint.request_model

    # Documents POST /stream_chat in /openapi.json and gives other methods their 405; the POST itself
    # never reaches FastAPI. status_code: FastAPI's OpenAPI generator finds none in
    # EventStreamResponse.__init__ and would fail (500).
    @app.post(PATH, response_class=EventStreamResponse, status_code=200)
    async def stream_chat(body: StreamChatRequest) -> EventStreamResponse:
        raise RuntimeError("POST /stream_chat is served by StreamChatEndpoint")
