"""Crisis care through the live proxy on every face (/stream_chat, Chat Completions, Responses), under
each PROXY_SAFETY_POLICY: what the person sees, what the model is asked, what is counted and logged."""

from __future__ import annotations

import contextlib
import json

import httpx
import openai
import pytest

from localtgi.engines.scripted import predicted_text
from tests.support.chat_stream import stream_chat
from tests.support.servers import start_localtgi, start_proxy

MODEL = "qwen_therapist_lora"
AT_RISK = "I can't do this anymore. I'm going to kill myself tonight."
ORDINARY = "Work was long today and I'm tired, but the walk home helped."
SEED, TOKENS = 7, 6
REPLY = predicted_text(SEED, TOKENS)


@pytest.fixture(scope="module")
def tgi_url():
    with start_localtgi("--lora-adapters", MODEL, "--token-rate", "400") as url:
        yield url


@pytest.fixture(scope="module")
def proxies(tgi_url, tmp_path_factory):
    """One proxy per policy, all in front of the same localtgi, each with its log kept."""
    logs = tmp_path_factory.mktemp("logs")
    started = {}
    with contextlib.ExitStack() as stack:
        for policy in ("prepend", "block", "annotate", "off"):
            log = logs / f"{policy}.log"
            started[policy] = (stack.enter_context(start_proxy(tgi_url, log_file=log, safety_policy=policy)), log)
        yield started


def url(proxies, policy: str) -> str:
    return proxies[policy][0]


def generations(tgi_url: str) -> int:
    return httpx.get(f"{tgi_url}/_localtgi/stats").json()["started"]


def ask_stream_chat(proxy_url: str, message: str):
    body = {"message": message, "max_tokens": TOKENS, "seed": SEED}
    stream = stream_chat(proxy_url, body)
    assert stream.status == 200
    return stream


def sdk(proxy_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="unused", max_retries=0)


def chat_completion_stream(proxy_url: str, message: str) -> tuple[str, list]:
    messages = [{"role": "user", "content": message}]
    chunks = list(sdk(proxy_url).chat.completions.create(model=MODEL, messages=messages, max_tokens=TOKENS, seed=SEED,
                                                         stream=True))  # fmt: skip
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    return text, chunks


def responses_stream(proxy_url: str, message: str) -> tuple[str, dict]:
    """(The Responses API has no seed: its reply is the scripted model's, but not a predicted one.)"""
    events = list(sdk(proxy_url).responses.create(model=MODEL, input=message, max_output_tokens=TOKENS, stream=True))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response.model_dump()
    return text, final


def referrals(proxy_url: str, policy: str, category: str = "suicide") -> float:
    metrics = httpx.get(f"{proxy_url}/metrics").text
    wanted = f'proxy_crisis_referrals_total{{category="{category}",policy="{policy}"}} '
    lines = [line for line in metrics.splitlines() if line.startswith(wanted)]
    return float(lines[0].split()[-1]) if lines else 0.0


# prepend: the resources first, then the model's reply, on every face


def test_prepend_on_stream_chat_sends_the_resources_first_then_the_reply(proxies):
    stream = ask_stream_chat(url(proxies, "prepend"), AT_RISK)
    first, *rest = stream.events
    assert first["notice"] == "crisis_resources" and "988" in first["token"] and "911" in first["token"]
    assert "".join(e["token"] for e in rest if not e["done"]) == REPLY
    assert all("notice" not in e for e in rest)
    assert stream.final["safety"] == {"flagged": True, "category": "suicide"}
    assert stream.final["finish_reason"] == "length"


def test_prepend_on_chat_completions_puts_the_resources_before_the_reply(proxies):
    text, chunks = chat_completion_stream(url(proxies, "prepend"), AT_RISK)
    resources, _, reply = text.partition("\n\n")
    assert "988" in resources and reply == REPLY
    last = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason][0]
    assert last.model_extra["safety"] == {"flagged": True, "category": "suicide"}


def test_prepend_on_responses_puts_the_resources_in_the_output_text(proxies):
    text, response = responses_stream(url(proxies, "prepend"), AT_RISK)
    resources, _, reply = text.partition("\n\n")
    assert "988" in resources and reply
    assert response["safety"] == {"flagged": True, "category": "suicide"}
    assert response["output"][0]["content"][0]["text"] == text


def test_prepend_answers_whole_replies_the_same(proxies):
    completion = sdk(url(proxies, "prepend")).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": AT_RISK}], max_tokens=TOKENS, seed=SEED)  # fmt: skip
    content = completion.choices[0].message.content
    assert "988" in content.partition("\n\n")[0] and content.endswith(REPLY)
    assert completion.model_extra["safety"] == {"flagged": True, "category": "suicide"}
    response = sdk(url(proxies, "prepend")).responses.create(model=MODEL, input=AT_RISK, max_output_tokens=TOKENS)
    assert "988" in response.output_text and response.model_extra["safety"]["flagged"] is True


def test_prepend_adds_nothing_to_an_ordinary_message(proxies):
    stream = ask_stream_chat(url(proxies, "prepend"), ORDINARY)
    assert stream.text == REPLY and all("notice" not in e for e in stream.events)
    assert stream.final["safety"] == {"flagged": False, "category": None}


# block: only the resources; the model is never asked


def test_block_answers_with_the_resources_alone_and_asks_the_model_nothing(proxies, tgi_url):
    proxy_url = url(proxies, "block")
    before = generations(tgi_url)
    stream = ask_stream_chat(proxy_url, AT_RISK)
    text, chunks = chat_completion_stream(proxy_url, AT_RISK)
    output, response = responses_stream(proxy_url, AT_RISK)
    assert generations(tgi_url) == before  # not one generation for the three
    (notice, final) = stream.events
    assert notice["notice"] == "crisis_resources" and "988" in notice["token"]
    assert final["safety"] == {"flagged": True, "category": "suicide"} and final["finish_reason"] == "stop"
    assert text == notice["token"] == output
    assert response["safety"] == {"flagged": True, "category": "suicide"} and response["status"] == "completed"


def test_block_lets_an_ordinary_message_through_to_the_model(proxies, tgi_url):
    before = generations(tgi_url)
    stream = ask_stream_chat(url(proxies, "block"), ORDINARY)
    assert stream.text == REPLY and generations(tgi_url) == before + 1
    assert stream.final["safety"] == {"flagged": False, "category": None}


# annotate and off


def test_annotate_flags_without_adding_anything(proxies):
    stream = ask_stream_chat(url(proxies, "annotate"), AT_RISK)
    assert stream.text == REPLY and all("notice" not in e for e in stream.events)
    assert stream.final["safety"] == {"flagged": True, "category": "suicide"}
    text, chunks = chat_completion_stream(url(proxies, "annotate"), AT_RISK)
    assert text == REPLY


def test_off_adds_nothing_at_all(proxies):
    stream = ask_stream_chat(url(proxies, "off"), AT_RISK)
    assert stream.text == REPLY and "safety" not in stream.final
    text, chunks = chat_completion_stream(url(proxies, "off"), AT_RISK)
    assert text == REPLY and all("safety" not in (chunk.model_extra or {}) for chunk in chunks)
    output, response = responses_stream(url(proxies, "off"), AT_RISK)
    assert "988" not in output and "safety" not in response
    assert "proxy_crisis_referrals_total{" not in httpx.get(f"{url(proxies, 'off')}/metrics").text


# what is counted, and what is never logged


def test_the_referral_counter_moves_by_category_and_policy(proxies):
    for policy in ("prepend", "block"):
        proxy_url = url(proxies, policy)
        before = referrals(proxy_url, policy)
        ask_stream_chat(proxy_url, AT_RISK)
        ask_stream_chat(proxy_url, ORDINARY)
        assert referrals(proxy_url, policy) == before + 1
    annotate = url(proxies, "annotate")
    ask_stream_chat(annotate, AT_RISK)
    assert referrals(annotate, "annotate") == 0  # flagged, counted as a flag, but nobody was referred
    assert 'proxy_safety_flags_total{category="suicide",policy="annotate"}' in httpx.get(f"{annotate}/metrics").text


def test_no_log_line_carries_the_message_text_flagged_or_not(proxies):
    for policy, (proxy_url, log) in proxies.items():
        ask_stream_chat(proxy_url, AT_RISK)
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert lines, f"the {policy} proxy logged nothing"
        text = log.read_text()
        for fragment in ("kill myself", "can't do this", "walk home"):
            assert fragment not in text
        streams = [line for line in lines if line.get("route") == "/stream_chat" and "tokens_sent" in line]
        if policy != "off":
            assert {line.get("safety") for line in streams} >= {"suicide"}


def test_spanish_gets_the_resources_in_spanish(proxies):
    stream = ask_stream_chat(url(proxies, "prepend"), "Ya no aguanto más, esta noche me voy a quitar la vida.")
    notice = stream.events[0]
    assert notice["notice"] == "crisis_resources" and "988" in notice["token"] and "marca 2" in notice["token"]
