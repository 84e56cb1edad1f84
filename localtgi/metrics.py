"""TGI's router metrics, rendered as metrics-exporter-prometheus 0.15 renders them.

Hand-rolled rather than prometheus_client because TGI's counters carry no `_total` suffix
(`tgi_request_count`, `tgi_request_failure{err="validation"}`), which prometheus_client always adds.
Buckets follow router/src/server.rs: 35 geometric duration buckets, and 100 linear buckets for
token counts scaled by max_input_tokens / max_total_tokens.
"""

from __future__ import annotations

import bisect

from localtgi.config import Limits


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Counter:
    def __init__(self, name: str, help_text: str | None = None, label: str | None = None) -> None:
        self.name, self.help_text, self.label = name, help_text, label
        self.values: dict[str, int] = {} if label else {"": 0}

    def inc(self, label_value: str = "") -> None:
        self.values[label_value] = self.values.get(label_value, 0) + 1

    def samples(self) -> list[str]:
        if not self.label:
            return [f"{self.name} {self.values['']}"]
        return [f'{self.name}{{{self.label}="{key}"}} {value}' for key, value in sorted(self.values.items())]


class Gauge:
    def __init__(self, name: str, help_text: str | None = None) -> None:
        self.name, self.help_text = name, help_text
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def samples(self) -> list[str]:
        return [f"{self.name} {self.value}"]


class Histogram:
    def __init__(self, name: str, buckets: list[float], help_text: str | None = None) -> None:
        self.name, self.help_text, self.buckets = name, help_text, buckets
        self.bucket_counts = [0] * len(buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        first = bisect.bisect_left(self.buckets, value)
        for index in range(first, len(self.buckets)):
            self.bucket_counts[index] += 1

    def samples(self) -> list[str]:
        lines = [
            f'{self.name}_bucket{{le="{_number(bound)}"}} {count}'
            for bound, count in zip(self.buckets, self.bucket_counts, strict=True)
        ]
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {_number(self.sum)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


def _duration_buckets() -> list[float]:
    buckets, value = [], 0.0001
    for _ in range(35):
        value *= 1.5
        buckets.append(value)
    return buckets


def _linear_buckets(maximum: int) -> list[float]:
    return [(maximum / 100.0) * (step + 1) for step in range(100)]


class TgiMetrics:
    """The tgi_* metrics localtgi keeps meaningful."""

    def __init__(self, limits: Limits) -> None:
        durations = _duration_buckets()
        self.request_count = Counter("tgi_request_count", "Total number of requests")
        self.request_success = Counter("tgi_request_success", "Number of successful requests")
        self.request_failure = Counter("tgi_request_failure", label="err")
        self.request_duration = Histogram("tgi_request_duration", durations, "Total time spent processing the request")
        self.request_validation_duration = Histogram(
            "tgi_request_validation_duration", durations, "Time spent validating the request"
        )
        self.request_queue_duration = Histogram(
            "tgi_request_queue_duration", durations, "Time spent in the queue per request"
        )
        self.request_inference_duration = Histogram(
            "tgi_request_inference_duration", durations, "Request inference duration"
        )
        self.request_mean_time_per_token_duration = Histogram(
            "tgi_request_mean_time_per_token_duration", durations, "Mean time per token per request"
        )
        self.request_generated_tokens = Histogram(
            "tgi_request_generated_tokens",
            _linear_buckets(limits.max_total_tokens),
            "Generated tokens per request",
        )
        self.request_input_length = Histogram(
            "tgi_request_input_length", _linear_buckets(limits.max_input_tokens), "Input token length per request"
        )
        self.request_max_new_tokens = Histogram(
            "tgi_request_max_new_tokens", _linear_buckets(limits.max_total_tokens), "Maximum new tokens per request"
        )
        self.queue_size = Gauge("tgi_queue_size", "Current queue size")
        self.batch_current_size = Gauge("tgi_batch_current_size", "Current batch size")

    def render(self) -> str:
        blocks = []
        for metric in vars(self).values():
            kind = {Counter: "counter", Gauge: "gauge", Histogram: "histogram"}[type(metric)]
            lines = [f"# HELP {metric.name} {metric.help_text}"] if metric.help_text else []
            lines.append(f"# TYPE {metric.name} {kind}")
            samples = metric.samples()
            if samples:
                blocks.append("\n".join(lines + samples) + "\n")
        return "\n".join(blocks)
