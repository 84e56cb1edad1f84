"""What /health reports: healthy, loading (never seen healthy yet) or unhealthy."""

from __future__ import annotations

from proxy.upstream import TGIClient, UpstreamHealth


class HealthTracker:
    def __init__(self, upstream: TGIClient) -> None:
        self._upstream = upstream
        self._seen_healthy = False

    async def status(self) -> str:
        health = await self._upstream.health()
        if health is UpstreamHealth.HEALTHY:
            self._seen_healthy = True
            return "healthy"
        # TGI does not listen until its model is loaded: silence before the first success is loading.
        if health is UpstreamHealth.UNREACHABLE and not self._seen_healthy:
            return "loading"
        return "unhealthy"
