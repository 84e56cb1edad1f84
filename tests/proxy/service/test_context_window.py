"""Long conversations: the oldest turns go first, the system prompt and latest message stay."""

import json

import httpx
import pytest

from adapters import bundled_qwen_tokenizer_path
from proxy.core.chat import Turn
from proxy.core.errors import PromptTooLong
from proxy.service.chat_template import ChatTemplate, conversation_turns
from proxy.service.context_window import fit_conversation, surely_fits
from proxy.service.tokenizer import PromptTokenizer
from proxy.upstream import ContextLimits
from tests.support.chat_stream import stream_chat


@pytest.fixture(scope="module")
def tokenizer():
    return PromptTokenizer.from_file(bundled_qwen_tokenizer_path())


def history(exchanges: int) -> list[Turn]:
    turns = []
    for n in range(exchanges):
        turns += [Turn("user", f"question {n}: " + "worry " * 20), Turn("assistant", f"answer {n}: " + "calm " * 20)]
    return turns


def renderer(message: str):
    template = ChatTemplate()
    return lambda kept: template.render(conversation_turns("Be kind.", kept, message))


def test_budget_keeps_room_for_the_reply():
    limits = ContextLimits(max_input_tokens=4095, max_total_tokens=4096)
    assert limits.prompt_budget(max_tokens=512) == 3584
    assert ContextLimits(1000, 4096).prompt_budget(max_tokens=10) == 1000


def test_everything_kept_when_it_fits(tokenizer):
    fitted = fit_conversation(history(3), renderer("now?"), tokenizer.count, budget=10_000)
    assert fitted.dropped_turns == 0 and fitted.text.count("question") == 3


def test_oldest_turns_dropped_first_and_the_rest_fits(tokenizer):
    turns = history(10)
    render = renderer("What now?")
    full = tokenizer.count(render(turns))
    budget = full // 2
    fitted = fit_conversation(turns, render, tokenizer.count, budget)
    assert tokenizer.count(fitted.text) <= budget
    assert 0 < fitted.dropped_turns < len(turns)
    kept = turns[fitted.dropped_turns :]
    assert kept[0].role == "user"  # never starts with a reply to a dropped question
    assert fitted.text == render(kept)
    # Minimal: keeping one more exchange would not fit.
    assert tokenizer.count(render(turns[fitted.dropped_turns - 2 :])) > budget
    assert fitted.text.startswith("<|im_start|>system\nBe kind.") and fitted.text.endswith(
        "<|im_start|>user\nWhat now?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_reply_left_at_the_front_is_dropped_with_its_question(tokenizer):
    turns = history(4)
    render = renderer("ok")
    # A budget that fits exactly from the second turn (an assistant reply) onwards.
    budget = tokenizer.count(render(turns[1:]))
    fitted = fit_conversation(turns, render, tokenizer.count, budget)
    assert fitted.dropped_turns == 2 and fitted.text == render(turns[2:])


def test_a_message_that_alone_does_not_fit_is_refused(tokenizer):
    with pytest.raises(PromptTooLong, match="too long"):
        fit_conversation(history(2), renderer("worry " * 500), tokenizer.count, budget=200)


@pytest.fixture(scope="module")
def small_context(stack_factory, engine):
    # A small context: 400 tokens in all (TGI: prompts up to 300; vLLM: max_model_len 400).
    args = ["--max-input-tokens", "300", "--max-total-tokens", "400"] if engine == "tgi" else ["--max-model-len", "400"]
    with stack_factory(localtgi_args=args, proxy_settings={"system_prompt": "Be kind."}, engine=engine) as stack:
        yield stack


def test_long_history_is_trimmed_end_to_end(small_context):
    body = {
        "message": "What should I do now?",
        "max_tokens": 50,
        "seed": 1,
        "conversation_history": [{"role": t.role, "content": t.content} for t in history(12)],
    }
    result = stream_chat(small_context.proxy_url, body)
    assert result.status == 200, result.body
    dropped = int(result.headers["x-history-dropped"])
    assert 0 < dropped < 24
    assert result.final["finish_reason"] in ("stop", "length")
    assert result.final["usage"]["prompt_tokens"] <= 400 - 50


def test_message_too_long_for_the_model_is_422_end_to_end(small_context):
    result = stream_chat(small_context.proxy_url, {"message": "worry " * 400, "max_tokens": 50})
    assert result.status == 422
    assert "too long for the model" in json.loads(result.body)["detail"]


def test_short_conversations_are_untouched_end_to_end(small_context):
    result = stream_chat(small_context.proxy_url, {"message": "Hi", "max_tokens": 5, "seed": 1})
    assert result.status == 200 and "x-history-dropped" not in result.headers
    if small_context.engine == "tgi":
        assert httpx.get(f"{small_context.upstream_url}/info").json()["max_input_tokens"] == 300
    else:
        assert httpx.get(f"{small_context.upstream_url}/v1/models").json()["data"][0]["max_model_len"] == 400


@pytest.mark.parametrize(
    "text",
    ["plain English text, with punctuation!", "emoji 🙂😊 and CJK 你好世界 and accents éàü", "<|im_start|>x<|im_end|>"],
)
def test_the_byte_bound_never_undercounts(tokenizer, text):
    # surely_fits lets a prompt skip the tokenizer: it must never say "fits" when it does not.
    for budget in range(1, 200):
        if surely_fits(text, budget):
            assert tokenizer.count(text) <= budget


def test_long_prompts_are_still_counted(tokenizer):
    turns = history(10)
    counted = []

    def counting(text):
        counted.append(text)
        return tokenizer.count(text)

    fit_conversation(turns, renderer("hi"), counting, budget=100_000)
    assert counted == []  # short enough: the bound settled it
    fit_conversation(turns, renderer("hi"), counting, budget=600)
    assert counted  # near the limit: the real tokenizer decides
