"""`python -m proxy` / `therapist-proxy`: serve the proxy with uvicorn."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from proxy.app import create_app, freeze_startup_objects
from proxy.logs import configure_logging
from proxy.settings import load_settings
from proxy.supervisor import serve_with_inference_server

# log_config=None keeps our JSON logging; our request log replaces the access log.
UVICORN_OPTIONS = {
    "loop": "uvloop",
    "http": "httptools",
    "timeout_graceful_shutdown": 5,
    "log_config": None,
    "access_log": False,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Therapist streaming proxy (settings: PROXY_* environment variables)")
    parser.add_argument("--host", help="bind address (default: PROXY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: PROXY_PORT or 8000)")
    parser.add_argument(
        "--launch",
        action="store_true",
        help="also start the inference server (settings: TGI_* environment variables) and exit non-zero if it dies",
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    freeze_startup_objects()
    if args.launch:
        sys.exit(serve_with_inference_server(overrides, UVICORN_OPTIONS))
    configure_logging()
    settings = load_settings(**overrides)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
