"""A proxy set up otherwise than the inference server it talks to: the operator hears what to change,
and clients get a server-side error, never a 4xx that blames their input."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.support.chat_stream import stream_chat
from tests.support.fixtures import REPO_ROOT
from tests.support.servers import free_port, start_localtgi, start_proxy

BODY = {"message": "I feel anxious", "max_tokens": 5}


@pytest.fixture(scope="module")
def adapterless(tmp_path_factory):
    """localtgi started without any LoRA adapter, and a proxy that asks for the therapist adapter
    (PROXY_ADAPTER_ID defaults to the model name)."""
    log_file = tmp_path_factory.mktemp("adapterless") / "proxy.log"
    with start_localtgi("--engine", "scripted") as tgi_url:
        with start_proxy(tgi_url, log_file=log_file) as proxy_url:
            yield proxy_url, log_file


def test_every_request_is_a_503_that_says_what_to_set(adapterless):
    proxy_url, _ = adapterless
    result = stream_chat(proxy_url, BODY)
    assert result.status == 503
    assert "retry-after" not in result.headers  # waiting will not fix it
    detail = httpx.Response(result.status, content=result.body).json()["detail"]
    assert "'qwen_therapist_lora'" in detail
    assert "PROXY_ADAPTER_ID" in detail and "--lora-adapters qwen_therapist_lora=" in detail


def test_health_reports_the_finding_and_the_log_says_it_once(adapterless):
    proxy_url, log_file = adapterless
    for _ in range(3):
        assert stream_chat(proxy_url, BODY).status == 503
    health = httpx.get(f"{proxy_url}/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy" and "PROXY_ADAPTER_ID" in health.json()["detail"]
    findings = [line for line in log_file.read_text().splitlines() if "does not match the proxy's settings" in line]
    assert len(findings) == 1


def test_asking_for_the_base_model_serves():
    with start_localtgi("--engine", "scripted") as tgi_url:
        with start_proxy(tgi_url, adapter_id="") as proxy_url:
            result = stream_chat(proxy_url, BODY)
            assert result.status == 200 and result.final["finish_reason"] == "length"
            assert httpx.get(f"{proxy_url}/health").json() == {"status": "healthy", "model": "qwen_therapist_lora"}


def test_a_configured_tokenizer_that_is_not_there_stops_the_start(tmp_path):
    # Not silently replaced by another tokenizer: context fitting would count with the wrong one.
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--port", str(free_port())],
        cwd=REPO_ROOT, env={**os.environ, "PROXY_TOKENIZER_PATH": str(tmp_path / "missing")},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "PROXY_TOKENIZER_PATH" in result.stderr
