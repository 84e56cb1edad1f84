"""The one place where the proxy's errors become HTTP responses."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
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


def _scalar(value: Any) -> Any:
    """`value` as JSON and UTF-8 can carry it: NaN and Infinity as strings, bytes decoded, lone
    surrogates (legal in JSON's \\u escapes, not in UTF-8) replaced, anything else as its text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value).encode("utf-8", "replace").decode("utf-8")


def _encodable_error(error: dict[str, Any]) -> dict[str, Any]:
    encodable = {"type": error["type"], "loc": [_scalar(part) for part in error["loc"]], "msg": _scalar(error["msg"])}
    value = error.get("input")
    if value is None or isinstance(value, (str, bytes, bool, int, float)):
        encodable["input"] = _scalar(value)  # not a list or object: walking one nested 900 deep could overflow
    if "ctx" in error:
        encodable["ctx"] = {key: _scalar(item) for key, item in error["ctx"].items()}
    return encodable


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own 422, `{"detail": [{"type", "loc", "msg", "input", "ctx"}]}`. Its default handler
    echoes every `input` as is, and then `{"temperature": NaN}`, `{"message": "\\ud800"}` or non-UTF-8
    bytes sent as text/plain cannot be encoded: a 500."""
    return JSONResponse({"detail": [_encodable_error(error) for error in exc.errors()]}, status_code=422)


class ErrorResponses:
    """The response for each error a request can end in; FastAPI's handlers and the /stream_chat
    endpoint (proxy/stream_endpoint.py) both ask here."""

    def __init__(self, settings: Settings, metrics: ProxyMetrics) -> None:
        self._metrics = metrics
        self._retry_after = {
            429: str(settings.retry_after_overloaded_s),
            503: str(settings.retry_after_unavailable_s),
        }

    def response_for(self, exc: Exception) -> JSONResponse:
        """Raises `exc` again when it is not one of ours: a bug, which the server answers with 500."""
        if isinstance(exc, RequestValidationError):
            return invalid_request(exc)
        if isinstance(exc, HTTPException):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if not isinstance(exc, (ProxyError, ChatTemplateError)):
            raise exc
        status = _status_for(exc)
        if isinstance(exc, UpstreamError):
            self._metrics.upstream_errors.labels(exc.kind).inc()
        headers = {"Retry-After": self._retry_after[status]} if status in self._retry_after else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, errors: ErrorResponses) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return errors.response_for(exc)

    for error_type in (RequestValidationError, ProxyError, ChatTemplateError):
        app.add_exception_handler(error_type, handle)
