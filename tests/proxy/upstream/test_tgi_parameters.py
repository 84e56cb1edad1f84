"""The contract's sampling fields as TGI's parameters."""

from proxy.faces.stream_chat.protocol import chat_request_model
from proxy.settings import load_settings
from proxy.upstream.tgi.parameters import tgi_parameters


def parameters(settings=None, **fields):
    settings = settings or load_settings()
    sampling = chat_request_model(settings).model_validate({"message": "hi", **fields}).chat_input().sampling
    return tgi_parameters(sampling, settings.end_of_turn, settings.upstream_adapter_id)


def test_temperature_zero_is_greedy_without_sampling_fields():
    params = parameters(temperature=0.0, top_p=0.5)
    assert params["do_sample"] is False
    assert "temperature" not in params and "top_p" not in params  # top_p < 1 would turn sampling back on


def test_top_p_one_is_left_out():
    params = parameters(temperature=0.7, top_p=1.0)
    assert params["do_sample"] is True and params["temperature"] == 0.7 and "top_p" not in params


def test_defaults_map_to_tgi_names():
    params = parameters()
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
    params = parameters(load_settings(adapter_id=""), seed=42)
    assert params["seed"] == 42 and "adapter_id" not in params
