"""The chat service: one conversation in, events out, the same for every face and every engine.

    policies (slots, control tokens, ...) -> prompt (template, context fitting) -> upstream -> events

Faces parse their wire format into a `ChatInput` and frame the events back out; nothing here knows
either. Errors before the first event raise from `start()`; after it, the stream's `StreamEnd`
carries them.
"""

from __future__ import annotations

from typing import AsyncGenerator, NamedTuple, Sequence

from proxy.core.chat import ChatEvent, ChatInput, Notice, StreamEnd
from proxy.core.errors import UpstreamError, UpstreamMisconfigured
from proxy.observability.health import HealthTracker
from proxy.observability.metrics import ProxyMetrics
from proxy.observability.request_context import RequestContext
from proxy.observability.stream_record import StreamRecord, recorded
from proxy.policies import Admission, ChatPolicy
from proxy.service.prompt import PromptBuilder
from proxy.upstream import Upstream


class ChatStream(NamedTuple):
    events: AsyncGenerator[ChatEvent, None]
    dropped_turns: int  # oldest history turns left out to fit the model's context


class ChatService:
    def __init__(
        self,
        policies: Sequence[ChatPolicy],
        prompts: PromptBuilder,
        upstream: Upstream,
        health: HealthTracker,
        metrics: ProxyMetrics,
    ) -> None:
        self._policies = policies
        self._prompts = prompts
        self._upstream = upstream
        self._health = health
        self._metrics = metrics

    async def start(self, chat: ChatInput, context: RequestContext) -> ChatStream:
        admission = Admission(chat, context.api_key_id)
        try:
            for policy in self._policies:
                policy.admit(admission)
            if admission.model_needed:
                events, dropped = await self._generate(admission.chat)
                if admission.notices:
                    events = _after_notices(admission.notices, events)
            else:
                events, dropped = _notices_only(admission.notices), 0
        except BaseException:
            admission.close()
            raise
        record = context.stream_record = StreamRecord(started_at=context.started_at, history_dropped=dropped)
        return ChatStream(recorded(events, record, self._metrics, on_close=admission.close), dropped)

    async def _generate(self, chat: ChatInput) -> tuple[AsyncGenerator[ChatEvent, None], int]:
        upstream = self._upstream
        prompt = self._prompts.build(chat, await upstream.limits())
        try:
            events = await upstream.open_stream(prompt.text, chat.sampling)
        except UpstreamError as exc:
            self._metrics.upstream_errors.labels(exc.kind).inc()
            if isinstance(exc, UpstreamMisconfigured):
                self._health.saw_misconfiguration(exc)
            raise
        self._health.saw_upstream_serving()
        return events, prompt.dropped_turns


async def _notices_only(notices: list[Notice]) -> AsyncGenerator[ChatEvent, None]:
    for notice in notices:
        yield notice
    yield StreamEnd("stop", None, 0)


async def _after_notices(
    notices: list[Notice], events: AsyncGenerator[ChatEvent, None]
) -> AsyncGenerator[ChatEvent, None]:
    try:
        for notice in notices:
            yield notice
        async for event in events:
            yield event
    finally:
        await events.aclose()  # promptly: it closes the upstream connection
