"""The one place where the proxy's errors become HTTP responses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from proxy.chat_template import ChatTemplateError
from proxy.errors import (
    PromptTooLong,
    ProxyError,
    TooManyStreams,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.metrics import ProxyMetrics
from proxy.settings import Settings


def _status_for(exc: Exception) -> int:
    if isinstance(exc, (UpstreamRejected, ChatTemplateError, PromptTooLong)):
        return 422
    if isinstance(exc, (UpstreamOverloaded, TooManyStreams)):
        return 429
    if isinstance(exc, UpstreamUnavailable):
        return 503
    if isinstance(exc, UpstreamTimeout):
        return 504
    return 502  # the inference server failed or spoke nonsense: not the client's fault, nor ours


def install_error_handlers(app: FastAPI, settings: Settings, metrics: ProxyMetrics) -> None:
    retry_after = {
        429: str(settings.retry_after_overloaded_s),
        503: str(settings.retry_after_unavailable_s),
    }

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        status = _status_for(exc)
        if isinstance(exc, UpstreamError):
            metrics.upstream_errors.labels(exc.kind).inc()
        headers = {"Retry-After": retry_after[status]} if status in retry_after else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    app.add_exception_handler(ProxyError, handle)
    app.add_exception_handler(ChatTemplateError, handle)
