"""Each fault localtgi injects, as a client sees it; and client disconnects cancelling generation."""

import json
import time

import httpx
import pytest

from tests.support.fixtures import TGI_FIXTURES
from tests.support.servers import start_localtgi, wait_until_answering
from tests.support.tgi_stream import data_payloads, events, post_stream, raw_connection

BODY = {"inputs": "I feel anxious", "parameters": {"max_new_tokens": 30}}


def stats(url: str) -> dict:
    return httpx.get(f"{url}/_localtgi/stats").json()


def wait_for_stats(url: str, **expected: int) -> dict:
    """Stats once they show `expected`; the server updates them right after the disconnect."""
    deadline = time.monotonic() + 5
    while True:
        current = stats(url)
        if all(current[name] == value for name, value in expected.items()) or time.monotonic() > deadline:
            return current
        time.sleep(0.02)


def test_fail_after_sends_a_generation_error_event_after_n_tokens():
    with start_localtgi("--fail-after", "3") as url:
        response, raw = post_stream(url, BODY)
        refused = httpx.post(f"{url}/generate", json=BODY)
        counters = stats(url)
    *tokens, error = events(raw)
    assert response.status_code == 200
    assert [event["index"] for event in tokens] == [1, 2, 3]
    assert error["error_type"] == "generation"
    assert error["error"].startswith("Request failed during generation: ")
    assert list(error) == ["error", "error_type"]
    assert (refused.status_code, refused.json()["error_type"]) == (424, "generation")
    assert counters["failed"] == 2 and counters["completed"] == 0


def test_unhealthy_makes_health_answer_503_but_still_generates():
    with start_localtgi("--unhealthy") as url:
        health = httpx.get(f"{url}/health")
        generated = httpx.post(f"{url}/generate", json=BODY)
    assert (health.status_code, health.json()) == (503, {"error": "unhealthy", "error_type": "healthcheck"})
    assert generated.status_code == 200


def test_drop_after_cuts_the_connection_without_a_final_event():
    with start_localtgi("--drop-after", "2") as url:
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream("POST", f"{url}/generate_stream", json=BODY) as response:
                for chunk in response.iter_bytes():
                    received += chunk
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{url}/generate", json=BODY)
        counters = stats(url)
    assert [event["index"] for event in events(received)] == [1, 2]
    assert all(event["generated_text"] is None for event in events(received))
    assert counters["failed"] == 2


def test_stall_pauses_the_stream_and_keep_alives_fill_the_silence():
    args = ["--stall-after", "2", "--stall-seconds", "0.6", "--keep-alive-seconds", "0.15"]
    with start_localtgi(*args) as url:
        arrivals = []
        with httpx.stream("POST", f"{url}/generate_stream", json=BODY) as response:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                arrivals.append((time.monotonic(), chunk))
    keep_alives: list[bytes] = []
    payloads = data_payloads(raw, keep_alives)
    token_times = [at for at, chunk in arrivals if chunk.startswith(b"data: ")]
    assert json.loads(payloads[-1])["generated_text"] is not None  # it went on to the end
    assert token_times[2] - token_times[1] >= 0.5
    assert len(keep_alives) >= 2 and set(keep_alives) == {b":"}


def test_malformed_after_sends_one_event_that_is_not_json_then_goes_on():
    with start_localtgi("--malformed-after", "2") as url:
        response, raw = post_stream(url, BODY)
        whole = httpx.post(f"{url}/generate", json=BODY)
    payloads = data_payloads(raw)
    assert response.status_code == 200
    assert payloads[2] == '{"index":3,"token":{"id":'
    with pytest.raises(json.JSONDecodeError):
        json.loads(payloads[2])
    rest = [json.loads(payload) for payload in payloads[:2] + payloads[3:]]
    assert [event["index"] for event in rest] == list(range(1, 31))  # no token was lost to it
    assert rest[-1]["generated_text"] is not None
    assert whole.status_code == 200  # /generate has no events to break


def test_overload_flag_refuses_every_request():
    with start_localtgi("--overload") as url:
        refused = httpx.post(f"{url}/generate", json=BODY)
        _, raw = post_stream(url, BODY)
    assert (refused.status_code, refused.json()) == (429, {"error": "Model is overloaded", "error_type": "overloaded"})
    assert raw == (TGI_FIXTURES / "derived" / "generate_stream_overloaded_error.sse").read_bytes()


def test_startup_delay_refuses_connections_until_the_port_is_bound():
    started = time.monotonic()
    with start_localtgi("--startup-delay", "1.0", wait=False) as url:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health")
        wait_until_answering(url)
        ready_after = time.monotonic() - started
        assert httpx.get(f"{url}/health").status_code == 200
    assert ready_after >= 1.0


@pytest.fixture(scope="module")
def slow():
    """Two tokens every 0.1 s: slow enough to hang up mid-generation."""
    with start_localtgi("--token-rate", "20") as url:
        yield url


@pytest.fixture
def set_faults(slow):
    def put(**fields):
        response = httpx.put(f"{slow}/_localtgi/faults", json=fields)
        response.raise_for_status()
        return response.json()

    yield put
    put()


def test_faults_change_at_runtime(slow, set_faults):
    defaults = httpx.get(f"{slow}/_localtgi/faults").json()
    assert defaults == {
        "fail_after": None,
        "stall_after": None,
        "stall_seconds": 30.0,
        "drop_after": None,
        "malformed_after": None,
        "overload": False,
        "unhealthy": False,
    }
    assert set_faults(fail_after=1, unhealthy=True)["fail_after"] == 1
    _, raw = post_stream(slow, BODY)
    assert [event.get("error_type") for event in events(raw)] == [None, "generation"]
    assert httpx.get(f"{slow}/health").status_code == 503
    assert set_faults() == defaults  # a PUT replaces the whole set
    assert httpx.get(f"{slow}/health").status_code == 200


@pytest.mark.parametrize("fields", [{"fail_after": -1}, {"overload": "yes"}, {"explode": True}, [1]])
def test_bad_fault_sets_are_refused(slow, fields):
    response = httpx.put(f"{slow}/_localtgi/faults", json=fields)
    assert response.status_code == 400
    assert response.text.startswith("invalid fault set: ")


@pytest.mark.parametrize("path", ["/generate_stream", "/generate"])
def test_client_disconnect_cancels_the_generation(slow, path):
    before = stats(slow)
    long_body = {"inputs": "hi", "parameters": {"max_new_tokens": 200, "do_sample": True, "seed": 4242}}
    with raw_connection(slow, path, long_body, wait_for=b"data: " if path == "/generate_stream" else b""):
        time.sleep(0.15)  # the server is now between tokens
        assert stats(slow)["active"] == 1
    hung_up_at = time.time()
    after = wait_for_stats(slow, active=0, cancelled=before["cancelled"] + 1)
    assert (after["active"], after["cancelled"]) == (0, before["cancelled"] + 1)
    assert after["completed"] == before["completed"]
    seed, cancelled_at, tokens = after["cancellations"][-1]  # what scripts/cancel_load.py times
    assert seed == 4242 and hung_up_at - 1 < cancelled_at < time.time() and 0 < tokens < 200
    metrics = httpx.get(f"{slow}/metrics").text
    assert 'tgi_request_failure{err="dropped"}' in metrics
