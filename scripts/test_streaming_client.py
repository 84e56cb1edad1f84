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
import os
import sys

import httpx

from therapist_client import ContractViolation, print_summary, stream_chat

DEFAULT_URL = "http://127.0.0.1:8000"


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

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
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
            report = stream_chat(args.url, body, headers=headers, timeout=args.timeout, on_token=printer)
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
