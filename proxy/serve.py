"""Serve the proxy with uvicorn: alone, in front of an inference server at PROXY_TGI_URL, or with the
inference server it launches (`--launch`), the two as one unit.

With `--launch` the child starts first, so a bad adapter or a taken port fails before anything
listens. The proxy then serves at once (/health says `loading` until the model is ready), and the
process ends with status 1 when the child dies or never gets healthy, so whatever runs us (a
container platform, a terminal) sees the pair as failed. Ctrl-C stops both at once; SIGTERM (what a
platform sends) drains first: the streams in flight finish, for up to PROXY_DRAIN_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from types import FrameType
from typing import Any

import pydantic
import uvicorn
from starlette.types import ASGIApp

from adapters.errors import AdapterError
from proxy.app import create_app, freeze_startup_objects
from proxy.launcher.process import FailureCallback, InferenceServer, InferenceServerError, InferenceServerStopped
from proxy.launcher.settings import load_launch_settings, proxy_settings_for
from proxy.observability.logs import configure_logging
from proxy.policies.crisis.care import CrisisCareSetupError
from proxy.policies.drain import Drain
from proxy.policies.in_flight import StreamsInFlight
from proxy.settings import Settings, load_settings

logger = logging.getLogger(__name__)

# Settings that cannot work: logged as one line that says what to change, and the process exits 1.
SETUP_ERRORS = (pydantic.ValidationError, AdapterError, FileNotFoundError, CrisisCareSetupError)

# log_config=None keeps our JSON logging; our request log replaces the access log.
UVICORN_OPTIONS = {
    "loop": "uvloop",
    "http": "httptools",
    "timeout_graceful_shutdown": 5,
    "log_config": None,
    "access_log": False,
}


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM drains (proxy/policies/drain.py) before the shutdown
    starts: uvicorn's own would close the listening socket at once, so /health could not say so."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace_s = grace_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_started = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.started and not self._drain_started and self._loop is not None:
            self._drain_started = True  # a second SIGTERM, or Ctrl-C, stops at once
            self._loop.call_soon_threadsafe(self._start_drain, sig, frame)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        drained = self._loop.create_task(self._drain.run(self._grace_s))
        drained.add_done_callback(lambda _: super(DrainingServer, self).handle_exit(sig, frame))


def _server(app: ASGIApp, settings: Settings, drain: Drain) -> DrainingServer:
    config = uvicorn.Config(app, host=settings.host, port=settings.port, **UVICORN_OPTIONS)
    return DrainingServer(config, drain, settings.drain_timeout_s)


def serve(proxy_overrides: dict[str, Any]) -> int:
    """The proxy alone; exit status 1 when its settings or the adapter cannot work."""
    configure_logging()
    try:
        settings = load_settings(**proxy_overrides)
        drain = Drain(StreamsInFlight())
        server = _server(create_app(settings, drain=drain), settings, drain)
    except SETUP_ERRORS as exc:
        logger.error("cannot start: %s", exc)
        return 1
    freeze_startup_objects()
    server.run()
    return 0


def serve_with_inference_server(proxy_overrides: dict[str, Any]) -> int:
    """Run until stopped; the exit status is 0 after Ctrl-C/SIGTERM, 1 when the inference server failed."""
    configure_logging()
    exit_status = 0

    def stop_serving(error: InferenceServerError) -> None:
        nonlocal exit_status
        exit_status = 1
        logger.error("shutting the proxy down: %s", error)
        server.should_exit = True  # uvicorn's main loop polls this flag

    try:
        launch = load_launch_settings()
        settings = proxy_settings_for(launch, **proxy_overrides)
        inference = InferenceServer(launch, on_failure=stop_serving)
        drain = Drain(StreamsInFlight())
        server = _server(create_app(settings, inference_server=inference, drain=drain), settings, drain)
        inference.start()
    except (*SETUP_ERRORS, InferenceServerError) as exc:
        logger.error("cannot start: %s", exc)
        return 1

    freeze_startup_objects()
    proxy_url = f"http://{settings.host}:{settings.port}"
    threading.Thread(target=_wait_until_ready, args=(inference, proxy_url, stop_serving), daemon=True).start()
    logger.info("proxy on %s answers /health with `loading` until the model is ready", proxy_url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; both servers are already down
    finally:
        inference.stop()
    return exit_status


def _wait_until_ready(inference: InferenceServer, proxy_url: str, on_failure: FailureCallback) -> None:
    try:
        inference.wait_until_ready()
    except InferenceServerStopped:
        return  # we are shutting down
    except InferenceServerError as exc:
        on_failure(exc)
        return
    logger.info("ready: POST %s/stream_chat (Ctrl-C stops the proxy and the inference server)", proxy_url)
