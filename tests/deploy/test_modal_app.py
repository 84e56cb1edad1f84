"""modal_tgi.py, imported offline (no token, no network, empty HOME) and inspected as a deploy would send it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fixtures import REPO_ROOT


def summarize_app(tmp_path: Path, **knobs: str) -> dict:
    """Import modal_tgi in a fresh process with these DEPLOY_* knobs; return what it would deploy."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DEPLOY_", "MODAL_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update({"HOME": str(home), **{f"DEPLOY_{name.upper()}": value for name, value in knobs.items()}})
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.modal_app_summary"],
        check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def default_app(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A new deployment: vLLM, with GPU memory snapshots."""
    return summarize_app(tmp_path_factory.mktemp("modal"))


@pytest.fixture(scope="module")
def tgi_app(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return summarize_app(tmp_path_factory.mktemp("modal-tgi"), engine="tgi")


def test_uses_no_deprecated_modal_names(default_app: dict, tgi_app: dict) -> None:
    assert default_app["deprecations"] == [] and tgi_app["deprecations"] == []


def test_serves_the_proxy_as_an_asgi_app_at_the_guides_url(default_app: dict) -> None:
    assert default_app["app_name"] == "therapist-streaming"
    assert default_app["classes"] == ["TherapistEndpoint"]
    assert default_app["web_endpoints"] == ["TherapistEndpoint.web"]
    assert default_app["web_methods"] == {"web": {"type": "WEBHOOK_TYPE_ASGI_APP", "label": "therapist-streaming"}}
    assert default_app["requires_proxy_auth"] == {"web": False}
    assert default_app["local_entrypoints"] == ["main"]


def test_runs_on_an_a10g_with_the_adapter_and_cache_volumes(default_app: dict, tgi_app: dict) -> None:
    assert default_app["gpus"] == tgi_app["gpus"] == [["A10G", 1]]
    assert default_app["volumes"] == {
        "/data": "training-data", "/hf-cache": "huggingface-cache", "/root/.cache/vllm": "vllm-cache"
    }  # fmt: skip
    assert tgi_app["volumes"] == {"/data": "training-data", "/hf-cache": "huggingface-cache"}
    assert default_app["tgi_hf_home"] == tgi_app["tgi_hf_home"] == "/hf-cache"


def test_keeps_the_model_warm_five_minutes_and_allows_a_long_cold_start(default_app: dict) -> None:
    assert default_app["scaledown_window"] == 300
    assert default_app["startup_timeout"] == 1200
    assert default_app["timeout"] >= 150  # a request can last as long as Modal's web limit
    # Our readiness deadline ends first, so the log says why before Modal kills the container.
    assert default_app["tgi_startup_deadline_s"] < default_app["startup_timeout"]


def test_concurrency_stays_within_what_the_server_batches(default_app: dict, tgi_app: dict) -> None:
    tgi_max = int(tgi_app["tgi_args"][tgi_app["tgi_args"].index("--max-concurrent-requests") + 1])
    vllm_max = int(default_app["tgi_args"][default_app["tgi_args"].index("--max-num-seqs") + 1])
    assert 1 <= tgi_app["max_inputs"] <= tgi_max == 128
    assert 1 <= default_app["max_inputs"] <= vllm_max == 128
    assert (default_app["min_containers"], default_app["max_containers"]) == (0, 4)


def test_vllm_starts_from_a_gpu_memory_snapshot_taken_asleep(default_app: dict) -> None:
    assert default_app["engine"] == "vllm"
    assert default_app["enable_memory_snapshot"] is True
    assert default_app["experimental_options"] == {"enable_gpu_snapshot": "True"}
    # start, warm up and sleep before the snapshot; wake after every start (restored or not)
    assert default_app["enter_before_snapshot"] == ["start_engine"]
    assert default_app["enter_after_snapshot"] == ["wake_engine"]
    assert "--enable-sleep-mode" in default_app["tgi_args"]
    assert default_app["engine_env"] == {"VLLM_SERVER_DEV_MODE": "1"}  # vLLM serves /sleep and /wake_up with it


def test_tgi_has_no_snapshot_path_and_starts_after_every_cold_start(tgi_app: dict) -> None:
    assert tgi_app["enable_memory_snapshot"] is False and tgi_app["experimental_options"] == {}
    assert tgi_app["enter_before_snapshot"] == []
    assert tgi_app["enter_after_snapshot"] == ["start_engine", "wake_engine"]


def test_the_vllm_image_pins_vllm_in_a_virtualenv_of_its_own(default_app: dict) -> None:
    image = default_app["image"]
    assert image[0] == "FROM nvidia/cuda:12.8.1-devel-ubuntu22.04"
    assert "RUN python -m venv /opt/vllm" in image and "RUN /opt/vllm/bin/pip install vllm==0.34.0" in image
    assert "ENV TORCHINDUCTOR_COMPILE_THREADS=1" in image and "ENTRYPOINT []" in image
    assert default_app["tgi_args"][:2] == ["/opt/vllm/bin/vllm", "serve"]
    (proxy_install,) = [line for line in image if line.startswith("RUN python -m pip install")]
    assert "'text-generation>=0.7'" in proxy_install and "vllm" not in proxy_install  # apart: their pins clash


def test_image_is_the_pinned_tgi_image_with_its_entrypoint_cleared(tgi_app: dict, default_app: dict) -> None:
    image = tgi_app["image"]
    assert image[0] == "FROM ghcr.io/huggingface/text-generation-inference:3.3.7"
    assert "COPY /python/. /usr/local" in image  # our own Python, beside TGI's virtualenv
    assert "ENTRYPOINT []" in image
    (pip_install,) = [line for line in image if "pip install" in line]
    assert "'fastapi>=0.115'" in pip_install and "'tenacity>=8.2'" in pip_install
    assert "torch" not in pip_install  # the local-model extras stay out: TGI brings its own
    assert default_app["local_python_sources"] == ["proxy", "adapters", "therapist_client"]
    # The chat page's files and the crisis detector's model travel with the Python sources, and
    # nothing else does.
    uploaded = default_app["uploaded_files"]
    for name in ("index.html", "chat.js", "chat.css"):
        assert f"/root/proxy/faces/page/static/{name}" in uploaded
    for name in ("risk-model.onnx", "risk-model.json", "tokenizer.json", "LICENSE", "NOTICE"):
        assert f"/root/proxy/policies/crisis/model/{name}" in uploaded
    assert all(path.endswith(".py") or "/static/" in path or "/crisis/model/" in path for path in uploaded)
    assert "'onnxruntime>=1.18'" in pip_install


def test_tgi_gets_the_adapter_from_the_volume_on_loopback(tgi_app: dict) -> None:
    assert tgi_app["tgi_args"] == [
        "text-generation-launcher",
        "--model-id", "Qwen/Qwen2.5-7B-Instruct",
        "--hostname", "127.0.0.1",
        "--port", "3000",
        "--max-concurrent-requests", "128",
        "--lora-adapters", "qwen_therapist_lora=/data/qwen_therapist_lora",
        "--max-input-tokens", "6144",
        "--max-total-tokens", "8192",
    ]  # fmt: skip


def test_the_container_reads_the_knobs_the_deploy_read(default_app: dict) -> None:
    assert default_app["container_reads_same_config"] is True
    assert any(secret.startswith("Secret.from_dict([DEPLOY_ENGINE") for secret in default_app["secrets"])


def test_deploy_time_knobs_change_the_app(tmp_path: Path) -> None:
    app = summarize_app(
        tmp_path,
        engine="tgi",
        gpu="H100",
        tgi_version="3.3.4",
        scaledown_window="900",
        max_inputs="64",
        min_containers="1",
        max_containers="10",
        startup_timeout="1800",
        model_id="Qwen/Qwen2.5-14B-Instruct",
        quantize="fp8",
        adapter_path="/data/runs/v2",
        secret_name="therapist-keys",
        requires_proxy_auth="true",
    )
    assert app["deprecations"] == []
    assert app["gpus"] == [["H100", 1]]
    assert app["image"][0] == "FROM ghcr.io/huggingface/text-generation-inference:3.3.4"
    assert (app["scaledown_window"], app["startup_timeout"], app["max_inputs"]) == (900, 1800, 64)
    assert (app["min_containers"], app["max_containers"]) == (1, 10)
    assert app["requires_proxy_auth"] == {"web": True}
    assert "modal.Secret.from_name('therapist-keys')" in app["secrets"]
    args = app["tgi_args"]
    assert args[args.index("--model-id") + 1] == "Qwen/Qwen2.5-14B-Instruct"
    assert args[args.index("--quantize") + 1] == "fp8"
    assert args[args.index("--lora-adapters") + 1] == "qwen_therapist_lora=/data/runs/v2"
    assert app["container_reads_same_config"] is True


def test_vllm_knobs_change_the_app(tmp_path: Path) -> None:
    app = summarize_app(tmp_path, vllm_version="0.33.0", quantize="awq", gpu_memory_utilization="0.85",
                        snapshot="false")  # fmt: skip
    assert "RUN /opt/vllm/bin/pip install vllm==0.33.0" in app["image"]
    args = app["tgi_args"]
    assert args[args.index("--quantization") + 1] == "awq"
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.85"
    assert "--enable-sleep-mode" not in args and app["enable_memory_snapshot"] is False
    assert app["container_reads_same_config"] is True


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_an_empty_adapter_path_serves_the_base_model_alone(tmp_path: Path, engine: str) -> None:
    app = summarize_app(tmp_path, adapter_path="", engine=engine)
    assert "--lora-adapters" not in app["tgi_args"] and "--lora-modules" not in app["tgi_args"]


@pytest.mark.parametrize(
    ("knob", "value", "complaint"),
    [
        ("max_inputs", "200", "max_inputs"),  # above TGI's --max-concurrent-requests
        ("adapter_path", "/tmp/adapter", "training-data volume"),
        ("quantize", "int3", "quantize"),
        ("quantize", "eetq", "not one of vllm's"),  # a TGI quantization, on the default engine
        ("engine", "sglang", "engine"),
        ("scaledown_window", "1", "scaledown_window"),
    ],
)
def test_a_bad_knob_fails_the_deploy_with_its_name(tmp_path: Path, knob: str, value: str, complaint: str) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DEPLOY_")}
    env.update({"HOME": str(tmp_path), f"DEPLOY_{knob.upper()}": value})
    result = subprocess.run(
        [sys.executable, "-c", "import modal_tgi"],
        check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DeployConfig" in result.stderr and complaint in result.stderr


def test_the_smoke_test_client_streams_a_reply_and_reports_speed(stack_factory, capsys) -> None:
    import httpx

    import modal_tgi  # offline: the entrypoint's helpers only need a URL

    with stack_factory() as stack, httpx.Client(base_url=stack.proxy_url, timeout=30) as client:
        modal_tgi._wait_until_healthy(client, deadline_s=30)
        modal_tgi._stream_one_reply(client, {"message": "I feel anxious", "max_tokens": 6})
    printed = capsys.readouterr()
    assert printed.out.strip()  # the reply, as it streamed
    assert re.search(r"time to first token: \d+ ms \| tokens: \d+ \| [\d.]+ tokens/s", printed.err)
    assert "finish_reason: length" in printed.err
