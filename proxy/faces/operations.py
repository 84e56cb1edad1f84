"""The operators' face: GET /health (for probes; needs no API key) and GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from proxy.asgi.routing import Routes
from proxy.core.errors import UpstreamError
from proxy.observability.health import HealthTracker
from proxy.observability.metrics import ProxyMetrics
from proxy.settings import Settings
from proxy.upstream import Upstream

HEALTH_PATH = "/health"


def add_operations(
    app: FastAPI,
    routes: Routes,
    settings: Settings,
    health: HealthTracker,
    upstream: Upstream,
    metrics: ProxyMetrics,
) -> None:
    routes.add_public(HEALTH_PATH)
    retry_after = {"Retry-After": str(settings.retry_after_unavailable_s)}

    @app.get(HEALTH_PATH)
    async def health_check() -> JSONResponse:
        found = await health.check()
        body = {"status": found.status, "model": settings.model_name}
        if found.detail:
            body["detail"] = found.detail
        metrics.upstream_up.set(found.status == "healthy")
        if found.status == "healthy":
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers=retry_after)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        try:
            relayed, problem = await upstream.metrics_text(), ""
        except UpstreamError as exc:
            relayed, problem = None, exc.message
        metrics.upstream_up.set(relayed is not None)
        return Response(metrics.render(relayed, problem), media_type=CONTENT_TYPE_LATEST)
