"""Property-based fuzzing of the live HTTP API: a real `python -m proxy` in front of a real stand-in,
over each engine's wire.

Properties, for every generated request: never a 5xx (TGI is healthy here, so any 5xx is the
proxy's fault), an answer within ANSWER_WITHIN_S, only the statuses in DOCUMENTED, and every 200
stream well-formed (strict SSE framing, exactly one final event, last). At the end: the proxy
process is alive and healthy, still streams correctly, logged no exception and counted no 500.

schemathesis generates from the proxy's own /openapi.json (positive and negative data);
hypothesis generates what a schema cannot describe: raw bytes, wrong content types, huge bodies,
deep nesting, invalid UTF-8, odd methods and paths, and broken HTTP on a bare socket.
Generation is derandomized, so CI runs the same requests every time. The request count is
printed by the last test (`pytest -rP tests/system/test_fuzz.py` shows it).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

from localtgi.engines.scripted import predicted_text
from proxy.policies.crisis.care import NOTICE_KIND as NOTICE
from tests.support.chat_stream import parse_event_stream
from tests.support.servers import server_process, start_proxy
from tests.support.stack import start_upstream, upstream_args

MAX_BODY_BYTES = 65_536
PROXY_SETTINGS = {
    "max_tokens_limit": 16,  # every 200 is a short stream
    "default_max_tokens": 16,
    "max_message_chars": 500,  # small enough that any valid message fits the model's context
    "max_history_items": 8,
    "max_history_chars": 2_000,
    "max_body_bytes": MAX_BODY_BYTES,
}
ANSWER_WITHIN_S = 5.0
# What the proxy may answer with a healthy TGI behind it and no API keys (docs/api.md). 400 is
# FastAPI's `There was an error parsing the body`: invalid UTF-8, JSON nested too deep, an
# integer of more than 4300 digits; 307 is Starlette's redirect of `/stream_chat/` to `/stream_chat`.
DOCUMENTED = {200, 307, 400, 404, 405, 413, 422}


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,  # the same requests on every run
        database=None,
        deadline=None,  # the bound is ANSWER_WITHIN_S, checked per request
        suppress_health_check=list(HealthCheck),
    )


class LiveProxy:
    """The proxy under test, with a client that checks the per-request properties and counts."""

    def __init__(self, url: str, log_file) -> None:
        self.url = url
        self.log_file = log_file
        self.client = httpx.Client(base_url=url, timeout=ANSWER_WITHIN_S * 2)
        self.sent: Counter[str] = Counter()  # requests, by test
        self.statuses: Counter[tuple[str, int]] = Counter()  # (test, status)

    def request(self, label: str, method: str, path: str, **kwargs) -> httpx.Response:
        started = time.monotonic()
        response = self.client.request(method, path, **kwargs)
        self.answered(label, response.status_code, time.monotonic() - started)
        if response.status_code == 200 and path == "/stream_chat":
            check_stream(response)
        elif response.status_code >= 400 and method != "HEAD":
            shape = "error" if path.startswith("/v1/") else "detail"
            assert shape in response.json(), response.text[:300]  # OpenAI's error object under /v1/
        return response

    def answered(self, label: str, status: int, took: float) -> None:
        self.sent[label] += 1
        self.statuses[label, status] += 1
        assert status < 500, f"{status} from the proxy"
        assert status in DOCUMENTED, f"undocumented status {status}"
        assert took < ANSWER_WITHIN_S, f"answered after {took:.1f} s"


def check_stream(response: httpx.Response) -> None:
    assert response.headers["content-type"] == "text/event-stream"
    events, _ = parse_event_stream(response.content)
    *tokens, final = events
    for event in tokens:  # text, or the service's own notice (a fuzzed message may read as a crisis)
        assert event["token"] and event in ({"token": event["token"], "done": False}, {**event, "notice": NOTICE})
    assert final["done"] is True and final["token"] == "", final
    assert final["finish_reason"] in ("stop", "length"), final  # TGI is healthy: never "error"
    assert final["usage"]["completion_tokens"] <= PROXY_SETTINGS["max_tokens_limit"]


@pytest.fixture(scope="module")
def live(tmp_path_factory, engine):
    log_file = tmp_path_factory.mktemp("fuzz") / "proxy.log"
    with start_upstream(engine, *upstream_args(engine, ["--token-rate", "0"])) as upstream_url:
        with start_proxy(upstream_url, log_file=log_file, engine=engine, **PROXY_SETTINGS) as proxy_url:
            live = LiveProxy(proxy_url, log_file)
            yield live
            live.client.close()


# --- schemathesis: the documented operations, from the proxy's own OpenAPI document ---------------


def documented_strictness(response: httpx.Response) -> bool:
    """A 422 for schema-valid data that docs/api.md says is refused: `5.0` for an integer (JSON
    Schema calls it an integer, our types are strict), or a seed above 2^64-1 that the schema's
    float `maximum` (1.8446744073709552e19) lets through."""
    if response.status_code != 422 or not isinstance(response.json()["detail"], list):
        return False
    return all(
        (error["type"] == "int_type" and isinstance(error["input"], float) and error["input"].is_integer())
        or (error["type"] == "less_than_equal" and error["loc"] == ["body", "seed"])
        for error in response.json()["detail"]
    )


# What /v1 refuses on purpose although the schema allows it (docs/api.md, "Errors on /v1"): a model
# other than the served one, what the service does not do (tools, n > 1, stored responses, non-text
# parts), and the conversation rules (it ends with a user message, within the limits).
V1_REFUSALS = {
    (404, "model_not_found"),
    (400, "unsupported"),
    (422, "invalid_request"),
    (422, "prompt_too_long"),
    (404, "not_found"),
}  # a model id FastAPI does not route (empty, say)


def documented_v1_refusal(response: httpx.Response) -> bool:
    error = response.json().get("error") or {}
    return (response.status_code, error.get("code")) in V1_REFUSALS


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
def test_schemathesis_documented_operations(live, mode):
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    # Negative data needs parameters to break: only /stream_chat has any.
    operations = schema if mode is GenerationMode.POSITIVE else schema["/stream_chat"]["POST"]

    @fuzz_settings(500)
    @given(case=operations.as_strategy(generation_mode=mode))
    def fuzz(case):
        sent = case.as_transport_kwargs(base_url=live.url)
        body = {"json": sent["json"]} if "json" in sent else {"content": sent.get("data")}
        response = live.request(
            f"schemathesis {mode.value}", sent["method"], case.formatted_path, headers=sent["headers"], **body
        )
        case.validate_response(response, checks=[not_a_server_error, negative_data_rejection])
        if mode is GenerationMode.POSITIVE and case.formatted_path.startswith("/v1/"):
            assert response.status_code == 200 or documented_v1_refusal(response), response.text[:500]
        elif mode is GenerationMode.POSITIVE:
            assert response.status_code == 200 or documented_strictness(response), response.text[:500]

    fuzz()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"message": "hi", "temperature": NaN}', "application/json", 422),
        (b'{"message": "hi", "temperature": 1e999}', "application/json", 422),
        (b'{"message": "\\ud800"}', "application/json", 422),
        (b'{"message": "hi", "\\udfff": 1}', "application/json", 422),
        (b"\xfd\xff", "text/plain", 422),
        (b'{"message": ' + b"[" * 900 + b"]" * 900 + b"}", "application/json", 422),
        (b'{"message": "hi", "max_tokens": 2, "temperature": 5e-324}', "application/json", 200),
        (b'{"message": "hi", "max_tokens": 2, "top_p": 5e-324}', "application/json", 200),
        (b'{"message": "hi", "max_tokens": 2, "top_p": 0.99999999999}', "application/json", 200),
    ],
    ids=[
        "NaN",
        "Infinity",
        "lone surrogate",
        "surrogate key",
        "non-UTF-8 text",
        "nested 900 deep",
        "temperature 0 in float32",
        "top_p 0 in float32",
        "top_p 1 in float32",
    ],
)
def test_requests_the_fuzzers_found(live, body, content_type, status):
    """Found by the fuzzers below, named here: 500s where FastAPI's 422 could not encode the `input` it
    echoes (a 900-deep one overflowed the recursion limit of a first fix), and valid requests refused
    by TGI, which reads temperature and top_p as 32-bit floats."""
    assert post_stream_chat(live, "found by fuzzing", body, content_type).status_code == status


# --- hypothesis: what a schema cannot describe -------------------------------------------------------

JSON_TYPES = ["application/json", "application/json; charset=utf-8", "application/vnd.api+json", "APPLICATION/JSON"]
OTHER_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/xml", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
valid_fields = {
    "message": st.text(min_size=1, max_size=80).filter(str.strip),
    "conversation_history": st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "assistant"]),
                "content": st.text(min_size=1, max_size=40).filter(str.strip),
            }
        ),
        max_size=4,
    ),
    "max_tokens": st.integers(1, 16),
    "temperature": st.floats(0, 1),
    "top_p": st.floats(0, 1, exclude_min=True),
    "seed": st.integers(0, 2**64 - 1),
}
# Each field valid, missing, of any JSON type, or an out-of-range neighbour; plus unknown fields.
near_valid_bodies = st.fixed_dictionaries(
    {},
    optional={
        name: valid | json_values | st.sampled_from([0, -1, 17, 2**64, 1.5, "", " ", "16", True, [], {}])
        for name, valid in valid_fields.items()
    },
) | st.builds(
    lambda body, extra: {**body, **extra},
    st.fixed_dictionaries(valid_fields),
    st.dictionaries(st.text(max_size=10), json_values, max_size=2),
)


def post_stream_chat(live: LiveProxy, label: str, content: bytes, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type is not None else {}
    return live.request(label, "POST", "/stream_chat", content=content, headers=headers)


def test_random_bytes_as_body(live):
    @fuzz_settings(300)
    @given(body=st.binary(max_size=2_000), content_type=st.sampled_from([*JSON_TYPES, *OTHER_TYPES]))
    def fuzz(body, content_type):
        assert post_stream_chat(live, "random bytes", body, content_type).status_code != 200

    fuzz()


def test_any_json_document(live):
    @fuzz_settings(300)
    @given(document=json_values)
    def fuzz(document):
        post_stream_chat(live, "any JSON", json.dumps(document).encode())

    fuzz()


def test_near_valid_requests(live):
    @fuzz_settings(600)
    @given(body=near_valid_bodies)
    def fuzz(body):
        post_stream_chat(live, "near-valid JSON", json.dumps(body).encode())

    fuzz()


def test_content_types(live):
    @fuzz_settings(200)
    @given(
        content_type=st.sampled_from([*JSON_TYPES, *OTHER_TYPES])
        | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip),
        body=st.sampled_from(
            [b'{"message": "I feel anxious", "max_tokens": 3}', b"message=hi&max_tokens=3", b"<m>hi</m>"]
        ),
    )
    def fuzz(content_type, body):
        response = post_stream_chat(live, "content types", body, content_type)
        if response.status_code == 200:  # only a JSON body, sent as JSON, may start a stream
            assert body.startswith(b"{") and "json" in content_type.lower()

    fuzz()


def test_invalid_utf8_and_lone_surrogates(live):
    invalid_utf8 = st.binary(min_size=1, max_size=30).filter(lambda raw: not _is_utf8(raw))
    surrogate = st.integers(0xD800, 0xDFFF).map(lambda code: f"\\u{code:04x}".encode())
    where = st.sampled_from(
        [
            b'{"message": "%s", "max_tokens": 2}',
            b'{"message": "hi", "conversation_history": [{"role": "user", "content": "%s"}]}',
            b'{"message": "hi", "%s": 1}',
            b'{"message": "hi", "max_tokens": 2, "temperature": "%s"}',
        ]
    )

    @fuzz_settings(300)
    @given(template=where, inserted=invalid_utf8 | surrogate)
    def fuzz(template, inserted):
        response = post_stream_chat(live, "invalid UTF-8", template.replace(b"%s", inserted))
        assert response.status_code in (400, 422)

    fuzz()


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_deep_nesting(live):
    @fuzz_settings(60)
    @given(
        depth=st.integers(1, 20_000) | st.sampled_from([900, 999, 1000, 1001, 3000]),  # about Python's recursion limit
        opener=st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]),
        where=st.sampled_from([b"%s", b'{"message": %s}', b'{"message": "hi", "conversation_history": %s}']),
    )
    def fuzz(depth, opener, where):
        nested = opener[0] * depth + b"1" + opener[1] * depth
        response = post_stream_chat(live, "deep nesting", where.replace(b"%s", nested))
        assert response.status_code in (400, 413, 422)

    fuzz()


def test_bodies_over_the_limit_are_413(live):
    @fuzz_settings(40)
    @given(size=st.integers(MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES), chunked=st.booleans())
    def fuzz(size, chunked):
        body = b'{"message": "' + b"x" * size + b'"}'
        content = iter([body[:1000], body[1000:]]) if chunked else body  # an iterator goes out chunked
        response = live.request(
            "huge bodies", "POST", "/stream_chat", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413

    fuzz()


PATH_CHARS = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#")


def test_odd_methods_and_paths(live):
    @fuzz_settings(400)
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND"]),
        path=st.sampled_from(["/stream_chat", "/health", "/metrics", "/docs", "/openapi.json", "/"])
        | st.text(PATH_CHARS, max_size=60).map(lambda text: "/" + text)
        | st.sampled_from(
            ["/stream_chat/", "//stream_chat", "/STREAM_CHAT", "/health/../stream_chat", "/%00", "/" + "a" * 8000]
        ),
        query=st.dictionaries(st.text(PATH_CHARS, min_size=1, max_size=8), st.text(max_size=8), max_size=2),
        request_id=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200).map(str.strip),
    )
    def fuzz(method, path, query, request_id):
        headers = {"x-request-id": request_id} if request_id is not None else {}
        body = {"content": b'{"message": "hi", "max_tokens": 2}'} if method in ("POST", "PUT", "PATCH") else {}
        live.request("methods and paths", method, path, params=query, headers=headers, **body)

    fuzz()


# --- a bare socket: HTTP that no client library would send ----------------------------------------

STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ")


def send_raw(live: LiveProxy, request: bytes) -> None:
    """Send bytes, half-close, read until the server closes, and check each response it wrote, if any."""
    host, port = live.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=ANSWER_WITHIN_S) as connection:
        try:
            connection.sendall(request)
            connection.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already answered and closed: read what it said
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    took = time.monotonic() - started
    # Interim 100 Continue aside, every response the server wrote (a body may hold a second request).
    statuses = [int(status) for status in STATUS_LINE.findall(received) if status != b"100"]
    if not statuses:
        assert received.startswith(b"HTTP/1.1 100 ") or received == b"", f"not HTTP: {received[:200]!r}"
        live.sent["raw socket, no answer"] += 1  # the server closed on a request it could not read
        assert took < ANSWER_WITHIN_S
    for status in statuses:
        live.answered("raw socket", status, took)


def test_broken_http_on_a_bare_socket(live):
    json_body = b'{"message": "hi", "max_tokens": 2}'
    request_lines = st.sampled_from(
        [b"POST /stream_chat HTTP/1.1", b"GET /health HTTP/1.1", b"GET /health HTTP/1.0", b"POST /stream_chat HTTP/9.9"]
    ) | st.binary(max_size=40).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
    headers = st.lists(
        st.sampled_from(
            [
                b"Host: x",
                b"Content-Type: application/json",
                b"Content-Length: %d" % len(json_body),
                b"Content-Length: 99999999",
                b"Content-Length: -1",
                b"Content-Length: 2",
                b"Transfer-Encoding: chunked",
                b"Transfer-Encoding: gzip",
                b"Content-Encoding: gzip",
                b"Expect: 100-continue",
                b"Connection: close",
                b"X-Request-ID: \xff\xfe",
                b"Bad Header",
                b": no name",
            ]
        )
        | st.binary(max_size=30).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")),
        max_size=6,
    )
    bodies = st.sampled_from([b"", json_body, b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\nhi\r\n", b"\x00" * 10]) | st.binary(
        max_size=200
    )

    @fuzz_settings(250)
    @given(line=request_lines, header_lines=headers, body=bodies)
    def fuzz(line, header_lines, body):
        send_raw(live, b"\r\n".join([line, *header_lines]) + b"\r\n\r\n" + body)

    fuzz()


# --- afterwards ------------------------------------------------------------------------------------


def test_the_proxy_survived_and_still_streams_correctly(live):
    assert server_process(live.url).poll() is None, "the proxy process died"
    health = live.client.get("/health")
    assert (health.status_code, health.json()["status"]) == (200, "healthy")
    response = live.request(
        "final check", "POST", "/stream_chat", json={"message": "still there?", "max_tokens": 16, "seed": 7}
    )
    *events, _ = parse_event_stream(response.content)[0]  # the model's text, after any notice of the service's
    assert "".join(event["token"] for event in events if "notice" not in event) == predicted_text(7, 16)
    metrics = live.client.get("/metrics").text
    assert not re.search(r'proxy_requests_total\{[^}]*status="5\d\d"', metrics), "the proxy counted a 5xx"
    log = live.log_file.read_text()
    assert "Traceback" not in log and '"level": "error"' not in log, "the proxy logged an error"
    total = sum(live.sent.values())
    by_status = Counter()
    for (_, status), count in live.statuses.items():
        by_status[status] += count
    print(f"\nfuzzed {total} requests: {dict(live.sent)}\nstatuses: {dict(sorted(by_status.items()))}")
    for label in live.sent:
        print(f"  {label}: {dict(sorted((s, n) for (name, s), n in live.statuses.items() if name == label))}")
    assert total >= 3000
