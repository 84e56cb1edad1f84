"""The official openai SDK against a live proxy on localtgi: Chat Completions, Responses, models."""

from __future__ import annotations

import httpx
import openai
import pytest

from localtgi.engines.scripted import predicted_text
from tests.support.servers import start_localtgi, start_proxy

MODEL = "qwen_therapist_lora"
KEY = "tk-openai-0123456789"
ASK = [{"role": "user", "content": "I feel anxious about tomorrow."}]


def client(proxy_url: str, key: str = "unused") -> openai.OpenAI:
    # No retries: a test must see the first answer, and the SDK retries 5xx and 429 by default.
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=key, max_retries=0)


def started(tgi_url: str) -> int:
    return httpx.get(f"{tgi_url}/_localtgi/stats").json()["started"]


@pytest.fixture(scope="module")
def stack():
    with start_localtgi("--lora-adapters", MODEL, "--token-rate", "400") as tgi_url:
        with start_proxy(tgi_url) as proxy_url:
            yield tgi_url, proxy_url


@pytest.fixture(scope="module")
def failing():
    """localtgi failing every generation after 3 tokens."""
    with start_localtgi("--lora-adapters", MODEL, "--fail-after", "3") as tgi_url:
        with start_proxy(tgi_url) as proxy_url:
            yield proxy_url


def test_chat_completion_whole(stack):
    _, proxy_url = stack
    completion = client(proxy_url).chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, seed=3)
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.id.startswith("chatcmpl-")
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == predicted_text(3, 8)
    assert choice.finish_reason == "length"
    usage = completion.usage
    assert usage.completion_tokens == 8 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_completion_stream(stack, include_usage):
    _, proxy_url = stack
    options = {"include_usage": True} if include_usage else None
    chunks = list(client(proxy_url).chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=300, seed=5, stream=True, stream_options=options,
    ))  # fmt: skip
    assert {chunk.id for chunk in chunks} == {chunks[0].id} and chunks[0].id.startswith("chatcmpl-")
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == MODEL for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [chunk for chunk in chunks if chunk.choices]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in with_choices)
    assert text == predicted_text(5, 300)  # the whole scripted reply: it ends on its own
    assert [chunk.choices[0].finish_reason for chunk in with_choices].count("stop") == 1
    assert with_choices[-1].choices[0].finish_reason == "stop"
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    else:
        assert all(chunk.usage is None for chunk in chunks)


def test_responses_whole_and_incomplete_at_the_token_limit(stack):
    _, proxy_url = stack
    response = client(proxy_url).responses.create(model=MODEL, input="I feel anxious.", max_output_tokens=6)
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text and response.output[0].role == "assistant"
    assert response.usage.output_tokens == 6
    assert response.usage.total_tokens == response.usage.input_tokens + 6


def test_responses_stream_sequence(stack):
    _, proxy_url = stack
    items = [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}]
    events = list(client(proxy_url).responses.create(model=MODEL, input=items, max_output_tokens=300, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    ]  # fmt: skip
    assert kinds[-4:] == [
        "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert events[-1].response.output_text == deltas == events[-4].text
    assert events[-1].response.status == "completed"


def test_responses_stream_helper_gives_the_final_response(stack):
    _, proxy_url = stack
    with client(proxy_url).responses.stream(model=MODEL, input="Hello", max_output_tokens=300) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text


def test_models_list_and_retrieve(stack):
    _, proxy_url = stack
    models = client(proxy_url).models.list()
    assert [model.id for model in models] == [MODEL]
    assert client(proxy_url).models.retrieve(MODEL).owned_by == "therapist-streaming"
    with pytest.raises(openai.NotFoundError):
        client(proxy_url).models.retrieve("gpt-4o")


def test_unknown_model_is_404_and_nothing_reaches_the_model(stack):
    tgi_url, proxy_url = stack
    before = started(tgi_url)
    with pytest.raises(openai.NotFoundError) as caught:
        client(proxy_url).chat.completions.create(model="gpt-4o", messages=ASK)
    assert caught.value.code == "model_not_found" and caught.value.type == "invalid_request_error"
    assert started(tgi_url) == before


@pytest.mark.parametrize(
    ("call", "error", "param"),
    [
        (lambda c: c.chat.completions.create(model=MODEL, messages=ASK, n=2), openai.BadRequestError, "n"),
        (lambda c: c.chat.completions.create(model=MODEL, messages=ASK, temperature=2.5),
         openai.UnprocessableEntityError, "temperature"),
        (lambda c: c.chat.completions.create(model=MODEL, messages=[{"role": "assistant", "content": "hi"}]),
         openai.UnprocessableEntityError, "messages.0.content"),
        (lambda c: c.chat.completions.create(model=MODEL, messages=ASK, tools=[{"type": "function", "function": {
            "name": "f"}}]), openai.BadRequestError, "tools"),
        (lambda c: c.chat.completions.create(model=MODEL, messages=ASK, max_tokens=100_000),
         openai.UnprocessableEntityError, "max_tokens"),
        (lambda c: c.responses.create(model=MODEL, input="hi", previous_response_id="resp_1"),
         openai.BadRequestError, "previous_response_id"),
        (lambda c: c.responses.create(model=MODEL, input="hi", store=True), openai.BadRequestError, "store"),
        (lambda c: c.responses.create(model=MODEL, input=[{"type": "function_call_output", "call_id": "c",
                                                           "output": "x"}]), openai.BadRequestError, "input.0"),
    ],
    ids=["n", "temperature", "last message not the user's", "tools", "max_tokens", "previous_response_id", "store",
         "non-message item"],
)  # fmt: skip
def test_invalid_or_unsupported_input_is_refused_before_the_model(stack, call, error, param):
    tgi_url, proxy_url = stack
    before = started(tgi_url)
    with pytest.raises(error) as caught:
        call(client(proxy_url))
    assert caught.value.param == param and caught.value.message
    assert started(tgi_url) == before


def test_a_mid_stream_failure_raises_in_the_sdk_rather_than_ending_the_text(failing):
    chat = client(failing).chat.completions.create(model=MODEL, messages=ASK, max_tokens=50, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in chat:
            received.append(chunk)
    assert caught.value.type == "server_error" and caught.value.code == "generation"
    assert not any(chunk.choices and chunk.choices[0].finish_reason for chunk in received)

    events = list(client(failing).responses.create(model=MODEL, input="hi", max_output_tokens=50, stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
    assert events[-1].response.error.code == "server_error"
    with pytest.raises(RuntimeError, match="response.completed"):  # the SDK's helper refuses to call it done
        with client(failing).responses.stream(model=MODEL, input="hi", max_output_tokens=50) as stream:
            stream.get_final_response()


def test_a_failure_without_streaming_is_a_server_error(failing):
    with pytest.raises(openai.InternalServerError) as caught:
        client(failing).chat.completions.create(model=MODEL, messages=ASK, max_tokens=50)
    assert caught.value.status_code == 502 and caught.value.code == "generation"
    with pytest.raises(openai.InternalServerError):
        client(failing).responses.create(model=MODEL, input="hi", max_output_tokens=50)


def test_keys_the_sdk_sends_are_checked():
    with start_localtgi("--lora-adapters", MODEL) as tgi_url:
        with start_proxy(tgi_url, api_keys=KEY) as proxy_url:
            with pytest.raises(openai.AuthenticationError) as caught:
                client(proxy_url, "wrong").models.list()
            assert caught.value.type == "authentication_error" and caught.value.code == "unauthorized"
            with pytest.raises(openai.AuthenticationError):
                client(proxy_url, "wrong").chat.completions.create(model=MODEL, messages=ASK, stream=True)
            reply = client(proxy_url, KEY).chat.completions.create(model=MODEL, messages=ASK, max_tokens=3)
            assert reply.choices[0].finish_reason == "length"
