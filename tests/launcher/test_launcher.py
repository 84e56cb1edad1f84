"""Starting the inference server: the launcher's argument list, then for real with localtgi."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydantic
import pytest
import uvicorn

from adapters.errors import AdapterInvalid, AdapterNotFound
from proxy.app import create_app
from proxy.launcher.argv import build_launcher_args
from proxy.launcher.process import (
    InferenceServer,
    InferenceServerError,
    InferenceServerExited,
    InferenceServerStartTimeout,
    LaunchConfigError,
    ServerState,
)
from proxy.launcher.settings import LaunchSettings, build_child_env, proxy_settings_for
from tests.support.chat_stream import stream_chat
from tests.support.fixtures import REPO_ROOT
from tests.support.servers import free_port

BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LOCALTGI = "python -m localtgi --engine scripted"
LOCALVLLM = "python -m localvllm serve --engine scripted"


def write_adapter(folder: Path, rank: int = 2, hidden: int = 576, base_model: str = BASE_MODEL) -> Path:
    """A minimal valid LoRA adapter for SmolLM2 (layer 0 q_proj), as a raw safetensors file."""
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": ["q_proj"],
              "base_model_name_or_path": base_model}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    module = "base_model.model.model.layers.0.self_attn.q_proj"
    size = rank * hidden * 4
    header = {
        f"{module}.lora_A.weight": {"dtype": "F32", "shape": [rank, hidden], "data_offsets": [0, size]},
        f"{module}.lora_B.weight": {"dtype": "F32", "shape": [hidden, rank], "data_offsets": [size, 2 * size]},
    }
    encoded = json.dumps(header).encode()
    (folder / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(encoded)) + encoded + bytes(2 * size))
    return folder


@pytest.fixture(autouse=True)
def no_tgi_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set what they need; a LAUNCH_* or TGI_* variable from the caller's shell must not leak in."""
    for name in [name for name in os.environ if name.startswith(("TGI_", "LAUNCH_"))]:
        monkeypatch.delenv(name)


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    return write_adapter(tmp_path / "qwen_therapist_lora")


def local_settings(adapter_dir: Path | None, **overrides) -> LaunchSettings:
    """Production settings except: localtgi as the executable, a free port, this adapter, the small model,
    and test-sized timings."""
    values = {"command": LOCALTGI, "port": free_port(), "adapter_dir": adapter_dir, "model_id": BASE_MODEL,
              "startup_timeout_s": 30, "health_poll_interval_s": 0.1}  # fmt: skip
    return LaunchSettings(**(values | overrides))


@pytest.fixture
def failures() -> list[InferenceServerError]:
    """What an inference server's on_failure callback heard."""
    return []


@pytest.fixture
def running_server(adapter: Path, failures: list[InferenceServerError]) -> Iterator[InferenceServer]:
    server = InferenceServer(local_settings(adapter), on_failure=failures.append)
    server.start()
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


# --- the argument list (pure) -------------------------------------------------------------------------


def test_default_arguments_are_tgis_launcher_flags() -> None:
    assert build_launcher_args(LaunchSettings()) == [
        "text-generation-launcher",
        "--model-id", "Qwen/Qwen2.5-7B-Instruct",
        "--hostname", "127.0.0.1",
        "--port", "3000",
        "--max-concurrent-requests", "128",
        "--lora-adapters", "qwen_therapist_lora=/data/qwen_therapist_lora",
        "--max-input-tokens", "6144",
        "--max-total-tokens", "8192",
    ]  # fmt: skip


def test_options_map_to_flags_and_python_means_this_interpreter(tmp_path: Path) -> None:
    settings = LaunchSettings(
        command="python -m localtgi --engine scripted",
        adapter_dir=tmp_path / "adapter",
        adapter_name="therapist",
        max_input_tokens=None,
        max_total_tokens=None,
        quantize="fp8",
        extra_args="--max-batch-prefill-tokens 4096 --cuda-graphs '1,2,4'",
    )
    args = build_launcher_args(settings, adapter_dir=tmp_path / "adapter" / "checkpoint-9")
    assert args[:4] == [sys.executable, "-m", "localtgi", "--engine"]
    assert args[args.index("--lora-adapters") + 1] == f"therapist={tmp_path}/adapter/checkpoint-9"
    assert args[args.index("--quantize") + 1] == "fp8"
    assert "--max-input-tokens" not in args and "--max-total-tokens" not in args and "--dtype" not in args
    assert args[-4:] == ["--max-batch-prefill-tokens", "4096", "--cuda-graphs", "1,2,4"]


def test_without_an_adapter_tgi_serves_the_base_model_and_the_proxy_asks_for_it() -> None:
    settings = LaunchSettings(adapter_dir=None, port=3123)
    assert "--lora-adapters" not in build_launcher_args(settings)
    proxy = proxy_settings_for(settings)
    assert proxy.upstream_url == "http://127.0.0.1:3123"
    assert proxy.upstream_adapter_id is None


def test_the_proxy_asks_tgi_for_the_adapter_it_was_launched_with() -> None:
    proxy = proxy_settings_for(LaunchSettings(adapter_name="therapist_v2", port=3124), port=9000)
    assert (proxy.upstream_url, proxy.upstream_adapter_id, proxy.port) == (
        "http://127.0.0.1:3124",
        "therapist_v2",
        9000,
    )


def test_settings_come_from_tgi_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGI_MODEL_ID", "Qwen/Qwen2.5-3B-Instruct")
    monkeypatch.setenv("TGI_ADAPTER_DIR", "")  # empty: no adapter
    monkeypatch.setenv("TGI_DTYPE", "bfloat16")
    monkeypatch.setenv("TGI_MAX_INPUT_TOKENS", "")  # empty: TGI decides
    args = build_launcher_args(LaunchSettings())
    assert args[args.index("--model-id") + 1] == "Qwen/Qwen2.5-3B-Instruct"
    assert args[args.index("--dtype") + 1] == "bfloat16"
    assert "--lora-adapters" not in args and "--max-input-tokens" not in args


def test_launch_variables_win_over_their_earlier_tgi_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGI_PORT", "3001")
    monkeypatch.setenv("TGI_MODEL_ID", "Qwen/Qwen2.5-3B-Instruct")
    monkeypatch.setenv("LAUNCH_PORT", "3002")
    settings = LaunchSettings()
    assert (settings.port, settings.model_id) == (3002, "Qwen/Qwen2.5-3B-Instruct")


def test_vllm_arguments_are_vllm_serve_flags_with_the_adapter_as_a_lora_module() -> None:
    settings = LaunchSettings(engine="vllm", quantize="awq", gpu_memory_utilization=0.9, enable_sleep_mode=True)
    assert build_launcher_args(settings, adapter_rank=24) == [
        "vllm", "serve", "Qwen/Qwen2.5-7B-Instruct",
        "--host", "127.0.0.1",
        "--port", "3000",
        "--max-num-seqs", "128",
        "--generation-config", "vllm",  # the proxy's sampling, not the model's generation_config.json
        "--enable-lora", "--max-lora-rank", "32", "--lora-modules", "qwen_therapist_lora=/data/qwen_therapist_lora",
        "--enable-sleep-mode",
        "--max-model-len", "8192",
        "--quantization", "awq",
        "--gpu-memory-utilization", "0.9",
    ]  # fmt: skip
    assert build_child_env(settings, {})["VLLM_SERVER_DEV_MODE"] == "1"  # /sleep and /wake_up exist only with it
    proxy = proxy_settings_for(settings)
    assert (proxy.engine, proxy.upstream_url) == ("vllm", settings.url)
    assert proxy.upstream_adapter_id == "qwen_therapist_lora"


def test_quantization_is_checked_against_the_engines_choices() -> None:
    with pytest.raises(pydantic.ValidationError, match="not one of vllm's"):
        LaunchSettings(engine="vllm", quantize="eetq")  # TGI's, not vLLM's
    with pytest.raises(pydantic.ValidationError, match="not one of tgi's"):
        LaunchSettings(quantize="awq_marlin")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"quantize": "fp8", "dtype": "bfloat16"}, "cannot be combined"),
        ({"max_input_tokens": 4096, "max_total_tokens": 4096}, "smaller than max_total_tokens"),
        ({"adapter_name": ""}, "adapter_name is empty"),
    ],
)
def test_settings_tgi_would_refuse_fail_early(values: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        LaunchSettings(**values)


def test_child_environment_sets_the_hf_cache_and_drops_our_pythonpath() -> None:
    env = build_child_env(
        LaunchSettings(hf_home="/hf-cache"), {"PATH": "/bin", "PYTHONPATH": "/root", "HF_HOME": "/data"}
    )
    assert env == {"PATH": "/bin", "HF_HOME": "/hf-cache", "PYTHONUNBUFFERED": "1"}


# --- for real: localtgi started by the launcher -------------------------------------------------------


def test_starts_localtgi_with_the_launcher_flags_and_waits_for_health(running_server, failures) -> None:
    assert running_server.state is ServerState.HEALTHY
    info = httpx.get(f"{running_server.url}/info").json()
    # The token limits and concurrency reached the child through the launcher flags.
    assert (info["model_id"], info["max_concurrent_requests"]) == (BASE_MODEL, 128)
    assert (info["max_input_tokens"], info["max_total_tokens"]) == (6144, 8192)

    running_server.stop()
    assert running_server.state is ServerState.STOPPED
    assert failures == []  # a deliberate stop is not a failure
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running_server.url}/health", timeout=1)


def test_child_output_is_forwarded_to_our_log(adapter: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    server = InferenceServer(local_settings(adapter))
    server.start()
    try:
        server.wait_until_ready()
    finally:
        server.stop()
    child_lines = [r.getMessage() for r in caplog.records if r.name == "proxy.launcher.child"]
    assert any(line.startswith("[tgi] ") and "scripted engine" in line for line in child_lines)


def test_health_reports_loading_then_healthy_then_unhealthy_when_the_child_dies(adapter, failures) -> None:
    server = InferenceServer(local_settings(adapter), on_failure=failures.append)
    server.start()
    with serve_in_thread(create_app(proxy_settings_for(server.settings), inference_server=server)) as proxy_url:
        loading = httpx.get(f"{proxy_url}/health")
        assert (loading.status_code, loading.json()["status"]) == (503, "loading")

        server.wait_until_ready()
        healthy = httpx.get(f"{proxy_url}/health")
        assert (healthy.status_code, healthy.json()) == (200, {"status": "healthy", "model": "qwen_therapist_lora"})

        os.kill(server.pid, signal.SIGKILL)
        wait_for(lambda: failures, "the failure callback")
        unhealthy = httpx.get(f"{proxy_url}/health")
        assert (unhealthy.status_code, unhealthy.json()["status"]) == (503, "unhealthy")
    assert server.state is ServerState.FAILED
    assert isinstance(failures[0], InferenceServerExited) and failures[0].returncode == -signal.SIGKILL


def test_a_missing_adapter_fails_before_anything_starts(tmp_path: Path) -> None:
    server = InferenceServer(local_settings(tmp_path / "qwen_therapist_lora"))
    with pytest.raises(AdapterNotFound) as raised:
        server.start()
    message = str(raised.value)
    assert message.startswith(f"Model not found at {tmp_path / 'qwen_therapist_lora'}")
    assert "make sure training completed: `modal volume ls training-data`" in message
    assert server.pid is None


def test_a_broken_adapter_fails_before_anything_starts(adapter: Path) -> None:
    (adapter / "adapter_model.safetensors").unlink()
    server = InferenceServer(local_settings(adapter))
    with pytest.raises(AdapterInvalid, match="no weights file"):
        server.start()
    assert server.pid is None


def test_an_adapter_tgi_cannot_apply_asks_for_a_merge(tmp_path: Path) -> None:
    qwen3_adapter = write_adapter(tmp_path / "qwen3_lora", hidden=4096, base_model="Qwen/Qwen3-8B")
    server = InferenceServer(local_settings(qwen3_adapter, model_id="Qwen/Qwen3-8B"))
    with pytest.raises(LaunchConfigError, match=f"python -m adapters merge {qwen3_adapter} OUT_DIR"):
        server.start()
    assert server.pid is None


def test_vllm_serves_the_same_qwen3_adapter_as_it_is(tmp_path: Path) -> None:
    # vLLM applies LoRA to Qwen3: no merge. It starts (and is told the adapter's rank), then serves.
    qwen3_adapter = write_adapter(tmp_path / "qwen3_lora", hidden=4096, base_model="Qwen/Qwen3-8B")
    settings = local_settings(qwen3_adapter, engine="vllm", model_id="Qwen/Qwen3-8B", command=LOCALVLLM)
    server = InferenceServer(settings)
    try:
        server.start()
        server.wait_until_ready()
        models = httpx.get(f"{settings.url}/v1/models").json()["data"]
    finally:
        server.stop()
    assert [(model["id"], model["parent"]) for model in models] == [
        ("Qwen/Qwen3-8B", None), ("qwen_therapist_lora", "Qwen/Qwen3-8B")
    ]  # fmt: skip


def test_a_child_that_exits_while_loading_fails_with_its_last_output(adapter: Path) -> None:
    crash = "python -c \"print('CUDA out of memory'); raise SystemExit(3)\""
    server = InferenceServer(local_settings(adapter, command=crash))
    server.start()
    with pytest.raises(InferenceServerExited, match="(?s)status 3.*CUDA out of memory"):
        server.wait_until_ready()
    assert server.state is ServerState.FAILED


def test_a_child_that_never_gets_healthy_is_stopped_at_the_deadline(adapter: Path) -> None:
    hang = 'python -c "import time; time.sleep(60)"'
    server = InferenceServer(local_settings(adapter, command=hang, startup_timeout_s=0.5))
    server.start()
    with pytest.raises(InferenceServerStartTimeout, match="not healthy after"):
        server.wait_until_ready()
    assert server.state is ServerState.FAILED
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)


def test_a_taken_port_or_a_missing_launcher_is_a_config_error(adapter: Path, running_server: InferenceServer) -> None:
    with pytest.raises(LaunchConfigError, match="already in use"):
        InferenceServer(local_settings(adapter, port=running_server.settings.port)).start()
    with pytest.raises(LaunchConfigError, match="LAUNCH_COMMAND"):
        InferenceServer(local_settings(adapter, command="no-such-text-generation-launcher")).start()


# --- for real: `python -m proxy --launch` -------------------------------------------------------------


class Supervisor:
    """`python -m proxy --launch` on a free port; reads its log to find the two servers."""

    def __init__(self, adapter_dir: Path | str, **launch_env: str) -> None:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("TGI_", "PROXY_"))}
        env.update({"TGI_COMMAND": LOCALTGI, "TGI_PORT": str(free_port()), "TGI_ADAPTER_DIR": str(adapter_dir),
                    "TGI_MODEL_ID": BASE_MODEL, "TGI_HEALTH_POLL_INTERVAL_S": "0.1", **launch_env})  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--launch", "--port", "0"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def log_match(self, pattern: str, timeout: float = 20.0) -> re.Match:
        return wait_for(lambda: next(filter(None, map(re.compile(pattern).search, self.lines)), None), pattern, timeout)

    @property
    def url(self) -> str:
        # The proxy's own line, not the child's (forwarded with a `[tgi]` prefix).
        return self.log_match(r"^(?!.*\[tgi\]).*Uvicorn running on (http://127\.0\.0\.1:\d+)")[1]

    @property
    def child_pid(self) -> int:
        return int(self.log_match(r"started inference server \(pid (\d+)\)")[1])

    def wait(self, timeout: float = 20.0) -> int:
        status = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def supervisor_factory() -> Iterator[type[Supervisor]]:
    started: list[Supervisor] = []

    def start(*args, **kwargs) -> Supervisor:
        started.append(Supervisor(*args, **kwargs))
        return started[-1]

    yield start
    for supervisor in started:
        supervisor.close()


def test_supervisor_serves_chat_through_the_child_and_exits_non_zero_when_it_dies(supervisor_factory, adapter) -> None:
    supervisor = supervisor_factory(adapter)
    url, child_pid = supervisor.url, supervisor.child_pid
    wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, "a healthy proxy")

    reply = stream_chat(url, {"message": "I feel anxious", "max_tokens": 8})
    assert reply.status == 200
    assert reply.text and reply.final["done"] is True

    os.kill(child_pid, signal.SIGKILL)
    assert supervisor.wait() == 1
    assert any("exited with status -9" in line for line in supervisor.lines)


@pytest.mark.parametrize(
    ("stop_signal", "status"),
    [(signal.SIGINT, 0), (signal.SIGTERM, -signal.SIGTERM)],  # uvicorn ends on SIGTERM by re-raising it
)
def test_supervisor_stops_both_on_ctrl_c_or_sigterm(supervisor_factory, adapter, stop_signal, status) -> None:
    supervisor = supervisor_factory(adapter)
    url, child_pid = supervisor.url, supervisor.child_pid
    wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, "a healthy proxy")

    supervisor.process.send_signal(stop_signal)
    assert supervisor.wait() == status
    assert any("inference server stopped" in line for line in supervisor.lines)
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)


def test_supervisor_refuses_to_start_without_the_adapter(supervisor_factory, tmp_path) -> None:
    supervisor = supervisor_factory(tmp_path / "qwen_therapist_lora")
    assert supervisor.wait() == 1
    assert any("Model not found at" in line and "modal volume ls training-data" in line for line in supervisor.lines)


# --- draining on SIGTERM (a scale-down, a redeploy) ---------------------------------------------------

DRAIN_STREAMS = 50


def drained(supervisor_factory, adapter: Path, token_rate: int, grace_s: float, max_tokens: int):
    """DRAIN_STREAMS conversations in flight, then SIGTERM: checks what the drain refuses, and returns
    the streams as their clients read them (strictly: a frame cut short fails), the exit status,
    the seconds from the signal to the exit, and the proxy's log."""
    supervisor = supervisor_factory(
        adapter, TGI_COMMAND=f"{LOCALTGI} --token-rate {token_rate}", PROXY_DRAIN_TIMEOUT_S=str(grace_s)
    )
    url = supervisor.url
    wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, "a healthy proxy")
    body = {"message": "I feel anxious", "max_tokens": max_tokens}
    with concurrent.futures.ThreadPoolExecutor(DRAIN_STREAMS) as pool:
        replies = [pool.submit(stream_chat, url, body) for _ in range(DRAIN_STREAMS)]
        wait_for(lambda: streams_in_flight(url) == DRAIN_STREAMS, f"{DRAIN_STREAMS} streams in flight")
        signalled = time.monotonic()
        supervisor.process.send_signal(signal.SIGTERM)
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 503, "/health turning unhealthy", timeout=2)
        assert_refused_while_draining(url)
        streams = [future.result(timeout=20) for future in replies]
    status = supervisor.wait()
    return streams, status, time.monotonic() - signalled, supervisor.lines


def streams_in_flight(url: str) -> float:
    found = re.search(r"^proxy_streams_in_flight (\S+)$", httpx.get(f"{url}/metrics").text, re.MULTILINE)
    return float(found[1])


def assert_refused_while_draining(url: str) -> None:
    health = httpx.get(f"{url}/health")
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert "shutting down" in health.json()["detail"]
    refused = stream_chat(url, {"message": "hello"})
    assert refused.status == 503 and refused.headers["retry-after"] == "5"
    assert "restarting" in json.loads(refused.body)["detail"]
    chat = {"model": "qwen_therapist_lora", "messages": [{"role": "user", "content": "hello"}], "stream": True}
    refused = httpx.post(f"{url}/v1/chat/completions", json=chat)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"


def test_sigterm_lets_the_streams_in_flight_finish_and_refuses_new_ones(supervisor_factory, adapter) -> None:
    # 40 tokens at 20 tokens/s: each stream needs about 2 s, well inside the 10 s grace.
    streams, status, took, log = drained(supervisor_factory, adapter, token_rate=20, grace_s=10, max_tokens=40)
    for reply in streams:
        assert reply.status == 200
        assert reply.final["done"] is True and "error" not in reply.final and reply.text
        assert reply.final["finish_reason"] == "stop" or reply.final["usage"]["completion_tokens"] == 40
    assert status == -signal.SIGTERM and took < 10 + 2
    assert any("drained in" in line and "(0 streams cut" in line for line in log)


def test_streams_still_open_at_the_end_of_the_grace_end_with_a_restart_error(supervisor_factory, adapter) -> None:
    # Every scripted reply has at least 20 tokens: 2 s at 10 tokens/s, against a grace of 0.5 s.
    streams, status, took, log = drained(supervisor_factory, adapter, token_rate=10, grace_s=0.5, max_tokens=400)
    for reply in streams:
        assert reply.status == 200  # and every frame whole: stream_chat parses strictly
        assert reply.final["done"] is True and reply.final["finish_reason"] == "error"
        assert reply.final["error"]["type"] == "shutting_down" and "restarting" in reply.final["error"]["message"]
        assert 0 < reply.final["usage"]["completion_tokens"] == len(reply.events) - 1
    assert status == -signal.SIGTERM and took < 0.5 + 2
    assert any("drained in" in line and f"({DRAIN_STREAMS} streams cut" in line for line in log)


# --- helpers ------------------------------------------------------------------------------------------


def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except httpx.TransportError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """A real uvicorn server on a free port, in a thread of this process (no signal handlers there)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "uvicorn startup")
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
