"""What TGI's `Infer` does: admission, validation, the token loop with its stopping rules, metrics.

Engines only produce tokens; here the server applies max_new_tokens, stop sequences and finish
reasons, injects faults, and keeps the counters. "Queue" means admitted and waiting for the first
token (our engines do not report a batch start, so prefill counts as queue time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import AsyncIterator, Iterator, NamedTuple

from localtgi.config import Limits
from localtgi.engine import Engine, GeneratedToken
from localtgi.errors import (
    ConnectionDropped,
    GenerationError,
    IncompleteGeneration,
    Overloaded,
    ValidationError,
)
from localtgi.faults import Faults, Stats
from localtgi.metrics import TgiMetrics
from localtgi.request_body import GenerateParameters, GenerateRequest
from localtgi.validation import ValidRequest, validate, validate_best_of, validate_stream_parameters
from localtgi.wire import Generation


@dataclass(frozen=True)
class Timings:
    received_at: float
    validated_at: float
    first_token_at: float
    finished_at: float

    def header_values(self, generated_tokens: int) -> dict[str, float]:
        inference = self.finished_at - self.first_token_at
        return {
            "total": self.finished_at - self.received_at,
            "validation": self.validated_at - self.received_at,
            "queue": self.first_token_at - self.validated_at,
            "inference": inference,
            "time_per_token": inference / max(generated_tokens, 1),
        }


class Step(NamedTuple):
    token: GeneratedToken
    finished: Generation | None = None  # set on the last step only, with its timings
    timings: Timings | None = None


class StoppingCriteria:
    """TGI's shard rule, in its order: length first, then EOS, then stop sequences."""

    def __init__(self, max_new_tokens: int, stop: tuple[str, ...]) -> None:
        self.max_new_tokens = max_new_tokens
        self.stop = stop
        self.tail_length = max((len(sequence) for sequence in stop), default=0)
        self.generated = 0
        self.tail = ""

    def __call__(self, token: GeneratedToken) -> str | None:
        self.generated += 1
        if self.generated >= self.max_new_tokens:
            return "length"
        if token.is_eos:
            return "eos_token"
        if self.stop:
            self.tail = (self.tail + token.text)[-self.tail_length :]
            if any(self.tail.endswith(sequence) for sequence in self.stop):
                return "stop_sequence"
        return None


class Inference:
    def __init__(self, engine: Engine, limits: Limits, faults: Faults, metrics: TgiMetrics) -> None:
        self.engine = engine
        self.limits = limits
        self.faults = faults
        self.metrics = metrics
        self.stats = Stats()
        self._permits_in_use = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """A --max-concurrent-requests permit, tried without waiting, held for the whole request."""
        if self.faults.overload or self._permits_in_use >= self.limits.max_concurrent_requests:
            self.metrics.request_failure.inc("overloaded")
            raise Overloaded()
        self._permits_in_use += 1
        try:
            yield
        finally:
            self._permits_in_use -= 1

    @contextlib.contextmanager
    def _counting_validation_failures(self) -> Iterator[None]:
        try:
            yield
        except ValidationError:
            self.metrics.request_failure.inc("validation")
            raise

    def check_stream_parameters(self, parameters: GenerateParameters) -> None:
        with self._counting_validation_failures():
            validate_stream_parameters(parameters)

    def validate(self, request: GenerateRequest) -> ValidRequest:
        with self._counting_validation_failures():
            valid = validate(request, self.limits, self.engine)
        self.metrics.request_input_length.observe(valid.input_length)
        self.metrics.request_max_new_tokens.observe(valid.chunk_max_new_tokens)
        return valid

    async def steps(self, request: ValidRequest, received_at: float) -> AsyncIterator[Step]:
        """Tokens of one admitted request; ends early (no finished step) if the engine does."""
        validated_at = first_token_at = time.monotonic()
        stopping = StoppingCriteria(request.params.max_new_tokens, request.stop)
        engine_tokens = self.engine.generate(request.inputs, request.params)
        tokens: list[GeneratedToken] = []
        gauge = self.metrics.queue_size
        gauge.inc()
        self.stats.started += 1
        self.stats.active += 1
        outcome = "cancelled"  # unless we get to say otherwise: the consumer stopped listening
        try:
            while True:
                await self._inject_faults(len(tokens))
                try:
                    token = await anext(engine_tokens)
                except StopAsyncIteration:
                    outcome = "failed"
                    self.metrics.request_failure.inc("incomplete")
                    return
                except Exception as error:
                    raise GenerationError(str(error) or type(error).__name__) from error
                if not tokens:
                    first_token_at = time.monotonic()
                    gauge.dec()
                    gauge = self.metrics.batch_current_size
                    gauge.inc()
                tokens.append(token)
                finish_reason = stopping(token)
                if finish_reason is None:
                    yield Step(token)
                    continue
                generation = Generation(
                    tokens=tuple(tokens),
                    finish_reason=finish_reason,
                    seed=request.params.seed if request.params.sampling else None,
                    input_length=request.input_length,
                )
                timings = Timings(received_at, validated_at, first_token_at, time.monotonic())
                self._record_success(generation, timings)
                outcome = "completed"
                yield Step(token, generation, timings)
                return
        except GenerationError:
            outcome = "failed"
            self.metrics.request_failure.inc("generation")
            raise
        except ConnectionDropped:
            outcome = "failed"
            raise
        finally:
            gauge.dec()
            self.stats.active -= 1
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
            if outcome == "cancelled":
                self.metrics.request_failure.inc("dropped")
            self.stats.note_ending(outcome, request.params.seed, len(tokens))
            await engine_tokens.aclose()

    async def generate(self, request: GenerateRequest, received_at: float) -> tuple[Generation, Timings]:
        """One whole generation, for /generate."""
        with self.admit():
            valid = self.validate(request)
            async for step in self.steps(valid, received_at):
                if step.finished is not None:
                    return step.finished, step.timings
            raise IncompleteGeneration()

    async def generate_best_of(
        self, request: GenerateRequest, best_of: int, received_at: float
    ) -> tuple[tuple[Generation, Timings], tuple[Generation, ...]]:
        """TGI's best_of: that many generations at once (each with its own permit and random
        seed), the best mean logprob wins, the others come back as best_of_sequences."""
        validate_best_of(best_of, self.limits)
        runs = [asyncio.ensure_future(self.generate(request, received_at)) for _ in range(best_of)]
        try:
            results = await asyncio.gather(*runs)
        except BaseException:
            for run in runs:
                run.cancel()
            raise
        best = max(results, key=lambda result: _mean_logprob(result[0]))
        return best, tuple(generation for generation, _ in results if generation is not best[0])

    async def _inject_faults(self, sent: int) -> None:
        faults = self.faults
        if sent == faults.fail_after:
            raise GenerationError(f"localtgi injected failure after {sent} tokens")
        if sent == faults.drop_after:
            raise ConnectionDropped()
        if sent == faults.stall_after:
            await asyncio.sleep(faults.stall_seconds)

    def _record_success(self, generation: Generation, timings: Timings) -> None:
        values = timings.header_values(len(generation.tokens))
        metrics = self.metrics
        metrics.request_success.inc()
        metrics.request_duration.observe(values["total"])
        metrics.request_validation_duration.observe(values["validation"])
        metrics.request_queue_duration.observe(values["queue"])
        metrics.request_inference_duration.observe(values["inference"])
        metrics.request_mean_time_per_token_duration.observe(values["time_per_token"])
        metrics.request_generated_tokens.observe(len(generation.tokens))


def _mean_logprob(generation: Generation) -> float:
    logprobs = [token.logprob for token in generation.tokens if token.logprob is not None]
    return sum(logprobs) / len(logprobs) if logprobs else float("-inf")
