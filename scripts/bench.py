#!/usr/bin/env python3
"""Benchmark the proxy against direct TGI (localtgi's scripted engine) in one run; print the figures.

    python scripts/bench.py              # the full run (about 22 minutes)
    python scripts/bench.py --quick      # a smoke run (about 2 minutes)
    python scripts/bench.py --record     # also write the results into docs/benchmarks.md and the plots

What runs: localtgi (scripted engine, ~30 tokens/s per stream, like an A10G) and the proxy
(`python -m proxy`: uvicorn, uvloop, httptools) as real processes, and this process as the load
generator (scripts/bench_load.py). At each concurrency, three phases: direct to localtgi, through
the proxy, direct again (the noise floor: direct against direct). Each phase: users start, warm
up, a throughput window (tokens/s, inter-token latency, CPU of every process), then a TTFT window
in which a probe adds short requests at a fixed rate. Then a saturation run: the proxy pinned to
one core, an unpaced localtgi, many streams; then the reference relay in the same place.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
from bench_clients import ClientResult, compare_clients
from bench_load import (
    ChatCompletionStream,
    DirectStream,
    ProxiedStream,
    Tally,
    Target,
    VllmDirectStream,
    percentile,
    run_probe,
    start_users,
    stop,
)
from bench_upstream import use_reply_length

from proxy.faces.stream_chat.protocol import chat_request_model
from proxy.policies.disclosure import system_prompt_with_disclosure
from proxy.service.chat_template import conversation_turns, load_chat_template
from proxy.settings import Settings
from proxy.upstream.tgi.parameters import tgi_parameters
from proxy.upstream.vllm.parameters import completion_body

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RESULTS_BEGIN, RESULTS_END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
MESSAGE = "I have been feeling anxious about work lately and I can't sleep."
ADAPTER = "qwen_therapist_lora"
TICKS = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "ttft_p50_ms": 1.5,
    "ttft_p99_ms": 5.0,
    "ttft_max_concurrency": 64,
    "throughput_ratio": 0.995,
    "throughput_max_concurrency": 128,
    "cpu_us_per_token": 60.0,
    "cpu_concurrency": 64,
    "events_per_s": 50_000,
    "detector_ttft_p50_ms": 5.0,  # the crisis detector's share of the first token (issue: within 5 ms p50)
}


@dataclass(frozen=True)
class Plan:
    concurrency: tuple[int, ...]
    warmup_s: float
    window_s: float
    ttft_s: float
    settle_s: float = 0.5
    ramp_s: float = 1.0
    probe_rate: float = 20.0  # TTFT probe requests per second
    saturation_streams: int = 64
    saturation_window_s: float = 10.0
    client_window_s: float = 6.0  # 0: skip the upstream client comparison


# TTFT: 10 s at 40 probes/s, so a p99 rests on 400+ samples (at 5 s and 20/s it was the second-worst
# of ~100, one scheduling hiccup on this shared machine).
FULL = Plan(concurrency=(1, 16, 64, 128, 256), warmup_s=2.0, window_s=15.0, ttft_s=10.0, probe_rate=40.0)
QUICK = Plan(concurrency=(1, 64), warmup_s=1.0, window_s=3.0, ttft_s=2.0, saturation_window_s=2.0, client_window_s=0.0)


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(name: str, command: list[str], port: int, logs: Path, env: dict[str, str] | None = None) -> Server:
    log = logs / f"{name}.log"
    with open(log, "wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=output, stderr=output)
    return Server(name, process, port, log)


def log_tail(server: Server, lines: int = 20) -> str:
    return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])


def wait_answering(server: Server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with status {server.process.returncode}:\n{log_tail(server)}")
        try:
            httpx.get(f"{server.url}/health", timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server.name} did not answer within {timeout_s} s:\n{log_tail(server)}") from None
            time.sleep(0.1)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def localtgi_command(port: int, token_rate: float, reply_tokens: int, unbatched: bool = False) -> list[str]:
    return [
        sys.executable, "scripts/bench_upstream.py", "--reply-tokens", str(reply_tokens), "--",
        "--engine", "scripted", "--token-rate", str(token_rate), "--max-concurrent-requests", "1024",
        "--lora-adapters", ADAPTER, "--hostname", "127.0.0.1", "--port", str(port),
        *(["--unbatched"] if unbatched else []),
    ]  # fmt: skip


def localvllm_command(port: int, token_rate: float, reply_tokens: int, unbatched: bool = False) -> list[str]:
    return [
        sys.executable, "scripts/bench_upstream.py", "--wire", "vllm", "--reply-tokens", str(reply_tokens), "--",
        "serve", "scripted/therapist", "--engine", "scripted", "--token-rate", str(token_rate), "--enable-lora",
        "--lora-modules", f"{ADAPTER}=/adapters/{ADAPTER}", "--host", "127.0.0.1", "--port", str(port),
        *(["--unbatched"] if unbatched else []),
    ]  # fmt: skip


UPSTREAM_COMMANDS = {"tgi": localtgi_command, "vllm": localvllm_command}


def proxy_env(upstream: Server, engine: str = "tgi", safety_policy: str = "prepend") -> dict[str, str]:
    return {
        "PROXY_SAFETY_POLICY": safety_policy,
        "PROXY_ENGINE": engine,
        "PROXY_UPSTREAM_URL": upstream.url,
        "PROXY_MAX_TOKENS_LIMIT": "4096",
        "PROXY_UPSTREAM_MAX_CONNECTIONS": "1024",
    }


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of the process, not only its main one."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cores)


# ---------------------------------------------------------------------------------------------
# CPU and memory counters


def cpu_seconds(pid: int) -> float:
    """utime + stime from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        match = re.search(r"VmRSS:\s+(\d+) kB", status.read())
    return int(match.group(1)) / 1024 if match else float("nan")


@dataclass
class Counters:
    wall: float
    cpu: dict[str, float]
    machine: tuple[int, int]

    @classmethod
    def read(cls, pids: dict[str, int]) -> Counters:
        return cls(time.perf_counter(), {name: cpu_seconds(pid) for name, pid in pids.items()}, machine_ticks())


# ---------------------------------------------------------------------------------------------
# Phases


@dataclass
class Phase:
    target: str
    concurrency: int
    tally: Tally
    window_s: float
    cpu_share: dict[str, float]  # process -> CPU in the window, as a fraction of one core
    cpu_s: dict[str, float]  # process -> CPU seconds in the window
    machine_busy: float  # all cores, fraction busy in the window
    proxy_rss_mb: float = float("nan")

    @property
    def tokens_per_s(self) -> float:
        return self.tally.tokens / self.window_s


def counter_delta(before: Counters, after: Counters) -> tuple[dict[str, float], dict[str, float], float]:
    """(CPU seconds, CPU as a share of one core) per process, and how busy the whole machine was."""
    wall = after.wall - before.wall
    cpu_s = {name: after.cpu[name] - before.cpu[name] for name in before.cpu}
    busy, total = (a - b for a, b in zip(after.machine, before.machine, strict=True))
    return cpu_s, {name: s / wall for name, s in cpu_s.items()}, busy / total if total else float("nan")


def until_between_steps(step_s: float) -> float:
    """Seconds until halfway between two of localtgi's decode steps, which fall on multiples of
    `step_s` of the monotonic clock (the one perf_counter reads too)."""
    now = time.perf_counter()
    halfway = (math.floor(now / step_s) + 0.5) * step_s
    return halfway - now if halfway > now else halfway + step_s - now


async def run_phase(
    target: Target,
    concurrency: int,
    stream_tokens: int,
    plan: Plan,
    pids: dict[str, int],
    proxy_pid: int | None,
    step_s: float = 0.0,
) -> Phase:
    """`step_s`: localtgi's decode step when it batches. Its streams' tokens then arrive together, one
    burst per step, and a window edge that cut a burst would count part of it by luck (±1 step is
    ±1% of a 3 s window); so the window opens between two steps and lasts whole steps."""
    tally = Tally()
    users = start_users(target, tally, concurrency, stream_tokens, plan.ramp_s)
    probe = None
    window_s = round(plan.window_s / step_s) * step_s if step_s else plan.window_s
    try:
        await asyncio.sleep(plan.warmup_s)
        if step_s:
            await asyncio.sleep(until_between_steps(step_s))
        before = Counters.read(pids)
        tally.open_window(before.wall, window_s)
        await asyncio.sleep(window_s)
        after = Counters.read(pids)
        rss = rss_mb(proxy_pid) if proxy_pid else float("nan")
        if plan.ttft_s > 0:
            probe = asyncio.ensure_future(run_probe(target, tally, 1 / plan.probe_rate))
            await asyncio.sleep(plan.ttft_s)
    finally:
        await stop(users + ([probe] if probe else []))
    await asyncio.sleep(plan.settle_s)  # let the servers finish cleaning up before the next phase
    cpu_s, share, busy = counter_delta(before, after)
    return Phase(target.name, concurrency, tally, window_s, share, cpu_s, busy, rss)


@dataclass
class Row:
    """One concurrency level: direct (twice) against proxied, then /v1/chat/completions."""

    concurrency: int
    direct: Phase
    proxied: Phase
    direct_again: Phase
    completions: Phase | None = None  # /v1/chat/completions: measured over TGI's wire only
    detector_off: Phase | None = None  # /stream_chat through a proxy with PROXY_SAFETY_POLICY=off
    relay: Phase | None = None  # /stream_chat through scripts/bench_relay.py, the reference

    def ttft_ms(self, phase: str, q: float) -> float:
        if phase == "direct":
            samples = self.direct.tally.ttft + self.direct_again.tally.ttft
        elif phase == "completions":
            samples = self.completions.tally.ttft
        elif phase == "detector_off":
            samples = self.detector_off.tally.ttft
        elif phase == "relay":
            samples = self.relay.tally.ttft
        else:
            samples = self.proxied.tally.ttft
        return percentile(samples, q) * 1000

    def us_per_token(self, phase: Phase) -> float:
        return phase.cpu_s["proxy"] / max(phase.tally.tokens, 1) * 1e6

    def itl_ms(self, phase: str, q: float) -> float:
        if phase == "direct":
            samples = self.direct.tally.itl + self.direct_again.tally.itl
        else:
            samples = self.proxied.tally.itl
        return percentile(samples, q) * 1000

    @property
    def direct_tokens_per_s(self) -> float:
        return (self.direct.tokens_per_s + self.direct_again.tokens_per_s) / 2

    @property
    def ratio(self) -> float:
        return self.proxied.tokens_per_s / self.direct_tokens_per_s

    @property
    def noise(self) -> float:
        return self.direct_again.tokens_per_s / self.direct.tokens_per_s

    @property
    def proxy_us_per_token(self) -> float:
        return self.us_per_token(self.proxied)

    @property
    def errors(self) -> list[str]:
        phases = (self.direct, self.proxied, self.direct_again, self.completions, self.detector_off, self.relay)
        return [error for phase in phases if phase is not None for error in phase.tally.errors]


@dataclass
class Saturation:
    direct: Phase
    proxied: Phase
    relay: Phase | None = None  # the reference, pinned and loaded the same way

    @property
    def proxy_events_per_cpu_s(self) -> float:
        """What the proxy would sustain with its core to itself: events per second of its CPU."""
        return self.proxied.tally.tokens / self.proxied.cpu_s["proxy"]

    @property
    def relay_events_per_cpu_s(self) -> float:
        return self.relay.tally.tokens / self.relay.cpu_s["proxy"] if self.relay else float("nan")


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)  # over TGI's wire
    vllm_rows: list[Row] = field(default_factory=list)  # the same load over vLLM's wire
    saturation: Saturation | None = None
    clients: list[tuple[str, ClientResult]] = field(default_factory=list)  # (load, result)


# ---------------------------------------------------------------------------------------------
# The run


def build_targets(tgi: Server, proxy: Server, reply, engine: str = "tgi") -> tuple[Target, Target, Target]:
    """The same conversation every way: direct gets exactly the prompt and parameters the proxy sends,
    from /stream_chat and from /v1/chat/completions alike (over `engine`'s wire)."""
    settings = Settings(max_tokens_limit=4096)
    request_model = chat_request_model(settings)
    system_prompt = system_prompt_with_disclosure(settings.system_prompt, settings.ai_disclosure)
    prompt = load_chat_template(None).render(conversation_turns(system_prompt, [], MESSAGE))
    visible = [bool(token.text) and not token.special for token in reply]
    positions = [pos for pos, shown in enumerate(visible) if shown]

    def direct_body(max_tokens: int) -> dict:
        sampling = request_model(message=MESSAGE, max_tokens=max_tokens, temperature=0.0).chat_input().sampling
        parameters = tgi_parameters(sampling, settings.end_of_turn, settings.upstream_adapter_id)
        return {"inputs": prompt, "parameters": parameters}

    def proxied_body(max_tokens: int) -> dict:
        return {"message": MESSAGE, "max_tokens": max_tokens, "temperature": 0.0}

    def vllm_body(max_tokens: int) -> dict:
        sampling = request_model(message=MESSAGE, max_tokens=max_tokens, temperature=0.0).chat_input().sampling
        return completion_body(prompt, sampling, ADAPTER)

    if engine == "tgi":
        direct = Target(
            "direct", "127.0.0.1", tgi.port, "/generate_stream", direct_body,
            lambda tally, started: DirectStream(tally, started, visible),
        )  # fmt: skip
    else:
        direct = Target(
            "direct", "127.0.0.1", tgi.port, "/v1/completions", vllm_body,
            lambda tally, started: VllmDirectStream(tally, started, positions),
        )  # fmt: skip
    proxied = Target(
        "proxied", "127.0.0.1", proxy.port, "/stream_chat", proxied_body,
        lambda tally, started: ProxiedStream(tally, started, positions),
    )  # fmt: skip

    def completions_body(max_tokens: int) -> dict:
        return {"messages": [{"role": "user", "content": MESSAGE}], "max_tokens": max_tokens, "temperature": 0.0,
                "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip

    completions = Target(
        "chat completions", "127.0.0.1", proxy.port, "/v1/chat/completions", completions_body,
        lambda tally, started: ChatCompletionStream(tally, started, positions),
    )  # fmt: skip
    return direct, proxied, completions


async def warm_up(*targets: Target) -> None:
    """First requests pay for imports, the proxy's /info lookup and connection set-up."""
    for target in targets:
        tally = Tally()
        users = start_users(target, tally, 8, 16, ramp_s=0.2)
        await asyncio.sleep(1.0)
        await stop(users)
        if tally.errors:
            raise RuntimeError(f"warm-up against {target.name} failed: {tally.errors[:3]}")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def measure(args: argparse.Namespace, plan: Plan, logs: Path) -> Results:
    reply = use_reply_length(args.stream_tokens + 50)
    proxy_cmd = [sys.executable, "-m", "proxy"]

    def stack(engine: str, name: str, token_rate: float, unbatched: bool = False) -> tuple[Server, Server]:
        upstream_port, proxy_port = free_port(), free_port()
        command = UPSTREAM_COMMANDS[engine](upstream_port, token_rate, len(reply), unbatched)
        upstream = start_server(f"local{engine}{name}", command, upstream_port, logs)
        proxy = start_server(f"proxy-{engine}{name}", [*proxy_cmd, "--port", str(proxy_port)], proxy_port, logs,
                             proxy_env(upstream, engine, args.safety_policy))  # fmt: skip
        return upstream, proxy

    paced, proxy = stack("tgi", "", args.token_rate, args.unbatched)
    fast, fast_proxy = stack("tgi", "-unpaced", 0)
    # The same proxy without the crisis detector, in front of the same localtgi: what the detector costs.
    unscreened_port = free_port()
    unscreened = start_server("proxy-tgi-detector-off", [*proxy_cmd, "--port", str(unscreened_port)],
                              unscreened_port, logs, proxy_env(paced, "tgi", safety_policy="off"))  # fmt: skip
    # The reference: the least a relay of the same contract can do (scripts/bench_relay.py).
    relay_request = logs / "relay-request.json"
    relay_request.write_text(json.dumps(build_targets(paced, proxy, reply)[0].body(args.stream_tokens)))

    def relay_in_front_of(upstream: Server, name: str) -> Server:
        port = free_port()
        command = [sys.executable, "scripts/bench_relay.py", "--port", str(port), "--upstream-port",
                   str(upstream.port), "--request", str(relay_request)]  # fmt: skip
        return start_server(name, command, port, logs)

    relay, fast_relay = relay_in_front_of(paced, "relay"), relay_in_front_of(fast, "relay-unpaced")
    servers = [paced, fast, proxy, fast_proxy, unscreened, relay, fast_relay]
    if "vllm" in args.engines:
        paced_vllm, proxy_vllm = stack("vllm", "", args.token_rate, args.unbatched)
        servers += [paced_vllm, proxy_vllm]
    results = Results()
    try:
        for server in servers:
            wait_answering(server)
        direct, proxied, completions = build_targets(paced, proxy, reply)
        _, unscreened_target, _ = build_targets(paced, unscreened, reply)
        detector_off = dataclasses.replace(unscreened_target, name="detector off")
        relay_target = dataclasses.replace(build_targets(paced, relay, reply)[1], name="relay")
        await warm_up(direct, proxied, completions, detector_off, relay_target)
        if "vllm" in args.engines:
            vllm_direct, vllm_proxied, _ = build_targets(paced_vllm, proxy_vllm, reply, engine="vllm")
            await warm_up(vllm_direct, vllm_proxied)
        step_s = 0.0 if args.unbatched else 1 / args.token_rate
        for concurrency in plan.concurrency:
            # The engines take turns at each level: both are measured under the same conditions.
            pids = {"proxy": proxy.pid, "localtgi": paced.pid, "loadgen": os.getpid()}
            phases = []
            for target in (direct, proxied, direct, completions):
                progress(f"concurrency {concurrency}: {target.name}")
                phases.append(await run_phase(target, concurrency, args.stream_tokens, plan, pids, proxy.pid, step_s))
            progress(f"concurrency {concurrency}: {detector_off.name}")
            off_pids = {**pids, "proxy": unscreened.pid}
            phases.append(await run_phase(detector_off, concurrency, args.stream_tokens, plan, off_pids,
                                          unscreened.pid, step_s))  # fmt: skip
            progress(f"concurrency {concurrency}: {relay_target.name}")
            relay_pids = {**pids, "proxy": relay.pid}
            phases.append(await run_phase(relay_target, concurrency, args.stream_tokens, plan, relay_pids,
                                          relay.pid, step_s))  # fmt: skip
            results.rows.append(Row(concurrency, *phases))
            if "vllm" in args.engines:
                pids = {"proxy": proxy_vllm.pid, "localtgi": paced_vllm.pid, "loadgen": os.getpid()}
                phases = []
                for target in (vllm_direct, vllm_proxied, vllm_direct):
                    progress(f"concurrency {concurrency}: vLLM {target.name}")
                    phases.append(await run_phase(target, concurrency, args.stream_tokens, plan, pids,
                                                  proxy_vllm.pid, step_s))  # fmt: skip
                results.vllm_rows.append(Row(concurrency, *phases))
        if plan.client_window_s > 0:
            results.clients = await compare_upstream_clients(args, plan, paced, fast, direct.body(args.stream_tokens))
        if not args.skip_saturation:
            results.saturation = await saturate(args, plan, fast, fast_proxy, fast_relay, reply)
    finally:
        for server in servers:
            stop_server(server)
    return results


async def compare_upstream_clients(
    args: argparse.Namespace, plan: Plan, paced: Server, fast: Server, body: dict
) -> list[tuple[str, ClientResult]]:
    """httpx vs aiohttp reading TGI streams, in this process: paced like the main phases, then unpaced
    with this process on core 0 and localtgi on core 1."""
    progress("upstream clients: paced")
    paced_load = f"64 streams at {args.token_rate:g} tokens/s"
    results = [(paced_load, r) for r in await compare_clients(paced.url, body, 64, window_s=plan.client_window_s)]
    progress("upstream clients: unpaced")
    own_cores = os.sched_getaffinity(0)
    pin(os.getpid(), {0})
    pin(fast.pid, {1})
    try:
        unpaced = await compare_clients(fast.url, body, 32, window_s=plan.client_window_s)
    finally:
        pin(os.getpid(), own_cores)
        pin(fast.pid, own_cores)
    return results + [("32 streams, unpaced, client alone on a core", r) for r in unpaced]


async def saturate(
    args: argparse.Namespace, plan: Plan, tgi: Server, proxy: Server, relay: Server, reply
) -> Saturation:
    """The proxy alone on core 0, then the relay in its place; localtgi (unpaced) and the load
    generator share core 1."""
    direct, proxied, _ = build_targets(tgi, proxy, reply)
    relayed = dataclasses.replace(build_targets(tgi, relay, reply)[1], name="relay")
    await warm_up(direct, proxied, relayed)
    pin(proxy.pid, {0})
    pin(relay.pid, {0})
    pin(tgi.pid, {1})
    own_cores = os.sched_getaffinity(0)
    pin(os.getpid(), {1})
    pids = {"proxy": proxy.pid, "localtgi": tgi.pid, "loadgen": os.getpid()}
    sat_plan = Plan(
        concurrency=(), warmup_s=1.0, window_s=plan.saturation_window_s, ttft_s=0.0, ramp_s=0.2
    )  # fmt: skip
    try:
        phases = []
        for target, server in ((direct, proxy), (proxied, proxy), (relayed, relay)):
            progress(f"saturation: {target.name}")
            phase_pids = {**pids, "proxy": server.pid}
            phases.append(
                await run_phase(target, plan.saturation_streams, args.stream_tokens, sat_plan, phase_pids, server.pid)
            )
    finally:
        pin(os.getpid(), own_cores)
    return Saturation(*phases)


# ---------------------------------------------------------------------------------------------
# Report


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]], align: str = "---:") -> list[str]:
    """Header cells are left-aligned in the first column, right-aligned elsewhere."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [align] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def pair(direct: float, proxied: float, digits: int = 2) -> str:
    return f"{fmt(direct, digits)} / {fmt(proxied, digits)}"


def percent(share: float) -> str:
    return f"{fmt(share * 100, 0)}%"


def latency_table(rows: list[Row]) -> list[str]:
    header = [
        "concurrency", "TTFT p50 direct / proxied (ms)", "added p50", "TTFT p99 direct / proxied (ms)", "added p99",
        "ITL p50 direct / proxied (ms)", "ITL p99 direct / proxied (ms)", "TTFT samples (proxied)",
    ]  # fmt: skip
    cells = []
    for row in rows:
        d50, p50 = row.ttft_ms("direct", 50), row.ttft_ms("proxied", 50)
        d99, p99 = row.ttft_ms("direct", 99), row.ttft_ms("proxied", 99)
        cells.append([
            str(row.concurrency), pair(d50, p50), fmt(p50 - d50, 2), pair(d99, p99), fmt(p99 - d99, 2),
            pair(row.itl_ms("direct", 50), row.itl_ms("proxied", 50)),
            pair(row.itl_ms("direct", 99), row.itl_ms("proxied", 99)), str(len(row.proxied.tally.ttft)),
        ])  # fmt: skip
    return markdown_table(header, cells)


def throughput_table(rows: list[Row]) -> list[str]:
    header = [
        "concurrency", "tokens/s direct", "tokens/s proxied", "proxied / direct", "direct / direct (noise)",
        "proxy CPU µs/token", "proxy CPU", "proxy RSS (MB)", "localtgi CPU", "load generator CPU", "machine busy",
        "errors",
    ]  # fmt: skip
    cells = []
    for row in rows:
        p = row.proxied
        cells.append([
            str(row.concurrency), fmt(row.direct_tokens_per_s), fmt(p.tokens_per_s), fmt(row.ratio, 4),
            fmt(row.noise, 4), fmt(row.proxy_us_per_token), percent(p.cpu_share["proxy"]), fmt(p.proxy_rss_mb, 0),
            percent(p.cpu_share["localtgi"]), percent(p.cpu_share["loadgen"]), percent(p.machine_busy),
            str(len(row.errors)),
        ])  # fmt: skip
    return markdown_table(header, cells)


def saturation_table(saturation: Saturation, streams: int) -> list[str]:
    header = [
        "path", "streams", "token events/s", "proxy CPU (core 0)", "localtgi CPU", "load generator CPU",
        "machine busy", "errors",
    ]  # fmt: skip
    cells = []
    phases = (saturation.direct, saturation.proxied, saturation.relay)
    for phase in (phase for phase in phases if phase is not None):
        cells.append([
            phase.target, str(streams), fmt(phase.tokens_per_s, 0),
            percent(phase.cpu_share["proxy"]) if phase.target != "direct" else "idle",
            percent(phase.cpu_share["localtgi"]), percent(phase.cpu_share["loadgen"]), percent(phase.machine_busy),
            str(len(phase.tally.errors)),
        ])  # fmt: skip
    capacity = fmt(saturation.proxy_events_per_cpu_s, 0)
    relay = fmt(saturation.relay_events_per_cpu_s, 0)
    return [
        *markdown_table(header, cells),
        "",
        f"Proxy events per second of its own CPU (what it sustains with a core to itself): **{capacity}**; "
        f"the relay's: {relay} (the relay's row: its CPU in the core-0 column).",
    ]


def engines_table(tgi_rows: list[Row], vllm_rows: list[Row]) -> list[str]:
    """The proxy over vLLM's wire beside over TGI's: what each adds to its own server, in the same run."""
    header = ["concurrency", "added TTFT p50 TGI / vLLM (ms)", "added TTFT p99 TGI / vLLM (ms)",
              "proxy CPU µs/token TGI / vLLM", "vLLM / TGI CPU", "proxied / direct tokens/s TGI / vLLM"]  # fmt: skip
    cells = []
    for tgi, vllm in zip(tgi_rows, vllm_rows, strict=True):
        added = {(name, q): row.ttft_ms("proxied", q) - row.ttft_ms("direct", q)
                 for name, row in (("tgi", tgi), ("vllm", vllm)) for q in (50, 99)}  # fmt: skip
        cells.append([
            str(tgi.concurrency), pair(added["tgi", 50], added["vllm", 50]), pair(added["tgi", 99], added["vllm", 99]),
            pair(tgi.proxy_us_per_token, vllm.proxy_us_per_token, 1),
            f"{vllm.proxy_us_per_token / tgi.proxy_us_per_token:.2f}", pair(tgi.ratio, vllm.ratio, 4),
        ])  # fmt: skip
    return markdown_table(header, cells)


def faces_table(rows: list[Row]) -> list[str]:
    """/v1/chat/completions beside /stream_chat: the same load on the same proxy, in the same run."""
    header = ["concurrency", "added TTFT p50 stream_chat / v1 (ms)", "added TTFT p99 stream_chat / v1 (ms)",
              "proxy CPU µs/token stream_chat / v1", "v1 / stream_chat CPU", "TTFT samples (v1)"]  # fmt: skip
    cells = []
    for row in rows:
        added = {
            (face, q): row.ttft_ms(face, q) - row.ttft_ms("direct", q) for face in ("proxied", "completions")
            for q in (50, 99)
        }  # fmt: skip
        ours, theirs = row.us_per_token(row.proxied), row.us_per_token(row.completions)
        cells.append([
            str(row.concurrency), pair(added["proxied", 50], added["completions", 50]),
            pair(added["proxied", 99], added["completions", 99]), pair(ours, theirs, 1), f"{theirs / ours:.2f}",
            str(len(row.completions.tally.ttft)),
        ])  # fmt: skip
    return markdown_table(header, cells)


def detector_table(rows: list[Row]) -> list[str]:
    """/stream_chat with the crisis detector (the default, prepend) and without it (off), same load."""
    header = ["concurrency", "added TTFT p50 detector on / off (ms)", "detector's TTFT p50 / p99 (ms)",
              "proxy CPU µs/token on / off", "TTFT samples on / off"]  # fmt: skip
    cells = []
    for row in rows:
        added = {(phase, q): row.ttft_ms(phase, q) - row.ttft_ms("direct", q)
                 for phase in ("proxied", "detector_off") for q in (50, 99)}  # fmt: skip
        cost50 = row.ttft_ms("proxied", 50) - row.ttft_ms("detector_off", 50)
        cost99 = row.ttft_ms("proxied", 99) - row.ttft_ms("detector_off", 99)
        cells.append([
            str(row.concurrency), pair(added["proxied", 50], added["detector_off", 50]), pair(cost50, cost99),
            pair(row.us_per_token(row.proxied), row.us_per_token(row.detector_off), 1),
            f"{len(row.proxied.tally.ttft)} / {len(row.detector_off.tally.ttft)}",
        ])  # fmt: skip
    return markdown_table(header, cells)


def relay_table(rows: list[Row]) -> list[str]:
    """The proxy (with and without the detector) against the bare relay, same load: the ratios."""
    header = ["concurrency", "added TTFT p50 relay / proxy off / proxy (ms)",
              "added TTFT p99 relay / proxy off / proxy (ms)", "CPU µs/token relay / proxy off / proxy",
              "proxy off / relay CPU", "proxy / relay CPU"]  # fmt: skip
    cells = []
    for row in rows:
        if row.relay is None:
            continue
        added = {(phase, q): row.ttft_ms(phase, q) - row.ttft_ms("direct", q)
                 for phase in ("relay", "detector_off", "proxied") for q in (50, 99)}  # fmt: skip
        cpu = {name: row.us_per_token(getattr(row, name)) for name in ("relay", "detector_off", "proxied")}
        cells.append([
            str(row.concurrency),
            " / ".join(fmt(added[phase, 50], 2) for phase in ("relay", "detector_off", "proxied")),
            " / ".join(fmt(added[phase, 99], 2) for phase in ("relay", "detector_off", "proxied")),
            " / ".join(fmt(cpu[name], 1) for name in ("relay", "detector_off", "proxied")),
            f"{cpu['detector_off'] / cpu['relay']:.2f}", f"{cpu['proxied'] / cpu['relay']:.2f}",
        ])  # fmt: skip
    return markdown_table(header, cells)


def detector_model_line() -> str:
    from proxy.policies.crisis.model import MODEL_DIR, MODEL_FILE

    size = (MODEL_DIR / MODEL_FILE).stat().st_size
    files = sum(path.stat().st_size for path in MODEL_DIR.iterdir())
    return (f"The detector's model: {MODEL_FILE} {size / 2**20:.1f} MiB (int8 ONNX), its folder "
            f"{files / 2**20:.1f} MiB with the tokenizer.")  # fmt: skip


def clients_table(clients: list[tuple[str, ClientResult]]) -> list[str]:
    header = ["load", "client", "events/s", "client CPU", "CPU µs/event"]
    cells = [[load, r.client, fmt(r.events_per_s, 0), percent(r.cpu_share), fmt(r.us_per_event)] for load, r in clients]
    return markdown_table(header, cells)


def target_checks(results: Results) -> list[str]:
    t = TARGETS
    checks: list[tuple[str, bool | None]] = []
    low = [row for row in results.rows if row.concurrency <= t["ttft_max_concurrency"]]
    # What the proxy adds with the crisis detector (the default), and on its own: the targets were set
    # before the detector existed.
    for phase, label in (("proxied", "crisis detector on"), ("detector_off", "detector off")):
        rows = [row for row in low if getattr(row, phase) is not None]
        for q, target in ((50, t["ttft_p50_ms"]), (99, t["ttft_p99_ms"])):
            if rows:
                worst = max(row.ttft_ms(phase, q) - row.ttft_ms("direct", q) for row in rows)
                checks.append((f"added TTFT p{q} ≤ {target} ms at concurrency ≤ 64, {label}: worst {worst:.2f} ms",
                               worst <= target))  # fmt: skip
    mid = [row for row in results.rows if row.concurrency <= t["throughput_max_concurrency"]]
    if mid:
        worst = min(row.ratio for row in mid)
        checks.append((f"proxied/direct tokens/s ≥ {t['throughput_ratio']} at concurrency ≤ 128: worst {worst:.4f}",
                       worst >= t["throughput_ratio"]))  # fmt: skip
    at64 = [row for row in results.rows if row.concurrency == t["cpu_concurrency"]]
    if at64:
        us = at64[0].proxy_us_per_token
        checks.append((f"proxy CPU ≤ {t['cpu_us_per_token']:.0f} µs/token at concurrency 64: {us:.1f} µs",
                       us <= t["cpu_us_per_token"]))  # fmt: skip
    if at64:
        row = at64[0]
        ratio = row.us_per_token(row.completions) / row.us_per_token(row.proxied)
        checks.append((f"/v1/chat/completions CPU per token ≤ 1.1 × /stream_chat's at concurrency 64: {ratio:.2f} ×",
                       ratio <= 1.1))  # fmt: skip
    vllm_at64 = [row for row in results.vllm_rows if row.concurrency == t["cpu_concurrency"]]
    if at64 and vllm_at64:
        ratio = vllm_at64[0].proxy_us_per_token / at64[0].proxy_us_per_token
        checks.append((f"over vLLM, proxy CPU per token ≤ 1.1 × over TGI at concurrency 64: {ratio:.2f} ×",
                       ratio <= 1.1))  # fmt: skip
    vllm_low = [row for row in results.vllm_rows if row.concurrency <= t["ttft_max_concurrency"]]
    if low and vllm_low:
        pairs = zip(low, vllm_low, strict=True)
        worst = max(
            (vllm.ttft_ms("proxied", 50) - vllm.ttft_ms("direct", 50))
            - 1.1 * (tgi.ttft_ms("proxied", 50) - tgi.ttft_ms("direct", 50)) for tgi, vllm in pairs
        )  # fmt: skip
        checks.append((f"over vLLM, added TTFT p50 ≤ 1.1 × over TGI at concurrency ≤ 64: worst excess "
                       f"{worst:+.2f} ms", worst <= 0))  # fmt: skip
    if low:
        worst = max(
            (row.ttft_ms("completions", 50) - row.ttft_ms("direct", 50))
            - 1.1 * (row.ttft_ms("proxied", 50) - row.ttft_ms("direct", 50)) for row in low
        )  # fmt: skip
        checks.append((f"/v1/chat/completions added TTFT p50 ≤ 1.1 × /stream_chat's at concurrency ≤ 64: worst "
                       f"excess {worst:+.2f} ms", worst <= 0))  # fmt: skip
    referenced = [row for row in low if row.relay is not None and row.detector_off is not None]
    if referenced:  # against the relay, the proxy without the detector: the relay screens nothing
        worst = max(row.us_per_token(row.detector_off) / row.us_per_token(row.relay) for row in referenced)
        checks.append((f"proxy (detector off) CPU per token ≤ 1.5 × the relay's at concurrency ≤ 64: worst "
                       f"{worst:.2f} ×", worst <= 1.5))  # fmt: skip
        for q, margin in ((50, 0.5), (99, 1.5)):
            worst = max(row.ttft_ms("detector_off", q) - row.ttft_ms("relay", q) for row in referenced)
            checks.append((f"proxy (detector off) added TTFT p{q} ≤ the relay's + {margin} ms at concurrency ≤ 64: "
                           f"worst excess {worst:+.2f} ms", worst <= margin))  # fmt: skip
    screened = [row for row in low if row.detector_off is not None]
    if screened:
        worst = max(row.ttft_ms("proxied", 50) - row.ttft_ms("detector_off", 50) for row in screened)
        checks.append((f"the crisis detector adds ≤ {t['detector_ttft_p50_ms']} ms TTFT p50 (on vs off) at "
                       f"concurrency ≤ 64: worst {worst:+.2f} ms", worst <= t["detector_ttft_p50_ms"]))  # fmt: skip
    if results.saturation:
        sat = results.saturation
        measured, capacity = sat.proxied.tokens_per_s, sat.proxy_events_per_cpu_s
        checks.append((
            f"one proxy process sustains ≥ {t['events_per_s']:,} token events/s: {measured:,.0f}/s measured "
            f"(proxy core {sat.proxied.cpu_share['proxy'] * 100:.0f}% busy), {capacity:,.0f} per proxy CPU-second",
            capacity >= t["events_per_s"],
        ))  # fmt: skip
        if sat.relay is not None:
            ratio = sat.proxied.tokens_per_s / sat.relay.tokens_per_s
            checks.append((f"events/s at saturation ≥ 0.5 × the relay's: {ratio:.2f} × "
                           f"({measured:,.0f} against {sat.relay.tokens_per_s:,.0f})", ratio >= 0.5))  # fmt: skip
    return [f"- {'✅' if ok else '❌'} {text}" for text, ok in checks]


def machine_line() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()} "
        f"(shared machine: other work may run, figures vary ±30% between runs)"
    )


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "proxy"], cwd=REPO, capture_output=True, text=True)
        return rev.strip() + (" + uncommitted proxy changes" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


PACING = {
    False: "every running stream's next token in the same decode step, as TGI batches them",
    True: "every stream on its own clock, `--unbatched`",
}


def report(results: Results, args: argparse.Namespace, plan: Plan, command: str) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"- Date: {date}; code: {git_revision()}",
        f"- Machine: {machine_line()}",
        f"- Command: `{command}`",
        f"- Load: {args.stream_tokens}-token streams at {args.token_rate:g} tokens/s each (localtgi scripted engine, "
        f"{PACING[args.unbatched]}), "
        f"greedy; per phase {plan.warmup_s:g} s warm-up, {plan.window_s:g} s throughput window, "
        f"{plan.ttft_s:g} s TTFT window with a {plan.probe_rate:g}/s probe of 1-token requests.",
        "",
        "### Latency",
        "",
        *latency_table(results.rows),
        "",
        "### Throughput and cost",
        "",
        *throughput_table(results.rows),
        "",
        "### /v1/chat/completions beside /stream_chat (streaming with usage, same load)",
        "",
        *faces_table(results.rows),
        "",
        "### The crisis detector on (PROXY_SAFETY_POLICY=prepend, the default) and off (same load)",
        "",
        *detector_table(results.rows),
        "",
        detector_model_line(),
        "",
        "### The reference: a bare asyncio relay of the same contract (scripts/bench_relay.py), same load",
        "",
        *relay_table(results.rows),
        "",
    ]
    if results.vllm_rows:
        lines += [
            "### Over vLLM's wire (localvllm, the same scripted engine and pacing), in turns with the above",
            "",
            *latency_table(results.vllm_rows),
            "",
            *throughput_table(results.vllm_rows),
            "",
            *engines_table(results.rows, results.vllm_rows),
            "",
        ]
    if results.saturation:
        lines += [
            "### Saturation (proxy pinned to core 0; unpaced localtgi and the load generator on core 1)",
            "",
            *saturation_table(results.saturation, plan.saturation_streams),
            "",
        ]
    if results.clients:
        lines += [
            "### Upstream client alone (reading localtgi's /generate_stream and parsing every event)",
            "",
            *clients_table(results.clients),
            "",
        ]
    lines += ["### Targets", "", *target_checks(results)]
    errors = [error for row in results.rows + results.vllm_rows for error in row.errors]
    if errors:
        lines += ["", f"Errors ({len(errors)}), first few: {errors[:5]}"]
    return "\n".join(lines) + "\n"


def record(text: str, results: Results, token_rate: float) -> None:
    """Replace the results section of docs/benchmarks.md (the prose around it is kept) and redraw the plots."""
    path = DOCS / "benchmarks.md"
    section = f"{RESULTS_BEGIN}\n{text}{RESULTS_END}"
    if path.exists():
        document = path.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(RESULTS_BEGIN) + ".*?" + re.escape(RESULTS_END), re.S)
        document = pattern.sub(lambda _: section, document) if pattern.search(document) else document + "\n" + section
    else:
        document = f"# Benchmarks\n\n{section}\n"
    path.write_text(document, encoding="utf-8")
    plot(results, token_rate)


def plot(results: Results, token_rate: float) -> None:
    import matplotlib  # a benchmark-only dependency (the `bench` extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.rows
    x = [row.concurrency for row in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for phase, style in (("direct", "--"), ("proxied", "-")):
        for q, marker in ((50, "o"), (99, "s")):
            ax.plot(x, [row.ttft_ms(phase, q) for row in rows], style, marker=marker, label=f"{phase} p{q}")
    ax.set(xscale="log", xlabel="concurrent streams", ylabel="time to first token (ms)",
           title="TTFT: direct to TGI (localtgi) vs through the proxy")  # fmt: skip
    ax.set_xticks(x, [str(c) for c in x])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(DOCS / "bench_ttft.png", dpi=110)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(3, 2))
    top.plot(x, [row.direct_tokens_per_s for row in rows], "--o", label="direct")
    top.plot(x, [row.proxied.tokens_per_s for row in rows], "-s", label="proxied")
    top.set(xscale="log", yscale="log", ylabel="aggregate tokens/s",
            title=f"Throughput: direct vs proxied ({token_rate:g} tokens/s per stream)")  # fmt: skip
    bottom.plot(x, [row.ratio for row in rows], "-s", color="tab:orange", label="proxied / direct")
    bottom.plot(x, [row.noise for row in rows], ":o", color="tab:gray", label="direct / direct (noise floor)")
    bottom.axhline(TARGETS["throughput_ratio"], color="tab:red", linewidth=0.8, label="target")
    bottom.set(xlabel="concurrent streams", ylabel="ratio")
    bottom.set_xticks(x, [str(c) for c in x])
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(DOCS / "bench_throughput.png", dpi=110)
    plt.close("all")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="concurrency 1 and 64, short windows (under a minute)")
    parser.add_argument("--concurrency", help="comma-separated levels (default 1,16,64,128,256)")
    parser.add_argument("--token-rate", type=float, default=30.0, help="tokens/s per stream (default 30)")
    parser.add_argument(
        "--unbatched",
        action="store_true",
        help="pace every stream on its own clock instead of TGI's shared decode steps (a harsher load)",
    )
    parser.add_argument("--stream-tokens", type=int, default=256, help="tokens per stream (default 256)")
    parser.add_argument("--window", type=float, help="throughput window per phase, seconds")
    parser.add_argument("--skip-saturation", action="store_true")
    parser.add_argument(
        "--engines", default="tgi,vllm", type=lambda value: value.split(","),
        help="wires to measure the proxy over (default tgi,vllm: both, in turns at each level)",
    )  # fmt: skip
    parser.add_argument("--safety-policy", default="prepend",
                        help="PROXY_SAFETY_POLICY of the measured proxies (off: the wires alone, without the "
                             "detector's jitter; the detector-off phase is measured either way)")  # fmt: skip
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.md's results and the plots")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.concurrency:
        plan = Plan(**{**plan.__dict__, "concurrency": tuple(int(c) for c in args.concurrency.split(","))})
    if args.window:
        plan = Plan(**{**plan.__dict__, "window_s": args.window})
    command = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as logs:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(measure(args, plan, Path(logs)))
    text = report(results, args, plan, command.strip())
    print(text)
    progress(f"bench took {time.monotonic() - started:.0f} s")
    if args.record:
        record(text, results, args.token_rate)


if __name__ == "__main__":
    main()
