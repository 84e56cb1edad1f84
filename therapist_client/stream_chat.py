"""Stream one reply from POST /stream_chat, checking each event against the contract (docs/api.md)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import httpx

SPECIAL_MARKERS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "</s>")
FINISH_REASONS = {"stop", "length", "error"}


class ContractViolation(Exception):
    """The server broke the /stream_chat contract."""


@dataclass
class StreamReport:
    text: str = ""
    tokens: int = 0
    finish_reason: str | None = None
    usage: dict | None = None
    error: dict | None = None
    ttft_s: float | None = None
    total_s: float = 0.0
    violations: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        if self.ttft_s is None or self.tokens < 2 or self.total_s <= self.ttft_s:
            return 0.0
        return (self.tokens - 1) / (self.total_s - self.ttft_s)


def stream_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/stream_chat") else f"{url}/stream_chat"


def check_event(block: bytes, report: StreamReport) -> dict | None:
    """Validate one SSE block (without its blank line); return its JSON, or None for a comment."""
    if block.startswith(b":"):
        return None
    if b"\n" in block or not block.startswith(b"data: "):
        raise ContractViolation(f"not a single `data: ` line: {block[:120]!r}")
    try:
        block.decode("ascii")
    except UnicodeDecodeError:
        raise ContractViolation(f"event is not ASCII-only JSON: {block[:120]!r}") from None
    try:
        event = json.loads(block[len(b"data: ") :])
    except ValueError:
        raise ContractViolation(f"event is not JSON: {block[:120]!r}") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("token"), str)
        or not isinstance(event.get("done"), bool)
    ):
        raise ContractViolation(f"event lacks a string `token` and a boolean `done`: {event!r}")
    if report.finish_reason is not None:
        raise ContractViolation(f"event after the final event: {event!r}")
    if event["done"]:
        if event["token"] != "":
            raise ContractViolation(f"final event carries text: {event!r}")
        if event.get("finish_reason") not in FINISH_REASONS:
            raise ContractViolation(f"final event has no valid finish_reason: {event!r}")
        usage = event.get("usage")
        if not isinstance(usage, dict) or not isinstance(usage.get("completion_tokens"), int):
            raise ContractViolation(f"final event has no usage: {event!r}")
        if event["finish_reason"] == "error" and not isinstance(event.get("error"), dict):
            raise ContractViolation(f"error final event without `error`: {event!r}")
    else:
        if event["token"] == "":
            raise ContractViolation("empty token event")
        if any(marker in event["token"] for marker in SPECIAL_MARKERS):
            raise ContractViolation(f"special token sent as text: {event['token']!r}")
    return event


def stream_chat(
    url: str, body: dict, *, headers: dict[str, str] | None = None, timeout: float = 150.0, on_token=None
) -> StreamReport:
    """Stream one reply from `url` (a base URL or the /stream_chat URL), checking every event.

    Raises ContractViolation at the first break of the contract; `on_token(text)` sees each token.
    """
    report = StreamReport()
    started = time.perf_counter()
    with httpx.stream("POST", stream_url(url), json=body, headers=headers, timeout=timeout) as response:
        if response.status_code != 200:
            raise ContractViolation(f"HTTP {response.status_code}: {response.read().decode(errors='replace')[:300]}")
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise ContractViolation(f"content-type is {content_type!r}, not text/event-stream")
        buffer = b""
        for chunk in response.iter_raw():
            buffer += chunk
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                event = check_event(block, report)
                if event is None:
                    continue
                if event["done"]:
                    report.finish_reason = event["finish_reason"]
                    report.usage = event["usage"]
                    report.error = event.get("error")
                    continue
                if report.ttft_s is None:
                    report.ttft_s = time.perf_counter() - started
                report.tokens += 1
                report.text += event["token"]
                if on_token:
                    on_token(event["token"])
        if buffer.strip():
            raise ContractViolation(f"stream ended mid-event: {buffer[:120]!r}")
    report.total_s = time.perf_counter() - started
    if report.finish_reason is None:
        raise ContractViolation("stream ended without a final `done: true` event")
    return report


def print_summary(report: StreamReport) -> None:
    ttft = f"{report.ttft_s * 1000:.0f} ms" if report.ttft_s is not None else "n/a"
    print(
        f"\n--\ntime to first token: {ttft} | tokens: {report.tokens} | {report.tokens_per_s:.1f} tokens/s | "
        f"total: {report.total_s:.2f} s | finish_reason: {report.finish_reason} | usage: {report.usage}",
        file=sys.stderr,
    )
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
