"""TransformersEngine on the real SmolLM2-135M-Instruct with the dev LoRA adapter, on CPU."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from adapters import LoraUnsupported, default_cache_dir, resolve_base_model
from adapters.basemodel import SMOLLM2_ID
from localtgi.engine import GeneratedToken, SamplingParams
from localtgi.engines.detokenizer import IncrementalDetokenizer
from localtgi.engines.transformers import TransformersEngine, UnknownAdapter

PROMPT = "<|im_start|>user\nI have been feeling stressed about work.<|im_end|>\n<|im_start|>assistant\n"
SHORT_ANSWER_PROMPT = "<|im_start|>user\nSay only the word yes.<|im_end|>\n<|im_start|>assistant\n"
GREEDY = SamplingParams(max_new_tokens=12, do_sample=False)
SAMPLED = SamplingParams(max_new_tokens=12, do_sample=True, temperature=0.8, top_p=0.9, top_k=50, seed=7)


@pytest.fixture(scope="session")
def engine(dev_adapter: Path) -> TransformersEngine:
    return TransformersEngine(SMOLLM2_ID, {"dev": str(dev_adapter)}, default_cache_dir())


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_base_model(SMOLLM2_ID))


async def collect(engine: TransformersEngine, prompt: str, params: SamplingParams) -> list[GeneratedToken]:
    return [token async for token in engine.generate(prompt, params)]


def generate(engine: TransformersEngine, params: SamplingParams, prompt: str = PROMPT) -> list[GeneratedToken]:
    return asyncio.run(collect(engine, prompt, params))


def ids(tokens: list[GeneratedToken]) -> list[int]:
    return [token.id for token in tokens]


def test_engine_describes_its_model(engine: TransformersEngine) -> None:
    config = json.loads((resolve_base_model(SMOLLM2_ID) / "config.json").read_text())
    assert engine.model_id == SMOLLM2_ID
    assert engine.adapter_ids == frozenset({"dev"})
    assert engine.max_position_embeddings == config["max_position_embeddings"]


def test_count_input_tokens_counts_chat_markers_as_one_token(engine: TransformersEngine) -> None:
    assert engine.count_input_tokens("") == 0
    assert engine.count_input_tokens("<|im_start|><|im_end|>") == 2


def test_greedy_matches_transformers_generate(engine: TransformersEngine, tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(resolve_base_model(SMOLLM2_ID)).eval()
    prompt = tokenizer(PROMPT, return_tensors="pt")
    with torch.inference_mode():
        expected = model.generate(**prompt, max_new_tokens=GREEDY.max_new_tokens, do_sample=False)

    tokens = generate(engine, GREEDY)

    assert ids(tokens) == expected[0, prompt["input_ids"].shape[1] :].tolist()
    assert "".join(token.text for token in tokens) == tokenizer.decode(ids(tokens))


def test_greedy_is_repeatable_and_the_adapter_changes_it(engine: TransformersEngine) -> None:
    base = generate(engine, GREEDY)
    adapted = generate(engine, SamplingParams(max_new_tokens=12, do_sample=False, adapter_id="dev"))

    assert ids(generate(engine, GREEDY)) == ids(base)
    assert ids(adapted) != ids(base)


def test_same_seed_same_sample_other_seed_other_sample(engine: TransformersEngine) -> None:
    first = generate(engine, SAMPLED)
    other_seed = SamplingParams(max_new_tokens=12, do_sample=True, temperature=0.8, top_p=0.9, top_k=50, seed=8)

    assert ids(generate(engine, SAMPLED)) == ids(first)
    assert ids(generate(engine, other_seed)) != ids(first)
    assert all(token.logprob is not None and token.logprob <= 0 for token in first)


def test_eos_ends_the_stream_as_a_special_token(engine: TransformersEngine) -> None:
    tokens = generate(engine, SamplingParams(max_new_tokens=20, do_sample=False), SHORT_ANSWER_PROMPT)

    *text_tokens, last = tokens
    assert (last.text, last.special, last.is_eos) == ("<|im_end|>", True, True)
    assert not any(token.is_eos or token.special for token in text_tokens)


def test_concurrent_requests_interleave_and_keep_their_own_adapter(engine: TransformersEngine) -> None:
    adapted_params = SamplingParams(max_new_tokens=12, do_sample=False, adapter_id="dev")
    alone = (ids(generate(engine, GREEDY)), ids(generate(engine, adapted_params)))

    async def both() -> tuple[list[GeneratedToken], list[GeneratedToken]]:
        return await asyncio.gather(collect(engine, PROMPT, GREEDY), collect(engine, PROMPT, adapted_params))

    together = asyncio.run(both())
    assert (ids(together[0]), ids(together[1])) == alone


def test_event_loop_stays_free_while_generating(engine: TransformersEngine) -> None:
    async def ticks_during_generation() -> int:
        ticks = 0
        generation = asyncio.create_task(collect(engine, PROMPT, GREEDY))
        while not generation.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return ticks

    # 12 decode steps take well over 100 ms on CPU; a blocked loop would tick about once per step.
    assert asyncio.run(ticks_during_generation()) > 2 * GREEDY.max_new_tokens


def test_aclose_stops_generation(engine: TransformersEngine) -> None:
    async def scenario() -> None:
        stream = engine.generate(PROMPT, SamplingParams(max_new_tokens=10_000, do_sample=False))
        for _ in range(3):
            await anext(stream)
        assert engine.active_generations == 1
        await stream.aclose()
        assert engine.active_generations == 0
        with pytest.raises(StopAsyncIteration):
            await anext(stream)

    asyncio.run(scenario())


def test_cancelled_consumer_releases_the_generation(engine: TransformersEngine) -> None:
    async def scenario() -> None:
        consumer = asyncio.create_task(collect(engine, PROMPT, SamplingParams(max_new_tokens=10_000, do_sample=False)))
        await asyncio.sleep(0.3)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert engine.active_generations == 0

    asyncio.run(scenario())


def test_unknown_adapter_is_a_clear_error(engine: TransformersEngine) -> None:
    with pytest.raises(UnknownAdapter, match="'therapist' is not loaded; this engine has \\['dev'\\]"):
        generate(engine, SamplingParams(max_new_tokens=3, do_sample=False, adapter_id="therapist"))


def test_detokenizer_holds_back_incomplete_characters(tokenizer) -> None:
    prompt_ids = tokenizer("Notes:").input_ids
    text = " café ☕ 日本語 🙂"
    text_ids = tokenizer(text).input_ids
    all_ids = prompt_ids + text_ids
    detokenizer = IncrementalDetokenizer(tokenizer, len(prompt_ids))

    pieces = [detokenizer.next_text(all_ids[:end]) for end in range(len(prompt_ids) + 1, len(all_ids) + 1)]

    assert "".join(pieces) == text == tokenizer.decode(text_ids)
    # Byte-level BPE splits the emoji and some CJK characters across tokens: those steps say nothing.
    incomplete = [tokenizer.decode(all_ids[: len(prompt_ids) + i + 1]).endswith("\ufffd") for i in range(len(pieces))]
    assert any(incomplete)
    assert [piece == "" for piece in pieces] == incomplete


def test_lora_on_an_architecture_tgi_cannot_serve_is_refused(dev_adapter: Path, tmp_path: Path) -> None:
    qwen3 = tmp_path / "qwen3"
    qwen3.mkdir()
    (qwen3 / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    with pytest.raises(LoraUnsupported, match="python -m adapters merge"):
        TransformersEngine(str(qwen3), {"dev": str(dev_adapter)}, default_cache_dir())
