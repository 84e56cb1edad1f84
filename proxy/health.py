"""What /health reports: healthy, loading (never seen healthy yet) or unhealthy."""

from __future__ import annotations

from proxy.inference_server import InferenceServer, ServerState
from proxy.upstream import TGIClient, UpstreamHealth


class HealthTracker:
    def __init__(self, upstream: TGIClient, inference_server: InferenceServer | None = None) -> None:
        self._upstream = upstream
        self._inference_server = inference_server  # set when we launched TGI ourselves
        self._seen_healthy = False

    def saw_upstream_serving(self) -> None:
        """TGI answered a generation: from now on, silence from it means down, not loading."""
        self._seen_healthy = True

    async def status(self) -> str:
        if self._inference_server is not None:
            # The launcher knows better than a probe: still loading, or dead for good.
            state = self._inference_server.state
            if state is ServerState.LOADING:
                return "loading"
            if state is not ServerState.HEALTHY:
                return "unhealthy"
        health = await self._upstream.health()
        if health is UpstreamHealth.HEALTHY:
            self._seen_healthy = True
            return "healthy"
        # TGI does not listen until its model is loaded: silence before the first success is loading.
        if health is UpstreamHealth.UNREACHABLE and not self._seen_healthy:
            return "loading"
        return "unhealthy"
