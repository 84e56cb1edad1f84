"""The proxy's own error types. `proxy.http_errors` is the one place that turns them into HTTP."""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every error the proxy raises on purpose."""

    #: short machine-readable name, used in final error events and logs
    kind = "proxy_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PromptTooLong(ProxyError):
    """The latest message alone does not fit in the model's context."""

    kind = "prompt_too_long"


class TooManyStreams(ProxyError):
    """This API key already has as many streams open as it may."""

    kind = "too_many_streams"


class UpstreamError(ProxyError):
    """The inference server (TGI) did not give us a usable answer."""

    kind = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """TGI cannot be reached, or is still loading the model."""

    kind = "upstream_unavailable"


class UpstreamOverloaded(UpstreamError):
    """TGI has no free slot for another request (its --max-concurrent-requests)."""

    kind = "overloaded"


class UpstreamRejected(UpstreamError):
    """TGI refused the request as invalid (for example: prompt longer than --max-input-tokens)."""

    kind = "validation"


class UpstreamGenerationFailed(UpstreamError):
    """TGI failed while generating (shard error, incomplete stream, dropped connection)."""

    kind = "generation"


class UpstreamTimeout(UpstreamError):
    """TGI stayed silent for longer than the configured idle timeout."""

    kind = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    """TGI answered with something that is not TGI's wire format."""

    kind = "upstream_protocol"
