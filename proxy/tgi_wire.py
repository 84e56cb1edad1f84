"""TGI's /generate_stream payloads, parsed into the `text_generation` client's types.

TGI 3.x sends two fields the client library does not model (`index` on every event,
`input_length` in the final details); the subclasses below add them.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from text_generation.types import StreamDetails, StreamResponse

from proxy.errors import (
    UpstreamError,
    UpstreamGenerationFailed,
    UpstreamOverloaded,
    UpstreamProtocolError,
    UpstreamRejected,
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
        error_type = _ERROR_TYPES.get(payload.get("error_type"), UpstreamGenerationFailed)
        raise error_type(payload["error"])
    raise UpstreamProtocolError(f"inference server sent an unexpected event: {data[:200]!r}")
