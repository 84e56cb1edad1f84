"""POST /v1/responses: the request body, for text conversations (docs/wire-openai.md §2).

Stateless: nothing is stored, so `previous_response_id` and `store: true` are refused with 400, as
are tools. `input` is a string (one user message) or a list of message items.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxy.core.chat import ChatInput
from proxy.core.errors import UnsupportedRequest
from proxy.faces.openai.conversation import Said, chat_input, check_model, invalid, sampling
from proxy.settings import Settings

_LENIENT = ConfigDict(strict=True, extra="ignore")
_TEXT_PARTS = ("input_text", "output_text")


class ContentPart(BaseModel):
    model_config = _LENIENT

    type: str
    text: str | None = None


class InputItem(BaseModel):
    model_config = _LENIENT

    type: str = "message"
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: str | list[ContentPart] | None = None


class TextFormat(BaseModel):
    model_config = _LENIENT

    type: str = "text"


class TextOptions(BaseModel):
    model_config = _LENIENT

    format: TextFormat | None = None


class ResponsesRequest(BaseModel):
    model_config = _LENIENT

    model: str | None = None
    input: str | list[InputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    stream: bool | None = False
    previous_response_id: str | None = None
    store: bool | None = None
    tools: list[Any] | None = None
    text: TextOptions | None = None
    user: str | None = None  # accepted; not stored or logged

    def chat_input(self, settings: Settings) -> ChatInput:
        check_model(self.model, settings)
        self._refuse_what_is_not_served()
        knobs = sampling(settings, max_tokens=self.max_output_tokens, max_tokens_field="max_output_tokens",
                         temperature=self.temperature, top_p=self.top_p)  # fmt: skip
        if isinstance(self.input, str):
            said = [Said("user", self.input, ("input",))]
        else:
            said = [_said(index, item) for index, item in enumerate(self.input)]
        return chat_input(said, knobs, settings, self.instructions)

    def _refuse_what_is_not_served(self) -> None:
        if self.previous_response_id is not None:
            raise UnsupportedRequest(
                "previous_response_id is not supported: this endpoint stores no responses; send the whole "
                "conversation in `input`", "previous_response_id",
            )  # fmt: skip
        if self.store:
            raise UnsupportedRequest("store must be false or left out: this endpoint stores no responses", "store")
        if self.tools:
            raise UnsupportedRequest("tools are not supported: this endpoint only converses", "tools")
        if self.text and self.text.format and self.text.format.type != "text":
            raise UnsupportedRequest("only text replies are supported (text.format type 'text')", "text.format")


def _said(index: int, item: InputItem) -> Said:
    loc = ("input", index)
    if item.type != "message" or item.role is None:
        raise UnsupportedRequest(f"input.{index}: only message items are supported, not {item.type!r}",
                                 f"input.{index}")  # fmt: skip
    content = item.content
    if content is None:
        raise invalid((*loc, "content"), "content is required")
    if isinstance(content, str):
        return Said(item.role, content, (*loc, "content"))
    texts = []
    for part_index, part in enumerate(content):
        if part.type not in _TEXT_PARTS or part.text is None:
            raise UnsupportedRequest(
                f"input.{index}.content.{part_index}: only text parts are supported, not {part.type!r}",
                f"input.{index}.content.{part_index}",
            )
        texts.append(part.text)
    return Said(item.role, "\n".join(texts), (*loc, "content"))
