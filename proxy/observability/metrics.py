"""The proxy's Prometheus metrics, and /metrics: ours plus TGI's `tgi_*` relayed in one scrape."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Buckets sized for LLM serving: a first token in tens of ms to tens of s, a stream up to
# Modal's 150 s request limit, tokens every few ms (H100) to a few hundred ms (CPU).
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INTER_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)
SAFETY_CHECK_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 150.0, 300.0)


class ProxyMetrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "proxy_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "proxy_request_duration_seconds",
            "Time from request to the last byte of the response.",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.streams_finished = Counter(
            "proxy_streams_finished",
            "Chat streams that sent their final event, by finish reason.",
            ["finish_reason"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "proxy_time_to_first_token_seconds",
            "Time from request to the first token sent to the client.",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.inter_token_latency = Histogram(
            "proxy_inter_token_latency_seconds",
            "Mean time between tokens, one observation per stream.",
            buckets=INTER_TOKEN_BUCKETS,
            registry=r,
        )
        self.generated_tokens = Counter(
            "proxy_generated_tokens", "Tokens generated for clients (TGI's count).", registry=r
        )
        self.prompt_tokens = Counter(
            "proxy_prompt_tokens", "Prompt tokens of finished streams (TGI's count).", registry=r
        )
        self.streams_in_flight = Gauge("proxy_streams_in_flight", "Chat streams open right now.", registry=r)
        self.client_disconnects = Counter(
            "proxy_client_disconnects", "Chat streams the client left before the final event.", registry=r
        )
        self.upstream_errors = Counter(
            "proxy_upstream_errors", "Failures of the inference server, by type.", ["type"], registry=r
        )
        self.requests_shed = Counter(
            "proxy_requests_shed",
            "New streams this proxy refused itself: saturated (streams, event_loop_lag) or shutting_down.",
            ["reason"],
            registry=r,
        )
        # The crisis detector (docs/safety.md). Counts only, never text: what SB 243's yearly report needs.
        self.safety_flags = Counter(
            "proxy_safety_flags",
            "Requests the crisis detector flagged, by risk category and PROXY_SAFETY_POLICY.",
            ["category", "policy"],
            registry=r,
        )
        self.crisis_referrals = Counter(
            "proxy_crisis_referrals",
            "Crisis-resources messages sent (policies prepend and block), by risk category and policy.",
            ["category", "policy"],
            registry=r,
        )
        self.safety_check_seconds = Histogram(
            "proxy_safety_check_seconds",
            "Time the crisis detector took on one request (in a worker thread).",
            buckets=SAFETY_CHECK_BUCKETS,
            registry=r,
        )
        self.safety_errors = Counter(
            "proxy_safety_errors", "Requests that went on unscreened because the detector failed.", registry=r
        )
        self.upstream_up = Gauge(
            "proxy_upstream_up",
            "1 when the inference server answered its last health check or scrape, else 0.",
            registry=r,
        )

    def render(self, upstream_metrics: str | None, upstream_problem: str = "") -> bytes:
        """Our exposition, then TGI's verbatim (its names are all `tgi_*`, so nothing collides)."""
        ours = generate_latest(self.registry)
        if upstream_metrics is None:
            return ours + f"# inference server metrics unavailable: {upstream_problem}\n".encode()
        relayed = upstream_metrics.encode()
        return ours + relayed + (b"" if relayed.endswith(b"\n") else b"\n")
