"""One table from error to status and headers; the body from the renderer of the route's face."""

from __future__ import annotations

import json

import pytest

from proxy.asgi.error_responses import ErrorResponder
from proxy.core.errors import (
    AdapterNotServed,
    BodyTooLarge,
    ChatTemplateError,
    InvalidRequest,
    PromptTooLong,
    TooManyStreams,
    Unauthorized,
    UpstreamGenerationFailed,
    UpstreamOverloaded,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.settings import load_settings


def scope(path: str, root_path: str = "") -> dict:
    return {"type": "http", "path": path, "root_path": root_path}


@pytest.fixture
def responder() -> ErrorResponder:
    return ErrorResponder(load_settings(retry_after_overloaded_s=2, retry_after_unavailable_s=7))


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (Unauthorized(), 401, None),
        (BodyTooLarge(10), 413, None),
        (InvalidRequest([]), 422, None),
        (PromptTooLong("too long"), 422, None),
        (ChatTemplateError("roles must alternate"), 422, None),
        (TooManyStreams("busy"), 429, "2"),
        (UpstreamRejected("no"), 422, None),
        (UpstreamOverloaded("full"), 429, "2"),
        (UpstreamUnavailable("down"), 503, "7"),
        (AdapterNotServed("set PROXY_ADAPTER_ID"), 503, None),
        (UpstreamTimeout("silent"), 504, None),
        (UpstreamGenerationFailed("shard"), 502, None),
        (UpstreamProtocolError("garbage"), 502, None),
    ],
)
def test_status_and_retry_after_come_from_the_table(responder, error, status, retry_after):
    response = responder.response(error, scope("/stream_chat"))
    assert response.status_code == status
    assert response.headers.get("retry-after") == retry_after


def test_headers_that_belong_to_an_error(responder):
    assert responder.response(Unauthorized(), scope("/metrics")).headers["www-authenticate"].startswith("Bearer")
    assert responder.response(BodyTooLarge(10), scope("/stream_chat")).headers["connection"] == "close"


def test_the_guides_routes_get_detail_and_a_face_can_render_its_own_under_its_prefix(responder):
    responder.render_under("/v1/", lambda error: {"error": {"message": error.message, "type": error.kind}})
    ours = responder.response(TooManyStreams("busy"), scope("/stream_chat"))
    theirs = responder.response(TooManyStreams("busy"), scope("/api/v1/chat/completions", root_path="/api"))
    assert json.loads(ours.body) == {"detail": "busy"}
    assert json.loads(theirs.body) == {"error": {"message": "busy", "type": "too_many_streams"}}
    assert theirs.status_code == 429 and theirs.headers["retry-after"] == "2"  # the same table for every face


def test_invalid_bodies_keep_fastapis_field_list_and_can_always_be_encoded(responder):
    nan = float("nan")
    error = InvalidRequest([{"type": "finite_number", "loc": ("body", "temperature"), "msg": "bad", "input": nan}])
    body = json.loads(responder.response(error, scope("/stream_chat")).body)
    assert body == {"detail": [{"type": "finite_number", "loc": ["body", "temperature"], "msg": "bad", "input": "nan"}]}
