"""What a client sees when the inference server misbehaves, with faults injected into a real stand-in,
over each engine's wire (localtgi for TGI, localvllm for vLLM).

One test per fault of docs/reliability.md: the server down, slow to start, dying mid-stream, stalling,
overloaded, sending malformed events; and the proxy recovering by itself when it comes back.
"""

import os
import signal
import time

import httpx
import pytest

from tests.support.chat_stream import parse_event_stream, stream_chat
from tests.support.dropping_relay import dropping_relay
from tests.support.servers import free_port, server_process, start_proxy
from tests.support.stack import start_upstream, upstream_args

BODY = {"message": "I feel anxious", "max_tokens": 40, "seed": 2}


# What each stand-in says when it is full: TGI's overloaded error, vLLM's busy 503.
OVERLOAD_WORDS = {"tgi": "overloaded", "vllm": "busy"}
GENERATE_PATHS = {"tgi": b"POST /generate_stream", "vllm": b"POST /v1/completions"}


@pytest.fixture(scope="module")
def stack(stack_factory, engine):
    settings = {"keepalive_interval_s": 0.2}
    with stack_factory(localtgi_args=["--token-rate", "200"], proxy_settings=settings, engine=engine) as stack:
        yield stack


@pytest.fixture
def faults(stack):
    """Set the stand-in's faults for one test; cleared afterwards."""

    def set_faults(**fields):
        httpx.put(f"{stack.admin_url}/faults", json=fields).raise_for_status()

    yield set_faults
    set_faults()


def stats(stack) -> dict:
    return httpx.get(f"{stack.admin_url}/stats").json()


def wait_for_stats(stack, timeout: float = 5.0, **expected: int) -> dict:
    """localtgi's counters once they show `expected` (they change right after a disconnect)."""
    deadline = time.monotonic() + timeout
    while True:
        current = stats(stack)
        if all(current[name] == value for name, value in expected.items()) or time.monotonic() > deadline:
            return current
        time.sleep(0.02)


def tokens_before_failing(stack, token_events: list) -> int:
    """What a failed stream's usage counts: TGI's token events (3 when the fault comes after 3, those
    with the empty text of half a character included); vLLM sends text, not tokens, so its chunks."""
    return 3 if stack.engine == "tgi" else len(token_events)


def poll_health(proxy_url: str, status: int, timeout: float = 30.0) -> httpx.Response:
    """GET /health until it answers `status`; the last answer otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{proxy_url}/health", timeout=5)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_failure_mid_stream_ends_with_an_error_final_event(stack, faults):
    faults(fail_after=3)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 200
    *tokens, final = result.events
    assert 1 <= len(tokens) <= 3
    assert final["done"] is True and final["finish_reason"] == "error"
    assert final["error"]["type"] == "generation" and "failed during generation" in final["error"]["message"]
    assert final["usage"] == {"prompt_tokens": None, "completion_tokens": tokens_before_failing(stack, tokens)}


def test_dropped_connection_mid_stream_ends_with_an_error_final_event(stack, faults):
    faults(drop_after=4)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 200
    assert result.final["finish_reason"] == "error" and result.final["error"]["type"] == "generation"
    assert sum(event["done"] for event in result.events) == 1


def test_overloaded_server_is_429_with_retry_after(stack, faults):
    faults(overload=True)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 429
    assert result.headers["retry-after"] == "1"
    assert OVERLOAD_WORDS[stack.engine] in result.body.decode()


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


def test_client_disconnect_cancels_generation_upstream(stack_factory, engine):
    # A slow model, so the generation is certainly still running when the client leaves.
    with stack_factory(localtgi_args=["--token-rate", "20"], engine=engine) as slow:
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


def test_server_down_is_503_on_stream_chat_and_health(engine):
    nothing_there = f"http://127.0.0.1:{free_port()}"
    with start_proxy(nothing_there, connect_attempts=2, engine=engine) as proxy_url:
        result = stream_chat(proxy_url, BODY)
        assert result.status == 503 and result.headers["retry-after"] == "5"
        health = httpx.get(f"{proxy_url}/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"


def test_connection_failures_before_the_first_token_are_retried(engine):
    # The server listens only after its (slow) start: the first connects are refused.
    port = free_port()
    settings = {"connect_attempts": 10, "connect_timeout_s": 1, "engine": engine}
    with start_proxy(f"http://127.0.0.1:{port}", **settings) as proxy_url:
        with start_upstream(engine, *upstream_args(engine, ["--startup-delay", "1.0"]), port=port, wait=False):
            result = stream_chat(proxy_url, BODY)
    assert result.status == 200
    assert result.final["finish_reason"] in ("length", "stop")


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_connection_closed_under_the_request_is_retried_on_a_fresh_one(engine, reset):
    # The server (or a hop before it) closes or resets the connection as the request arrives, before
    # any answer: nothing reached the client and nothing started, so the proxy sends it again.
    with start_upstream(engine, *upstream_args(engine)) as upstream_url:
        with dropping_relay(upstream_url, marker=GENERATE_PATHS[engine], drops=2, reset=reset) as relay:
            with start_proxy(relay.url, engine=engine) as proxy_url:
                result = stream_chat(proxy_url, BODY)
    assert relay.dropped == 2
    assert result.status == 200
    assert result.final["finish_reason"] == "length" and result.final["usage"]["completion_tokens"] == 40


def test_malformed_event_mid_stream_ends_with_an_error_final_event(stack, faults):
    faults(malformed_after=3)
    before = stats(stack)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 200
    *tokens, final = result.events
    assert 1 <= len(tokens) <= 3 and all(event["done"] is False for event in tokens)
    assert final["done"] is True and final["finish_reason"] == "error"
    assert final["error"]["type"] == "upstream_protocol" and "not JSON" in final["error"]["message"]
    assert final["usage"] == {"prompt_tokens": None, "completion_tokens": tokens_before_failing(stack, tokens)}
    # The proxy hung up on the broken stream: the generation behind it was cancelled, not left running.
    after = wait_for_stats(stack, active=0, cancelled=before["cancelled"] + 1)
    assert (after["active"], after["cancelled"]) == (0, before["cancelled"] + 1)


def test_malformed_first_event_is_502(stack, faults):
    faults(malformed_after=0)
    result = stream_chat(stack.proxy_url, BODY)
    assert result.status == 502
    assert "not JSON" in result.body.decode()
    assert "retry-after" not in result.headers


def test_stall_longer_than_the_idle_timeout_ends_with_an_upstream_timeout_event(stack_factory, engine):
    # The server's own keep-alives (TGI's; vLLM sends none) come too late to count as traffic: the
    # proxy sees 0.5 s of silence.
    localtgi_args = "--token-rate 200 --stall-after 3 --stall-seconds 20".split()
    if engine == "tgi":
        localtgi_args += ["--keep-alive-seconds", "30"]
    settings = {"stream_idle_timeout_s": 0.5, "keepalive_interval_s": 0.1}
    with stack_factory(localtgi_args=localtgi_args, proxy_settings=settings, engine=engine) as stalling:
        started = time.monotonic()
        result = stream_chat(stalling.proxy_url, BODY)
        took = time.monotonic() - started
        counters = wait_for_stats(stalling, active=0, cancelled=1)
        # Silent from the start: nothing has been streamed yet, so it is an HTTP error.
        httpx.put(f"{stalling.admin_url}/faults", json={"stall_after": 0, "stall_seconds": 20})
        before_first_token = stream_chat(stalling.proxy_url, BODY)
    assert result.status == 200
    assert ": ping" in result.comments  # the client heard from us while TGI was silent
    *tokens, final = result.events
    assert 1 <= len(tokens) <= 3
    assert final["finish_reason"] == "error" and final["error"]["type"] == "upstream_timeout"
    assert final["usage"]["completion_tokens"] == tokens_before_failing(stalling, tokens)
    assert took < 10  # the idle timeout ended it, not the 20 s stall
    assert (counters["active"], counters["cancelled"]) == (0, 1)
    assert before_first_token.status == 504 and "silent" in before_first_token.body.decode()


def test_stall_longer_than_the_idle_timeout_survives_when_tgi_sends_keep_alives(stack_factory):
    # TGI (axum) writes a `:` comment every 15 s while silent; any byte resets the proxy's idle timer.
    localtgi_args = "--token-rate 200 --keep-alive-seconds 0.1 --stall-after 3 --stall-seconds 1.2".split()
    settings = {"stream_idle_timeout_s": 0.5, "keepalive_interval_s": 0.2}
    with stack_factory(localtgi_args=localtgi_args, proxy_settings=settings) as stalling:
        result = stream_chat(stalling.proxy_url, BODY)
        expected = httpx.post(
            f"{stalling.tgi_url}/generate",
            json={"inputs": "x", "parameters": {"max_new_tokens": 40, "seed": 2, "do_sample": True}},
        ).json()
    assert result.status == 200
    assert ": ping" in result.comments
    assert result.final["finish_reason"] in ("length", "stop")
    assert result.text == expected["generated_text"]


def test_tgi_at_capacity_is_429_then_serves_again(stack_factory):
    # The real limit, not the injected flag: one slot, held by a slow stream.
    with stack_factory(localtgi_args=["--token-rate", "20", "--max-concurrent-requests", "1"]) as full:
        with httpx.stream("POST", f"{full.proxy_url}/stream_chat", json={"message": "hi", "max_tokens": 200}) as held:
            chunks = held.iter_raw()  # kept: a dropped iterator would close the connection
            assert next(chunks).startswith(b"data: ")
            refused = stream_chat(full.proxy_url, BODY)
        wait_for_stats(full, active=0)
        served = stream_chat(full.proxy_url, {**BODY, "max_tokens": 4})
    assert refused.status == 429 and refused.headers["retry-after"] == "1"
    assert served.status == 200 and served.final["finish_reason"] == "length"


def test_slow_start_is_503_loading_then_serves_without_a_proxy_restart(engine):
    port = free_port()
    with start_proxy(f"http://127.0.0.1:{port}", connect_attempts=1, engine=engine) as proxy_url:
        with start_upstream(engine, *upstream_args(engine, ["--startup-delay", "2"]), port=port, wait=False):
            loading = httpx.get(f"{proxy_url}/health")
            early = stream_chat(proxy_url, BODY)
            ready = poll_health(proxy_url, 200)
            served = stream_chat(proxy_url, BODY)
    assert loading.status_code == 503 and loading.headers["retry-after"] == "5"
    assert loading.json() == {"status": "loading", "model": "qwen_therapist_lora"}
    assert early.status == 503 and early.headers["retry-after"] == "5"
    assert ready.json() == {"status": "healthy", "model": "qwen_therapist_lora"}
    assert served.status == 200 and served.final["finish_reason"] in ("length", "stop")


def test_server_dying_mid_stream_then_coming_back_on_the_same_port(engine):
    port = free_port()
    tgi_args = upstream_args(engine, ["--token-rate", "50"])
    with start_proxy(f"http://127.0.0.1:{port}", engine=engine) as proxy_url:
        with start_upstream(engine, *tgi_args, port=port) as tgi_url:
            before = stream_chat(proxy_url, BODY)  # it served a stream: from now on, down is `unhealthy`
            with httpx.stream("POST", f"{proxy_url}/stream_chat", json={**BODY, "max_tokens": 200}) as dying:
                chunks = dying.iter_raw()
                received = next(chunks)
                os.kill(server_process(tgi_url).pid, signal.SIGKILL)
                received += b"".join(chunks)
        died = parse_event_stream(received)[0]
        down = stream_chat(proxy_url, BODY)
        down_health = httpx.get(f"{proxy_url}/health")
        with start_upstream(engine, *tgi_args, port=port):
            back = stream_chat(proxy_url, BODY)
            back_health = httpx.get(f"{proxy_url}/health")
    assert before.status == 200 and before.final["finish_reason"] in ("length", "stop")
    assert died[-1]["done"] is True and died[-1]["finish_reason"] == "error"
    assert died[-1]["error"]["type"] == "generation"
    assert sum(event["done"] for event in died) == 1
    assert down.status == 503 and down.headers["retry-after"] == "5"
    assert down_health.status_code == 503 and down_health.json()["status"] == "unhealthy"
    assert back.status == 200 and back.text == before.text  # same seed, same reply: nothing lost or mixed up
    assert back_health.status_code == 200
