"""ASGI middleware: a request id on every response, and one JSON log line per request.

The line never holds message text: only the route, status and what the stream did.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.core.errors import ProxyOverloaded, ServiceUnavailable
from proxy.observability.logs import REQUEST_LOGGER
from proxy.observability.metrics import ProxyMetrics
from proxy.observability.request_context import RequestContext

REQUEST_ID_HEADER = b"x-request-id"
CLIENT_CLOSED_REQUEST = 499  # nginx's code for it: nothing was sent, and it is not a server error
# A caller's own id is kept when it is short and plain, so it can be searched for in logs.
_ACCEPTABLE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

logger = logging.getLogger(REQUEST_LOGGER)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _ACCEPTABLE_ID.fullmatch(value):
            return value.decode()
    return os.urandom(16).hex()  # 32 hex digits like uuid4().hex, at a quarter of its cost


def _route_label(scope: Scope) -> str:
    # The route's template, never the raw path: unknown paths must not grow the label set.
    route = scope.get("route")
    return getattr(route, "path", "unmatched")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: ProxyMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(_request_id(scope))
        context.attach(scope)
        request_id = context.request_id
        status = 500  # what the client gets if the app dies before answering
        answered = False

        # A plain function that hands back the server's own awaitable: a coroutine of ours here
        # would be one more frame on every token's way out.
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id.encode())]
            return send(message)

        try:
            await self.app(scope, receive, send_with_id)
            if not answered:
                status = CLIENT_CLOSED_REQUEST  # the client left before its request was complete
        finally:
            self._record(scope, context, status, time.perf_counter() - context.started_at)

    def _record(self, scope: Scope, context: RequestContext, status: int, duration_s: float) -> None:
        route = _route_label(scope)
        self.metrics.requests.labels(route, scope["method"], str(status)).inc()
        self.metrics.request_duration.labels(route).observe(duration_s)
        fields = {
            "request_id": context.request_id,
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(duration_s * 1000, 1),
        }
        error = context.error
        if error is not None:
            fields["error_type"] = error.kind
            if isinstance(error, ServiceUnavailable):  # refused by the proxy itself: why, for the metric too
                reason = error.reason if isinstance(error, ProxyOverloaded) else error.kind
                fields["shed_reason"] = reason
                self.metrics.requests_shed.labels(reason).inc()
        stream = context.stream_record
        if stream is not None:
            fields.update(stream.log_fields())
        logger.info("request", extra={"fields": fields})
