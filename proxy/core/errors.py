"""Every error the proxy raises on purpose, as one tree.

    ProxyError
    ├── ClientError                    the request cannot be served as it was sent
    │   ├── Unauthorized               no valid API key
    │   ├── BodyTooLarge               the body is over the configured size
    │   ├── BodyUnparsable             the body cannot be read at all (not UTF-8, nested too deep)
    │   ├── InvalidRequest             the body does not fit the face's schema
    │   ├── UnsupportedRequest         it asks for what this service does not do (tools, n > 1, stored state)
    │   ├── ModelNotFound              it names a model this service does not serve
    │   ├── RouteNotFound              no route has that path
    │   ├── MethodNotAllowed           the route has no such method
    │   ├── PromptTooLong              the latest message alone does not fit in the context
    │   ├── ChatTemplateError          the chat template refused the conversation
    │   └── TooManyStreams             this API key's stream slots are all taken
├── ServiceUnavailable             this proxy takes no new stream now; later, or another replica, will
│   ├── ShuttingDown               it is draining on SIGTERM: finishing the streams in flight, then exiting
│   └── ProxyOverloaded            it is saturated (too many streams, its event loop running late)
    └── UpstreamError                  the inference server gave no usable answer
        ├── UpstreamUnavailable        unreachable, or still loading its model
        ├── UpstreamMisconfigured      set up otherwise than the proxy's settings say (an operator's fix)
        │   └── AdapterNotServed       it does not serve the adapter the proxy asks for
        ├── UpstreamOverloaded         no free slot for another request
        ├── UpstreamRejected           refused the request as invalid
        ├── UpstreamGenerationFailed   failed while generating
        ├── UpstreamTimeout            went silent for too long
        └── UpstreamProtocolError      answered in something that is not its wire format

What each becomes on the wire (status, headers, body) is decided in one table,
`proxy/asgi/error_statuses.py`, and written by each face's renderer.
"""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    """Base of every error the proxy raises on purpose."""

    #: short machine-readable name, used in final error events, logs and metric labels
    kind = "proxy_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(ProxyError):
    """The request cannot be served as it was sent; sending it again unchanged will not help."""

    kind = "client_error"


class Unauthorized(ClientError):
    kind = "unauthorized"

    def __init__(self) -> None:
        super().__init__("missing or invalid API key: send `Authorization: Bearer <key>`")


class BodyTooLarge(ClientError):
    kind = "body_too_large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body is larger than {max_bytes} bytes")


class BodyUnparsable(ClientError):
    """Not even JSON's syntax could be checked (FastAPI's words, which clients may already match on)."""

    kind = "body_unparsable"

    def __init__(self) -> None:
        super().__init__("There was an error parsing the body")


class InvalidRequest(ClientError):
    """`errors` are pydantic's error dicts (`type`, `loc`, `msg`, `input`, `ctx`), `loc` starting at "body"."""

    kind = "invalid_request"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        super().__init__(f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request")
        self.errors = errors


class UnsupportedRequest(ClientError):
    """Well formed, but asks for something this service does not do; the message says what instead."""

    kind = "unsupported"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelNotFound(ClientError):
    kind = "model_not_found"

    def __init__(self, requested: str, served: str) -> None:
        super().__init__(f"the model {requested!r} does not exist here; this endpoint serves {served!r}")


class RouteNotFound(ClientError):
    kind = "not_found"

    def __init__(self) -> None:
        super().__init__("Not Found")  # FastAPI's words, which clients may already match on


class MethodNotAllowed(ClientError):
    kind = "method_not_allowed"

    def __init__(self) -> None:
        super().__init__("Method Not Allowed")


class PromptTooLong(ClientError):
    """The latest message alone does not fit in the model's context."""

    kind = "prompt_too_long"


class ChatTemplateError(ClientError):
    """The chat template failed to render the conversation (it raised on an unexpected role order, say)."""

    kind = "chat_template"


class TooManyStreams(ClientError):
    """This API key already has as many streams open as it may."""

    kind = "too_many_streams"


class ServiceUnavailable(ProxyError):
    """This proxy cannot take the request now; the same request will succeed later or elsewhere."""

    kind = "service_unavailable"


class ShuttingDown(ServiceUnavailable):
    """SIGTERM came (a scale-down, a redeploy): no new streams, and streams still open at the end of the
    grace period end with this error in their final event."""

    kind = "shutting_down"

    def __init__(self, message: str = "the server is restarting: send the request again in a few seconds") -> None:
        super().__init__(message)


class ProxyOverloaded(ServiceUnavailable):
    """This proxy is as busy as it can be and keep its streams' pace; `reason` says by which measure
    ("streams" or "event_loop_lag"), for the request log and the shed-requests metric."""

    kind = "proxy_overloaded"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{message}: retry shortly")
        self.reason = reason


class UpstreamError(ProxyError):
    """The inference server did not give us a usable answer."""

    kind = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The inference server cannot be reached, or is still loading the model."""

    kind = "upstream_unavailable"


class UpstreamMisconfigured(UpstreamError):
    """The inference server is set up otherwise than the proxy's settings say: no request can succeed
    until an operator changes one or the other, so it is never the client's fault."""

    kind = "upstream_misconfigured"


class AdapterNotServed(UpstreamMisconfigured):
    kind = "adapter_not_served"


class UpstreamOverloaded(UpstreamError):
    """The inference server has no free slot for another request (TGI's --max-concurrent-requests)."""

    kind = "overloaded"


class UpstreamRejected(UpstreamError):
    """The inference server refused the request as invalid (a prompt over --max-input-tokens, say)."""

    kind = "validation"


class UpstreamGenerationFailed(UpstreamError):
    """The inference server failed while generating (shard error, incomplete stream, dropped connection)."""

    kind = "generation"


class UpstreamTimeout(UpstreamError):
    """The inference server stayed silent for longer than the configured idle timeout."""

    kind = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    """The inference server answered with something that is not its wire format."""

    kind = "upstream_protocol"
