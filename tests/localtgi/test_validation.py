"""localtgi's refusals: TGI's validation messages and order, axum's body rejections, overload."""

import json
import time

import httpx
import pytest

from localtgi.engines.scripted import reply_tokens
from tests.support.fixtures import TGI_FIXTURES
from tests.support.servers import start_localtgi
from tests.support.tgi_stream import data_payloads, post_stream, raw_connection

MAX_INPUT, MAX_TOTAL = 40, 64


@pytest.fixture(scope="module")
def tgi():
    limits = ["--max-input-tokens", str(MAX_INPUT), "--max-total-tokens", str(MAX_TOTAL), "--payload-limit", "2000"]
    with start_localtgi(*limits, "--lora-adapters", "therapist=/adapters/therapist,coach") as url:
        yield url


def fixture_error(case: str) -> dict:
    cases = json.loads((TGI_FIXTURES / "derived" / "generate_error_bodies.json").read_text())["cases"]
    return next(item["body"] for item in cases if item["case"] == case)


def validation(message: str) -> dict:
    return {"error": f"Input validation error: {message}", "error_type": "validation"}


WORDS = " ".join(["word"] * 50)
CASES = [
    ("I feel low", {"temperature": 0}, fixture_error("temperature=0")),
    ("I feel low", {"top_p": 1.0}, fixture_error("top_p=1.0")),
    ("I feel low", {"top_k": 0}, fixture_error("top_k=0")),
    ("I feel low", {"max_new_tokens": 0}, fixture_error("max_new_tokens=0")),
    ("I feel low", {"stop": ["a", "b", "c", "d", "e"]}, fixture_error("5 stop sequences, --max-stop-sequences 4")),
    ("", {}, fixture_error("empty inputs")),
    ("I feel low", {"temperature": 0, "top_k": 0}, fixture_error("temperature=0")),  # first failure wins
    ("I feel low", {"repetition_penalty": 0}, validation("`repetition_penalty` must be strictly positive")),
    ("I feel low", {"frequency_penalty": 2.5}, validation("`frequency_penalty` must be >= -2.0 and <= 2.0")),
    ("I feel low", {"typical_p": 1.0}, validation("`typical_p` must be > 0.0 and < 1.0")),
    ("I feel low", {"top_n_tokens": 6}, validation("`top_n_tokens` must be >= 0 and <= 5. Given: 6")),
    (
        "I feel low",
        {"truncate": 0},
        validation(f"`truncate` must be strictly positive and less than {MAX_INPUT}. Given: 0"),
    ),
    (
        WORDS,
        {"max_new_tokens": 20},
        validation(
            f"`inputs` tokens + `max_new_tokens` must be <= {MAX_TOTAL}. "
            "Given: 50 `inputs` tokens and 20 `max_new_tokens`"
        ),
    ),
    (WORDS, {"max_new_tokens": 10}, validation(f"`inputs` must have less than {MAX_INPUT} tokens. Given: 50")),
    ("I feel low", {"grammar": {"type": "regex", "value": "a+"}}, validation("grammar is not supported")),
    (
        "I feel low",
        {"adapter_id": "predibase/dbpedia"},
        validation("`adapter_id` 'predibase/dbpedia' is not loaded. Loaded adapters: coach, therapist"),
    ),
]


# On /generate_stream any best_of != 1 is refused earlier, with its own message.
GENERATE_ONLY = [("I feel low", {"best_of": 2}, validation("you must use sampling when `best_of` is > 1"))]


@pytest.mark.parametrize(("inputs", "parameters", "expected"), CASES + GENERATE_ONLY)
def test_generate_answers_422_with_tgis_message(tgi, inputs, parameters, expected):
    response = httpx.post(f"{tgi}/generate", json={"inputs": inputs, "parameters": parameters})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected


@pytest.mark.parametrize(("inputs", "parameters", "expected"), CASES)
def test_generate_stream_sends_the_same_error_as_one_event_with_200(tgi, inputs, parameters, expected):
    response, raw = post_stream(tgi, {"inputs": inputs, "parameters": parameters})
    assert response.status_code == 200
    assert [json.loads(payload) for payload in data_payloads(raw)] == [expected]


def test_validation_error_event_is_byte_identical_to_the_fixture(tgi):
    _, raw = post_stream(tgi, {"inputs": "hi", "parameters": {"temperature": 0}})
    assert raw == (TGI_FIXTURES / "derived" / "generate_stream_validation_error.sse").read_bytes()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"best_of": 2, "do_sample": True}, "`best_of` != 1 is not supported when streaming tokens"),
        ({"decoder_input_details": True}, "`decoder_input_details` == true is not supported when streaming tokens"),
    ],
)
def test_stream_only_refusals(tgi, parameters, message):
    _, raw = post_stream(tgi, {"inputs": "hi", "parameters": parameters})
    assert [json.loads(payload) for payload in data_payloads(raw)] == [validation(message)]


def test_best_of_above_the_limit_is_refused(tgi):
    response = httpx.post(f"{tgi}/generate", json={"inputs": "hi", "parameters": {"best_of": 3, "do_sample": True}})
    assert response.json() == validation("`best_of` must be > 0 and <= 2. Given: 3")


def test_missing_max_new_tokens_caps_at_the_total_budget(tgi):
    long_reply_seed = next(seed for seed in range(1000) if len(reply_tokens(seed)) > MAX_TOTAL)
    parameters = {"details": True, "seed": long_reply_seed, "do_sample": True}
    response = httpx.post(f"{tgi}/generate", json={"inputs": "one two", "parameters": parameters})
    details = response.json()["details"]
    assert (details["finish_reason"], details["generated_tokens"]) == ("length", MAX_TOTAL - 2)


@pytest.mark.parametrize("path", ["/generate", "/generate_stream"])
@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (
            b'{"inputs":"hi","parameters":{"seed":-1}}',
            422,
            "Failed to deserialize the JSON body into the target type: parameters.seed: "
            "invalid value: integer `-1`, expected u64 at line 1 column 38",
        ),
        (
            b'{"inputs":"hi","parameters":{"max_new_tokens":"20"}}',
            422,
            "Failed to deserialize the JSON body into the target type: parameters.max_new_tokens: "
            'invalid type: string "20", expected u32 at line 1 column 50',
        ),
        (
            b'{"inputs":"hi","parameters":{"top_k":1.0}}',
            422,
            "Failed to deserialize the JSON body into the target type: parameters.top_k: "
            "invalid type: floating point `1.0`, expected i32 at line 1 column 40",
        ),
        (
            b'{"parameters":{}}',
            422,
            "Failed to deserialize the JSON body into the target type: missing field `inputs` at line 1 column 16",
        ),
        (
            b'{"inputs": "hi",',
            400,
            "Failed to parse the request body as JSON: EOF while parsing an object at line 1 column 16",
        ),
        (b"not json", 400, "Failed to parse the request body as JSON: expected value at line 1 column 1"),
    ],
)
def test_body_errors_are_axums_plain_text(tgi, path, body, status, text):
    response = httpx.post(f"{tgi}{path}", content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.text) == (status, text)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_a_body_without_json_content_type_gets_415(tgi):
    response = httpx.post(f"{tgi}/generate", content=b'{"inputs":"hi"}')
    assert (response.status_code, response.text) == (415, "Expected request with `Content-Type: application/json`")


def test_a_body_over_the_payload_limit_gets_413(tgi):
    response = httpx.post(f"{tgi}/generate", json={"inputs": "x" * 3000})
    assert (response.status_code, response.text) == (413, "Failed to buffer the request body: length limit exceeded")


@pytest.fixture(scope="module")
def one_permit():
    with start_localtgi("--max-concurrent-requests", "1", "--token-rate", "40") as url:
        yield url


def test_no_free_permit_means_overloaded_without_waiting(one_permit):
    overloaded = fixture_error("no free concurrency permit")
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 20}}
    with httpx.stream("POST", f"{one_permit}/generate_stream", json=body) as busy:
        chunks = busy.iter_bytes()
        next(chunks)  # the permit is held while this stream runs
        refused = httpx.post(f"{one_permit}/generate", json=body)
        _, refused_stream = post_stream(one_permit, body)
        b"".join(chunks)
    assert (refused.status_code, refused.json()) == (429, overloaded)
    assert refused_stream == (TGI_FIXTURES / "derived" / "generate_stream_overloaded_error.sse").read_bytes()
    assert httpx.post(f"{one_permit}/generate", json=body).status_code == 200  # the permit came back


def test_overload_is_checked_before_validation(one_permit):
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 20}}
    with httpx.stream("POST", f"{one_permit}/generate_stream", json=body) as busy:
        chunks = busy.iter_bytes()
        next(chunks)
        refused = httpx.post(f"{one_permit}/generate", json={"inputs": "", "parameters": {"temperature": 0}})
        b"".join(chunks)
    assert refused.json()["error_type"] == "overloaded"


def test_disconnect_releases_the_permit(one_permit):
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 200}}
    short = {"inputs": "hi", "parameters": {"max_new_tokens": 1}}
    with raw_connection(one_permit, "/generate_stream", body, wait_for=b"data: "):
        pass
    for _ in range(40):  # the server notices the disconnect at once; allow for a busy machine
        status = httpx.post(f"{one_permit}/generate", json=short).status_code
        if status == 200:
            break
        time.sleep(0.05)
    assert status == 200
