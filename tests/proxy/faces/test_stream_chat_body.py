"""POST /stream_chat is served on the fast path, ahead of FastAPI; it must still read bodies exactly as
FastAPI does.

The reference is FastAPI itself: an app whose route takes the same request model as a body
parameter, with the proxy's error handlers. Every body and content type below must get the same
status and the same JSON from both.
"""

import asyncio
import itertools

import httpx
from fastapi import FastAPI

from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.routing import FastRoutes, Routes
from proxy.faces.stream_chat.protocol import chat_request_model
from proxy.faces.stream_chat.router import StreamChatEndpoint
from proxy.settings import Settings

SETTINGS = Settings(max_message_chars=200, max_history_items=3, max_history_chars=300, max_tokens_limit=64)

BODIES = [
    b"",
    b"{not json",
    b'{"message": "hi",}',
    b'{"message": "\xff\xfe"}',
    b"[" * 10_000 + b"]" * 10_000,
    b'{"message": "hi", "temperature": NaN}',
    b'{"message": "hi", "max_tokens": 1e999}',
    b'{"message": "\\ud800"}',
    b'"hi"',
    b'[{"message": "hi"}]',
    b"null",
    b"{}",
    b'{"message": 1}',
    b'{"message": "hi", "max_tokens": "5"}',
    b'{"message": "hi", "max_tokens": 5.0}',
    b'{"message": "hi", "max_tokens": true}',
    b'{"message": "hi", "maxTokens": 5}',
    b'{"message": "hi", "conversation_history": [{"role": "system", "content": "x"}]}',
    b'{"message": "hi", "conversation_history": [{"role": "user", "content": "' + b"y" * 301 + b'"}]}',
    b'{"message": "' + b"x" * 201 + b'"}',
    b'{"message": "hi", "seed": 18446744073709551616}',
    b"\xfd\xff",
    b'{"message": "hi"} trailing',
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/vnd.api+json",
    "application/json/extra",
    "json",
    "text/plain",
    "text/json",
    "",
    None,
]


def reference_app() -> FastAPI:
    app = FastAPI()
    ErrorResponder(SETTINGS).install(app)
    request_model = chat_request_model(SETTINGS)

    @app.post("/stream_chat")
    async def stream_chat(body: request_model) -> dict:
        return {"valid": True}

    return app


async def answers(app, requests: list[tuple[bytes, dict]]) -> list[tuple[int, object]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        results = []
        for body, headers in requests:
            response = await client.post("/stream_chat", content=body, headers=headers)
            results.append((response.status_code, response.json()))
        return results


class UnreachableService:
    """Room for every stream (the gates pass), and no stream is ever started."""

    def refuse_if_full(self) -> None:
        pass

    async def start(self, chat, context):
        raise AssertionError("an invalid body must not reach the chat service")


def test_invalid_bodies_are_answered_as_fastapi_answers_them():
    requests = [
        (body, {} if content_type is None else {"content-type": content_type})
        for body, content_type in itertools.product(BODIES, CONTENT_TYPES)
    ]
    endpoint = StreamChatEndpoint(SETTINGS, UnreachableService(), ErrorResponder(SETTINGS))
    ours = asyncio.run(answers(endpoint, requests))
    fastapi = asyncio.run(answers(reference_app(), requests))
    for request, mine, reference in zip(requests, ours, fastapi, strict=True):
        assert mine == reference, request
    statuses = {status for status, _ in fastapi}
    assert statuses == {400, 422}  # every case is a client error, and both kinds occur


def test_stream_chat_is_found_behind_a_path_prefix():
    # Served under a prefix (uvicorn --root-path /api), POST /api/stream_chat must reach the endpoint,
    # as FastAPI would route it, and not FastAPI's documentation-only route.
    seen = []

    async def endpoint(scope, receive, send):
        seen.append("endpoint")

    async def fastapi(scope, receive, send):
        seen.append("fastapi")

    routes = Routes()
    routes.add_fast("POST", "/stream_chat", endpoint)
    dispatch = FastRoutes(routes, fastapi)
    cases = [
        ("/stream_chat", ""),
        ("/api/stream_chat", "/api"),
        ("/api/stream_chatx", "/api"),
        ("/apistream_chat", "/api"),
    ]
    for path, root_path in cases:
        asyncio.run(dispatch({"type": "http", "method": "POST", "path": path, "root_path": root_path}, None, None))
    assert seen == ["endpoint", "endpoint", "fastapi", "fastapi"]
