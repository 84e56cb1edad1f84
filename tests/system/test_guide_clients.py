"""The guide's curl, Python and JavaScript clients against the stack `make run` serves."""

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support.chat_stream import parse_event_stream
from tests.support.fixtures import REPO_ROOT
from tests.support.servers import free_port

CLIENTS = REPO_ROOT / "tests" / "clients"


@pytest.fixture(scope="module")
def local_stack(engine):
    """`make run ENGINE=scripted UPSTREAM=<engine>`, exactly as a developer runs it, stopped the way
    Ctrl-C does."""
    port, tgi_port = free_port(), free_port()
    process = subprocess.Popen(
        ["make", "run", "ENGINE=scripted", f"UPSTREAM={engine}", f"PORT={port}", f"UPSTREAM_PORT={tgi_port}",
         "TOKEN_RATE=500"],  # fmt: skip
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    output = []
    try:
        for line in process.stdout:  # the supervisor logs when the stack is ready
            output.append(line)
            if "ready: POST" in line:
                break
        else:
            pytest.fail(f"make run exited with {process.wait()} before it was ready:\n{''.join(output)}")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground job
        process.communicate(timeout=30)
        # Ctrl-C stopped both servers: nothing answers on either port any more.
        for stopped in (port, tgi_port):
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{stopped}/health", timeout=1)


def test_health(local_stack):
    response = httpx.get(f"{local_stack}/health")
    assert response.json() == {"status": "healthy", "model": "qwen_therapist_lora"}


def test_guide_curl_command(local_stack):
    output = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            f"{local_stack}/stream_chat",
            "-H",
            "Content-Type: application/json",
            "-d",
            '{"message": "I feel anxious", "max_tokens": 256}',
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    events, _ = parse_event_stream(output)
    assert len(events) > 1 and events[-1]["done"] is True
    assert all(event["token"] for event in events[:-1])


def test_guide_python_requests_client(local_stack):
    result = subprocess.run(
        [sys.executable, str(CLIENTS / "guide_requests_client.py"), f"{local_stack}/stream_chat"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    reply, _, tail = result.stdout.rpartition("\n[Stream complete]")
    assert tail == "\n"
    assert len(reply.split()) >= 3, result.stdout
    assert "<|im_end|>" not in reply and "\\u" not in reply


def test_guide_javascript_fetch_client(local_stack):
    result = subprocess.run(
        ["node", str(CLIENTS / "guide_fetch_client.mjs"), f"{local_stack}/stream_chat"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 3, result.stdout
    assert "<|im_end|>" not in result.stdout
