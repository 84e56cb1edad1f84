"""`python -m proxy` / `therapist-proxy`: serve the proxy (settings: PROXY_* environment variables)."""

from __future__ import annotations

import argparse
import sys

from proxy.serve import serve, serve_with_inference_server


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
    sys.exit(serve_with_inference_server(overrides) if args.launch else serve(overrides))


if __name__ == "__main__":
    main()
