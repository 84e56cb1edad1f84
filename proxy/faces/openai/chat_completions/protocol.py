"""POST /v1/chat/completions: the request body, as OpenAI's API takes it (docs/wire-openai.md §1).

Unknown fields are ignored, as OpenAI ignores them; wrong types are refused (strict, like /stream_chat).
What this service does not do (tools, several choices, logprobs, JSON modes) is refused with 400.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxy.core.chat import ChatInput
from proxy.core.errors import UnsupportedRequest
from proxy.faces.openai.conversation import Said, chat_input, check_model, invalid, sampling
from proxy.settings import Settings

_LENIENT = ConfigDict(strict=True, extra="ignore")


class ContentPart(BaseModel):
    model_config = _LENIENT

    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = _LENIENT

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[Any] | None = None


class StreamOptions(BaseModel):
    model_config = _LENIENT

    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = _LENIENT

    type: str


class ChatCompletionRequest(BaseModel):
    model_config = _LENIENT

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, le=2**64 - 1)
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # accepted; not stored or logged
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    response_format: ResponseFormat | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def chat_input(self, settings: Settings) -> ChatInput:
        check_model(self.model, settings)
        self._refuse_what_is_not_served()
        # OpenAI's newer name wins when both are there.
        max_tokens, field = (self.max_completion_tokens, "max_completion_tokens")
        if max_tokens is None:
            max_tokens, field = self.max_tokens, "max_tokens"
        knobs = sampling(settings, max_tokens=max_tokens, max_tokens_field=field, temperature=self.temperature,
                         top_p=self.top_p, seed=self.seed, stop=self.stop)  # fmt: skip
        return chat_input([_said(index, message) for index, message in enumerate(self.messages)], knobs, settings)

    def _refuse_what_is_not_served(self) -> None:
        if self.n not in (None, 1):
            raise UnsupportedRequest("n must be 1: this endpoint writes one reply per request", "n")
        if self.tools or self.functions:
            raise UnsupportedRequest("tools are not supported: this endpoint only converses", "tools")
        if self.logprobs:
            raise UnsupportedRequest("logprobs are not supported here", "logprobs")
        if self.response_format is not None and self.response_format.type != "text":
            raise UnsupportedRequest("only text replies are supported (response_format type 'text')",
                                     "response_format")  # fmt: skip


def _said(index: int, message: Message) -> Said:
    loc = ("messages", index)
    if message.role in ("tool", "function") or message.tool_calls:
        raise UnsupportedRequest(f"messages.{index}: tool messages and tool calls are not supported here",
                                 f"messages.{index}")  # fmt: skip
    content = message.content
    if content is None:
        raise invalid((*loc, "content"), "content is required")
    if isinstance(content, str):
        return Said(message.role, content, (*loc, "content"))
    texts = []
    for part_index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise UnsupportedRequest(
                f"messages.{index}.content.{part_index}: only text parts are supported, not {part.type!r}",
                f"messages.{index}.content.{part_index}",
            )
        texts.append(part.text)
    return Said(message.role, "\n".join(texts), (*loc, "content"))  # as vLLM joins text parts
