"""`python -m localtgi` / `localtgi`: build the engine, wait out --startup-delay, serve."""

from __future__ import annotations

import logging
import os
import sys
import time

import uvicorn

from localtgi.app import create_app
from localtgi.cli import build_parser, check_token_limits, faults_from_args, resolve_limits
from localtgi.config import ServerConfig
from localtgi.engines import build_engine
from localtgi.responses import quiet_deliberate_drops

logger = logging.getLogger("localtgi")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    try:  # fail before loading anything, as the launcher does
        check_token_limits(args.max_input_tokens, args.max_total_tokens)
    except ValueError as error:
        sys.exit(f"localtgi: {error}")
    for flag in ("dtype", "quantize"):
        if getattr(args, flag):
            logger.info("--%s %s accepted for compatibility and ignored", flag, getattr(args, flag))

    engine = build_engine(args)
    try:
        limits = resolve_limits(args, engine.max_position_embeddings)
    except ValueError as error:
        sys.exit(f"localtgi: {error}")
    config = ServerConfig(
        model_id=engine.model_id,
        limits=limits,
        keep_alive_seconds=args.keep_alive_seconds,
        compute_type=os.environ.get("COMPUTE_TYPE", "gpu+optimized"),
    )
    app = create_app(config, engine, faults_from_args(args))

    if args.startup_delay > 0:
        logger.info("startup delay: not listening for %.1f s", args.startup_delay)
        time.sleep(args.startup_delay)
    server_config = uvicorn.Config(
        app,
        host=args.hostname,
        port=args.port,
        access_log=False,
        server_header=False,  # axum sends none
        timeout_graceful_shutdown=3,  # open streams must not hold up a stop for long
    )
    quiet_deliberate_drops()  # after uvicorn.Config, which sets up uvicorn's loggers
    logger.info("%s (%s engine) on http://%s:%d", config.model_id, args.engine, args.hostname, args.port)
    uvicorn.Server(server_config).run()


if __name__ == "__main__":
    main()
