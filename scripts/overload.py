"""Overload: twice the saturating load against a proxy that sheds what it cannot serve at pace.

    python scripts/overload.py [--streams 64] [--token-rate 500] [--window 10]

Set up as scripts/bench.py's saturation run: the proxy alone on core 0, localtgi and this load
generator on core 1. Every stream runs on its own clock at `--token-rate` tokens/s. The proxy runs
with PROXY_MAX_STREAMS=`--streams`. First `--streams` users alone (the unloaded run), which measures
the proxy's share of its core: the saturating load is the number of streams that would fill it
(`--streams` / share). Then users up to twice the saturating load: the admitted streams must finish
with all their tokens and an inter-token p99 within 2x of the unloaded run's, and the rest must be
refused with 429 at once. Users that are refused come back after 100 ms (harsher than the
Retry-After of 1 s that SDKs honour). Prints both runs and how quickly the refusals came; exits 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import (
    UPSTREAM_COMMANDS,
    build_targets,
    cpu_seconds,
    free_port,
    pin,
    proxy_env,
    start_server,
    stop_server,
    use_reply_length,
    wait_answering,
    warm_up,
)
from bench_load import Connection, Tally, Target, clock, percentile, run_user, stop

STREAM_TOKENS = 256
RETRY_AFTER_REFUSAL_S = 0.1
ITL_P99_LIMIT = 2.0  # loaded / unloaded


async def refused_user(target: Target, tally: Tally, refusals: list[float], others: list[int]) -> None:
    """A user beyond the cap: asks again and again; each 429 is timed, anything else noted."""
    connection = await Connection.open(target.host, target.port)
    try:
        while True:
            if connection.closed:
                connection = await Connection.open(target.host, target.port)
            sent = clock()
            status = await connection.request(target.request(STREAM_TOKENS), lambda event, now: None)
            if status == 429:
                refusals.append(clock() - sent)
                await asyncio.sleep(RETRY_AFTER_REFUSAL_S)
            else:
                others.append(status)  # admitted after all (a slot freed up): fine, but counted
    finally:
        connection.close()


async def run(
    target: Target, admitted: int, beyond: int, window_s: float, proxy_pid: int
) -> tuple[Tally, list[float], list[int], float]:
    """The tallies, the refusals' times, other answers to users beyond the cap, and the proxy's
    share of its core in the window."""
    tally, refusals, others = Tally(), [], []
    users = [asyncio.ensure_future(run_user(target, tally, STREAM_TOKENS, STREAM_TOKENS, 0.2 * i / admitted))
             for i in range(admitted)]  # fmt: skip
    await asyncio.sleep(1.0)  # every admitted user holds its slot before the others come
    extra = [asyncio.ensure_future(refused_user(target, tally, refusals, others)) for _ in range(beyond)]
    try:
        await asyncio.sleep(1.0)
        started, cpu_before = clock(), cpu_seconds(proxy_pid)
        tally.open_window(started, window_s)
        await asyncio.sleep(window_s)
        share = (cpu_seconds(proxy_pid) - cpu_before) / (clock() - started)
    finally:
        await stop(users + extra)
    return tally, refusals, others, share


def tally_429(tally: Tally) -> int:
    return sum(error.endswith("HTTP 429") for error in tally.errors)


def summary(name: str, tally: Tally, window_s: float, refusals: list[float]) -> str:
    line = (f"{name:9} tokens/s {tally.tokens / window_s:9,.0f}  ITL p50 {percentile(tally.itl, 50) * 1000:6.2f} ms  "
            f"p99 {percentile(tally.itl, 99) * 1000:6.2f} ms  streams finished {tally.streams}  "
            f"errors {len(tally.errors)}")  # fmt: skip
    if refusals:
        line += (f"  429s {len(refusals)}: answered in p50 {percentile(refusals, 50) * 1000:.2f} ms, "
                 f"p99 {percentile(refusals, 99) * 1000:.2f} ms, max {max(refusals) * 1000:.2f} ms")  # fmt: skip
    return line


async def main_async(args: argparse.Namespace, logs: Path) -> int:
    reply = use_reply_length(STREAM_TOKENS + 50)
    upstream_port, proxy_port = free_port(), free_port()
    command = UPSTREAM_COMMANDS["tgi"](upstream_port, args.token_rate, len(reply), unbatched=True)
    upstream = start_server("localtgi", command, upstream_port, logs)
    env = {**proxy_env(upstream), "PROXY_MAX_STREAMS": str(args.streams)}
    proxy = start_server("proxy", [sys.executable, "-m", "proxy", "--port", str(proxy_port)], proxy_port, logs, env)
    own_cores = os.sched_getaffinity(0)
    try:
        wait_answering(upstream)
        wait_answering(proxy)
        _, target, _ = build_targets(upstream, proxy, reply)
        await warm_up(target)
        pin(proxy.pid, {0})
        pin(upstream.pid, {1})
        pin(os.getpid(), {1})
        unloaded, _, _, unloaded_share = await run(target, args.streams, 0, args.window, proxy.pid)
        saturating = args.streams / unloaded_share
        offered = math.ceil(2 * saturating)
        loaded, refusals, others, loaded_share = await run(target, args.streams, offered - args.streams, args.window,
                                                           proxy.pid)  # fmt: skip
    finally:
        pin(os.getpid(), own_cores)
        stop_server(proxy)
        stop_server(upstream)
    print(f"{args.streams} streams of {STREAM_TOKENS} tokens at {args.token_rate:g}/s, PROXY_MAX_STREAMS="
          f"{args.streams}: the proxy used {unloaded_share:.0%} of its core, so {saturating:.0f} streams saturate it; "
          f"then {offered} users in all (2x), the proxy at {loaded_share:.0%}; {args.window:g} s windows; "
          f"logs in {logs}")  # fmt: skip
    print(summary("unloaded", unloaded, args.window, []))
    print(summary("2x load", loaded, args.window, refusals))
    for name, tally in (("unloaded", unloaded), ("2x load", loaded)):
        kinds = Counter(error.split(":", 1)[-1].strip()[:60] for error in tally.errors)
        if kinds:
            print(f"  {name} errors: {dict(kinds.most_common(4))}")
    ratio = percentile(loaded.itl, 99) / percentile(unloaded.itl, 99)
    # A 429 is a stream that was never admitted (a user whose next stream lost the race for a freed
    # slot gets one too); anything else is an admitted stream that went wrong.
    broken = [error for error in unloaded.errors + loaded.errors if not error.endswith("HTTP 429")]
    checks = [
        (
            f"admitted streams lost nothing: {len(broken)} broken, {tally_429(loaded)} not admitted",
            not broken and not unloaded.errors,
        ),
        (f"admitted streams' ITL p99 {ratio:.2f}x the unloaded run's (limit {ITL_P99_LIMIT}x)", ratio <= ITL_P99_LIMIT),
        (f"the users beyond the cap were refused: {len(refusals)} 429s, {len(others)} other answers", bool(refusals)),
    ]
    for text, held in checks:
        print(("ok     " if held else "MISSED ") + text)
    return 0 if all(held for _, held in checks) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=64,
                        help="the proxy's cap (PROXY_MAX_STREAMS), and the unloaded run")
    parser.add_argument("--token-rate", type=float, default=500.0, help="tokens/s of each stream")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured in each run")
    args = parser.parse_args()
    return asyncio.run(main_async(args, Path(tempfile.mkdtemp(prefix="overload-"))))


if __name__ == "__main__":
    sys.exit(main())
