#!/usr/bin/env python3
"""A stand-in's scripted engine (localtgi's, or localvllm's with --wire vllm) with replies long enough
for the benchmark's streams.

    python scripts/bench_upstream.py --reply-tokens 300 -- --engine scripted --token-rate 30 ...
    python scripts/bench_upstream.py --wire vllm --reply-tokens 300 -- serve --engine scripted ...

The scripted engine's replies are 20..120 tokens (localtgi/engines/scripted.py), and a reply ends
at EOS; a benchmark of realistic 256-token streams needs longer ones, cut by max_new_tokens. This
sets the engine's reply length (module constants it reads on each new seed), then runs
`python -m localtgi` (or `python -m localvllm`) with the arguments after `--`.
"""

from __future__ import annotations

import argparse

import localtgi.engines.scripted as scripted
from localtgi.__main__ import main as localtgi_main
from localvllm.__main__ import main as localvllm_main


def use_reply_length(tokens: int) -> tuple[scripted.GeneratedToken, ...]:
    """Make every scripted reply `tokens` long (plus the end of its last sentence); returns the
    greedy reply (seed 0), which is what every benchmark request gets."""
    scripted.MIN_REPLY_TOKENS = scripted.MAX_REPLY_TOKENS = tokens
    scripted.reply_tokens.cache_clear()
    return scripted.reply_tokens(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reply-tokens", type=int, required=True)
    parser.add_argument("--wire", choices=["tgi", "vllm"], default="tgi", help="which stand-in [default tgi]")
    parser.add_argument("server_args", nargs=argparse.REMAINDER, help="arguments for the stand-in, after --")
    args = parser.parse_args()
    use_reply_length(args.reply_tokens)
    forwarded = args.server_args[1:] if args.server_args[:1] == ["--"] else args.server_args
    (localtgi_main if args.wire == "tgi" else localvllm_main)(forwarded)


if __name__ == "__main__":
    main()
