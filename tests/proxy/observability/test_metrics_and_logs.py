"""/metrics after real streams, the request id, and the JSON request log."""

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.chat_stream import stream_chat
from tests.support.servers import free_port, start_localtgi, start_proxy

SECRET = "my-very-private-worry-about-my-sister"


def scrape(proxy_url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}; also proves the text parses."""
    response = httpx.get(f"{proxy_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """A stack whose proxy logs to a file, and the metrics before and after a mix of traffic."""
    log_file = tmp_path_factory.mktemp("logs") / "proxy.log"
    with start_localtgi("--lora-adapters", "qwen_therapist_lora", "--token-rate", "100") as tgi_url:
        with start_proxy(tgi_url, log_file=log_file) as proxy_url:
            before = scrape(proxy_url)
            body = {
                "message": SECRET,
                "max_tokens": 8,
                "seed": 1,
                "conversation_history": [{"role": "user", "content": SECRET}],
            }
            ok = stream_chat(proxy_url, body, headers={"X-Request-ID": "client-chosen-id-42"})
            stream_chat(proxy_url, {"message": "x", "max_tokens": 0})  # 422
            httpx.put(f"{tgi_url}/_localtgi/faults", json={"fail_after": 2}).raise_for_status()
            failed = stream_chat(proxy_url, body)
            httpx.put(f"{tgi_url}/_localtgi/faults", json={"overload": True}).raise_for_status()
            overloaded = stream_chat(proxy_url, body)
            httpx.put(f"{tgi_url}/_localtgi/faults", json={}).raise_for_status()
            with httpx.stream("POST", f"{proxy_url}/stream_chat", json={"message": SECRET, "max_tokens": 500}) as r:
                next(r.iter_raw())  # leave after the first token
            after = _scrape_when_settled(proxy_url)
    yield {
        "before": before,
        "after": after,
        "ok": ok,
        "failed": failed,
        "overloaded": overloaded,
        "log": log_file.read_text(),
    }


def _scrape_when_settled(proxy_url):
    # The disconnect is noticed asynchronously; wait until no stream is in flight.
    for _ in range(100):
        samples = scrape(proxy_url)
        if value(samples, "proxy_streams_in_flight") == 0 and value(samples, "proxy_client_disconnects_total") >= 1:
            return samples
        httpx.get(f"{proxy_url}/health")
    return samples


def delta(observed, name, **labels):
    return value(observed["after"], name, **labels) - value(observed["before"], name, **labels)


def test_request_counts_by_route_and_status(observed):
    assert delta(observed, "proxy_requests_total", route="/stream_chat", method="POST", status="200") == 3
    assert delta(observed, "proxy_requests_total", route="/stream_chat", method="POST", status="422") == 1
    assert delta(observed, "proxy_requests_total", route="/stream_chat", method="POST", status="429") == 1


def test_stream_outcomes(observed):
    assert observed["ok"].final["finish_reason"] == "length" and observed["failed"].final["finish_reason"] == "error"
    assert delta(observed, "proxy_streams_finished_total", finish_reason="length") == 1
    assert delta(observed, "proxy_streams_finished_total", finish_reason="error") == 1
    assert delta(observed, "proxy_client_disconnects_total") == 1
    assert delta(observed, "proxy_upstream_errors_total", type="generation") == 1
    assert delta(observed, "proxy_upstream_errors_total", type="overloaded") == 1
    assert value(observed["after"], "proxy_streams_in_flight") == 0


def test_token_and_latency_metrics(observed):
    usage = observed["ok"].final["usage"]
    assert delta(observed, "proxy_generated_tokens_total") == usage["completion_tokens"] + 2  # + the failed stream's
    assert delta(observed, "proxy_prompt_tokens_total") == usage["prompt_tokens"]
    assert delta(observed, "proxy_time_to_first_token_seconds_count") == 3  # ok, failed, disconnected
    assert delta(observed, "proxy_inter_token_latency_seconds_count") >= 2
    assert delta(observed, "proxy_request_duration_seconds_count", route="/stream_chat") == 5
    assert value(observed["after"], "proxy_upstream_up") == 1


def test_tgi_metrics_are_relayed(observed):
    # The parser names counter samples `<family>_total`; TGI's exposition itself has no suffix.
    names = {name for name, _ in observed["after"]}
    assert {"tgi_request_count_total", "tgi_request_success_total", "tgi_queue_size"} <= names
    assert value(observed["after"], "tgi_request_failure_total", err="generation") >= 1


def test_request_id_is_returned_and_a_fresh_one_made_when_missing(observed):
    assert observed["ok"].headers["x-request-id"] == "client-chosen-id-42"
    assert len(observed["failed"].headers["x-request-id"]) == 32


def test_log_lines_are_json_with_request_fields_and_no_message_text(observed):
    lines = [json.loads(line) for line in observed["log"].splitlines() if line.strip()]
    requests = [line for line in lines if line["message"] == "request" and line.get("route") == "/stream_chat"]
    assert len(requests) == 5
    ok = next(line for line in requests if line["request_id"] == "client-chosen-id-42")
    assert ok["status"] == 200 and ok["finish_reason"] == "length"
    assert ok["completion_tokens"] == observed["ok"].final["usage"]["completion_tokens"]
    assert ok["ttft_ms"] > 0 and ok["duration_ms"] >= ok["ttft_ms"]
    assert any(line.get("client_disconnected") for line in requests)
    assert SECRET not in observed["log"]


def test_metrics_answer_when_tgi_is_down():
    with start_proxy(f"http://127.0.0.1:{free_port()}", connect_attempts=1) as proxy_url:
        response = httpx.get(f"{proxy_url}/metrics")
        assert response.status_code == 200
        assert "# inference server metrics unavailable" in response.text
        assert value(scrape(proxy_url), "proxy_upstream_up") == 0
