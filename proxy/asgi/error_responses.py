"""The one place where the proxy's errors become HTTP responses, on every route and in every middleware.

Status and headers come from the table (`error_statuses.py`); the body from the renderer of the face
that owns the route: the guide's `{"detail": ...}` unless a face registered its own for its prefix.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from proxy.asgi.error_statuses import status_of
from proxy.asgi.routing import route_path
from proxy.core.errors import InvalidRequest, MethodNotAllowed, ProxyError, RouteNotFound
from proxy.observability.request_context import RequestContext
from proxy.settings import Settings

ErrorRenderer = Callable[[ProxyError], dict[str, Any]]


def detail_body(error: ProxyError) -> dict[str, Any]:
    """The guide's routes: FastAPI's `{"detail": ...}`, a list of field errors for an invalid body."""
    if isinstance(error, InvalidRequest):
        return {"detail": [encodable_error(item) for item in error.errors]}
    return {"detail": error.message}


class ErrorResponder:
    def __init__(self, settings: Settings) -> None:
        self._retry_after = {
            "overloaded": str(settings.retry_after_overloaded_s),
            "unavailable": str(settings.retry_after_unavailable_s),
        }
        self._renderers: list[tuple[str, ErrorRenderer]] = []

    def render_under(self, prefix: str, renderer: ErrorRenderer) -> None:
        """Errors on routes under `prefix` (e.g. "/v1/") get `renderer`'s body."""
        self._renderers.append((prefix, renderer))
        self._renderers.sort(key=lambda entry: len(entry[0]), reverse=True)

    def response(self, error: ProxyError, scope: Scope, headers: dict[str, str] | None = None) -> JSONResponse:
        RequestContext.of(scope).error = error  # for the request log
        found = status_of(error)
        headers = {**dict(found.headers), **(headers or {})}
        if found.retry_after is not None:
            headers["Retry-After"] = self._retry_after[found.retry_after]
        return JSONResponse(self._renderer(scope)(error), status_code=found.status, headers=headers or None)

    async def send(self, error: ProxyError, scope: Scope, receive: Receive, send: Send) -> None:
        await self.response(error, scope)(scope, receive, send)

    def _renderer(self, scope: Scope) -> ErrorRenderer:
        path = route_path(scope)
        for prefix, renderer in self._renderers:
            if path.startswith(prefix):
                return renderer
        return detail_body

    def install(self, app: FastAPI) -> None:
        """FastAPI's routes answer their errors here too."""

        async def ours(request: Request, exc: ProxyError) -> JSONResponse:
            return self.response(exc, request.scope)

        async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            return self.response(InvalidRequest(list(exc.errors())), request.scope)

        async def routing(request: Request, exc: HTTPException):
            # Starlette's router answers unknown paths and methods itself; under a face that renders
            # its own errors (/v1/), they get that face's shape too.
            error = {404: RouteNotFound, 405: MethodNotAllowed}.get(exc.status_code)
            if error is None or self._renderer(request.scope) is detail_body:
                return await http_exception_handler(request, exc)
            return self.response(error(), request.scope, dict(exc.headers or {}))

        app.add_exception_handler(ProxyError, ours)
        app.add_exception_handler(RequestValidationError, invalid)
        app.add_exception_handler(HTTPException, routing)


def encodable_error(error: dict[str, Any]) -> dict[str, Any]:
    """A pydantic error dict as JSON and UTF-8 can carry it. FastAPI's own handler echoes every
    `input` as it is, and then `{"temperature": NaN}`, `{"message": "\\ud800"}` or non-UTF-8 bytes
    sent as text/plain cannot be encoded: a 500."""
    encodable = {"type": error["type"], "loc": [_scalar(part) for part in error["loc"]], "msg": _scalar(error["msg"])}
    value = error.get("input")
    if value is None or isinstance(value, (str, bytes, bool, int, float)):
        encodable["input"] = _scalar(value)  # not a list or object: walking one nested 900 deep could overflow
    if "ctx" in error:
        encodable["ctx"] = {key: _scalar(item) for key, item in error["ctx"].items()}
    return encodable


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
