"""localtgi's pure parts: the scripted engine, f32 rendering, flag parsing, stopping rules."""

import argparse
import asyncio
import subprocess
import sys
import time

import pytest

from localtgi.cli import build_parser, parse_lora_adapters, resolve_limits
from localtgi.engine import GeneratedToken, SamplingParams
from localtgi.engines.scripted import EOS_TOKEN, ScriptedEngine, predicted_text, reply_tokens
from localtgi.inference import StoppingCriteria
from localtgi.wire import f32_text
from tests.support.fixtures import REPO_ROOT


def collect(engine: ScriptedEngine, params: SamplingParams) -> list[GeneratedToken]:
    async def run():
        return [token async for token in engine.generate("whatever", params)]

    return asyncio.run(run())


def test_scripted_reply_depends_only_on_the_seed_when_sampling():
    engine = ScriptedEngine()
    sampled = SamplingParams(max_new_tokens=500, do_sample=True, seed=7)
    assert collect(engine, sampled) == collect(engine, sampled) == list(reply_tokens(7))
    assert collect(engine, sampled) != collect(engine, SamplingParams(max_new_tokens=500, do_sample=True, seed=8))
    greedy = SamplingParams(max_new_tokens=500, do_sample=False, seed=123)
    assert collect(engine, greedy) == list(reply_tokens(0))  # greedy ignores the seed


@pytest.mark.parametrize("seed", range(30))
def test_scripted_replies_are_realistic_token_streams(seed):
    tokens = reply_tokens(seed)
    assert 20 <= len(tokens) <= 200
    assert tokens[-1] == EOS_TOKEN and all(not token.special for token in tokens[:-1])
    assert all(token.logprob is not None and token.logprob < 0 for token in tokens)
    text = predicted_text(seed, len(tokens))
    assert text == "".join(token.text for token in tokens[:-1])
    for position, token in enumerate(tokens):
        if token.text == "":  # a partial UTF-8 character: the id is its byte, the next token goes on with it
            assert token.id < 256 and tokens[position + 1].id < 256
        elif not token.text.isascii():
            assert len(token.text) == 1 and tokens[position - 1].text == ""


def test_scripted_vocabulary_has_multibyte_characters_and_stable_ids():
    texts = {token.text for seed in range(50) for token in reply_tokens(seed)}
    assert {"’", "é", "🙂", "木"} <= texts
    ids = {(token.text, token.id) for seed in range(50) for token in reply_tokens(seed) if token.text}
    assert len({text for text, _ in ids}) == len(ids)  # one id per token text


def test_scripted_pacing_keeps_to_the_clock():
    engine = ScriptedEngine(token_rate=200, first_token_delay=0.1)
    params = SamplingParams(max_new_tokens=500, do_sample=False)
    arrivals = []

    async def run():
        async for _ in engine.generate("hi", params):
            arrivals.append(time.monotonic())

    started = time.monotonic()
    asyncio.run(run())
    expected_last = 0.1 + (len(arrivals) - 1) / 200
    assert arrivals[0] - started >= 0.1
    # The first decode step comes at most one interval early (the shared clock); no drift from sleep overshoot.
    assert expected_last - 1 / 200 <= arrivals[-1] - started < expected_last + 0.15


def test_scripted_streams_share_decode_steps_like_a_batch():
    # TGI decodes its running requests together: after its first token (prefill), every stream gets
    # its next token in the same step. Two streams started 7 ms apart still tick together.
    interval = 1 / 50
    params = SamplingParams(max_new_tokens=20, do_sample=False)

    async def arrivals(engine: ScriptedEngine, delay: float) -> list[float]:
        await asyncio.sleep(delay)
        loop, times = asyncio.get_running_loop(), []
        async for _ in engine.generate("hi", params):
            times.append(loop.time())
            if len(times) == 6:
                return times

    async def run(engine: ScriptedEngine) -> tuple[list[float], list[float]]:
        return tuple(await asyncio.gather(arrivals(engine, 0.0), arrivals(engine, 0.007)))

    first, second = asyncio.run(run(ScriptedEngine(token_rate=50)))
    assert all(min(abs(a - b) for a in first) < 0.004 for b in second[1:-1]), (first, second)
    assert all(abs((later - earlier) - interval) < 0.004 for earlier, later in zip(first[1:], first[2:], strict=False))
    first, second = asyncio.run(run(ScriptedEngine(token_rate=50, batched=False)))
    assert all(abs((b - a) - 0.007) < 0.004 for a, b in zip(first, second, strict=True)), (first, second)


def test_scripted_input_tokens_are_counted_with_the_qwen_tokenizer():
    # Hello / , / world / ! / I / ’m / here / .  (Qwen2.5's BPE); control tokens count as one each.
    assert ScriptedEngine().count_input_tokens("Hello, world! I’m here.") == 8
    assert ScriptedEngine().count_input_tokens("<|im_start|>user\nhi<|im_end|>") == 5


@pytest.mark.parametrize(
    ("value", "text"),
    [(-2.90234375, "-2.9023438"), (-0.13537598, "-0.13537598"), (-1.0, "-1.0"), (None, "null"), (float("nan"), "null")],
)
def test_f32_logprobs_are_written_like_serde_json(value, text):
    assert f32_text(value) == text


def test_lora_adapters_use_tgis_format():
    parsed = parse_lora_adapters("therapist=/data/lora, predibase/dbpedia@main,local=/x@v2")
    assert parsed == {"therapist": "/data/lora", "predibase/dbpedia": "predibase/dbpedia", "local": "/x"}
    with pytest.raises(argparse.ArgumentTypeError):
        parse_lora_adapters("a=b=c")


def test_token_limits_default_from_the_engine_like_the_launcher():
    limits = resolve_limits(build_parser().parse_args([]), max_position_embeddings=4096)
    assert (limits.max_input_tokens, limits.max_total_tokens) == (4095, 4096)
    limits = resolve_limits(build_parser().parse_args(["--max-total-tokens", "512"]), 4096)
    assert (limits.max_input_tokens, limits.max_total_tokens) == (511, 512)


def test_launcher_refuses_input_limit_not_below_total():
    result = subprocess.run(
        [sys.executable, "-m", "localtgi", "--max-input-tokens", "100", "--max-total-tokens", "100"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "`max_input_tokens`(100) must be < `max_total_tokens`(100)" in result.stderr


def test_environment_variables_are_fallback_defaults(monkeypatch):
    monkeypatch.setenv("MAX_CONCURRENT_REQUESTS", "7")
    monkeypatch.setenv("HOSTNAME", "some-container")
    args = build_parser().parse_args([])
    assert args.max_concurrent_requests == 7
    assert args.hostname == "127.0.0.1"  # HOSTNAME is the machine name in most shells, never a bind address


def token(text: str, is_eos: bool = False) -> GeneratedToken:
    return GeneratedToken(id=1, text=text, logprob=-1.0, special=is_eos, is_eos=is_eos)


def test_stopping_checks_length_before_eos_before_stop_sequences():
    assert StoppingCriteria(1, ()).__call__(token("", is_eos=True)) == "length"
    criteria = StoppingCriteria(10, ("lo w",))
    assert [criteria(token(text)) for text in ("hel", "lo", " w")] == [None, None, "stop_sequence"]
    assert StoppingCriteria(10, ("x",))(token("<eos>", is_eos=True)) == "eos_token"
