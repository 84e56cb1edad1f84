"""The AI disclosure: in the system prompt the model reads, on the chat page, and, when the operator
turns it on, as the first text of every new conversation on every face."""

from __future__ import annotations

import httpx
import openai
import pytest

from proxy.settings import DEFAULT_AI_DISCLOSURE, DEFAULT_SYSTEM_PROMPT
from tests.support.chat_stream import stream_chat
from tests.support.recording_relay import recording_relay
from tests.support.servers import start_localtgi, start_proxy

MODEL = "qwen_therapist_lora"
DISCLOSURE = "You are chatting with an AI & <it> is no clinician."


@pytest.fixture(scope="module")
def stack():
    with start_localtgi("--lora-adapters", MODEL, "--token-rate", "400") as tgi_url:
        with recording_relay(tgi_url) as relay:
            # (crisis care off: this is about the disclosure alone)
            with start_proxy(
                relay.url, ai_disclosure=DISCLOSURE, ai_disclosure_notice="true", safety_policy="off"
            ) as proxy_url:
                yield relay, proxy_url


def test_the_default_system_prompt_is_a_companion_not_a_therapist():
    assert "AI companion" in DEFAULT_SYSTEM_PROMPT and "not a therapist" in DEFAULT_SYSTEM_PROMPT
    assert "You are a warm, compassionate therapist" not in DEFAULT_SYSTEM_PROMPT
    assert "not a person" in DEFAULT_AI_DISCLOSURE and "licensed professional" in DEFAULT_AI_DISCLOSURE


def test_a_new_conversation_starts_with_the_disclosure_and_the_model_is_told_it(stack):
    relay, proxy_url = stack
    stream = stream_chat(proxy_url, {"message": "hello", "max_tokens": 3})
    first = stream.events[0]
    assert first == {"token": DISCLOSURE + "\n\n", "done": False, "notice": "ai_disclosure"}
    assert all("notice" not in event for event in stream.events[1:])
    prompt = relay.requests("/generate_stream")[-1]["inputs"]
    assert f'The person has been told: "{DISCLOSURE}"' in prompt.split("<|im_end|>")[0]


def test_a_conversation_under_way_gets_no_second_disclosure(stack):
    _, proxy_url = stack
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi, I'm here."}]
    stream = stream_chat(proxy_url, {"message": "thanks", "conversation_history": history, "max_tokens": 3})
    assert all("notice" not in event for event in stream.events)


def test_the_openai_faces_carry_the_disclosure_first_too(stack):
    _, proxy_url = stack
    client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert completion.choices[0].message.content.startswith(DISCLOSURE + "\n\n")
    response = client.responses.create(model=MODEL, input="hi", max_output_tokens=3)
    assert response.output_text.startswith(DISCLOSURE + "\n\n")


def test_the_page_shows_the_operators_disclosure_escaped(stack):
    _, proxy_url = stack
    page = httpx.get(f"{proxy_url}/").text
    assert "You are chatting with an AI &amp; &lt;it&gt; is no clinician." in page
    assert "{{" not in page
