"""vLLM's POST /v1/completions body, checked as vLLM checks it (docs/wire-vllm.md §1): unknown fields
ignored, max_tokens 16 by default and cut to what the context leaves, temperature 0-2 (0 greedy),
top_p in (0, 1], an int64 seed, at most 4 stop strings, and vLLM's messages."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from localtgi.engine import Engine, SamplingParams

INT64 = 2**63
MAX_STOP_STRINGS = 4
GREEDY_BELOW = 1e-5
_MAX_SEED = 2**64 - 1


class CompletionError(Exception):
    """An answer with vLLM's error object: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}}


def bad_request(message: str, param: str | None = None) -> CompletionError:
    return CompletionError(400, message, "BadRequestError", param)


@dataclass(frozen=True)
class Completion:
    model: str  # the name it answers as
    prompt: str
    input_length: int
    params: SamplingParams
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


def parse_completion(body: Any, engine: Engine, served: list[str], loras: set[str], max_model_len: int) -> Completion:
    if not isinstance(body, dict):
        raise bad_request("1 validation error: the body must be a JSON object", "body")
    model = body.get("model") or served[0]
    if model not in served and model not in loras:
        names = ", ".join([*served, *sorted(loras)])
        raise CompletionError(404, f"The model `{model}` does not exist. Valid aliases: {names}.", "NotFoundError",
                              "model")  # fmt: skip
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise bad_request("Either prompt or prompt_embeds must be provided and non-empty.", "prompt")
    stream = _typed(body, "stream", bool, False)
    options = body.get("stream_options")
    if options is not None and not stream:
        raise bad_request("Stream options can only be defined when `stream=True`.", "stream_options")
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    if _typed(body, "n", int, 1) != 1:
        raise bad_request("localvllm writes one completion per request: n must be 1", "n")
    temperature = _number(body, "temperature", 1.0)
    if not 0.0 <= temperature <= 2.0:
        raise bad_request(f"temperature must be in [0, 2], got {temperature}.", "temperature")
    top_p = _number(body, "top_p", 1.0)
    if not 0.0 < top_p <= 1.0:
        raise bad_request(f"top_p must be in (0, 1], got {top_p}.", "top_p")
    top_k = _typed(body, "top_k", int, 0)
    if top_k < -1:
        raise bad_request(f"top_k must be 0 (disable), or at least 1, got {top_k}.", "top_k")
    seed = _typed(body, "seed", int, None)
    if seed is not None and not -INT64 <= seed < INT64:
        raise bad_request("1 validation error: seed must fit in a 64-bit signed integer", "seed")
    stop = _stop(body.get("stop"))
    input_length = engine.count_input_tokens(prompt)
    if input_length > max_model_len:
        raise bad_request(
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt contains "
            f"{input_length} input tokens, which exceeds this limit even without any output tokens. Please reduce "
            f"the length of the input prompt. (parameter=input_tokens, value={input_length})", "input_tokens",
        )  # fmt: skip
    max_tokens = min(_typed(body, "max_tokens", int, 16), max_model_len - input_length)  # cut, as vLLM does
    if max_tokens < 1:
        raise bad_request(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    greedy = temperature < GREEDY_BELOW
    params = SamplingParams(
        max_new_tokens=max_tokens,
        do_sample=not greedy,
        temperature=1.0 if greedy else temperature,
        top_p=1.0 if greedy else top_p,
        top_k=0 if greedy or top_k == -1 else top_k,
        seed=random.randint(0, _MAX_SEED) if seed in (None, -1) else seed % (_MAX_SEED + 1),
        adapter_id=model if model in loras else None,
    )
    return Completion(model, prompt, input_length, params, stop, stream, include_usage)


def _typed(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_request(f"1 validation error: {name} must be a {kind.__name__}", name)
    return value


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise bad_request(f"1 validation error: {name} must be a number", name)
    return float(value)


def _stop(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise bad_request("1 validation error: stop must be a string or a list of strings", "stop")
    if len(stops) > MAX_STOP_STRINGS:
        raise bad_request(f"1 validation error: stop holds at most {MAX_STOP_STRINGS} strings", "stop")
    if "" in stops:
        raise bad_request("stop cannot contain an empty string.", "stop")
    return tuple(stops)
