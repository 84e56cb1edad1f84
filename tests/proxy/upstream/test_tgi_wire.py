"""The proxy's parser of TGI /generate_stream payloads, checked against TGI's own output shapes."""

import json

import pytest

from proxy.core.errors import UpstreamGenerationFailed, UpstreamOverloaded, UpstreamProtocolError, UpstreamRejected
from proxy.upstream.tgi.wire import parse_stream_event
from tests.support.fixtures import snapshot, sse_payloads


def test_token_events_parse_in_order_and_final_carries_details():
    events = [parse_stream_event(p) for p in sse_payloads("qwen2_generate_stream_details_true.sse")]
    expected_tokens = snapshot("test_flash_qwen2", "test_flash_qwen2.json")["details"]["tokens"]
    assert [e.token.text for e in events] == [t["text"] for t in expected_tokens]
    assert [e.index for e in events] == list(range(1, 11))
    assert [e.is_final for e in events] == [False] * 9 + [True]
    final = events[-1]
    assert final.generated_text == "\n# Create a request\nrequest = requests.get"
    assert final.details.finish_reason.value == "length"
    assert final.details.generated_tokens == 10
    assert final.details.input_length == 2


def test_final_event_without_details():
    events = [parse_stream_event(p) for p in sse_payloads("qwen2_generate_stream_details_false.sse")]
    assert events[-1].is_final and events[-1].details is None


def test_old_tgi_framing_without_space_is_the_same_payload():
    # TGI < 2.1 wrote `data:{...}`; the SSE decoder strips the optional space, the parser sees the JSON.
    payload = sse_payloads("qwen2_generate_stream_details_false.sse")[0]
    assert parse_stream_event(payload).token.id == 198


def test_special_eos_token_with_null_logprob():
    # starcoder_gptq snapshot: EOS has special=true and logprob null (NaN on the wire)
    eos = snapshot("test_flash_starcoder_gptq", "test_flash_starcoder_gptq.json")["details"]["tokens"][-1]
    event = {"index": 3, "token": eos, "generated_text": "x", "details": None}
    parsed = parse_stream_event(json.dumps(event))
    assert parsed.token.special and parsed.token.logprob is None and parsed.token.text == "<|endoftext|>"


@pytest.mark.parametrize(
    ("fixture", "error_type"),
    [
        ("generate_stream_overloaded_error.sse", UpstreamOverloaded),
        ("generate_stream_validation_error.sse", UpstreamRejected),
    ],
)
def test_error_events_raise_typed_errors(fixture, error_type):
    (payload,) = sse_payloads(fixture)
    with pytest.raises(error_type) as caught:
        parse_stream_event(payload)
    assert caught.value.message == json.loads(payload)["error"]


def test_generation_error_event():
    payload = '{"error":"Request failed during generation: CUDA OOM","error_type":"generation"}'
    with pytest.raises(UpstreamGenerationFailed, match="CUDA OOM"):
        parse_stream_event(payload)


@pytest.mark.parametrize("payload", ["not json", "[1,2]", '{"token": 5}', '{"error": 3}'])
def test_garbage_is_a_protocol_error(payload):
    with pytest.raises(UpstreamProtocolError):
        parse_stream_event(payload)
