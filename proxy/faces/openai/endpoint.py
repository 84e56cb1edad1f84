"""The one endpoint behind both OpenAI APIs: read and validate the body, start the chat, then stream
its events (`"stream": true`) or answer once with the whole reply.

Each API brings its request model and its framing (`OpenAIApi`); the rest is the same for both.
Served on the fast ASGI path, like /stream_chat.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Protocol

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.event_stream import EventStreamResponse, Framing
from proxy.asgi.json_body import ClientLeft, read_body, validated_body
from proxy.core.chat import ChatEvent, ChatInput, Notice, StreamEnd
from proxy.core.errors import ProxyError
from proxy.observability.request_context import RequestContext
from proxy.service.chat_service import ChatService
from proxy.settings import Settings

PING = b": ping\n\n"  # an SSE comment: the openai SDK, like every SSE parser, skips it


class Reply(Protocol):
    """One reply in an API's wire format."""

    def framing(self) -> Framing: ...

    def whole(self, text: str, end: StreamEnd) -> dict[str, Any]: ...


class OpenAIApi(Protocol):
    request_model: type[BaseModel]

    def chat_input(self, request: Any, settings: Settings) -> ChatInput: ...

    def streams(self, request: Any) -> bool: ...

    def reply(self, request: Any, chat: ChatInput) -> Reply: ...


class OpenAIEndpoint:
    def __init__(self, api: OpenAIApi, settings: Settings, service: ChatService, errors: ErrorResponder) -> None:
        self._api = api
        self._settings = settings
        self._service = service
        self._errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = self._api
        try:
            self._service.refuse_if_full()
            request = validated_body(await read_body(receive), scope, api.request_model)
            chat = api.chat_input(request, self._settings)
            stream = await self._service.start(chat, RequestContext.of(scope))
        except ClientLeft:
            return
        except ProxyError as exc:
            await self._errors.send(exc, scope, receive, send)
            return
        headers = {"x-history-dropped": str(stream.dropped_turns)} if stream.dropped_turns else None
        reply = api.reply(request, chat)
        if api.streams(request):
            response = EventStreamResponse(stream.events, reply.framing(),
                                           keepalive_s=self._settings.keepalive_interval_s, keepalive_chunk=PING,
                                           headers=headers)  # fmt: skip
        else:
            try:
                text, end = await _until_client_leaves(receive, _read_whole(stream.events))
            except ClientLeft:
                return
            if end.error is not None:  # nothing has been sent yet: an HTTP error, as before the first token
                await self._errors.send(end.error, scope, receive, send)
                return
            response = JSONResponse(reply.whole(text, end), headers=headers)
        await response(scope, receive, send)


async def _read_whole(events: AsyncGenerator[ChatEvent, None]) -> tuple[str, StreamEnd]:
    texts: list[str] = []
    try:
        async for event in events:
            if type(event) is str:
                texts.append(event)
            elif type(event) is Notice:
                texts.append(event.text)
            else:
                return "".join(texts), event
    finally:
        await events.aclose()
    raise AssertionError("the chat service ends every stream with a StreamEnd")


async def _until_client_leaves(receive: Receive, work: Any) -> Any:
    """`work`'s result, unless the client disconnects first: then the work (and the generation
    behind it) is cancelled and ClientLeft raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled from outside: the server is stopping
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise ClientLeft


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
