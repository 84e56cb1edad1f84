"""`python -m proxy` / `therapist-proxy`: serve the proxy with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from proxy.app import create_app
from proxy.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Therapist streaming proxy (settings: PROXY_* environment variables)")
    parser.add_argument("--host", help="bind address (default: PROXY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: PROXY_PORT or 8000)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings(**overrides)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
