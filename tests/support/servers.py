"""Real servers for tests (localtgi, the proxy): subprocesses on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx

from tests.support.fixtures import REPO_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(
    base_url: str, process: subprocess.Popen | None = None, timeout: float = 30.0, health_path: str = "/health"
) -> None:
    """Until GET /health gets any HTTP answer (503 included: an --unhealthy server is up).

    Gives up early if `process` exits.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before answering at {base_url}")
        try:
            httpx.get(f"{base_url}{health_path}", timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answered at {base_url} within {timeout} s") from None
            time.sleep(0.05)


# base URL -> the process serving it, while run_server() runs it
_processes: dict[str, subprocess.Popen] = {}


def server_process(base_url: str) -> subprocess.Popen:
    """The process behind a URL that start_localtgi()/start_proxy() yielded: its pid for /proc, or to kill it."""
    return _processes[base_url]


@contextlib.contextmanager
def run_server(
    command: list[str], port: int, *, wait: bool, timeout: float, env: dict[str, str], log_file, health_path="/health"
) -> Iterator[str]:
    log = open(log_file, "wb") if log_file else None
    process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **env}, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    _processes[base_url] = process
    try:
        if wait:
            wait_until_answering(base_url, process, timeout, health_path)
        yield base_url
    finally:
        _processes.pop(base_url, None)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            log.close()


def start_localtgi(
    *args: str,
    port: int | None = None,
    wait: bool = True,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[str]:
    """Run `python -m localtgi --port <port or a free one> *args`; yields its base URL, stops it on exit.

    With wait=False the URL comes back at once (to watch --startup-delay, say); call
    wait_until_answering() when needed. Server logs go to the test's captured output.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "localtgi", "--hostname", "127.0.0.1", "--port", str(port), *args]
    return run_server(command, port, wait=wait, timeout=timeout, env=env or {}, log_file=None)


def start_localvllm(
    *args: str,
    port: int | None = None,
    wait: bool = True,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[str]:
    """Run `python -m localvllm serve --port <port or a free one> *args`, as start_localtgi does localtgi."""
    port = port or free_port()
    command = [sys.executable, "-m", "localvllm", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    return run_server(command, port, wait=wait, timeout=timeout, env=env or {}, log_file=None)


def start_proxy(tgi_url: str, log_file: Path | None = None, **settings) -> contextlib.AbstractContextManager[str]:
    """Run `python -m proxy` in front of `tgi_url` (TGI's wire, unless `engine="vllm"`); yields its base URL.

    `settings` become PROXY_* environment variables; with `log_file`, the proxy's log (stderr)
    is written there instead of the test output. Waits for any answer: /health may rightly be 503.
    """
    port = free_port()
    env = {"PROXY_UPSTREAM_URL": tgi_url, **{f"PROXY_{name.upper()}": str(value) for name, value in settings.items()}}
    command = [sys.executable, "-m", "proxy", "--port", str(port)]
    return run_server(command, port, wait=True, timeout=30.0, env=env, log_file=log_file)
