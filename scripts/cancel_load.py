"""Cancellation under load: do the streams whose clients hang up stop generating upstream, promptly?

    python scripts/cancel_load.py [--rounds 10] [--streams 200] [--token-rate 100] [--safety-policy off]

Each round opens `--streams` conversations at once through the proxy, in front of localtgi's scripted
engine at `--token-rate` tokens/s per stream; half of them read to the end, the other half hang up
after 1 to 5 tokens, with 35 or more still to come. localtgi notes when each generation was
cancelled or ended (wall clock, so the two processes compare); a hang-up's cancel latency is that
minus the moment the client closed its socket. A generation can end on its own after its client
left when the proxy, behind on a saturated machine, delivers tokens later than they were made:
those are counted apart, with how long they ran on. Prints the figures per round and overall, and
exits 1 when a stream that read to the end lost or changed a token, or a hung-up stream was still
generating upstream 1 s after its client left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
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


@dataclass
class RoundCheck:
    cancel_latencies: list[float] = field(default_factory=list)  # hang-up -> generation cancelled
    generating_after: list[float] = field(default_factory=list)  # hang-up -> generation over, either way
    ran_to_the_end: int = 0  # generations that ended on their own after their client had left
    over_before_hang_up: int = 0  # ... or before (the client read what was already on its way)
    problems: list[str] = field(default_factory=list)


def check_round(outcomes: list[Outcome], stats: dict) -> RoundCheck:
    cancelled = {seed: at for seed, at, _ in stats["cancellations"]}
    completed = {seed: at for seed, at, _ in stats["completions"]}
    check = RoundCheck()
    for outcome in outcomes:
        seed = outcome.plan.seed
        if outcome.plan.hang_up_after is None:
            if outcome.tokens != (sent := expected_tokens(seed)):
                check.problems.append(f"seed {seed}: {len(outcome.tokens)} tokens, not the {len(sent)} sent")
            continue
        if seed in cancelled:
            after = cancelled[seed] - outcome.hung_up_at
            check.cancel_latencies.append(after)
        elif seed in completed:
            after = completed[seed] - outcome.hung_up_at
            if after > 0:
                check.ran_to_the_end += 1
            else:
                check.over_before_hang_up += 1
        else:
            check.problems.append(f"seed {seed}: localtgi never saw its generation end")
            continue
        check.generating_after.append(max(after, 0.0))
        if after > LEFT_GENERATING_LIMIT_S:
            check.problems.append(f"seed {seed}: still generating {after:.2f} s after its client left")
    return check


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:6.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--token-rate", type=float, default=100.0, help="tokens/s per stream")
    parser.add_argument("--safety-policy", default="prepend",
                        help="the proxy's PROXY_SAFETY_POLICY (off: without the crisis detector's CPU)")  # fmt: skip
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
        env = proxy_env(upstream, safety_policy=args.safety_policy)
        proxy = start_server("proxy", proxy_cmd, proxy_port, logs, env)
        wait_answering(proxy)
        checks = []
        print(f"{args.rounds} rounds of {args.streams} streams ({MAX_TOKENS} tokens at {args.token_rate:g}/s), "
              f"half hanging up after 1-5 tokens; logs in {logs}")  # fmt: skip
        for number in range(1, args.rounds + 1):
            round_plans = plans(args.streams, rng, first_seed=number * 1_000_000)
            started = time.monotonic()
            outcomes = asyncio.run(run_round(proxy.url, round_plans))
            check = check_round(outcomes, settle(upstream.url))
            checks.append(check)
            print(f"round {number:2}: {time.monotonic() - started:5.2f} s; of {len(check.generating_after)} hang-ups "
                  f"{len(check.cancel_latencies)} cancelled (latency p50 {ms(check.cancel_latencies, 50)} ms, "
                  f"p99 {ms(check.cancel_latencies, 99)} ms), {check.ran_to_the_end} ran to their end, "
                  f"{check.over_before_hang_up} had ended before; generating after the hang-up p99 "
                  f"{ms(check.generating_after, 99)} ms, max {ms(check.generating_after, 100)} ms; "
                  f"problems {len(check.problems)}")  # fmt: skip
        latencies = [value for check in checks for value in check.cancel_latencies]
        after = [value for check in checks for value in check.generating_after]
        all_problems = [problem for check in checks for problem in check.problems]
        print(f"all rounds: {len(after)} hang-ups, {len(latencies)} cancelled upstream, "
              f"{sum(check.ran_to_the_end for check in checks)} ran to their end after their client left, "
              f"{sum(check.over_before_hang_up for check in checks)} had ended before it left")  # fmt: skip
        print(f"cancel latency p50 {ms(latencies, 50)} ms, p99 {ms(latencies, 99)} ms, max {ms(latencies, 100)} ms; "
              f"generating after the hang-up (all): p99 {ms(after, 99)} ms, max {ms(after, 100)} ms")  # fmt: skip
        for problem in all_problems[:20]:
            print("PROBLEM:", problem)
        print("OK: no token lost, no generation left running 1 s after its client left" if not all_problems else
              f"FAILED: {len(all_problems)} problems")  # fmt: skip
        return 1 if all_problems else 0
    finally:
        if proxy is not None:
            stop_server(proxy)
        stop_server(upstream)


if __name__ == "__main__":
    sys.exit(main())
