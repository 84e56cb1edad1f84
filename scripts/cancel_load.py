"""Cancellation under load: do the streams whose clients hang up stop generating upstream, promptly?

    python scripts/cancel_load.py [--rounds 10] [--streams 200] [--token-rate 100]

Each round opens `--streams` conversations at once through the proxy, in front of localtgi's scripted
engine at `--token-rate` tokens/s per stream; half of them read to the end, the other half hang up
after 1 to 5 tokens, with 35 or more still to come. localtgi notes when it saw each cancellation
(wall clock, so the two processes compare); a hang-up's cancel latency is that minus the moment the
client closed its socket. Prints the figures per round and overall, and exits 1 when a stream that
read to the end lost or changed a token, or a hung-up stream was still generating upstream 1 s
after its client left (or never was cancelled at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repo's packages
from bench import ADAPTER, free_port, proxy_env, start_server, stop_server, wait_answering  # noqa: E402

from localtgi.engines.scripted import reply_tokens  # noqa: E402

MAX_TOKENS = 40
LEFT_GENERATING_LIMIT_S = 1.0
RANDOM_SEED = 11


@dataclass
class Plan:
    seed: int
    hang_up_after: int | None  # token events to read before closing the connection; None: to the end


@dataclass
class Outcome:
    plan: Plan
    tokens: list[str]
    hung_up_at: float | None = None  # time.time() just before the socket was closed


def expected_tokens(seed: int) -> list[str]:
    return [token.text for token in reply_tokens(seed)[:MAX_TOKENS] if token.text and not token.special]


def plans(streams: int, rng: random.Random, first_seed: int) -> list[Plan]:
    """Seeds whose replies run past MAX_TOKENS, so a hang-up always leaves generation to cancel."""
    seeds = (seed for seed in range(first_seed, first_seed + 100_000) if len(reply_tokens(seed)) > MAX_TOKENS + 5)
    chosen = [Plan(next(seeds), rng.randint(1, 5) if index % 2 else None) for index in range(streams)]
    rng.shuffle(chosen)
    return chosen


async def run_stream(host: str, port: int, plan: Plan) -> Outcome:
    """One conversation on a raw socket, so that hanging up is one abort() the moment the tokens are
    counted (an HTTP client library closes later, when its event loop gets to it)."""
    body = json.dumps({"message": f"I feel anxious about work ({plan.seed})", "max_tokens": MAX_TOKENS,
                       "seed": plan.seed}).encode()  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /stream_chat HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (host.encode(), len(body), body))  # fmt: skip
    outcome, received = Outcome(plan, []), b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
            if plan.hang_up_after is not None and received.count(b'{"token": ') >= plan.hang_up_after:
                writer.transport.abort()  # the socket is gone now: what the proxy must notice
                outcome.hung_up_at = time.time()
                break
    finally:
        writer.close()
    outcome.tokens = model_tokens(received)
    return outcome


def model_tokens(raw: bytes) -> list[str]:
    """The token texts of the SSE frames in a chunked HTTP/1.1 response, the service's notices left out."""
    head, _, chunked = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"not a 200: {head[:200]!r}")
    body = b""
    while chunked:
        size, _, rest = chunked.partition(b"\r\n")
        length = int(size, 16) if size.strip() else 0
        if not length:
            break
        body, chunked = body + rest[:length], rest[length + 2 :]
    tokens = []
    for frame in body.split(b"\n\n"):
        if frame.startswith(b"data: "):
            try:
                event = json.loads(frame[6:])
            except ValueError:
                break  # a frame cut by our own hang-up
            if not event["done"] and "notice" not in event:
                tokens.append(event["token"])
    return tokens


async def run_round(url: str, round_plans: list[Plan]) -> list[Outcome]:
    address = httpx.URL(url)
    return await asyncio.gather(*(run_stream(address.host, address.port, plan) for plan in round_plans))


def stats(upstream_url: str) -> dict:
    return httpx.get(f"{upstream_url}/_localtgi/stats", timeout=5).json()


def settle(upstream_url: str, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (found := stats(upstream_url))["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def check_round(outcomes: list[Outcome], cancellations: dict[int, float]) -> tuple[list[float], list[str]]:
    latencies, problems = [], []
    for outcome in outcomes:
        seed = outcome.plan.seed
        if outcome.plan.hang_up_after is None:
            if outcome.tokens != expected_tokens(seed):
                problems.append(f"seed {seed}: {len(outcome.tokens)} tokens, not the {len(expected_tokens(seed))} sent")
            continue
        cancelled_at = cancellations.get(seed)
        if cancelled_at is None:
            problems.append(f"seed {seed}: hung up after {len(outcome.tokens)} tokens, ran to its end upstream")
            continue
        latency = cancelled_at - outcome.hung_up_at
        latencies.append(latency)
        if latency > LEFT_GENERATING_LIMIT_S:
            problems.append(f"seed {seed}: still generating {latency:.2f} s after its client left")
    return latencies, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--token-rate", type=float, default=100.0, help="tokens/s per stream")
    args = parser.parse_args()
    rng = random.Random(RANDOM_SEED)
    logs = Path(tempfile.mkdtemp(prefix="cancel-load-"))
    tgi_port, proxy_port = free_port(), free_port()
    tgi_cmd = [sys.executable, "-m", "localtgi", "--engine", "scripted", "--token-rate", str(args.token_rate),
               "--max-concurrent-requests", "1024", "--lora-adapters", ADAPTER, "--port", str(tgi_port)]  # fmt: skip
    upstream = start_server("localtgi", tgi_cmd, tgi_port, logs)
    proxy = None
    try:
        wait_answering(upstream)
        proxy_cmd = [sys.executable, "-m", "proxy", "--port", str(proxy_port)]
        proxy = start_server("proxy", proxy_cmd, proxy_port, logs, proxy_env(upstream))
        wait_answering(proxy)
        all_latencies, all_problems = [], []
        print(f"{args.rounds} rounds of {args.streams} streams ({MAX_TOKENS} tokens at {args.token_rate:g}/s), "
              f"half hanging up after 1-5 tokens; logs in {logs}")  # fmt: skip
        for number in range(1, args.rounds + 1):
            round_plans = plans(args.streams, rng, first_seed=number * 1_000_000)
            started, before = time.monotonic(), stats(upstream.url)
            outcomes = asyncio.run(run_round(proxy.url, round_plans))
            after = settle(upstream.url)
            cancellations = {seed: at for seed, at, _ in after["cancellations"]}
            latencies, problems = check_round(outcomes, cancellations)
            all_latencies += latencies
            all_problems += problems
            completed, cancelled = (after[key] - before[key] for key in ("completed", "cancelled"))
            print(f"round {number:2}: {time.monotonic() - started:5.2f} s, upstream {completed} completed, "
                  f"{cancelled} cancelled; cancel latency "
                  f"p50 {percentile(latencies, 50) * 1000:6.1f} ms, p99 {percentile(latencies, 99) * 1000:6.1f} ms, "
                  f"max {max(latencies, default=float('nan')) * 1000:6.1f} ms, problems {len(problems)}")  # fmt: skip
        print(f"all rounds: {len(all_latencies)} hang-ups cancelled; cancel latency p50 "
              f"{percentile(all_latencies, 50) * 1000:.1f} ms, p99 {percentile(all_latencies, 99) * 1000:.1f} ms, "
              f"max {max(all_latencies, default=float('nan')) * 1000:.1f} ms")  # fmt: skip
        for problem in all_problems[:20]:
            print("PROBLEM:", problem)
        print("OK: no token lost, every hang-up cancelled within 1 s" if not all_problems else
              f"FAILED: {len(all_problems)} problems")  # fmt: skip
        return 1 if all_problems else 0
    finally:
        if proxy is not None:
            stop_server(proxy)
        stop_server(upstream)


if __name__ == "__main__":
    sys.exit(main())
