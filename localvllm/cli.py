"""`python -m localvllm serve MODEL [flags]`: `vllm serve`'s flags (those the launcher passes, the
GPU ones accepted and ignored) and localtgi's engine and fault flags."""

from __future__ import annotations

import argparse
import json

from localtgi.cli import add_engine_flags, add_fault_flags

VLLM_PORT = "8000"
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_module(value: str) -> tuple[str, str]:
    """`name=path`, or a JSON object with `name` and `path`, as `vllm serve --lora-modules` takes them."""
    if "=" in value and "," not in value:
        name, _, path = value.partition("=")
    else:
        try:
            item = json.loads(value)
            name, path = item["name"], item["path"]
        except (ValueError, KeyError, TypeError):
            raise argparse.ArgumentTypeError(f"invalid LoRA module: {value!r} (expected name=path)") from None
    if not name or not path:
        raise argparse.ArgumentTypeError(f"invalid LoRA module: {value!r} (expected name=path)")
    return name, path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localvllm", description="A local server that speaks vLLM's OpenAI API.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a model, as `vllm serve` does")
    serve.add_argument("model", nargs="?", default="scripted/therapist", help="the model, and its served name")
    vllm = serve.add_argument_group("vllm serve flags")
    vllm.add_argument("--host", default="127.0.0.1", help="[default 127.0.0.1; vLLM's binds all interfaces]")
    vllm.add_argument("--port", type=int, default=int(VLLM_PORT), help=f"[default {VLLM_PORT}]")
    vllm.add_argument("--served-model-name", nargs="+", help="names the model answers to [default: the model]")
    vllm.add_argument("--enable-lora", action="store_true")
    vllm.add_argument("--lora-modules", nargs="+", type=lora_module, default=[], help="name=path ...")
    vllm.add_argument("--max-lora-rank", type=int, choices=LORA_RANKS, default=16)
    vllm.add_argument("--max-loras", type=int, default=1)
    vllm.add_argument("--max-model-len", type=int, help="[default: the engine's max_position_embeddings]")
    vllm.add_argument("--max-num-seqs", type=int, help="accepted; like vLLM, requests beyond it wait")
    vllm.add_argument("--generation-config", default="auto", help="accepted (`vllm`: no model defaults)")
    vllm.add_argument("--enable-sleep-mode", action="store_true", help="with VLLM_SERVER_DEV_MODE=1: /sleep, /wake_up")
    for flag in ("--gpu-memory-utilization", "--quantization", "--dtype", "--max-num-batched-tokens"):
        vllm.add_argument(flag, help="accepted for compatibility and ignored")
    own = serve.add_argument_group("localvllm")
    add_engine_flags(own)
    add_fault_flags(serve, "/_localvllm/faults")
    return parser
