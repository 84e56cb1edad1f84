"""POST /v1/responses: OpenAI's Responses API, for text conversations, on the chat service."""

# No `from __future__ import annotations` here: FastAPI reads the documenting route's body model
# from the live annotation.

from fastapi import FastAPI

from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.event_stream import EventStreamResponse
from proxy.asgi.routing import Routes
from proxy.core.chat import ChatInput
from proxy.faces.openai.endpoint import OpenAIEndpoint
from proxy.faces.openai.responses.framing import ResponseBuilder, ResponseReply
from proxy.faces.openai.responses.protocol import ResponsesRequest
from proxy.service.chat_service import ChatService
from proxy.settings import Settings

PATH = "/v1/responses"


class ResponsesApi:
    request_model = ResponsesRequest

    def __init__(self, settings: Settings) -> None:
        self._model = settings.model_name

    def chat_input(self, request: ResponsesRequest, settings: Settings) -> ChatInput:
        return request.chat_input(settings)

    def streams(self, request: ResponsesRequest) -> bool:
        return bool(request.stream)

    def reply(self, request: ResponsesRequest, chat: ChatInput) -> ResponseReply:
        sampling = chat.sampling
        builder = ResponseBuilder(self._model, request.instructions, request.max_output_tokens,
                                  sampling.temperature, sampling.top_p)  # fmt: skip
        return ResponseReply(builder)


def add_responses(
    app: FastAPI, routes: Routes, settings: Settings, service: ChatService, errors: ErrorResponder
) -> None:
    routes.add_fast("POST", PATH, OpenAIEndpoint(ResponsesApi(settings), settings, service, errors))

    # Documents the route in /openapi.json and answers other methods with 405; POST never reaches it.
    @app.post(PATH, response_class=EventStreamResponse, status_code=200, tags=["OpenAI"])
    async def responses(body: ResponsesRequest) -> EventStreamResponse:
        raise RuntimeError("POST /v1/responses is served on the fast path")
