"""The contract's sampling fields as a vLLM /v1/completions body (docs/wire-vllm.md §1).

Every knob is sent explicitly: left out, vLLM takes the model's generation_config.json (Qwen3 ships
temperature 0.6, top_k 20), and the same request would sample differently than on TGI. The end of the
turn is the model's EOS token, which vLLM stops at by itself: sent as a stop string as well, it would
make vLLM hold back that many characters of every reply until it can tell them apart (wire §1).
"""

from __future__ import annotations

from typing import Any

from proxy.core.chat import Sampling

_INT64_MAX = 2**63 - 1  # vLLM's seed is an int64; ours goes to 2**64 - 1 as TGI's does


def completion_body(prompt: str, sampling: Sampling, model: str) -> dict[str, Any]:
    greedy = sampling.greedy or sampling.top_p == 0.0  # vLLM refuses top_p 0; it keeps only the top token
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": sampling.max_tokens,
        "temperature": 0.0 if greedy else sampling.temperature,
        "top_p": 1.0 if greedy else sampling.top_p,
        "top_k": 0,  # off, as on TGI
        "stop": list(sampling.stop),
        "stream": True,
        "stream_options": {"include_usage": True},
        "skip_special_tokens": True,
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed & _INT64_MAX
    return body
