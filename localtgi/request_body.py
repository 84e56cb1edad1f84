"""Request bodies read the way TGI's axum `Json` extractor and serde read them.

Rejections are plain text: 415 without a JSON content type, 413 over --payload-limit, 400 for
broken JSON, 422 when the JSON does not fit the Rust types (a string for a number, a float for an
integer, a negative seed). Unknown fields are ignored and, as in axum 0.7, so is anything after
the first JSON value. Messages follow serde_json's wording, position included.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from localtgi.errors import BodyRejection

_F32_MAX = struct.unpack("f", b"\xff\xff\x7f\x7f")[0]


@dataclass(frozen=True)
class GenerateParameters:
    """TGI's GenerateParameters (router/src/lib.rs), field for field."""

    best_of: int | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    do_sample: bool = False
    max_new_tokens: int | None = None
    return_full_text: bool | None = None
    stop: tuple[str, ...] = ()
    truncate: int | None = None
    watermark: bool = False
    details: bool = False
    decoder_input_details: bool = False
    seed: int | None = None
    top_n_tokens: int | None = None
    grammar: Any = None
    adapter_id: str | None = None


# TGI quirk: a body without a `parameters` key samples (default_parameters sets do_sample: true).
PARAMETERS_WHEN_MISSING = GenerateParameters(do_sample=True)


@dataclass(frozen=True)
class GenerateRequest:
    inputs: str
    parameters: GenerateParameters
    stream: bool = False  # only read on the compat route `/`


class _DataError(Exception):
    def __init__(self, path: tuple[str | int, ...], message: str, at: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.at = at  # where serde reports it: "end" of the value, "start", or "close" of the object


def _unexpected(value: Any) -> str:
    """serde's `Unexpected` wording for a JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    return "sequence" if isinstance(value, list) else "map"


def _invalid_type(value: Any, expected: str, path: tuple) -> _DataError:
    at = "start" if isinstance(value, (list, dict)) else "end"
    return _DataError(path, f"invalid type: {_unexpected(value)}, expected {expected}", at)


Field = Callable[[Any, tuple], Any]


def _integer(rust_type: str, low: int, high: int) -> Field:
    def parse(value: Any, path: tuple) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid_type(value, rust_type, path)
        if not low <= value <= high:
            raise _DataError(path, f"invalid value: integer `{value}`, expected {rust_type}", "end")
        return value

    return parse


def _f32(value: Any, path: tuple) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid_type(value, "f32", path)
    if abs(value) > _F32_MAX:  # Rust's `as f32` saturates to infinity
        return math.copysign(math.inf, value)
    return struct.unpack("f", struct.pack("f", value))[0]


def _bool(value: Any, path: tuple) -> bool:
    if not isinstance(value, bool):
        raise _invalid_type(value, "a boolean", path)
    return value


def _string(value: Any, path: tuple) -> str:
    if not isinstance(value, str):
        raise _invalid_type(value, "a string", path)
    return value


def _strings(value: Any, path: tuple) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _invalid_type(value, "a sequence", path)
    return tuple(_string(item, (*path, index)) for index, item in enumerate(value))


def _optional(field: Field) -> Field:
    return lambda value, path: None if value is None else field(value, path)


def _any(value: Any, path: tuple) -> Any:
    return value


_U32 = _integer("u32", 0, 2**32 - 1)
_USIZE = _integer("usize", 0, 2**64 - 1)
_PARAMETER_FIELDS: dict[str, Field] = {
    "best_of": _optional(_USIZE),
    "temperature": _optional(_f32),
    "repetition_penalty": _optional(_f32),
    "frequency_penalty": _optional(_f32),
    "top_k": _optional(_integer("i32", -(2**31), 2**31 - 1)),
    "top_p": _optional(_f32),
    "typical_p": _optional(_f32),
    "do_sample": _bool,
    "max_new_tokens": _optional(_U32),
    "return_full_text": _optional(_bool),
    "stop": _strings,
    "truncate": _optional(_USIZE),
    "watermark": _bool,
    "details": _bool,
    "decoder_input_details": _bool,
    "seed": _optional(_integer("u64", 0, 2**64 - 1)),
    "top_n_tokens": _optional(_U32),
    "grammar": _any,  # refused later by validation: localtgi has no grammar support
    "adapter_id": _optional(_string),
}


def _struct_fields(value: Any, path: tuple, struct_name: str, fields: dict[str, Field]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid_type(value, f"struct {struct_name}", path)
    # In document order, as serde meets them: the first bad field is the one reported.
    return {name: fields[name](item, (*path, name)) for name, item in value.items() if name in fields}


def _parameters(value: Any, path: tuple) -> GenerateParameters:
    return GenerateParameters(**_struct_fields(value, path, "GenerateParameters", _PARAMETER_FIELDS))


def _request(document: Any, compat: bool) -> GenerateRequest:
    fields: dict[str, Field] = {"inputs": _string, "parameters": _parameters}
    if compat:
        fields["stream"] = _bool
    name = "CompatGenerateRequest" if compat else "GenerateRequest"
    values = _struct_fields(document, (), name, fields)
    if "inputs" not in values:
        raise _DataError((), "missing field `inputs`", "close")
    values.setdefault("parameters", PARAMETERS_WHEN_MISSING)
    return GenerateRequest(**values)


# --- positions, as serde_json reports them ("at line L column C", bytes since the line start) ---

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _child_start(text: str, index: int, segment: str | int) -> int:
    """Index where the member `segment` of the object/array starting at `index` begins."""
    is_object = text[index] == "{"
    index = _WHITESPACE.match(text, index + 1).end()
    position, found = 0, -1
    while text[index] not in "}]":
        if is_object:
            key, index = json.decoder.scanstring(text, index + 1)
            index = _WHITESPACE.match(text, _WHITESPACE.match(text, index).end() + 1).end()
            if key == segment:
                found = index  # the last duplicate wins, as in the parsed dict
        elif position == segment:
            return index
        position += 1
        index = _WHITESPACE.match(text, _DECODER.raw_decode(text, index)[1]).end()
        if text[index] == ",":
            index = _WHITESPACE.match(text, index + 1).end()
    return found


def _error_index(text: str, error: _DataError) -> int:
    start = _WHITESPACE.match(text).end()
    for segment in error.path:
        start = _child_start(text, start, segment)
    if error.at == "start":
        return start
    end = _DECODER.raw_decode(text, start)[1]
    return end - 1 if error.at == "close" else end


def _position(text: str, index: int) -> str:
    before = text[:index].encode("utf-8")
    line_start = before.rfind(b"\n") + 1
    line = before.count(b"\n") + 1
    return f"line {line} column {len(before) - line_start}"


def _path_prefix(path: tuple) -> str:
    rendered = ""
    for segment in path:
        rendered += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if rendered else segment)
    return f"{rendered}: " if rendered else ""


_SYNTAX_MESSAGES = (  # Python's json wording -> serde_json's
    ("Expecting value", "expected value"),
    ("Expecting property name enclosed in double quotes", "key must be a string"),
    ("Expecting ':' delimiter", "expected `:`"),
    ("Unterminated string", "EOF while parsing a string"),
    ("Invalid control character", "control character (\\u0000-\\u001F) found while parsing a string"),
    ("Invalid \\escape", "invalid escape"),
    ("Invalid \\uXXXX escape", "invalid escape"),
)


def _syntax_message(text: str, error: json.JSONDecodeError) -> str:
    if error.pos >= len(text.rstrip(" \t\n\r")) and not error.msg.startswith("Unterminated"):
        container = _innermost_container(text)
        what = "a value"
        if not error.msg.startswith("Expecting value") and container:
            what = "an object" if container == "{" else "a list"
        return f"EOF while parsing {what} at {_position(text, len(text))}"
    message = next((serde for python, serde in _SYNTAX_MESSAGES if error.msg.startswith(python)), None)
    if message is None:
        closing = "]" if _innermost_container(text[: error.pos]) == "[" else "}"
        message = f"expected `,` or `{closing}`" if "delimiter" in error.msg else error.msg
    return f"{message} at {_position(text, error.pos + 1)}"


def _innermost_container(prefix: str) -> str:
    """The bracket of the innermost container still open at the end of `prefix`."""
    openers: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            openers.append(char)
        elif char in "]}" and openers:
            openers.pop()
    return openers[-1] if openers else ""


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError("Expecting value", name, 0)  # NaN and Infinity are not JSON for serde


def parse_generate_request(body: bytes, *, compat: bool = False) -> GenerateRequest:
    """A request from a body that already passed the content-type and size checks."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyRejection(
            400, f"Failed to parse the request body as JSON: invalid unicode code point at line 1 column {error.start}"
        ) from None
    try:
        document, _ = _STRICT_DECODER.raw_decode(text, _WHITESPACE.match(text).end())
    except json.JSONDecodeError as error:
        if error.doc is not text:  # from _reject_constant, which knows the constant but not where
            error = json.JSONDecodeError(error.msg, text, max(text.find(error.doc), 0))
        raise BodyRejection(400, f"Failed to parse the request body as JSON: {_syntax_message(text, error)}") from None
    try:
        return _request(document, compat)
    except _DataError as error:
        where = _position(text, _error_index(text, error))
        raise BodyRejection(
            422,
            "Failed to deserialize the JSON body into the target type: "
            f"{_path_prefix(error.path)}{error.message} at {where}",
        ) from None


_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def is_json_content_type(content_type: str | None) -> bool:
    """axum 0.7's check: application/json or any application/*+json."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = mime.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def read_generate_request(
    content_type: str | None, body_chunks: AsyncIterator[bytes], payload_limit: int, *, compat: bool = False
) -> GenerateRequest:
    """What axum's `Json<GenerateRequest>` extractor does: content type, size limit, then parse."""
    if not is_json_content_type(content_type):
        raise BodyRejection(415, "Expected request with `Content-Type: application/json`")
    body = bytearray()
    async for chunk in body_chunks:
        body += chunk
        if len(body) > payload_limit:
            raise BodyRejection(413, "Failed to buffer the request body: length limit exceeded")
    return parse_generate_request(bytes(body), compat=compat)
