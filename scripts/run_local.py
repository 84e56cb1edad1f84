"""Serve the whole local stack: localtgi (TGI stand-in) and the proxy. Ctrl-C stops both.

Used by `make run`. The proxy listens on http://127.0.0.1:PORT and talks to localtgi on TGI_PORT.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import httpx

MODEL_NAME = "qwen_therapist_lora"


def wait_healthy(url: str, process: subprocess.Popen, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url}: process exited with {process.returncode} before it became healthy")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url}: not healthy after {deadline_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="scripted", choices=["scripted", "transformers"])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tgi-port", type=int, default=3000)
    parser.add_argument("--token-rate", type=float, default=30.0, help="scripted engine: tokens/s per stream")
    args = parser.parse_args()

    localtgi_cmd = [
        sys.executable, "-m", "localtgi",
        "--engine", args.engine,
        "--port", str(args.tgi_port),
        "--lora-adapters", MODEL_NAME,
        "--token-rate", str(args.token_rate),
    ]
    proxy_env = {**os.environ, "PROXY_TGI_URL": f"http://127.0.0.1:{args.tgi_port}"}
    proxy_cmd = [sys.executable, "-m", "proxy", "--port", str(args.port)]

    print(f">> starting localtgi ({args.engine} engine) on 127.0.0.1:{args.tgi_port}", flush=True)
    children = [subprocess.Popen(localtgi_cmd)]
    try:
        wait_healthy(f"http://127.0.0.1:{args.tgi_port}/health", children[0], deadline_s=600)
        print(f">> starting the proxy on 127.0.0.1:{args.port}", flush=True)
        children.append(subprocess.Popen(proxy_cmd, env=proxy_env))
        wait_healthy(f"http://127.0.0.1:{args.port}/health", children[1], deadline_s=60)
        print(
            f"\n>> ready: http://127.0.0.1:{args.port}/stream_chat  (Ctrl-C stops)\n"
            f"   curl -N -X POST http://127.0.0.1:{args.port}/stream_chat "
            "-H 'Content-Type: application/json' -d '{\"message\": \"I feel anxious\", \"max_tokens\": 256}'\n",
            flush=True,
        )
        # Either child ending is the end of the stack.
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        sys.exit(next(child.returncode for child in children if child.poll() is not None) or 1)
    except KeyboardInterrupt:
        print("\n>> stopping", flush=True)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
