"""The chat pipeline: render the prompt, call TGI, reshape its events into text and one end.

Framing-neutral on purpose: /stream_chat frames what this yields one way, a future
OpenAI-compatible route would frame it another.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, AsyncIterator

from proxy.chat_template import ChatTemplate, Turn, conversation_turns
from proxy.context_window import ContextLimits, FittedPrompt, fit_conversation
from proxy.errors import UpstreamError
from proxy.prompt_safety import PromptGuard
from proxy.schemas import ChatRequest
from proxy.settings import Settings
from proxy.tokenizer import PromptTokenizer
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
    # TGI reads both as 32-bit floats: 5e-324 arrives as 0.0 and 0.999999999 as 1.0, which it refuses.
    temperature, top_p = _as_float32(request.temperature), _as_float32(request.top_p)
    if request.greedy or temperature == 0.0 or top_p == 0.0:
        # TGI rejects temperature 0, and any top_p < 1 would switch sampling back on.
        # (A top_p that is 0 in 32 bits keeps only the most likely token: greedy as well.)
        parameters["do_sample"] = False
    else:
        parameters["do_sample"] = True
        parameters["temperature"] = request.temperature
        if top_p < 1.0:  # TGI rejects top_p == 1.0; leaving it out means the same
            parameters["top_p"] = request.top_p
    if request.seed is not None:
        parameters["seed"] = request.seed
    if settings.upstream_adapter_id:
        parameters["adapter_id"] = settings.upstream_adapter_id
    return parameters


def _as_float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


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
                # No return: the upstream stream then reads its response to the end, which is what
                # hands its connection back to the pool (a response left unread closes it).
    except UpstreamError as exc:
        yield StreamEnd("error", None, received, exc)
    finally:
        await upstream.aclose()


class ChatPipeline:
    """validate (done by the schema) -> neutralize -> render and fit -> call upstream -> reshape."""

    def __init__(
        self,
        settings: Settings,
        template: ChatTemplate,
        upstream: TGIClient,
        guard: PromptGuard,
        tokenizer: PromptTokenizer | None = None,
    ) -> None:
        self._settings = settings
        self._template = template
        self._upstream = upstream
        self._guard = guard
        self._tokenizer = tokenizer
        self._limits: ContextLimits | None = None

    async def context_limits(self) -> ContextLimits | None:
        """TGI's token limits, read once from its /info; None while it cannot be asked."""
        if self._limits is None:
            info = await self._upstream.info()
            if info is not None:
                self._limits = ContextLimits(info["max_input_tokens"], info["max_total_tokens"])
        return self._limits

    def build_prompt(self, request: ChatRequest, limits: ContextLimits | None) -> FittedPrompt:
        neutralize = self._guard.neutralize
        history = [Turn(item.role, neutralize(item.content)) for item in request.conversation_history]
        message = neutralize(request.message)

        def render(kept: list[Turn]) -> str:
            return self._template.render(conversation_turns(self._settings.system_prompt, kept, message))

        if self._tokenizer is None or limits is None:
            return FittedPrompt(render(history), 0)
        budget = limits.prompt_budget(request.max_tokens)
        return fit_conversation(history, render, self._tokenizer.count, budget)

    async def start(self, request: ChatRequest) -> tuple[FittedPrompt, AsyncIterator[ChatEvent]]:
        """Open the upstream stream; errors before the first token raise here, not in the stream."""
        prompt = self.build_prompt(request, await self.context_limits())
        upstream = await self._upstream.open_stream(prompt.text, tgi_parameters(request, self._settings))
        return prompt, reshape_events(upstream, self._settings.end_of_turn)
