"""The chat service's seams, with a real TGI client against a real localtgi: policies may refuse, add a
notice, or answer without the model, and whatever a policy holds comes back however the request ends."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from proxy.core.chat import ChatInput, Notice, Sampling, StreamEnd
from proxy.core.errors import TooManyStreams, UpstreamUnavailable
from proxy.observability.health import HealthTracker
from proxy.observability.metrics import ProxyMetrics
from proxy.observability.request_context import RequestContext
from proxy.policies import Admission
from proxy.policies.stream_slots import StreamSlots
from proxy.service.chat_service import ChatService
from proxy.service.chat_template import ChatTemplate
from proxy.service.prompt import PromptBuilder
from proxy.settings import load_settings
from proxy.upstream.tgi.client import TGIClient
from tests.support.servers import free_port, start_localtgi

CHAT = ChatInput(history=(), message="I feel anxious", sampling=Sampling(max_tokens=4, temperature=0.0, top_p=1.0))
RESOURCES = Notice("crisis_resources", "You can call or text 988 at any time.")


class AnswerWithoutModel:
    def admit(self, admission: Admission) -> None:
        admission.answer_without_model(RESOURCES)


class NoticeFirst:
    def admit(self, admission: Admission) -> None:
        admission.notices.append(RESOURCES)


class Refuse:
    def admit(self, admission: Admission) -> None:
        raise TooManyStreams("refused by policy")


@pytest.fixture(scope="module")
def tgi_url():
    with start_localtgi("--engine", "scripted", "--lora-adapters", "qwen_therapist_lora") as url:
        yield url


def started(tgi_url: str) -> int:
    return httpx.get(f"{tgi_url}/_localtgi/stats").json()["started"]


def run(tgi_url: str, policies: list, api_key_id: str | None = None) -> list:
    """Start one stream through a service with `policies` and read all its events."""

    async def main() -> list:
        upstream = TGIClient(load_settings(tgi_url=tgi_url))
        service = ChatService(policies, PromptBuilder(ChatTemplate(), "Be kind.", None), upstream,
                              HealthTracker(upstream), ProxyMetrics())  # fmt: skip
        try:
            stream = await service.start(CHAT, RequestContext("test", api_key_id=api_key_id))
            return [event async for event in stream.events]
        finally:
            await upstream.aclose()

    return asyncio.run(main())


def test_a_policy_can_answer_without_the_model(tgi_url):
    before = started(tgi_url)
    events = run(tgi_url, [AnswerWithoutModel()])
    assert events == [RESOURCES, StreamEnd("stop", None, 0)]
    assert started(tgi_url) == before  # no generation was asked for


def test_a_notice_goes_first_then_the_models_reply(tgi_url):
    before = started(tgi_url)
    events = run(tgi_url, [NoticeFirst()])
    assert events[0] == RESOURCES
    assert all(type(event) is str for event in events[1:-1]) and len(events) > 2
    assert events[-1].finish_reason == "length" and events[-1].completion_tokens == 4
    assert started(tgi_url) == before + 1


def test_a_refusal_gives_back_what_earlier_policies_took(tgi_url):
    slots = StreamSlots(per_key=1)
    with pytest.raises(TooManyStreams, match="refused by policy"):
        run(tgi_url, [slots, Refuse()], api_key_id="k1")
    assert run(tgi_url, [slots], api_key_id="k1")[-1].finish_reason == "length"  # the slot came back


def test_an_upstream_failure_before_the_first_token_gives_the_slot_back():
    slots = StreamSlots(per_key=1)
    nothing_there = f"http://127.0.0.1:{free_port()}"
    for _ in range(2):  # the second would be refused if the first had kept its slot
        with pytest.raises(UpstreamUnavailable):
            run(nothing_there, [slots], api_key_id="k1")
