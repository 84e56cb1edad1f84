"""OpenAI's error object, `{"error": {"message", "type", "param", "code"}}`, for every route under /v1/.

The status (and with it the SDK's exception class) comes from the one table; `type` names the class
of problem as OpenAI's API does, `code` is the proxy's own error kind, `param` the field at fault.
"""

from __future__ import annotations

from typing import Any

from proxy.asgi.error_statuses import status_of
from proxy.core.errors import InvalidRequest, ProxyError, UnsupportedRequest

PREFIX = "/v1/"


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_object(error: ProxyError) -> dict[str, Any]:
    param = None
    if isinstance(error, InvalidRequest) and error.errors:
        param = ".".join(str(part) for part in error.errors[0]["loc"][1:]) or None
    elif isinstance(error, UnsupportedRequest):
        param = error.param
    return {"message": error.message, "type": error_type(status_of(error).status), "param": param,
            "code": error.kind}  # fmt: skip


def openai_error_body(error: ProxyError) -> dict[str, Any]:
    return {"error": error_object(error)}
