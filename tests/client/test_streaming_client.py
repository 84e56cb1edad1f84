"""scripts/test_streaming_client.py: passes against the real stack, fails on every contract break."""

import subprocess
import sys

import pytest

from tests.support.fixtures import REPO_ROOT
from tests.support.servers import free_port, run_server

CLIENT = [sys.executable, str(REPO_ROOT / "scripts" / "test_streaming_client.py")]


def run_client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLIENT, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def breaker():
    port = free_port()
    command = [sys.executable, "-m", "tests.support.contract_breaker", str(port)]
    with run_server(command, port, wait=True, timeout=30, env={}, log_file=None, health_path="/") as url:
        yield url


def test_check_passes_against_the_local_stack_with_history(stack_factory):
    with stack_factory(localtgi_args=["--token-rate", "500"]) as stack:
        result = run_client(
            "--url", stack.proxy_url, "--check", "--history", "-m", "I feel anxious", "-m", "Mostly at night"
        )
    assert result.returncode == 0, result.stderr
    assert "CHECK PASSED" in result.stderr
    assert result.stderr.count("time to first token:") == 2 and "tokens/s" in result.stderr
    assert len(result.stdout.split()) > 3  # the reply was printed


def test_check_passes_against_a_well_behaved_server(breaker):
    result = run_client("--url", f"{breaker}/valid", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello"


@pytest.mark.parametrize(
    ("mode", "complaint"),
    [
        ("no-final", "without a final"),
        ("special-token", "special token"),
        ("empty-token", "empty token"),
        ("two-finals", "after the final event"),
        ("non-ascii", "not ASCII"),
        ("not-json", "not JSON"),
        ("no-space", "not a single `data: ` line"),
        ("final-without-usage", "no usage"),
        ("http-500", "HTTP 500"),
        ("json-content-type", "content-type"),
    ],
)
def test_check_fails_on_each_contract_break(breaker, mode, complaint):
    result = run_client("--url", f"{breaker}/{mode}", "--check")
    assert result.returncode == 1
    assert "CONTRACT VIOLATION" in result.stderr and complaint in result.stderr, result.stderr


def test_unreachable_server_is_a_failure():
    result = run_client("--url", f"http://127.0.0.1:{free_port()}", "--check")
    assert result.returncode == 1 and "REQUEST FAILED" in result.stderr
