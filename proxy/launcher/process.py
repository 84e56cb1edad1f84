"""The inference server (TGI, or localtgi) as a supervised child process.

`python -m proxy --launch` and Modal's `@modal.enter` both call `start()` (check the
adapter, spawn the child) and `wait_until_ready()` (poll its /health with a deadline).

States: loading -> healthy -> failed (the child died) or stopped (we stopped it).
Failures before readiness are raised by `wait_until_ready()`; after readiness the
`on_failure` callback hears about them, so the owner can end the process and let
the platform replace the container.
"""

from __future__ import annotations

import collections
import ctypes
import enum
import errno
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from adapters.validate import AdapterReport, check_adapter
from proxy.launcher.argv import build_launcher_args
from proxy.launcher.settings import LaunchSettings, build_child_env

logger = logging.getLogger(__name__)
child_logger = logging.getLogger("proxy.launcher.child")

_RECENT_LINES = 20  # child output kept for error messages
# engine -> (its name, the local stand-in's command)
STAND_INS = {"tgi": ("TGI", "python -m localtgi --engine scripted"),
             "vllm": ("vLLM", "python -m localvllm serve --engine scripted")}  # fmt: skip


class ServerState(enum.Enum):
    LOADING = "loading"
    HEALTHY = "healthy"
    FAILED = "failed"
    STOPPED = "stopped"


class InferenceServerError(Exception):
    """The inference server could not be started, or stopped working."""


class LaunchConfigError(InferenceServerError):
    """The settings cannot work (port taken, adapter TGI cannot serve, launcher not installed)."""


class InferenceServerExited(InferenceServerError):
    def __init__(self, returncode: int, recent_output: list[str]) -> None:
        self.returncode = returncode
        self.recent_output = recent_output
        tail = "\n".join(f"  | {line}" for line in recent_output) or "  (no output)"
        super().__init__(f"inference server exited with status {returncode}; its last output:\n{tail}")


class InferenceServerStartTimeout(InferenceServerError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"inference server not healthy after {timeout_s:.0f} s; stopped it")


class InferenceServerStopped(InferenceServerError):
    def __init__(self) -> None:
        super().__init__("inference server was stopped before it became healthy")


class _NotReadyYet(Exception):
    pass


FailureCallback = Callable[[InferenceServerError], None]


class InferenceServer:
    def __init__(self, settings: LaunchSettings, on_failure: FailureCallback | None = None) -> None:
        self.settings = settings
        self._on_failure = on_failure
        self._process: subprocess.Popen[bytes] | None = None
        self._state = ServerState.LOADING
        self._stopping = False
        self._lock = threading.Lock()
        self._recent_output: collections.deque[str] = collections.deque(maxlen=_RECENT_LINES)

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Check the adapter and spawn the child; returns at once (see wait_until_ready).

        Raises AdapterNotFound / AdapterInvalid (from `adapters`) or LaunchConfigError,
        before anything is started.
        """
        adapter = _checked_adapter(self.settings)
        _ensure_port_free(self.settings.hostname, self.settings.port)
        if adapter is None:
            args = build_launcher_args(self.settings)
        else:
            args = build_launcher_args(self.settings, adapter.path, adapter.rank)
        try:
            # A session of its own: Ctrl-C in a terminal reaches only us, and we stop the child
            # (and TGI's shards, which share its process group) deliberately.
            self._process = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=build_child_env(self.settings, os.environ),
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except FileNotFoundError:
            name, stand_in = STAND_INS[self.settings.engine]
            raise LaunchConfigError(
                f"{args[0]!r} not found; install {name} or set LAUNCH_COMMAND (e.g. LAUNCH_COMMAND='{stand_in}')"
            ) from None
        logger.info("started inference server (pid %d): %s", self._process.pid, shlex.join(args))
        threading.Thread(target=self._forward_output, name="inference-server-output", daemon=True).start()
        threading.Thread(target=self._watch_exit, name="inference-server-watch", daemon=True).start()

    def wait_until_ready(self) -> None:
        """Poll the child's /health until it answers 200; raise if it exits or the deadline passes."""
        settings = self.settings
        logger.info("waiting for %s/health (up to %.0f s)", settings.url, settings.startup_timeout_s)
        retrying = Retrying(
            retry=retry_if_exception_type(_NotReadyYet),
            stop=stop_after_delay(settings.startup_timeout_s),
            wait=wait_fixed(settings.health_poll_interval_s),
            reraise=True,
        )
        with httpx.Client(base_url=settings.url, timeout=2.0) as client:
            try:
                for attempt in retrying:
                    with attempt:
                        self._probe(client)
            except _NotReadyYet:
                self._state = ServerState.FAILED
                self.stop()
                raise InferenceServerStartTimeout(settings.startup_timeout_s) from None
        with self._lock:
            if self._state is ServerState.LOADING:
                self._state = ServerState.HEALTHY
                logger.info("inference server is healthy at %s", settings.url)
                return
        self._probe_exited()  # it died between its healthy answer and now
        raise InferenceServerStopped()

    def _probe(self, client: httpx.Client) -> None:
        self._probe_exited()
        try:
            response = client.get("/health")
        except httpx.TransportError:
            raise _NotReadyYet() from None  # TGI does not listen until its model is loaded
        if response.status_code != 200:
            raise _NotReadyYet()

    def _probe_exited(self) -> None:
        if self._stopping:
            raise InferenceServerStopped()
        returncode = self._process.poll()
        if returncode is not None:
            self._state = ServerState.FAILED
            raise InferenceServerExited(returncode, list(self._recent_output))

    def stop(self) -> None:
        """SIGTERM the child, give it `stop_timeout_s`, then SIGKILL its whole process group. Idempotent."""
        with self._lock:
            if self._stopping or self._process is None:
                return
            self._stopping = True
            if self._state is not ServerState.FAILED:
                self._state = ServerState.STOPPED
        process = self._process
        if process.poll() is None:
            logger.info("stopping inference server (pid %d)", process.pid)
            process.terminate()  # TGI's launcher shuts its shards down on SIGTERM
            try:
                process.wait(timeout=self.settings.stop_timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("inference server ignored SIGTERM for %.0f s; killing it", self.settings.stop_timeout_s)
        _kill_group(process.pid)
        process.wait()
        logger.info("inference server stopped (status %s)", process.returncode)

    def _forward_output(self) -> None:
        for raw in self._process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line:
                self._recent_output.append(line)
                child_logger.info("[tgi] %s", line)

    def _watch_exit(self) -> None:
        returncode = self._process.wait()
        with self._lock:
            if self._stopping:
                return
            was_healthy = self._state is ServerState.HEALTHY
            self._state = ServerState.FAILED
        _kill_group(self._process.pid)  # shards a crashed launcher left behind
        logger.error("inference server (pid %d) exited with status %d", self._process.pid, returncode)
        # Before readiness, wait_until_ready() raises this failure, with the output tail, to its caller.
        if was_healthy and self._on_failure is not None:
            self._on_failure(InferenceServerExited(returncode, list(self._recent_output)))


def _checked_adapter(settings: LaunchSettings) -> AdapterReport | None:
    if settings.adapter_dir is None:
        logger.info("no LoRA adapter configured: serving the base model %s", settings.model_id)
        return None
    report = check_adapter(settings.adapter_dir)
    for warning in report.warnings:
        logger.warning("adapter %s: %s", report.path, warning)
    if report.needs_merge_on(settings.engine):
        also = " (or serve it on vLLM, which can: LAUNCH_ENGINE=vllm)" if report.vllm_serves_lora else ""
        raise LaunchConfigError(
            f"{settings.engine} cannot apply a LoRA adapter to {report.base_model} (model type {report.model_type}); "
            f"merge it into the base weights (`python -m adapters merge {report.path} OUT_DIR`) and serve "
            f"OUT_DIR as the model, with no adapter (see docs/deploy.md){also}"
        )
    if report.base_model != settings.model_id:
        logger.warning(
            "adapter %s was trained on %s but the base model is %s", report.path, report.base_model, settings.model_id
        )
    logger.info("adapter %r ready at %s (rank %d)", settings.adapter_name, report.path, report.rank)
    return report


def _ensure_port_free(host: str, port: int) -> None:
    # Otherwise an old server on the port could answer our health checks while our child fails to bind.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not in use
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise LaunchConfigError(
                f"port {port} on {host} is already in use: is another inference server running? "
                "Stop it or pick another TGI_PORT"
            ) from None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # nothing left in the group


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when we die without stopping it (SIGKILL, OOM),
    so no inference server outlives its supervisor."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
