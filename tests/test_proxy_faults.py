"""What a client sees when TGI misbehaves, with faults injected into a real localtgi."""

import time

import httpx
import pytest

from tests.support.chat_stream import stream_chat
from tests.support.servers import free_port, start_localtgi, start_proxy

BODY = {"message": "I feel anxious", "max_tokens": 40, "seed": 2}


@pytest.fixture(scope="module")
def stack(stack_factory):
    with stack_factory(localtgi_args=["--token-rate", "200"], proxy_settings={"keepalive_interval_s": 0.2}) as stack:
        yield stack


@pytest.fixture
def faults(stack):
    """Set localtgi's faults for one test; cleared afterwards."""

    def set_faults(**fields):
        httpx.put(f"{stack.tgi_url}/_localtgi/faults", json=fields).raise_for_status()

    yield set_faults
    set_faults()


def stats(stack) -> dict:
    return httpx.get(f"{stack.tgi_url}/_localtgi/stats").json()


def test_failure_mid_stream_ends_with_an_error_final_event(stack, faults):
    faults(fail_after=3)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 200
    *tokens, final = result.events
    assert 1 <= len(tokens) <= 3
    assert final["done"] is True and final["finish_reason"] == "error"
    assert final["error"]["type"] == "generation" and "failed during generation" in final["error"]["message"]
    assert final["usage"] == {"prompt_tokens": None, "completion_tokens": 3}


def test_dropped_connection_mid_stream_ends_with_an_error_final_event(stack, faults):
    faults(drop_after=4)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 200
    assert result.final["finish_reason"] == "error" and result.final["error"]["type"] == "generation"
    assert sum(event["done"] for event in result.events) == 1


def test_overloaded_tgi_is_429_with_retry_after(stack, faults):
    faults(overload=True)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 429
    assert result.headers["retry-after"] == "1"
    assert "overloaded" in result.body.decode()


def test_stall_sends_keepalive_comments_then_completes(stack, faults):
    faults(stall_after=2, stall_seconds=1.0)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 200
    assert ": ping" in result.comments
    assert result.final["finish_reason"] in ("length", "stop")
    assert result.text == stream_chat(stack.proxy_url, BODY).text  # nothing lost across the stall


def test_unhealthy_tgi_makes_health_503(stack, faults):
    faults(unhealthy=True)
    response = httpx.get(f"{stack.proxy_url}/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "model": "qwen_therapist_lora"}
    assert response.headers["retry-after"] == "5"


def test_health_is_healthy_with_model_name(stack):
    response = httpx.get(f"{stack.proxy_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "model": "qwen_therapist_lora"}


def test_client_disconnect_cancels_generation_upstream(stack_factory):
    # A slow model, so the generation is certainly still running when the client leaves.
    with stack_factory(localtgi_args=["--token-rate", "20"]) as slow:
        before = stats(slow)["cancelled"]
        with httpx.stream(
            "POST", f"{slow.proxy_url}/stream_chat", json={"message": "hi", "max_tokens": 500}
        ) as response:
            chunks = response.iter_raw()
            assert next(chunks).startswith(b"data: ")
        # The `with` closed the connection mid-stream.
        deadline = time.monotonic() + 5
        while stats(slow)["cancelled"] == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stats(slow)["cancelled"] == before + 1
        assert stats(slow)["active"] == 0


def test_tgi_down_is_503_on_stream_chat_and_health():
    nothing_there = f"http://127.0.0.1:{free_port()}"
    with start_proxy(nothing_there, connect_attempts=2) as proxy_url:
        result = stream_chat(proxy_url, BODY)
        assert result.status == 503 and result.headers["retry-after"] == "5"
        health = httpx.get(f"{proxy_url}/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"


def test_connection_failures_before_the_first_token_are_retried(stack_factory):
    # localtgi binds its port only after its (slow) start: the first connects are refused.
    port = free_port()
    with start_proxy(f"http://127.0.0.1:{port}", connect_attempts=10, connect_timeout_s=1) as proxy_url:
        with start_localtgi("--lora-adapters", "qwen_therapist_lora", "--startup-delay", "1.0", port=port, wait=False):
            result = stream_chat(proxy_url, BODY)
    assert result.status == 200
    assert result.final["finish_reason"] in ("length", "stop")
