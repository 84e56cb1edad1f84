"""Command-line flags: text-generation-launcher's names and defaults, plus localtgi's own.

Like the launcher, each TGI flag falls back on its upper-case environment variable (MODEL_ID,
PORT, LORA_ADAPTERS, MAX_CONCURRENT_REQUESTS, ...). HOSTNAME is the exception: shells and Docker
set it to the machine name.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re

from localtgi.config import Limits
from localtgi.faults import Faults

_ADAPTER = re.compile(r"^([^=@]+)(?:=([^@]+))?(?:@(.+))?$")


def parse_lora_adapters(value: str) -> dict[str, str]:
    """TGI's --lora-adapters: comma-separated `id`, `id@revision`, `name=path` or `name=path@revision`.

    Returns name -> path (the id itself when no path is given); revisions are dropped.
    """
    adapters: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        match = _ADAPTER.match(item)
        if item.count("=") > 1 or item.count("@") > 1 or not match:
            raise argparse.ArgumentTypeError(f"Invalid LoRA adapter format: {item}")
        name, path, _revision = match.groups()
        adapters[name] = path or name
    return adapters


def _launcher_flag(
    group: argparse._ArgumentGroup, flag: str, default: str | None, text: str = "", *aliases: str, **kwargs
) -> None:
    """A launcher flag whose environment variable (FLAG_NAME) stands in for a missing flag."""
    env_name = flag.lstrip("-").replace("-", "_").upper()
    shown = "unset" if default is None else (default or '""')
    group.add_argument(
        *aliases,
        flag,
        default=os.environ.get(env_name, default),
        help=f"{text}{' ' if text else ''}[env {env_name}; default {shown}]",
        **kwargs,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localtgi", description="A local server that speaks Hugging Face TGI v3.3.x's HTTP API."
    )
    tgi = parser.add_argument_group("text-generation-launcher flags")
    _launcher_flag(tgi, "--model-id", None, "model reported by /info; unset: the engine's own")
    _launcher_flag(
        tgi,
        "--lora-adapters",
        "",
        "comma list of `name=path` or `id`; requests pick one with parameters.adapter_id",
        type=parse_lora_adapters,
    )
    tgi.add_argument(
        "--hostname",
        default="127.0.0.1",
        help="address to bind [default 127.0.0.1, TGI's is 0.0.0.0; HOSTNAME is not read: shells set it]",
    )
    _launcher_flag(tgi, "--port", "3000", "", "-p", type=int)
    _launcher_flag(tgi, "--max-concurrent-requests", "128", "requests beyond this are refused, not queued", type=int)
    _launcher_flag(tgi, "--max-best-of", "2", type=int)
    _launcher_flag(tgi, "--max-stop-sequences", "4", type=int)
    _launcher_flag(tgi, "--max-top-n-tokens", "5", type=int)
    _launcher_flag(tgi, "--max-input-tokens", None, "unset: max-total-tokens - 1", type=int)
    _launcher_flag(tgi, "--max-total-tokens", None, "unset: the engine's max_position_embeddings", type=int)
    _launcher_flag(tgi, "--max-client-batch-size", "4", "reported by /info", type=int)
    _launcher_flag(tgi, "--payload-limit", "2000000", "request body limit in bytes", type=int)
    _launcher_flag(tgi, "--dtype", None, "accepted for compatibility and ignored")
    _launcher_flag(tgi, "--quantize", None, "accepted for compatibility and ignored")

    own = parser.add_argument_group("localtgi")
    add_engine_flags(own)
    own.add_argument(
        "--keep-alive-seconds", type=float, default=15.0, help="idle time before an SSE keep-alive comment [default 15]"
    )
    add_fault_flags(parser, "/_localtgi/faults")
    return parser


def add_engine_flags(group: argparse._ArgumentGroup) -> None:
    """The engine and its pacing, shared with localvllm."""
    group.add_argument("--engine", choices=["scripted", "transformers"], default="scripted", help="[default scripted]")
    group.add_argument(
        "--cache-dir",
        type=pathlib.Path,
        help="transformers engine: where converted models are kept [default $THERAPIST_CACHE_DIR or .cache/]",
    )
    group.add_argument(
        "--token-rate", type=float, default=0.0, help="scripted engine: tokens/s per stream [default 0: unpaced]"
    )
    group.add_argument(
        "--unbatched",
        action="store_true",
        help="scripted engine: pace every stream on its own clock, not in shared decode steps as the servers do",
    )
    group.add_argument(
        "--first-token-delay", type=float, default=0.0, help="scripted engine: prefill latency in seconds"
    )
    group.add_argument(
        "--startup-delay", type=float, default=0.0, help="seconds before binding the port, like model loading"
    )


def add_fault_flags(parser: argparse.ArgumentParser, admin_path: str) -> None:
    """The fault-injection flags, shared with localvllm."""
    faults = parser.add_argument_group(f"faults (also settable at runtime: PUT {admin_path})")
    faults.add_argument("--fail-after", type=int, metavar="N", help="generation error after N tokens")
    faults.add_argument("--stall-after", type=int, metavar="N", help="stop sending for --stall-seconds after N tokens")
    faults.add_argument("--stall-seconds", type=float, default=Faults.stall_seconds, help="[default 30]")
    faults.add_argument(
        "--drop-after", type=int, metavar="N", help="close the connection after N tokens, no final event"
    )
    faults.add_argument(
        "--malformed-after",
        type=int,
        metavar="N",
        help="streams: after N tokens send one `data:` event that is not JSON, then go on",
    )
    faults.add_argument("--overload", action="store_true", help="refuse every generate request as overloaded")
    faults.add_argument("--unhealthy", action="store_true", help="/health answers 503")


def faults_from_args(args: argparse.Namespace) -> Faults:
    return Faults(
        fail_after=args.fail_after,
        stall_after=args.stall_after,
        stall_seconds=args.stall_seconds,
        drop_after=args.drop_after,
        malformed_after=args.malformed_after,
        overload=args.overload,
        unhealthy=args.unhealthy,
    )


def check_token_limits(max_input_tokens: int | None, max_total_tokens: int | None) -> None:
    """The launcher's rule; raises ValueError with its message."""
    if max_input_tokens is not None and max_total_tokens is not None and max_input_tokens >= max_total_tokens:
        raise ValueError(f"`max_input_tokens`({max_input_tokens}) must be < `max_total_tokens`({max_total_tokens})")


def resolve_limits(args: argparse.Namespace, max_position_embeddings: int) -> Limits:
    """Limits with TGI's defaults: total = max_position_embeddings, input = total - 1."""
    max_total_tokens = args.max_total_tokens if args.max_total_tokens is not None else max_position_embeddings
    max_input_tokens = args.max_input_tokens if args.max_input_tokens is not None else max_total_tokens - 1
    check_token_limits(max_input_tokens, max_total_tokens)
    return Limits(
        max_concurrent_requests=args.max_concurrent_requests,
        max_best_of=args.max_best_of,
        max_stop_sequences=args.max_stop_sequences,
        max_top_n_tokens=args.max_top_n_tokens,
        max_input_tokens=max_input_tokens,
        max_total_tokens=max_total_tokens,
        max_client_batch_size=args.max_client_batch_size,
        payload_limit=args.payload_limit,
    )
