"""localtgi's successful responses, byte for byte against TGI's wire format and fixtures."""

import json

import httpx
import pytest

from localtgi.engines.scripted import predicted_text
from tests.support.fixtures import TGI_FIXTURES, snapshot, sse_payloads
from tests.support.servers import start_localtgi
from tests.support.tgi_stream import data_payloads, events, post_stream, shape

MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture(scope="module")
def tgi():
    adapters = "therapist=/adapters/therapist,predibase/dbpedia"
    with start_localtgi("--model-id", MODEL_ID, "--lora-adapters", adapters) as url:
        yield url


def generate(tgi, inputs="I can't sleep", path="/generate", **parameters):
    response = httpx.post(f"{tgi}{path}", json={"inputs": inputs, "parameters": parameters}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_stream_events_have_the_fixture_framing_and_field_order(tgi):
    response, raw = post_stream(tgi, {"inputs": "Test request", "parameters": {"max_new_tokens": 10, "details": True}})
    ours = data_payloads(raw)
    theirs = sse_payloads("qwen2_generate_stream_details_true.sse")
    assert response.status_code == 200
    assert len(ours) == 10
    assert [shape(payload) for payload in ours] == [shape(payload) for payload in theirs]
    for payload in ours:  # compact JSON, raw UTF-8: what serde_json writes
        assert payload == json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False)
    assert [event["index"] for event in map(json.loads, ours)] == list(range(1, 11))


def test_final_event_details_are_null_unless_asked_for(tgi):
    _, raw = post_stream(tgi, {"inputs": "Test request", "parameters": {"max_new_tokens": 10}})
    ours = data_payloads(raw)
    theirs = sse_payloads("qwen2_generate_stream_details_false.sse")
    assert shape(ours[-1]) == shape(theirs[-1])
    assert json.loads(ours[-1])["details"] is None


def test_stream_headers_are_tgis(tgi):
    response, _ = post_stream(tgi, {"inputs": "héllo", "parameters": {"max_new_tokens": 3}})
    headers = response.headers
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert headers["x-compute-type"] == "gpu+optimized"
    assert headers["x-compute-characters"] == "5"
    assert "x-compute-time" not in headers and "content-length" not in headers


@pytest.mark.parametrize("parameters", [{}, {"do_sample": True, "seed": 11}, {"temperature": 0.7, "seed": 3}])
@pytest.mark.parametrize("max_new_tokens", [7, 40, 300])
def test_stream_concatenates_to_the_generate_text(tgi, parameters, max_new_tokens):
    parameters = {**parameters, "max_new_tokens": max_new_tokens, "details": True}
    body = generate(tgi, **parameters).json()
    _, raw = post_stream(tgi, {"inputs": "I can't sleep", "parameters": parameters})
    stream = events(raw)
    streamed_tokens = [event["token"] for event in stream]
    assert streamed_tokens == body["details"]["tokens"]
    assert "".join(t["text"] for t in streamed_tokens if not t["special"]) == body["generated_text"]
    assert stream[-1]["generated_text"] == body["generated_text"]
    assert stream[-1]["details"]["finish_reason"] == body["details"]["finish_reason"]
    assert stream[-1]["details"]["input_length"] == 4  # I / can / 't / sleep (Qwen2.5 tokens)


def test_multibyte_characters_arrive_split_like_tgis_detokenizer(tgi):
    tokens = generate(tgi, max_new_tokens=12, details=True).json()["details"]["tokens"]
    texts = [token["text"] for token in tokens]
    apostrophe = texts.index("’")  # 3 UTF-8 bytes: two empty tokens, then the whole character
    assert texts[apostrophe - 2 : apostrophe] == ["", ""]
    assert all(text == "" or text.isascii() or len(text) == 1 for text in texts)


def test_output_is_predictable_from_seed_and_max_new_tokens(tgi):
    greedy = generate(tgi, max_new_tokens=25).json()["generated_text"]
    sampled = generate(tgi, do_sample=True, seed=42, max_new_tokens=60).json()["generated_text"]
    assert greedy == predicted_text(0, 25)
    assert sampled == predicted_text(42, 60)
    assert generate(tgi, inputs="something else entirely", max_new_tokens=25).json()["generated_text"] == greedy


def test_generate_body_has_the_raw_tgi_shape(tgi):
    raw_snapshot = snapshot("test_lora_mistral", "test_lora_mistral_with_customer_support_adapter.json")
    plain = generate(tgi, max_new_tokens=5).text
    detailed = generate(tgi, max_new_tokens=5, details=True).text
    assert shape(plain) == (("generated_text", "str"),)
    keys = [key for key, _ in shape(detailed)]
    details_keys = [key for key, _ in dict(shape(detailed))["details"]]
    token_keys = [key for key, _ in dict(dict(shape(detailed))["details"])["tokens"][0]]
    assert keys == ["generated_text", "details"]
    assert details_keys == ["finish_reason", "generated_tokens", "seed", "prefill", "tokens"]
    assert sorted(details_keys) == sorted(raw_snapshot["details"])  # no best_of_sequences / top_tokens
    assert token_keys == ["id", "text", "logprob", "special"]
    assert json.loads(detailed)["details"]["prefill"] == []


def test_decoder_input_details_also_turns_details_on(tgi):
    assert json.loads(generate(tgi, max_new_tokens=3, decoder_input_details=True).text)["details"]["prefill"] == []


def test_eos_token_ends_the_reply_and_stays_out_of_the_text(tgi):
    details = generate(tgi, max_new_tokens=1000, details=True).json()
    tokens = details["details"]["tokens"]
    assert details["details"]["finish_reason"] == "eos_token"
    assert tokens[-1]["text"] == "<|im_end|>" and tokens[-1]["special"] is True
    assert details["details"]["generated_tokens"] == len(tokens)
    assert "<|im_end|>" not in details["generated_text"]
    assert all(token["logprob"] < 0 for token in tokens)


def test_stop_sequence_is_kept_in_the_text(tgi):
    full = predicted_text(0, 1000)
    body = generate(tgi, max_new_tokens=1000, stop=["yourself"], details=True).json()
    assert body["details"]["finish_reason"] == "stop_sequence"
    assert body["generated_text"].endswith("yourself")
    assert full.startswith(body["generated_text"])


def test_seed_is_reported_only_when_sampling(tgi):
    def seed(**parameters):
        return generate(tgi, max_new_tokens=2, details=True, **parameters).json()["details"]["seed"]

    assert seed() is None
    assert seed(seed=9) is None  # greedy: TGI reports no seed even when one was sent
    assert seed(do_sample=True, seed=9) == 9
    assert isinstance(seed(top_k=5), int)  # drawn by the server
    assert isinstance(seed(typical_p=0.5), int)


def test_a_body_without_parameters_samples_like_tgi(tgi):
    texts = {httpx.post(f"{tgi}/generate", json={"inputs": "hi"}).json()["generated_text"] for _ in range(5)}
    assert len(texts) > 1


def test_return_full_text_puts_the_prompt_in_front(tgi):
    body = generate(tgi, inputs="Prompt: ", max_new_tokens=4, return_full_text=True).json()
    _, raw = post_stream(tgi, {"inputs": "Prompt: ", "parameters": {"max_new_tokens": 4, "return_full_text": True}})
    assert body["generated_text"] == "Prompt: " + predicted_text(0, 4)
    assert events(raw)[-1]["generated_text"] == body["generated_text"]


def test_compat_route_answers_a_list_and_defaults_to_full_text(tgi):
    response = httpx.post(f"{tgi}/", json={"inputs": "Hi. ", "parameters": {"max_new_tokens": 4}})
    assert response.json() == [{"generated_text": "Hi. " + predicted_text(0, 4)}]
    streamed = {"inputs": "Hi. ", "stream": True, "parameters": {"max_new_tokens": 4}}
    with httpx.stream("POST", f"{tgi}/", json=streamed) as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        assert events(stream.read())[-1]["generated_text"] == "Hi. " + predicted_text(0, 4)


def test_generate_headers_carry_timings_and_token_counts(tgi):
    headers = generate(tgi, inputs="one two three", max_new_tokens=6).headers
    assert headers["content-type"] == "application/json"
    assert headers["x-prompt-tokens"] == "3"
    assert headers["x-generated-tokens"] == "6"
    assert headers["x-compute-characters"] == "13"
    for name in ("x-total-time", "x-validation-time", "x-queue-time", "x-inference-time", "x-time-per-token"):
        assert headers[name].isdigit()
    assert float(headers["x-compute-time"]) >= 0


def test_best_of_returns_the_other_sequences(tgi):
    body = generate(tgi, best_of=2, do_sample=True, max_new_tokens=8, details=True).json()
    others = body["details"]["best_of_sequences"]
    assert len(others) == 1
    assert [key for key, _ in shape(json.dumps(others[0]))] == [
        "generated_text",
        "finish_reason",
        "generated_tokens",
        "seed",
        "prefill",
        "tokens",
    ]


def test_known_adapter_is_accepted(tgi):
    assert generate(tgi, adapter_id="therapist", max_new_tokens=2).json()["generated_text"]
    assert generate(tgi, adapter_id="predibase/dbpedia", max_new_tokens=2).json()["generated_text"]


def test_unknown_body_fields_are_ignored(tgi):
    body = {"inputs": "hi", "extra": 1, "parameters": {"max_new_tokens": 2, "nope": "x"}}
    response = httpx.post(f"{tgi}/generate", json=body)
    assert response.status_code == 200


def test_info_reports_the_flags_in_tgis_field_order(tgi):
    response = httpx.get(f"{tgi}/info")
    info = response.json()
    example = json.loads((TGI_FIXTURES / "derived" / "info_example.json").read_text())
    assert list(info) == list(example)
    assert info["model_id"] == MODEL_ID
    assert (info["max_input_tokens"], info["max_total_tokens"]) == (4095, 4096)
    assert (info["max_concurrent_requests"], info["max_best_of"], info["max_stop_sequences"]) == (128, 2, 4)
    assert info["router"] == "text-generation-router"


def test_health_is_an_empty_200(tgi):
    for path in ("/health", "/ping", "/"):
        response = httpx.get(f"{tgi}{path}")
        assert (response.status_code, response.content) == (200, b"")


def test_unknown_routes_get_an_empty_404(tgi):
    response = httpx.get(f"{tgi}/nothing-here")
    assert (response.status_code, response.content) == (404, b"")
