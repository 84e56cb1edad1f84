"""Engines that produce tokens for localtgi (see localtgi/engine.py for the protocol)."""

from __future__ import annotations

import argparse

from localtgi.engine import Engine
from localtgi.engines.scripted import DEFAULT_MODEL_ID, ScriptedEngine


def build_engine(args: argparse.Namespace) -> Engine:
    """The engine named by --engine; the transformers one is imported only when asked for, since
    torch may not be installed."""
    if args.engine == "transformers":
        from adapters.basemodel import SMOLLM2_ID, default_cache_dir
        from localtgi.engines.transformers import TransformersEngine

        return TransformersEngine(
            model_id=args.model_id or SMOLLM2_ID,  # the small model that works offline
            lora_adapters=args.lora_adapters,
            cache_dir=args.cache_dir or default_cache_dir(),
        )
    return ScriptedEngine(
        model_id=args.model_id or DEFAULT_MODEL_ID,
        adapter_ids=frozenset(args.lora_adapters),
        token_rate=args.token_rate,
        first_token_delay=args.first_token_delay,
        batched=not args.unbatched,
    )
