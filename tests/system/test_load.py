"""Load: 200 concurrent streams through the proxy, half of them hanging up at random points, over each
engine's wire.

The stand-in's scripted engine paces each stream at TOKEN_RATE tokens/s and its reply depends only on
the seed, so every stream's tokens are known in advance. Afterwards: every completed stream has
exactly its tokens, in order, and one final event; every hang-up cancelled its generation
upstream; and the proxy's memory and open sockets are back where they were before the load.
The hang-up points come from a seeded random generator: the same test every run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from localtgi.engines.scripted import reply_tokens
from tests.support.chat_stream import parse_event_stream
from tests.support.servers import server_process, start_proxy
from tests.support.stack import Stack, start_upstream, upstream_args

STREAMS = 200
ROUNDS = 3  # after a warm-up round: memory that grows round after round is a leak
MAX_TOKENS = 100
TOKEN_RATE = 50  # tokens/s per stream: a realistic decoder pace
RANDOM_SEED = 7
RSS_MARGIN_KIB = 8 * 1024  # allocator noise; a leak of 14 KiB per stream would exceed it
SOCKET_MARGIN = 4


def expected_tokens(seed: int) -> list[str]:
    """The token events the proxy must send for this seed: the texts TGI streams, without the
    special end-of-turn token and the empty texts of split multi-byte characters."""
    return [token.text for token in reply_tokens(seed)[:MAX_TOKENS] if token.text and not token.special]


def expected_final(seed: int) -> dict:
    generated = min(len(reply_tokens(seed)), MAX_TOKENS)
    return {"finish_reason": "length" if generated == MAX_TOKENS else "stop", "completion_tokens": generated}


@dataclass
class Plan:
    seed: int
    hang_up_after: int | None  # token events to read before closing the connection; None: read to the end


def plans() -> list[Plan]:
    """Half the streams hang up, each after a random number (1 to 40) of the token events of a reply
    that runs to max_tokens: at least 36 tokens (0.7 s) are then still to come upstream, so even a
    client running that far behind on a busy machine hangs up on a generation still running, which
    must be cancelled. The other half read to the end: replies of every length, seeds taken in order."""
    rng = random.Random(RANDOM_SEED)
    runs_to_the_limit = (seed for seed in range(1000, 100_000) if len(reply_tokens(seed)) > MAX_TOKENS)
    hanging_up = [Plan(next(runs_to_the_limit), rng.randint(1, 40)) for _ in range(STREAMS // 2)]
    reading = [Plan(seed, None) for seed in range(200_000, 200_000 + STREAMS // 2)]
    all_plans = hanging_up + reading
    rng.shuffle(all_plans)
    return all_plans


async def run_stream(client: httpx.AsyncClient, plan: Plan) -> bytes | int:
    """The whole body of a completed stream, or how many token events arrived before hanging up."""
    body = {"message": f"I feel anxious ({plan.seed})", "max_tokens": MAX_TOKENS, "seed": plan.seed}
    async with client.stream("POST", "/stream_chat", json=body) as response:
        assert response.status_code == 200, await response.aread()
        received = b""
        async for chunk in response.aiter_raw():
            received += chunk
            if plan.hang_up_after is not None and received.count(b"data: ") >= plan.hang_up_after:
                return received.count(b"data: ")  # leaving the `async with` closes the connection
        return received


async def run_load(proxy_url: str, round_plans: list[Plan]) -> list[bytes | int]:
    limits = httpx.Limits(max_connections=len(round_plans), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=proxy_url, limits=limits, timeout=60) as client:
        return await asyncio.gather(*(run_stream(client, plan) for plan in round_plans))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))


def open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass  # closed while we looked
    return count


def settled_sockets(proxy_url: str, pid: int, at_most: int, timeout: float = 20.0) -> int:
    """The proxy's socket count once it is `at_most` or less (or at the deadline). Idle pooled
    upstream connections close after 5 s (localtgi's keep-alive timeout); a client pool may only
    notice on its next use, so /health is asked now and then, rarely enough (every 2 s) not to keep
    more than a couple of pooled connections alive itself."""
    deadline = time.monotonic() + timeout
    next_probe = time.monotonic()
    while (count := open_sockets(pid)) > at_most and time.monotonic() < deadline:
        if time.monotonic() >= next_probe:
            httpx.get(f"{proxy_url}/health", timeout=5)
            next_probe = time.monotonic() + 2.0
        time.sleep(0.1)
    return count


def metric(metrics_text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", metrics_text, re.MULTILINE).group(1))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, engine):
    log_file = tmp_path_factory.mktemp("load") / "proxy.log"
    extra = ["--token-rate", str(TOKEN_RATE)] + (["--max-concurrent-requests", "256"] if engine == "tgi" else [])
    with start_upstream(engine, *upstream_args(engine, extra)) as upstream_url:
        with start_proxy(upstream_url, log_file=log_file, engine=engine) as proxy_url:
            yield Stack(upstream_url, proxy_url, engine)


def check_round(round_plans: list[Plan], results: list[bytes | int]) -> tuple[int, int]:
    """Every completed stream exactly as predicted, every hang-up after its planned point;
    returns (completed, hung up)."""
    completed = hung_up = 0
    for plan, result in zip(round_plans, results, strict=True):
        if plan.hang_up_after is not None:
            assert result >= plan.hang_up_after
            hung_up += 1
            continue
        events, _ = parse_event_stream(result)
        *tokens, final = events
        assert sum(event["done"] for event in events) == 1 and final["done"] is True
        assert [event["token"] for event in tokens] == expected_tokens(plan.seed), f"seed {plan.seed}: tokens differ"
        assert final["finish_reason"] == expected_final(plan.seed)["finish_reason"]
        assert final["usage"]["completion_tokens"] == expected_final(plan.seed)["completion_tokens"]
        completed += 1
    return completed, hung_up


def test_200_concurrent_streams_half_hanging_up(loaded):
    proxy_url = loaded.proxy_url
    pid = server_process(proxy_url).pid
    stats = lambda: httpx.get(f"{loaded.admin_url}/stats").json()  # noqa: E731
    idle_sockets = open_sockets(pid)  # before any load: the listening socket and little else

    # Warm up with the same load, so the memory baseline holds imports, caches and allocator arenas.
    # The rounds follow at once: pooled connections are reused before localtgi's 5 s idle timeout.
    round_plans = plans()
    check_round(round_plans, asyncio.run(run_load(proxy_url, round_plans)))
    baseline_rss = rss_kib(pid)
    before = stats()
    before_metrics = httpx.get(f"{proxy_url}/metrics").text

    completed = hung_up = 0
    rss_after_rounds = []
    started = time.monotonic()
    for _ in range(ROUNDS):
        round_completed, round_hung_up = check_round(round_plans, asyncio.run(run_load(proxy_url, round_plans)))
        completed, hung_up = completed + round_completed, hung_up + round_hung_up
        rss_after_rounds.append(rss_kib(pid))
    took = time.monotonic() - started
    busy_sockets = open_sockets(pid)

    # Every hang-up cancelled its generation; every other one completed; nothing is left running.
    deadline = time.monotonic() + 10
    while (after := stats())["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after["active"] == 0
    assert after["started"] - before["started"] == ROUNDS * STREAMS
    assert after["cancelled"] - before["cancelled"] == hung_up
    assert after["completed"] - before["completed"] == completed
    assert after["failed"] == before["failed"]

    after_metrics = httpx.get(f"{proxy_url}/metrics").text
    assert metric(after_metrics, "proxy_streams_in_flight") == 0
    disconnects = metric(after_metrics, "proxy_client_disconnects_total") - metric(
        before_metrics, "proxy_client_disconnects_total"
    )
    assert disconnects == hung_up

    # Memory and connections back to the baseline.
    after_sockets = settled_sockets(proxy_url, pid, at_most=idle_sockets + SOCKET_MARGIN)
    after_rss = rss_kib(pid)
    print(
        f"\n{ROUNDS} rounds of {STREAMS} concurrent streams in {took:.1f} s: {completed} completed with every "
        f"token in order and one final event, {hung_up} hung up, {after['cancelled'] - before['cancelled']} "
        f"cancelled upstream; proxy RSS {baseline_rss / 1024:.1f} MiB after warm-up, then "
        f"{', '.join(f'{rss / 1024:.1f}' for rss in rss_after_rounds)} MiB after each round, {after_rss / 1024:.1f} "
        f"MiB at the end; proxy sockets {idle_sockets} before the load, {busy_sockets} right after it, "
        f"{after_sockets} once idle"
    )
    assert after_sockets <= idle_sockets + SOCKET_MARGIN
    assert after_rss <= baseline_rss + RSS_MARGIN_KIB
    assert server_process(proxy_url).poll() is None
