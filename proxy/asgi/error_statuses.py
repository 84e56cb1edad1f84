"""The one table from the proxy's errors to HTTP: status and headers. Faces render the body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proxy.core.errors import (
    BodyTooLarge,
    BodyUnparsable,
    ChatTemplateError,
    ClientError,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    PromptTooLong,
    ProxyError,
    ProxyOverloaded,
    RouteNotFound,
    ShuttingDown,
    TooManyStreams,
    Unauthorized,
    UnsupportedRequest,
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

RetryAfter = Literal["overloaded", "unavailable"]  # which PROXY_RETRY_AFTER_*_S setting to send


@dataclass(frozen=True)
class ErrorStatus:
    status: int
    retry_after: RetryAfter | None = None
    headers: tuple[tuple[str, str], ...] = ()


# Looked up along the error's class hierarchy: the nearest class listed wins.
ERROR_STATUSES: dict[type[ProxyError], ErrorStatus] = {
    Unauthorized: ErrorStatus(401, headers=(("WWW-Authenticate", 'Bearer realm="therapist-streaming"'),)),
    # The rest of an oversized body is never read: the connection cannot carry another request.
    BodyTooLarge: ErrorStatus(413, headers=(("Connection", "close"),)),
    BodyUnparsable: ErrorStatus(400),
    InvalidRequest: ErrorStatus(422),
    UnsupportedRequest: ErrorStatus(400),
    ModelNotFound: ErrorStatus(404),
    RouteNotFound: ErrorStatus(404),
    MethodNotAllowed: ErrorStatus(405),
    PromptTooLong: ErrorStatus(422),
    ChatTemplateError: ErrorStatus(422),
    TooManyStreams: ErrorStatus(429, "overloaded"),
    ClientError: ErrorStatus(400),
    ShuttingDown: ErrorStatus(503, "unavailable"),
    ProxyOverloaded: ErrorStatus(429, "overloaded"),
    UpstreamRejected: ErrorStatus(422),
    UpstreamOverloaded: ErrorStatus(429, "overloaded"),
    UpstreamUnavailable: ErrorStatus(503, "unavailable"),
    # Not a passing state: no Retry-After, and the message says what an operator must change.
    UpstreamMisconfigured: ErrorStatus(503),
    UpstreamTimeout: ErrorStatus(504),
    # The inference server failed or spoke nonsense: not the client's fault, nor ours.
    UpstreamError: ErrorStatus(502),
    ProxyError: ErrorStatus(500),
}


def status_of(error: ProxyError) -> ErrorStatus:
    for cls in type(error).__mro__:
        found = ERROR_STATUSES.get(cls)
        if found is not None:
            return found
    raise TypeError(f"{type(error).__name__} is not a ProxyError")
