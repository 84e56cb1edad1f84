"""TGI's parameter validation (router/src/validation.rs): same checks, same order, same messages."""

from __future__ import annotations

import random
from dataclasses import dataclass

from localtgi.config import Limits
from localtgi.engine import Engine, SamplingParams
from localtgi.errors import ValidationError
from localtgi.request_body import GenerateParameters, GenerateRequest

# Requests longer than this are scheduled in chunks by TGI; the token-budget check uses one chunk.
DEFAULT_GENERATION_LENGTH = 1024


@dataclass(frozen=True)
class ValidRequest:
    inputs: str
    input_length: int
    params: SamplingParams  # params.max_new_tokens is the cap generation stops at
    chunk_max_new_tokens: int  # what TGI's budget check and tgi_request_max_new_tokens see
    stop: tuple[str, ...]


def validate_stream_parameters(parameters: GenerateParameters) -> None:
    """The checks /generate_stream makes before admission (router/src/server.rs)."""
    if (parameters.best_of if parameters.best_of is not None else 1) != 1:
        raise ValidationError("`best_of` != 1 is not supported when streaming tokens")
    if parameters.decoder_input_details:
        raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")


def validate_best_of(best_of: int, limits: Limits) -> None:
    if limits.max_best_of == 1 and best_of != 1:
        raise ValidationError("`best_of` != 1 is not allowed for this endpoint")
    if best_of > limits.max_best_of:
        raise ValidationError(f"`best_of` must be > 0 and <= {limits.max_best_of}. Given: {best_of}")


def validate(request: GenerateRequest, limits: Limits, engine: Engine) -> ValidRequest:
    p = request.parameters
    best_of = p.best_of if p.best_of is not None else 1
    requested_sampling = p.do_sample or any(
        value is not None for value in (p.temperature, p.top_k, p.top_p, p.typical_p)
    )
    if best_of > 1 and not requested_sampling:
        raise ValidationError("you must use sampling when `best_of` is > 1")
    temperature = 1.0 if p.temperature is None else p.temperature
    if temperature <= 0.0:
        raise ValidationError("`temperature` must be strictly positive")
    repetition_penalty = 1.0 if p.repetition_penalty is None else p.repetition_penalty
    if repetition_penalty <= 0.0:
        raise ValidationError("`repetition_penalty` must be strictly positive")
    frequency_penalty = 0.0 if p.frequency_penalty is None else p.frequency_penalty
    if not -2.0 <= frequency_penalty <= 2.0:
        raise ValidationError("`frequency_penalty` must be >= -2.0 and <= 2.0")
    if p.top_p is not None and not 0.0 < p.top_p < 1.0:
        raise ValidationError("`top_p` must be > 0.0 and < 1.0")
    if p.typical_p is not None and not 0.0 < p.typical_p < 1.0:
        raise ValidationError("`typical_p` must be > 0.0 and < 1.0")
    if p.top_k is not None and p.top_k <= 0:
        raise ValidationError("`top_k` must be strictly positive")
    if p.max_new_tokens == 0:
        raise ValidationError("`max_new_tokens` must be strictly positive")
    if len(p.stop) > limits.max_stop_sequences:
        raise ValidationError(f"`stop` supports up to {limits.max_stop_sequences} stop sequences. Given: {len(p.stop)}")
    if p.seed is not None and best_of > 1:
        raise ValidationError("`seed` must not be set when `best_of` > 1")
    seed = random.getrandbits(64) if p.seed is None else p.seed
    if p.top_n_tokens is not None and p.top_n_tokens > limits.max_top_n_tokens:
        raise ValidationError(f"`top_n_tokens` must be >= 0 and <= {limits.max_top_n_tokens}. Given: {p.top_n_tokens}")
    if not request.inputs:
        raise ValidationError("`inputs` cannot be empty")
    if p.truncate is not None and not 0 < p.truncate <= limits.max_input_tokens:
        raise ValidationError(
            f"`truncate` must be strictly positive and less than {limits.max_input_tokens}. Given: {p.truncate}"
        )

    input_length = engine.count_input_tokens(request.inputs)
    if p.truncate is not None:
        input_length = min(input_length, p.truncate)  # TGI keeps the last `truncate` tokens
    max_total_new_tokens = (
        p.max_new_tokens if p.max_new_tokens is not None else max(limits.max_total_tokens - input_length, 0)
    )
    chunk = min(max_total_new_tokens, DEFAULT_GENERATION_LENGTH)
    if input_length + chunk > limits.max_total_tokens:
        raise ValidationError(
            f"`inputs` tokens + `max_new_tokens` must be <= {limits.max_total_tokens}. "
            f"Given: {input_length} `inputs` tokens and {chunk} `max_new_tokens`"
        )
    if input_length > limits.max_input_tokens:
        raise ValidationError(f"`inputs` must have less than {limits.max_input_tokens} tokens. Given: {input_length}")
    if p.grammar is not None:
        raise ValidationError("grammar is not supported")  # as TGI with --disable-grammar-support
    if p.adapter_id is not None and p.adapter_id not in engine.adapter_ids:
        # Stricter than TGI, which silently answers an unknown adapter with the base model.
        loaded = ", ".join(sorted(engine.adapter_ids)) or "none"
        raise ValidationError(f"`adapter_id` {p.adapter_id!r} is not loaded. Loaded adapters: {loaded}")

    params = SamplingParams(
        max_new_tokens=min(max_total_new_tokens, limits.max_total_tokens - input_length),
        do_sample=p.do_sample,
        temperature=temperature,
        top_p=1.0 if p.top_p is None else p.top_p,
        top_k=0 if p.top_k is None else p.top_k,
        typical_p=1.0 if p.typical_p is None else p.typical_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
        adapter_id=p.adapter_id,
    )
    return ValidRequest(
        inputs=request.inputs,
        input_length=input_length,
        params=params,
        chunk_max_new_tokens=chunk,
        stop=p.stop,
    )
