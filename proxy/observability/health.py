"""What /health reports: healthy, loading (never seen healthy yet) or unhealthy, and why when we know."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from proxy.core.errors import UpstreamMisconfigured
from proxy.launcher.process import InferenceServer, ServerState
from proxy.policies.drain import Drain
from proxy.upstream import Upstream, UpstreamHealth

logger = logging.getLogger(__name__)

SHUTTING_DOWN = "shutting down: finishing the streams in flight, taking no new ones"


@dataclass(frozen=True, slots=True)
class Health:
    status: str  # "healthy" | "loading" | "unhealthy"
    detail: str | None = None  # what an operator should change, when that is known


class HealthTracker:
    def __init__(
        self, upstream: Upstream, inference_server: InferenceServer | None = None, drain: Drain | None = None
    ) -> None:
        self._upstream = upstream
        self._drain = drain
        self._inference_server = inference_server  # set when we launched the inference server ourselves
        self._seen_healthy = False
        self._setup_checked = False
        self._misconfiguration: UpstreamMisconfigured | None = None
        self._checking: asyncio.Task[Health] | None = None

    def saw_upstream_serving(self) -> None:
        """A generation started: from now on, silence from the server means down, not loading."""
        self._seen_healthy = True
        self._misconfiguration = None

    def saw_misconfiguration(self, error: UpstreamMisconfigured) -> None:
        """No request can succeed until an operator acts: /health says so, and the log says it once."""
        if self._misconfiguration is None or self._misconfiguration.message != error.message:
            logger.error("the inference server does not match the proxy's settings: %s", error.message)
        self._misconfiguration = error

    async def check(self) -> Health:
        if self._drain is not None and self._drain.draining:  # so the platform routes new conversations elsewhere
            return Health("unhealthy", SHUTTING_DOWN)
        return await self._shared_check()

    async def _shared_check(self) -> Health:
        """Callers that come while a check is running share its answer: one probe of the server, however
        many pollers ask (and the start-up check), not one connection each."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._checking)

    async def _check(self) -> Health:
        if self._inference_server is not None:
            # The launcher knows better than a probe: still loading, or dead for good.
            state = self._inference_server.state
            if state is ServerState.LOADING:
                return Health("loading")
            if state is not ServerState.HEALTHY:
                return Health("unhealthy")
        health = await self._upstream.health()
        if health is UpstreamHealth.UNREACHABLE:
            self._misconfiguration = None  # a restart may bring it back set up differently
            self._setup_checked = False
            # The server does not listen until its model is loaded: silence before the first success is loading.
            return Health("unhealthy" if self._seen_healthy else "loading")
        if health is UpstreamHealth.UNHEALTHY:
            return Health("unhealthy")
        self._seen_healthy = True
        if not self._setup_checked:
            self._setup_checked = True  # once per server start: what it serves does not change while it runs
            try:
                await self._upstream.check_setup()
            except UpstreamMisconfigured as exc:
                self.saw_misconfiguration(exc)
        if self._misconfiguration is not None:
            return Health("unhealthy", self._misconfiguration.message)
        return Health("healthy")
