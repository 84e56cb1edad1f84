"""TGI's JSON and SSE bytes, as pure functions.

serde_json writes compact JSON in struct field order with raw UTF-8, and an f32 as its shortest
round-trip decimal (-2.9023438, not -2.90234375); NaN becomes null. axum frames each stream event
as `data: <json>\\n\\n` and a keep-alive as the comment `:\\n\\n`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

from localtgi.engine import GeneratedToken
from localtgi.errors import InferError

KEEP_ALIVE = b":\n\n"
_TOKEN_CACHE_LIMIT = 65536


def json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def f32_text(value: float | None) -> str:
    """serde_json's rendering of an f32."""
    if value is None or math.isnan(value):
        return "null"
    packed = struct.pack("f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.pack("f", float(text)) == packed:
            break
    mantissa, _, exponent = text.partition("e")
    if not exponent:
        return mantissa if "." in mantissa else mantissa + ".0"
    return f"{mantissa}e{int(exponent)}"


_token_json_cache: dict[GeneratedToken, str] = {}


def token_json(token: GeneratedToken) -> str:
    """`{"id","text","logprob","special"}`; cached because engines reuse token objects."""
    cached = _token_json_cache.get(token)
    if cached is None:
        cached = (
            f'{{"id":{token.id},"text":{json_text(token.text)},'
            f'"logprob":{f32_text(token.logprob)},"special":{"true" if token.special else "false"}}}'
        )
        if len(_token_json_cache) >= _TOKEN_CACHE_LIMIT:
            _token_json_cache.clear()
        _token_json_cache[token] = cached
    return cached


@dataclass(frozen=True)
class Generation:
    """A finished generation, as TGI's GeneratedText plus its tokens."""

    tokens: tuple[GeneratedToken, ...]
    finish_reason: str  # "length" | "eos_token" | "stop_sequence"
    seed: int | None  # only when sampling was on, as TGI's shard reports it
    input_length: int

    @property
    def text(self) -> str:
        # TGI decodes with skip_special_tokens: EOS and other special tokens are not in the text.
        return "".join(token.text for token in self.tokens if not token.special)


def _seed_json(seed: int | None) -> str:
    return "null" if seed is None else str(seed)


def token_event(index: int, token: GeneratedToken) -> bytes:
    return f'data: {{"index":{index},"token":{token_json(token)},"generated_text":null,"details":null}}\n\n'.encode()


def final_event(index: int, generation: Generation, details: bool, prompt: str = "") -> bytes:
    """The last stream event: last token, the whole text (after `prompt` for return_full_text),
    and StreamDetails when asked for."""
    details_json = "null"
    if details:
        details_json = (
            f'{{"finish_reason":"{generation.finish_reason}","generated_tokens":{len(generation.tokens)},'
            f'"seed":{_seed_json(generation.seed)},"input_length":{generation.input_length}}}'
        )
    return (
        f'data: {{"index":{index},"token":{token_json(generation.tokens[-1])},'
        f'"generated_text":{json_text(prompt + generation.text)},"details":{details_json}}}\n\n'
    ).encode()


def malformed_event(index: int) -> bytes:
    """The --malformed-after fault: a token event cut off mid-JSON, as a broken hop in between might send."""
    return f'data: {{"index":{index},"token":{{"id":\n\n'.encode()


def error_json(error: InferError) -> str:
    return json_text({"error": str(error), "error_type": error.error_type})


def error_event(error: InferError) -> bytes:
    return f"data: {error_json(error)}\n\n".encode()


def _sequence_fields(generation: Generation) -> str:
    tokens = ",".join(token_json(token) for token in generation.tokens)
    return (
        f'"finish_reason":"{generation.finish_reason}","generated_tokens":{len(generation.tokens)},'
        f'"seed":{_seed_json(generation.seed)},"prefill":[],"tokens":[{tokens}]'
    )


def generate_response_json(
    generation: Generation, details: bool, prompt: str = "", best_of_others: tuple[Generation, ...] = ()
) -> str:
    """GenerateResponse: `details` left out unless asked for; prefill stays [] as in TGI without
    --enable-prefill-logprobs; best_of_sequences only for best_of > 1."""
    output_text = json_text(prompt + generation.text)
    if not details:
        return f'{{"generated_text":{output_text}}}'
    best_of = ""
    if best_of_others:
        sequences = ",".join(
            f'{{"generated_text":{json_text(prompt + other.text)},{_sequence_fields(other)}}}'
            for other in best_of_others
        )
        best_of = f',"best_of_sequences":[{sequences}]'
    return f'{{"generated_text":{output_text},"details":{{{_sequence_fields(generation)}{best_of}}}}}'
