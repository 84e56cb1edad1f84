"""What the stand-in itself generates, asked directly on its own wire: the reference a proxied stream
must match."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.support.stack import MODEL_NAME, Stack

PROMPT = "any prompt: the scripted engine depends on seed and max_new_tokens only"
_TGI_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


@dataclass(frozen=True)
class Direct:
    text: str
    finish_reason: str  # the contract's: "stop" or "length"
    completion_tokens: int
    ended_on_special_token: bool | None = None  # TGI only: vLLM never shows its EOS token


def generate_direct(stack: Stack, *, max_new_tokens: int, seed: int | None = None, temperature: float = 0.7,
                    top_p: float = 0.9, greedy: bool = False) -> Direct:  # fmt: skip
    if stack.engine == "tgi":
        parameters = {"max_new_tokens": max_new_tokens, "details": True}
        parameters.update({"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature,
                                                                "top_p": top_p, "seed": seed})  # fmt: skip
        response = httpx.post(f"{stack.upstream_url}/generate", json={"inputs": PROMPT, "parameters": parameters},
                              timeout=30)  # fmt: skip
        response.raise_for_status()
        body = response.json()
        details = body["details"]
        return Direct(body["generated_text"], _TGI_FINISH[details["finish_reason"]], details["generated_tokens"],
                      details["tokens"][-1]["special"])  # fmt: skip
    body = {"model": MODEL_NAME, "prompt": PROMPT, "max_tokens": max_new_tokens,
            "temperature": 0.0 if greedy else temperature, "top_p": 1.0 if greedy else top_p}  # fmt: skip
    if seed is not None and not greedy:
        body["seed"] = seed
    response = httpx.post(f"{stack.upstream_url}/v1/completions", json=body, timeout=30)
    response.raise_for_status()
    answer = response.json()
    choice = answer["choices"][0]
    return Direct(choice["text"], choice["finish_reason"], answer["usage"]["completion_tokens"])
