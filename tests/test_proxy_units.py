"""Pure pieces of the proxy: TGI parameter mapping, chat template, SSE framing."""

import json

import pytest

from proxy.chat import StreamEnd, tgi_parameters
from proxy.chat_template import ChatTemplate, ChatTemplateError, Turn, conversation_turns
from proxy.errors import UpstreamGenerationFailed
from proxy.schemas import chat_request_model
from proxy.settings import load_settings
from proxy.sse import frame_chat_event


def request(**fields):
    return chat_request_model(load_settings()).model_validate({"message": "hi", **fields})


def test_temperature_zero_is_greedy_without_sampling_fields():
    params = tgi_parameters(request(temperature=0.0, top_p=0.5), load_settings())
    assert params["do_sample"] is False
    assert "temperature" not in params and "top_p" not in params  # top_p < 1 would turn sampling back on


def test_top_p_one_is_left_out():
    params = tgi_parameters(request(temperature=0.7, top_p=1.0), load_settings())
    assert params["do_sample"] is True and params["temperature"] == 0.7 and "top_p" not in params


def test_defaults_map_to_tgi_names():
    params = tgi_parameters(request(), load_settings())
    assert params == {
        "max_new_tokens": 512,
        "stop": ["<|im_end|>"],
        "details": True,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "adapter_id": "qwen_therapist_lora",
    }


def test_seed_passes_through_and_adapter_can_be_base_model():
    params = tgi_parameters(request(seed=42), load_settings(adapter_id=""))
    assert params["seed"] == 42 and "adapter_id" not in params


def test_chatml_renders_system_history_and_generation_prompt():
    turns = conversation_turns("Be kind.", [Turn("user", "a"), Turn("assistant", "b")], "c")
    assert ChatTemplate().render(turns) == (
        "<|im_start|>system\nBe kind.<|im_end|>\n"
        "<|im_start|>user\na<|im_end|>\n"
        "<|im_start|>assistant\nb<|im_end|>\n"
        "<|im_start|>user\nc<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("source", ["{{ messages.__class__.__mro__ }}", "{{ messages.append(1) }}"])
def test_template_is_sandboxed(source):
    # An adapter's template is data from a volume: it may not reach Python internals or mutate state.
    with pytest.raises(ChatTemplateError, match="unsafe"):
        ChatTemplate(source).render([Turn("user", "x")])


def test_template_raise_exception_becomes_a_template_error():
    strict = ChatTemplate("{% if messages[0]['role'] != 'system' %}{{ raise_exception('system first') }}{% endif %}")
    with pytest.raises(ChatTemplateError, match="system first"):
        strict.render([Turn("user", "x")])


def test_token_frame_is_one_ascii_data_line():
    chunk = frame_chat_event("caf\u00e9 \U0001f642")
    assert chunk == b'data: {"token": "caf\\u00e9 \\ud83d\\ude42", "done": false}\n\n'
    assert json.loads(chunk[6:]) == {"token": "caf\u00e9 \U0001f642", "done": False}


def test_final_frame_carries_finish_reason_usage_and_error():
    ok = json.loads(frame_chat_event(StreamEnd("length", 12, 5))[6:])
    assert ok == {
        "token": "",
        "done": True,
        "finish_reason": "length",
        "usage": {"prompt_tokens": 12, "completion_tokens": 5},
    }
    failed = json.loads(frame_chat_event(StreamEnd("error", None, 3, UpstreamGenerationFailed("boom")))[6:])
    assert failed["finish_reason"] == "error" and failed["error"] == {"type": "generation", "message": "boom"}
