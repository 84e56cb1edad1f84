"""The real small model (SmolLM2-135M-Instruct with the dev LoRA adapter, on the CPU) behind each
stand-in, through the proxy: the contract holds, and the proxied reply is the one the server gives
directly on its own wire, with the adapter applied."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapters.basemodel import SMOLLM2_ID
from proxy.policies.disclosure import system_prompt_with_disclosure
from proxy.settings import DEFAULT_AI_DISCLOSURE
from tests.support.servers import start_proxy
from tests.support.stack import MODEL_NAME, start_upstream
from therapist_client import stream_chat as checked_stream_chat

MAX_TOKENS = 16


def real_model_args(engine: str, adapter: Path) -> list[str]:
    if engine == "tgi":
        return ["--engine", "transformers", "--model-id", SMOLLM2_ID, "--lora-adapters", f"{MODEL_NAME}={adapter}"]
    return [SMOLLM2_ID, "--engine", "transformers", "--enable-lora", "--lora-modules", f"{MODEL_NAME}={adapter}"]


def direct_greedy(engine: str, url: str, prompt: str, model: str | None) -> str:
    """The server's own greedy reply to `prompt` (with the adapter when `model` names it)."""
    if engine == "tgi":
        parameters = {"max_new_tokens": MAX_TOKENS, "do_sample": False, "stop": ["<|im_end|>"]}
        if model:
            parameters["adapter_id"] = model
        body = httpx.post(f"{url}/generate", json={"inputs": prompt, "parameters": parameters}, timeout=120).json()
        return body["generated_text"].removesuffix("<|im_end|>")
    body = {"prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0.0, "model": model or SMOLLM2_ID}
    return httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()["choices"][0]["text"]


@pytest.fixture(scope="module")
def real_stack(engine, dev_adapter):
    with start_upstream(engine, *real_model_args(engine, dev_adapter), timeout=180) as upstream_url:
        with start_proxy(upstream_url, engine=engine, adapter_dir=dev_adapter, system_prompt="Be kind.") as proxy:
            yield engine, upstream_url, proxy


def test_the_real_model_streams_through_the_proxy_as_the_server_generates_it(real_stack):
    engine, upstream_url, proxy_url = real_stack
    body = {"message": "I have been feeling stressed about work.", "max_tokens": MAX_TOKENS, "temperature": 0}
    report = checked_stream_chat(proxy_url, body, timeout=120)  # raises at any break of the contract
    system = system_prompt_with_disclosure("Be kind.", DEFAULT_AI_DISCLOSURE)
    prompt = (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nI have been feeling stressed about work."
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert report.text == direct_greedy(engine, upstream_url, prompt, MODEL_NAME)
    assert report.text != direct_greedy(engine, upstream_url, prompt, None)  # the adapter was applied
    assert report.finish_reason in ("stop", "length") and report.usage["prompt_tokens"] > 0
