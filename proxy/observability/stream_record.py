"""What one chat stream did — first token time, tokens, how it ended — for metrics and the log.

The chat service fills it in as the events pass (in its one generator per stream, not in one of
its own: that would cost on every token)."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.core.chat import StreamEnd
from proxy.core.errors import UpstreamError
from proxy.observability.metrics import ProxyMetrics


@dataclass(slots=True)
class StreamRecord:
    started_at: float  # perf_counter() when the request arrived
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens_sent: int = 0
    end: StreamEnd | None = None
    closed: bool = field(default=False)
    history_dropped: int = 0  # oldest turns left out to fit the model's context

    @property
    def client_left(self) -> bool:
        """Closed before the final event: the client went away mid-stream."""
        return self.closed and self.end is None

    def close(self, metrics: ProxyMetrics) -> None:
        """The stream is over, however it ended: into the metrics."""
        self.closed = True
        _observe(self, metrics)

    def log_fields(self) -> dict:
        fields: dict = {"tokens_sent": self.tokens_sent}
        if self.first_token_at is not None:
            fields["ttft_ms"] = round((self.first_token_at - self.started_at) * 1000, 1)
        if self.end is not None:
            fields["finish_reason"] = self.end.finish_reason
            fields["prompt_tokens"] = self.end.prompt_tokens
            fields["completion_tokens"] = self.end.completion_tokens
            if self.end.error is not None:
                fields["error_type"] = self.end.error.kind
            if self.end.safety is not None:  # the category only: no message text is ever logged
                fields["safety"] = self.end.safety.category or "none"
        if self.client_left:
            fields["client_disconnected"] = True
        if self.history_dropped:
            fields["history_dropped"] = self.history_dropped
        return fields


def _observe(record: StreamRecord, metrics: ProxyMetrics) -> None:
    if record.first_token_at is not None:
        metrics.time_to_first_token.observe(record.first_token_at - record.started_at)
        if record.tokens_sent > 1:
            gaps = record.tokens_sent - 1
            metrics.inter_token_latency.observe((record.last_token_at - record.first_token_at) / gaps)
    end = record.end
    if end is None:
        metrics.client_disconnects.inc()
        return
    metrics.streams_finished.labels(end.finish_reason).inc()
    metrics.generated_tokens.inc(end.completion_tokens)
    if end.prompt_tokens is not None:
        metrics.prompt_tokens.inc(end.prompt_tokens)
    if isinstance(end.error, UpstreamError):  # not a drain's ShuttingDown: the engine was fine
        metrics.upstream_errors.labels(end.error.kind).inc()
