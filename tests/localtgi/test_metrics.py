"""localtgi's /metrics: TGI's metric names and types, parseable, and counting what happened."""

import re
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import start_localtgi
from tests.support.tgi_stream import raw_connection


@pytest.fixture(scope="module")
def tgi():
    with start_localtgi("--first-token-delay", "0.4", "--token-rate", "50") as url:
        yield url


def scrape(url: str) -> tuple[str, dict]:
    text = httpx.get(f"{url}/metrics").text
    return text, {family.name: family for family in text_string_to_metric_families(text)}


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"no sample {sample}"
    return float(match.group(1))


def test_metrics_have_tgis_names_and_types(tgi):
    httpx.post(f"{tgi}/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
    text, families = scrape(tgi)
    expected = {
        "tgi_request_count": "counter",
        "tgi_request_success": "counter",
        "tgi_request_duration": "histogram",
        "tgi_request_validation_duration": "histogram",
        "tgi_request_queue_duration": "histogram",
        "tgi_request_inference_duration": "histogram",
        "tgi_request_mean_time_per_token_duration": "histogram",
        "tgi_request_generated_tokens": "histogram",
        "tgi_request_input_length": "histogram",
        "tgi_request_max_new_tokens": "histogram",
        "tgi_queue_size": "gauge",
        "tgi_batch_current_size": "gauge",
    }
    assert {name: families[name].type for name in expected} == expected
    assert "_total" not in text  # TGI's counters carry no suffix
    assert len(re.findall(r'^tgi_request_duration_bucket\{le="[^"]+"\}', text, re.MULTILINE)) == 36  # 35 + Inf


def test_metrics_count_requests_by_outcome(tgi):
    text, _ = scrape(tgi)
    before = {name: value(text, name) for name in ("tgi_request_count", "tgi_request_success")}
    httpx.post(f"{tgi}/generate", json={"inputs": "one two three", "parameters": {"max_new_tokens": 4}})
    httpx.post(f"{tgi}/generate", json={"inputs": "hi", "parameters": {"temperature": 0}})
    text, _ = scrape(tgi)
    assert value(text, "tgi_request_count") == before["tgi_request_count"] + 2
    assert value(text, "tgi_request_success") == before["tgi_request_success"] + 1
    assert value(text, 'tgi_request_failure{err="validation"}') >= 1
    assert value(text, 'tgi_request_input_length_bucket{le="+Inf"}') == value(text, "tgi_request_input_length_count")
    assert value(text, "tgi_request_generated_tokens_sum") >= 4


def test_queue_and_batch_gauges_follow_a_request(tgi):
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 30}}
    with raw_connection(tgi, "/generate_stream", body, wait_for=b"\r\n\r\n"):
        time.sleep(0.1)  # inside the 0.4 s first-token delay
        waiting, _ = scrape(tgi)
        time.sleep(0.5)  # tokens are flowing
        generating, _ = scrape(tgi)
    assert (value(waiting, "tgi_queue_size"), value(waiting, "tgi_batch_current_size")) == (1, 0)
    assert (value(generating, "tgi_queue_size"), value(generating, "tgi_batch_current_size")) == (0, 1)
