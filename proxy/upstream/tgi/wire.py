"""TGI's /generate_stream payloads, parsed into the `text_generation` client's types.

TGI 3.x sends two fields the client library does not model (`index` on every event,
`input_length` in the final details); the subclasses below add them.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from text_generation.types import StreamDetails, StreamResponse

from proxy.core.errors import (
    AdapterNotServed,
    UpstreamError,
    UpstreamGenerationFailed,
    UpstreamOverloaded,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)


class TGIStreamDetails(StreamDetails):
    input_length: int | None = None


class TGIStreamEvent(StreamResponse):
    index: int | None = None
    details: TGIStreamDetails | None = None

    @property
    def is_final(self) -> bool:
        return self.generated_text is not None


# error_type values TGI puts in an error event (router/src/server.rs, infer/mod.rs)
_ERROR_TYPES: dict[str, type[UpstreamError]] = {
    "validation": UpstreamRejected,
    "template_error": UpstreamRejected,
    "overloaded": UpstreamOverloaded,
    "generation": UpstreamGenerationFailed,
    "incomplete_generation": UpstreamGenerationFailed,
    "incomplete_generation_stream": UpstreamGenerationFailed,
}


def parse_stream_event(data: str) -> TGIStreamEvent:
    """One `data:` payload of /generate_stream; raise the matching error for an error event."""
    try:
        return TGIStreamEvent.model_validate_json(data)
    except ValidationError:
        pass  # not a token event: an error event, or garbage
    try:
        payload = json.loads(data)
    except ValueError:
        raise UpstreamProtocolError(f"inference server sent an event that is not JSON: {data[:200]!r}") from None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message = payload["error"]
        error_type = _ERROR_TYPES.get(payload.get("error_type"), UpstreamGenerationFailed)
        if error_type is UpstreamRejected and names_adapter(message):
            error_type = AdapterNotServed
        raise error_type(message)
    raise UpstreamProtocolError(f"inference server sent an unexpected event: {data[:200]!r}")


def names_adapter(refusal: str) -> bool:
    """The proxy sends `adapter_id` from its own settings, never from a client: a refusal that names
    it is about a setting. (TGI itself answers an unknown adapter with the base model; localtgi and
    TGI-compatible servers refuse it.)"""
    return "adapter_id" in refusal


def error_for_status(status: int, body: str) -> UpstreamError:
    """A response that is not an event stream: from axum's extractors or something in between (TGI
    answers its own errors as events in a 200 stream)."""
    detail = f"inference server answered {status}: {body[:200]!r}"
    if status == 429:
        return UpstreamOverloaded(detail)
    if status in (400, 413, 422):
        return AdapterNotServed(detail) if names_adapter(body) else UpstreamRejected(detail)
    if status in (502, 503, 504):
        return UpstreamUnavailable(detail)
    return UpstreamProtocolError(detail)
