"""The vLLM client: its wire reading, the body it sends (held to vLLM 0.34's CompletionRequest), and,
against a live localvllm, an adapter the server does not serve."""

from __future__ import annotations

import time

import httpx
import pytest

from proxy.core.chat import Sampling
from proxy.core.errors import (
    AdapterNotServed,
    UpstreamGenerationFailed,
    UpstreamMisconfigured,
    UpstreamOverloaded,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from proxy.upstream.vllm.parameters import completion_body
from proxy.upstream.vllm.wire import Chunk, chunk_of, error_for_status, plain_text
from tests.support.chat_stream import stream_chat
from tests.support.recording_relay import recording_relay
from tests.support.servers import start_localvllm, start_proxy
from tests.support.stack import MODEL_NAME, start_upstream, upstream_args

# The fields of vLLM 0.34's CompletionRequest (vllm/entrypoints/openai/completion/protocol.py:52-295,
# docs/wire-vllm.md §1): a body field outside them would be ignored there, silently.
COMPLETION_REQUEST_FIELDS = frozenset({
    "model", "prompt", "echo", "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "max_tokens", "n",
    "seed", "stop", "stream", "stream_options", "suffix", "temperature", "top_p", "user", "use_beam_search", "top_k",
    "min_p", "repetition_penalty", "stop_token_ids", "include_stop_str_in_output", "ignore_eos", "min_tokens",
    "skip_special_tokens", "spaces_between_special_tokens", "truncate_prompt_tokens", "truncation_side",
    "add_special_tokens", "priority", "request_id", "return_token_ids",
})  # fmt: skip
INT64 = 2**63


@pytest.mark.parametrize(
    "sampling",
    [
        Sampling(512, 0.7, 0.9),
        Sampling(1, 0.0, 0.5, seed=3),
        Sampling(2048, 1.0, 1.0, seed=2**64 - 1, stop=("a", "b", "c")),
        Sampling(16, 5e-324, 0.0),
        Sampling(16, 0.3, 5e-324, seed=0),
    ],
)
def test_the_body_is_one_vllm_accepts(sampling):
    body = completion_body("<|im_start|>user\nhi<|im_end|>\n", sampling, MODEL_NAME)
    assert set(body) <= COMPLETION_REQUEST_FIELDS
    assert body["model"] == MODEL_NAME and body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert 0.0 <= body["temperature"] <= 2.0  # vllm/sampling_params.py:660-677
    assert 0.0 < body["top_p"] <= 1.0  # :678-683
    assert body["top_k"] in (0, -1) or body["top_k"] >= 1
    assert body["max_tokens"] >= 1 and len(body["stop"]) <= 4 and "" not in body["stop"]
    if "seed" in body:
        assert -INT64 <= body["seed"] < INT64
    if sampling.greedy or sampling.top_p == 0.0:
        assert body["temperature"] == 0.0 and body["top_p"] == 1.0


def test_chunks_are_read_into_text_finish_and_usage():
    assert chunk_of('{"choices":[{"index":0,"text":"Hi","finish_reason":null}]}') == Chunk("Hi")
    assert chunk_of('{"choices":[{"text":"","finish_reason":"length"}]}') == Chunk("", "length")
    assert chunk_of('{"choices":[{"text":".","finish_reason":"stop","stop_reason":null}]}') == Chunk(".", "stop")
    usage = '{"choices":[],"usage":{"prompt_tokens":7,"total_tokens":10,"completion_tokens":3}}'
    assert chunk_of(usage) == Chunk("", usage=(7, 3))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ('{"error": {"message": "boom", "type": "InternalServerError", "param": null, "code": 500}}',
         UpstreamGenerationFailed),
        ('{"choices":[{"text":"","finish_reason":"abort"}]}', UpstreamGenerationFailed),
        ("{not json", UpstreamProtocolError),
        ('{"choices":"x"}', UpstreamProtocolError),
        ('{"choices":[],"usage":{"prompt_tokens":"many"}}', UpstreamProtocolError),
    ],
)  # fmt: skip
def test_failures_in_the_stream_are_typed(data, error):
    with pytest.raises(error):
        chunk_of(data)


def _error(status: int, message: str, kind: str, param: str | None = None) -> str:
    return httpx.Response(status, json={"error": {"message": message, "type": kind, "param": param,
                                                  "code": status}}).text  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, _error(400, "This model's maximum context length is 400 tokens.", "BadRequestError", "input_tokens"),
         UpstreamRejected),
        (404, _error(404, "The model `x` does not exist.", "NotFoundError", "model"), AdapterNotServed),
        (401, '{"error": "Unauthorized"}', UpstreamMisconfigured),
        (503, _error(503, "The engine is currently busy", "Service Unavailable"), UpstreamOverloaded),
        (503, _error(503, "try again", "ServiceUnavailableError"), UpstreamUnavailable),
        (500, _error(500, "The server had an error", "InternalServerError"), UpstreamGenerationFailed),
        (302, "", UpstreamProtocolError),
    ],
)  # fmt: skip
def test_statuses_map_onto_the_error_tree(status, body, error):
    assert type(error_for_status(status, body)) is error


def test_an_adapter_vllm_does_not_serve_is_found_at_start_up_and_never_served_by_the_base_model(tmp_path):
    log_file = tmp_path / "proxy.log"
    with start_localvllm("--engine", "scripted") as vllm_url:  # no LoRA: it serves its base model only
        with start_proxy(vllm_url, engine="vllm", log_file=log_file) as proxy_url:
            deadline = time.monotonic() + 10
            while "does not match" not in log_file.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            startup_log = log_file.read_text()  # before any request but the readiness probe
            health = httpx.get(f"{proxy_url}/health")
            refused = stream_chat(proxy_url, {"message": "hi", "max_tokens": 3})
            stats = httpx.get(f"{vllm_url}/_localvllm/stats").json()
    assert "does not serve the LoRA adapter 'qwen_therapist_lora'" in startup_log
    assert health.status_code == 503 and "--lora-modules qwen_therapist_lora=" in health.json()["detail"]
    assert refused.status == 503 and "PROXY_ADAPTER_ID" in refused.body.decode()
    assert stats["started"] == 0  # vLLM answered 404; nothing was generated by the base model instead


def test_asking_for_the_base_model_uses_the_name_vllm_lists():
    with start_localvllm("Qwen/Qwen3-8B", "--engine", "scripted") as vllm_url:
        with recording_relay(vllm_url) as relay:
            with start_proxy(relay.url, engine="vllm", adapter_id="") as proxy_url:
                result = stream_chat(proxy_url, {"message": "hi", "max_tokens": 3})
    assert result.status == 200 and result.final["finish_reason"] == "length"
    assert relay.requests("/v1/completions")[-1]["model"] == "Qwen/Qwen3-8B"


def test_both_engines_get_the_same_sampling_for_the_same_request():
    body = {"message": "I feel anxious", "max_tokens": 9, "temperature": 0.4, "top_p": 0.8, "seed": 12}
    sent = {}
    for engine, path in (("tgi", "/generate_stream"), ("vllm", "/v1/completions")):
        with start_upstream(engine, *upstream_args(engine)) as upstream_url, recording_relay(upstream_url) as relay:
            with start_proxy(relay.url, engine=engine) as proxy_url:
                assert stream_chat(proxy_url, body).status == 200
            sent[engine] = relay.requests(path)[-1]
    tgi, vllm = sent["tgi"], sent["vllm"]
    assert vllm["prompt"] == tgi["inputs"]
    parameters = tgi["parameters"]
    assert (vllm["max_tokens"], vllm["temperature"], vllm["top_p"], vllm["seed"]) == (
        parameters["max_new_tokens"], parameters["temperature"], parameters["top_p"], parameters["seed"]
    )  # fmt: skip
    assert vllm["model"] == parameters["adapter_id"] == MODEL_NAME


def test_the_fast_reading_of_a_middle_chunk_agrees_with_the_full_parse():
    middle = (
        '{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,'
        '"text":"caf\\u00e9 \\"quoted\\"","logprobs":null,"finish_reason":null,"stop_reason":null}]}'
    )

    assert plain_text(middle) == chunk_of(middle).text == 'café "quoted"'
    last = middle.replace('"finish_reason":null', '"finish_reason":"length"')
    assert plain_text(last) is None and chunk_of(last) == Chunk('café "quoted"', "length")
    assert plain_text('{"error": {"message": "x"}}') is None
    assert plain_text('{"choices":[],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1}}') is None
