"""Read and validate a JSON request body the way FastAPI reads a model body parameter: the same
status codes and the same 422 detail (tests/proxy/faces/test_stream_chat_body.py holds FastAPI to it),
for the routes served ahead of FastAPI."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope

from proxy.core.errors import BodyUnparsable, InvalidRequest

Model = TypeVar("Model", bound=BaseModel)


class ClientLeft(Exception):
    """The client went away before its request body was complete: there is no one to answer."""


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientLeft
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def validated_body(body: bytes, scope: Scope, model: type[Model]) -> Model:
    """Parsed only when declared JSON, "missing" when empty, validated in Python mode (JSON has no
    NaN, but json.loads has), errors under "body"."""
    if not body:
        raise InvalidRequest([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        content = json.loads(body) if _declares_json(scope) else body
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise InvalidRequest([{**error, "ctx": {"error": exc.msg}}]) from None
    except Exception:  # not UTF-8, nested too deep: FastAPI's answer too
        raise BodyUnparsable() from None
    try:
        return model.model_validate(content, from_attributes=True)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise InvalidRequest(errors) from None


def _declares_json(scope: Scope) -> bool:
    """application/json or application/*+json, parameters ignored (what FastAPI parses as JSON)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type = value.decode("latin-1").partition(";")[0].strip().lower()
            main, slash, sub = media_type.partition("/")
            if not slash or main != "application" or "/" in sub:
                return False
            return sub == "json" or sub.endswith("+json")
    return False
