"""`python -m localvllm serve MODEL ...`: build the engine, wait out --startup-delay, serve."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import uvicorn

from localtgi.cli import faults_from_args
from localtgi.engines import build_engine
from localtgi.responses import quiet_deliberate_drops
from localvllm.cli import build_parser
from localvllm.server import VllmServer, create_app

logger = logging.getLogger("localvllm")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    loras = dict(args.lora_modules)
    if loras and not args.enable_lora:
        sys.exit("localvllm: LoRA is not enabled. Use --enable-lora to enable LoRA.")  # vLLM's words
    engine = build_engine(argparse.Namespace(
        engine=args.engine, model_id=None if args.engine == "scripted" else args.model, lora_adapters=loras,
        cache_dir=args.cache_dir, token_rate=args.token_rate, first_token_delay=args.first_token_delay,
        unbatched=args.unbatched,
    ))  # fmt: skip
    max_model_len = args.max_model_len or engine.max_position_embeddings
    sleep_mode = args.enable_sleep_mode and os.environ.get("VLLM_SERVER_DEV_MODE") == "1"
    served = args.served_model_name or [args.model]
    faults = faults_from_args(args)
    app = create_app(VllmServer(engine, faults, served, loras, max_model_len, sleep_mode), faults)
    if args.startup_delay > 0:  # vLLM binds only once the model is loaded
        logger.info("startup delay: not listening for %.1f s", args.startup_delay)
        time.sleep(args.startup_delay)
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=False, timeout_graceful_shutdown=3)
    quiet_deliberate_drops()
    logger.info("%s (%s engine, vLLM %s's wire) on http://%s:%d", served[0], args.engine,
                "0.34.0", args.host, args.port)  # fmt: skip
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
