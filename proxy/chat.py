"""The chat pipeline: render the prompt, call TGI, reshape its events into text and one end.

Framing-neutral on purpose: /stream_chat frames what this yields one way, a future
OpenAI-compatible route would frame it another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

from proxy.chat_template import ChatTemplate, Turn, conversation_turns
from proxy.errors import UpstreamError
from proxy.schemas import ChatRequest
from proxy.settings import Settings
from proxy.upstream import TGIClient, UpstreamStream

# TGI's finish reasons -> the contract's
_FINISH_REASONS = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


@dataclass(frozen=True, slots=True)
class StreamEnd:
    finish_reason: str  # "stop" | "length" | "error"
    prompt_tokens: int | None  # None when TGI failed before reporting it
    completion_tokens: int
    error: UpstreamError | None = None


ChatEvent = str | StreamEnd  # visible text, or the one final event


def tgi_parameters(request: ChatRequest, settings: Settings) -> dict[str, Any]:
    """Map the contract's sampling fields onto TGI's, avoiding values TGI rejects."""
    parameters: dict[str, Any] = {
        "max_new_tokens": request.max_tokens,
        "stop": [settings.end_of_turn],
        "details": True,  # the final event then carries input_length and generated_tokens
    }
    if request.greedy:
        # TGI rejects temperature 0, and any top_p < 1 would switch sampling back on.
        parameters["do_sample"] = False
    else:
        parameters["do_sample"] = True
        parameters["temperature"] = request.temperature
        if request.top_p < 1.0:  # TGI rejects top_p == 1.0; leaving it out means the same
            parameters["top_p"] = request.top_p
    if request.seed is not None:
        parameters["seed"] = request.seed
    if settings.upstream_adapter_id:
        parameters["adapter_id"] = settings.upstream_adapter_id
    return parameters


async def reshape_events(upstream: UpstreamStream, end_of_turn: str) -> AsyncIterator[ChatEvent]:
    """Visible token texts, then exactly one StreamEnd; closes the upstream stream however it ends."""
    received = 0
    try:
        async for event in upstream:
            received += 1
            text = event.token.text
            # Special tokens (<|im_end|>, eos) and the empty texts of split characters are not text.
            if text and not event.token.special and text != end_of_turn:
                yield text
            if event.is_final:
                details = event.details
                if details is None:
                    yield StreamEnd("stop", None, received)
                else:
                    finish = _FINISH_REASONS.get(details.finish_reason.value, "stop")
                    yield StreamEnd(finish, details.input_length, details.generated_tokens)
                return
    except UpstreamError as exc:
        yield StreamEnd("error", None, received, exc)
    finally:
        await upstream.aclose()


class ChatPipeline:
    def __init__(self, settings: Settings, template: ChatTemplate, upstream: TGIClient) -> None:
        self._settings = settings
        self._template = template
        self._upstream = upstream

    def render_prompt(self, request: ChatRequest) -> str:
        history = (Turn(item.role, item.content) for item in request.conversation_history)
        turns = conversation_turns(self._settings.system_prompt, history, request.message)
        return self._template.render(turns)

    async def start(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        """Open the upstream stream; errors before the first token raise here, not in the stream."""
        prompt = self.render_prompt(request)
        upstream = await self._upstream.open_stream(prompt, tgi_parameters(request, self._settings))
        return reshape_events(upstream, self._settings.end_of_turn)
