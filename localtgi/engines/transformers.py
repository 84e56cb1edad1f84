"""A real model on CPU: transformers + peft LoRA adapters, one token per step with a KV cache.

All model work runs on one worker thread, one step (a prefill or one decode) at a time,
so the event loop stays free and concurrent requests interleave token by token, each with
its own cache. Stopping is cooperative: a request that is closed submits no more steps.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, GenerationConfig

from adapters.architectures import tgi_serves_lora
from adapters.basemodel import resolve_base_model
from adapters.errors import LoraUnsupported
from adapters.validate import check_adapter
from localtgi.engine import GeneratedToken, SamplingParams
from localtgi.engines.detokenizer import IncrementalDetokenizer
from localtgi.engines.token_chooser import TokenChooser

_PEFT_BASE_MODEL = "__base__"  # peft's adapter name for "no adapter" in a mixed-adapter forward


class UnknownAdapter(LookupError):
    """A request named an adapter this engine was not started with."""


class TransformersEngine:
    """Engine protocol implementation. Loading sets torch's thread count for the whole process."""

    def __init__(self, model_id: str, lora_adapters: Mapping[str, str], cache_dir: Path) -> None:
        torch.set_num_threads(_usable_cpus())
        model_dir = resolve_base_model(model_id, cache_dir)
        model_type = json.loads((model_dir / "config.json").read_text())["model_type"]
        if lora_adapters and not tgi_serves_lora(model_type):
            raise LoraUnsupported(model_type, model_id)  # as TGI would, so local runs catch it too
        self.model_id = model_id
        self.adapter_ids = frozenset(lora_adapters)
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._model = _with_adapters(
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), lora_adapters, cache_dir
        ).eval()
        self.max_position_embeddings: int = self._model.config.max_position_embeddings
        self._special_ids = frozenset(self._tokenizer.all_special_ids)
        self._eos_ids = _eos_ids(self._model.generation_config)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="localtgi-model")
        self.active_generations = 0  # requests holding a KV cache now (TGI's batch size)

    def count_input_tokens(self, inputs: str) -> int:
        return len(self._tokenizer(inputs).input_ids)

    async def generate(self, inputs: str, params: SamplingParams) -> AsyncIterator[GeneratedToken]:
        if params.adapter_id is not None and params.adapter_id not in self.adapter_ids:
            raise UnknownAdapter(
                f"adapter {params.adapter_id!r} is not loaded; this engine has {sorted(self.adapter_ids) or 'none'}"
            )
        loop = asyncio.get_running_loop()
        self.active_generations += 1
        try:
            generation = await loop.run_in_executor(self._worker, self._start, inputs, params)
            while True:
                # Each step is its own job, so other requests' steps run in between.
                token = await loop.run_in_executor(self._worker, self._step, generation)
                if token is None:
                    return
                yield token
                if token.is_eos:
                    return
        finally:
            self.active_generations -= 1

    def _start(self, inputs: str, params: SamplingParams) -> _Generation:
        prompt_ids = self._tokenizer(inputs).input_ids
        return _Generation(
            ids=list(prompt_ids),
            unseen_ids=list(prompt_ids),
            cache=DynamicCache(config=self._model.config),
            chooser=TokenChooser(params),
            detokenizer=IncrementalDetokenizer(self._tokenizer, len(prompt_ids)),
            # The server enforces max_new_tokens; this bound only keeps the model inside its context.
            remaining=min(params.max_new_tokens, self.max_position_embeddings - len(prompt_ids)),
            adapter_kwargs={"adapter_names": [params.adapter_id or _PEFT_BASE_MODEL]} if self.adapter_ids else {},
        )

    def _step(self, generation: _Generation) -> GeneratedToken | None:
        """Prefill (first call) or decode one token; None once the context is full."""
        if generation.remaining <= 0:
            return None
        with torch.inference_mode():
            output = self._model(
                input_ids=torch.tensor([generation.unseen_ids]),
                past_key_values=generation.cache,
                use_cache=True,
                logits_to_keep=1,
                **generation.adapter_kwargs,
            )
        token_id, logprob = generation.chooser.choose(generation.ids, output.logits[:, -1, :])
        generation.ids.append(token_id)
        generation.unseen_ids = [token_id]
        generation.remaining -= 1
        return GeneratedToken(
            id=token_id,
            text=generation.detokenizer.next_text(generation.ids),
            logprob=logprob,
            special=token_id in self._special_ids,
            is_eos=token_id in self._eos_ids,
        )


@dataclass
class _Generation:
    """One request's state; touched only on the worker thread."""

    ids: list[int]  # prompt + generated
    unseen_ids: list[int]  # not yet in the KV cache: the prompt, then each new token
    cache: DynamicCache
    chooser: TokenChooser
    detokenizer: IncrementalDetokenizer
    remaining: int
    adapter_kwargs: dict[str, Any]


def _with_adapters(model: torch.nn.Module, lora_adapters: Mapping[str, str], cache_dir: Path) -> torch.nn.Module:
    if not lora_adapters:
        return model
    from peft import PeftModel

    # check_adapter fails fast with the path and the fix, before peft's less helpful errors.
    folders = {name: check_adapter(path, cache_dir).path for name, path in lora_adapters.items()}
    (first_name, first_folder), *others = folders.items()
    peft_model = PeftModel.from_pretrained(model, first_folder, adapter_name=first_name)
    for name, folder in others:
        peft_model.load_adapter(folder, adapter_name=name)
    return peft_model


def _eos_ids(generation_config: GenerationConfig) -> frozenset[int]:
    eos = generation_config.eos_token_id
    if eos is None:
        return frozenset()
    return frozenset([eos] if isinstance(eos, int) else eos)


def _usable_cpus() -> int:
    # The CPUs this process may run on: a container or taskset can allow fewer than the machine has.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
