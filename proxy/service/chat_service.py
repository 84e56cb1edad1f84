"""The chat service: one conversation in, events out, the same for every face and every engine.

    policies (slots, control tokens, ...) -> prompt (template, context fitting) -> upstream -> events
                                          +-> crisis care (in a worker thread, while the upstream opens)

Faces parse their wire format into a `ChatInput` and frame the events back out; nothing here knows
either. Errors before the first event raise from `start()`; after it, the stream's `StreamEnd`
carries them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import AsyncGenerator, NamedTuple, Sequence

from proxy.core.chat import ChatEvent, ChatInput, StreamEnd
from proxy.core.errors import ShuttingDown, UpstreamError, UpstreamMisconfigured
from proxy.observability.health import HealthTracker
from proxy.observability.metrics import ProxyMetrics
from proxy.observability.request_context import RequestContext
from proxy.observability.stream_record import StreamRecord
from proxy.policies import Admission, ChatPolicy, Gate
from proxy.policies.crisis.care import CrisisCare, Screening
from proxy.policies.drain import Drain
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
        crisis_care: CrisisCare | None = None,
        drain: Drain | None = None,
        gates: Sequence[Gate] = (),
    ) -> None:
        self._policies = policies
        self._gates = gates
        self._care = crisis_care
        self._drain = drain
        self._prompts = prompts
        self._upstream = upstream
        self._health = health
        self._metrics = metrics

    def refuse_if_full(self) -> None:
        """Raises when the server takes no new stream now (draining, saturated): what a face asks
        before it parses the request, so that refusing is cheap while the server is busiest."""
        for gate in self._gates:
            gate.check()

    async def start(self, chat: ChatInput, context: RequestContext) -> ChatStream:
        admission = Admission(chat, context.api_key_id)
        screening: asyncio.Future[Screening] | None = None
        try:
            for policy in self._policies:
                policy.admit(admission)
            if self._care is not None and admission.model_needed:
                screening = self._care.start(admission.chat)
                if self._care.blocks:  # the verdict decides whether the model is asked at all
                    outcome = await screening
                    self._count(outcome)
                    if outcome.referral is not None:
                        admission.answer_without_model(outcome.referral)
            events, dropped = await self._generate(admission.chat) if admission.model_needed else (None, 0)
        except BaseException:
            if screening is not None:
                screening.cancel()
            admission.close()
            raise
        record = context.stream_record = StreamRecord(started_at=context.started_at, history_dropped=dropped)
        return ChatStream(self._delivered(admission, events, screening, record), dropped)

    async def _delivered(
        self,
        admission: Admission,
        events: AsyncGenerator[ChatEvent, None] | None,
        screening: asyncio.Future[Screening] | None,
        record: StreamRecord,
    ) -> AsyncGenerator[ChatEvent, None]:
        """What the face sends: the policies' notices, then the model's events (none when the model
        was not asked), with the detector's verdict in the final event when it ran, until a drain's
        grace is over; the record notes it all. One generator for all of it, as it runs for every
        token. The detector ran while the engine read the prompt, so the first token waits only for
        what it takes beyond that."""
        safety, drain, clock = None, self._drain, time.perf_counter
        self._metrics.streams_in_flight.inc()
        try:
            for notice in admission.notices:
                yield notice
            if screening is not None:
                outcome = await screening
                if not self._care.blocks:  # under block it was counted before the model was asked
                    self._count(outcome)
                    if outcome.referral is not None:
                        yield outcome.referral
                safety = outcome.verdict
            if events is None:
                record.end = StreamEnd("stop", None, 0, safety=safety)
                yield record.end
                return
            async for event in events:
                if drain is not None and drain.cutting:
                    record.end = StreamEnd("error", None, record.tokens_sent, error=ShuttingDown(), safety=safety)
                    yield record.end
                    return
                if type(event) is str:
                    record.last_token_at = now = clock()
                    if record.first_token_at is None:
                        record.first_token_at = now
                    record.tokens_sent += 1
                elif type(event) is StreamEnd:
                    if safety is not None:
                        event = replace(event, safety=safety)
                    record.end = event
                yield event
        finally:
            if screening is not None:
                screening.cancel()
            self._metrics.streams_in_flight.dec()
            admission.close()
            record.close(self._metrics)
            if events is not None:
                await events.aclose()  # promptly: it closes the upstream connection

    def _count(self, outcome: Screening) -> None:
        policy, verdict, metrics = self._care.policy, outcome.verdict, self._metrics
        metrics.safety_check_seconds.observe(outcome.seconds)
        if outcome.failed:
            metrics.safety_errors.inc()
        if verdict.flagged:
            metrics.safety_flags.labels(verdict.category, policy).inc()
        if outcome.referral is not None:
            metrics.crisis_referrals.labels(verdict.category, policy).inc()

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
