"""POST /v1/chat/completions: OpenAI's Chat Completions API on the chat service."""

# No `from __future__ import annotations` here: FastAPI reads the documenting route's body model
# from the live annotation.

import time

from fastapi import FastAPI

from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.event_stream import EventStreamResponse
from proxy.asgi.routing import Routes
from proxy.core.chat import ChatInput
from proxy.faces.openai.chat_completions.framing import CompletionChunks, completion_id
from proxy.faces.openai.chat_completions.protocol import ChatCompletionRequest
from proxy.faces.openai.endpoint import OpenAIEndpoint
from proxy.service.chat_service import ChatService
from proxy.settings import Settings

PATH = "/v1/chat/completions"


class ChatCompletionsApi:
    request_model = ChatCompletionRequest

    def __init__(self, settings: Settings) -> None:
        self._model = settings.model_name

    def chat_input(self, request: ChatCompletionRequest, settings: Settings) -> ChatInput:
        return request.chat_input(settings)

    def streams(self, request: ChatCompletionRequest) -> bool:
        return bool(request.stream)

    def reply(self, request: ChatCompletionRequest, chat: ChatInput) -> CompletionChunks:
        return CompletionChunks(completion_id(), int(time.time()), self._model, request.include_usage)


def add_chat_completions(
    app: FastAPI, routes: Routes, settings: Settings, service: ChatService, errors: ErrorResponder
) -> None:
    routes.add_fast("POST", PATH, OpenAIEndpoint(ChatCompletionsApi(settings), settings, service, errors))

    # Documents the route in /openapi.json and answers other methods with 405; POST never reaches it.
    @app.post(PATH, response_class=EventStreamResponse, status_code=200, tags=["OpenAI"])
    async def chat_completions(body: ChatCompletionRequest) -> EventStreamResponse:
        raise RuntimeError("POST /v1/chat/completions is served on the fast path")
