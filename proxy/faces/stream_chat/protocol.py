"""The /stream_chat request body: the contract table of DESIGN.md as a pydantic model.

Limits come from settings, so the model is built per app by `chat_request_model(settings)`;
every violation is FastAPI's standard 422 `{"detail": [...]}`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    model_validator,
)

from proxy.core.chat import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, ChatInput, Sampling, Turn
from proxy.settings import Settings

#: strict: "5" is not a number and 1.5 is not an int; forbid: a misspelt field is an error, not ignored
_STRICT = ConfigDict(strict=True, extra="forbid")

NonBlank = Annotated[str, StringConstraints(pattern=r"\S")]


class HistoryMessage(BaseModel):
    model_config = _STRICT

    role: Literal["user", "assistant"]
    content: NonBlank


class ChatRequest(BaseModel):
    """The body of POST /stream_chat."""

    model_config = _STRICT

    message: NonBlank
    conversation_history: list[HistoryMessage] = []
    max_tokens: int
    temperature: float = Field(default=DEFAULT_TEMPERATURE, ge=0.0, le=1.0, allow_inf_nan=False)
    top_p: float = Field(default=DEFAULT_TOP_P, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, le=2**64 - 1)

    def chat_input(self) -> ChatInput:
        history = tuple(Turn(item.role, item.content) for item in self.conversation_history)
        return ChatInput(history, self.message, Sampling(self.max_tokens, self.temperature, self.top_p, self.seed))


def chat_request_model(settings: Settings) -> type[ChatRequest]:
    """The request model with this deployment's limits baked into its fields."""

    def check_history_size(request: ChatRequest) -> ChatRequest:
        total = sum(len(item.content) for item in request.conversation_history)
        if total > settings.max_history_chars:
            raise ValueError(
                f"conversation_history holds {total} characters; the limit is {settings.max_history_chars}"
            )
        return request

    return create_model(
        "StreamChatRequest",
        __base__=ChatRequest,
        __validators__={"check_history_size": model_validator(mode="after")(check_history_size)},
        message=(Annotated[NonBlank, Field(max_length=settings.max_message_chars)], ...),
        conversation_history=(
            Annotated[list[HistoryMessage], Field(max_length=settings.max_history_items)],
            [],
        ),
        max_tokens=(
            Annotated[int, Field(ge=1, le=settings.max_tokens_limit)],
            settings.default_max_tokens,
        ),
    )
