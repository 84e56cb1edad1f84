#!/usr/bin/env python3
"""Stream a reply from the therapist endpoint and report how it went (the guide's client example).

    python scripts/test_streaming_client.py                       # the local stack (`make run`)
    python scripts/test_streaming_client.py --url https://<workspace>--therapist-streaming.modal.run
    python scripts/test_streaming_client.py --check               # smoke test: non-zero exit on any contract violation
    python scripts/test_streaming_client.py --history -m "I feel anxious" -m "Mostly at night"

Prints tokens as they arrive, then time to first token, tokens/s, total time and finish reason.
An API key comes from --api-key or the THERAPIST_API_KEY environment variable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
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


def stream_chat(url: str, body: dict, api_key: str | None, timeout: float, on_token=None) -> StreamReport:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--url", default=os.environ.get("THERAPIST_URL", DEFAULT_URL), help=f"endpoint (default {DEFAULT_URL})"
    )
    parser.add_argument("-m", "--message", action="append", help="message to send (repeat for several turns)")
    parser.add_argument("--history", action="store_true", help="send earlier turns as conversation_history")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--api-key", default=os.environ.get("THERAPIST_API_KEY"))
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds (Modal ends web requests at 150 s)")
    parser.add_argument(
        "--check", action="store_true", help="smoke test: exit 1 on a contract violation or an error finish"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print tokens")
    args = parser.parse_args(argv)

    messages = args.message or ["I feel anxious"]
    history: list[dict] = []
    for message in messages:
        body = {"message": message, "max_tokens": args.max_tokens, "temperature": args.temperature, "top_p": args.top_p}
        if args.seed is not None:
            body["seed"] = args.seed
        if args.history:
            body["conversation_history"] = history
        if len(messages) > 1:
            print(f"\n> {message}", file=sys.stderr)
        printer = None if args.quiet else (lambda token: print(token, end="", flush=True))
        try:
            report = stream_chat(args.url, body, args.api_key, args.timeout, on_token=printer)
        except ContractViolation as exc:
            print(f"\nCONTRACT VIOLATION: {exc}", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(f"\nREQUEST FAILED: {exc!r}", file=sys.stderr)
            return 1
        print_summary(report)
        if args.check and report.finish_reason == "error":
            print("CHECK FAILED: the stream ended with an error", file=sys.stderr)
            return 1
        if args.check and report.tokens == 0:
            print("CHECK FAILED: no tokens", file=sys.stderr)
            return 1
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": report.text}]
    if args.check:
        print("CHECK PASSED", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
