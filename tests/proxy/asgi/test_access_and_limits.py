"""API keys, per-key stream limits, CORS and the body size limit, against a live stack."""

import hashlib
import json
import sys
import time

import httpx
import pytest

import proxy.asgi.api_keys
from proxy.asgi.api_keys import ApiKeys
from tests.support.chat_stream import stream_chat
from tests.support.servers import free_port, run_server, start_localtgi, start_proxy

KEY_ONE = "tk-live-0123456789abcdef"
KEY_TWO = "tk-live-fedcba9876543210"  # configured only as its digest
ORIGIN = "https://app.example.org"
BODY = {"message": "I feel anxious", "max_tokens": 5, "seed": 1}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured")
    keys_file = folder / "keys.txt"
    keys_file.write_text(f"# digests only\nsha256:{hashlib.sha256(KEY_TWO.encode()).hexdigest()}\n")
    log_file = folder / "proxy.log"
    with start_localtgi("--lora-adapters", "qwen_therapist_lora", "--token-rate", "40") as tgi_url:
        with start_proxy(
            tgi_url,
            log_file=log_file,
            api_keys=KEY_ONE,
            api_keys_file=keys_file,
            max_streams_per_key=1,
            cors_origins=ORIGIN,
            max_body_bytes=4096,
        ) as proxy_url:
            yield proxy_url, log_file


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_health_needs_no_key(secured):
    proxy_url, _ = secured
    assert httpx.get(f"{proxy_url}/health").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/stream_chat"), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/nope")],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        auth("wrong"),
        auth(KEY_ONE[:-1]),
        auth(KEY_ONE + "x"),
        {"Authorization": f"Basic {KEY_ONE}"},
        {"Authorization": "Bearer"},
    ],
    ids=["no header", "wrong key", "prefix of a key", "key plus more", "basic scheme", "empty bearer"],
)
def test_every_other_route_needs_a_valid_key(secured, method, path, headers):
    proxy_url, _ = secured
    response = httpx.request(method, f"{proxy_url}{path}", headers=headers, json=BODY if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in response.json()["detail"]


def test_plain_and_digest_configured_keys_work(secured):
    proxy_url, _ = secured
    for key in (KEY_ONE, KEY_TWO):
        result = stream_chat(proxy_url, BODY, headers=auth(key))
        assert result.status == 200 and result.final["finish_reason"] == "length"
    assert httpx.get(f"{proxy_url}/metrics", headers=auth(KEY_ONE)).status_code == 200


def test_streams_per_key_are_capped_with_429_and_retry_after(secured):
    proxy_url, _ = secured
    slow = {"message": "Tell me everything", "max_tokens": 200, "seed": 2}
    with httpx.stream("POST", f"{proxy_url}/stream_chat", json=slow, headers=auth(KEY_ONE)) as first:
        assert first.status_code == 200
        second = stream_chat(proxy_url, BODY, headers=auth(KEY_ONE))
        assert second.status == 429 and second.headers["retry-after"] == "1"
        assert "streams open" in json.loads(second.body)["detail"]
        other_key = stream_chat(proxy_url, BODY, headers=auth(KEY_TWO))
        assert other_key.status == 200  # the limit is per key
    # The first stream is gone (client closed it): its slot comes back.
    deadline = time.monotonic() + 5
    while (again := stream_chat(proxy_url, BODY, headers=auth(KEY_ONE))).status == 429 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert again.status == 200


def test_past_the_proxys_stream_cap_new_streams_are_shed_with_429_on_every_face(tmp_path):
    log_file = tmp_path / "proxy.log"
    slow = {"message": "Tell me everything", "max_tokens": 200, "seed": 2}
    chat = {"model": "qwen_therapist_lora", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with start_localtgi("--lora-adapters", "qwen_therapist_lora", "--token-rate", "40") as tgi_url:
        with start_proxy(tgi_url, log_file=log_file, max_streams=2) as proxy_url:
            with (
                httpx.stream("POST", f"{proxy_url}/stream_chat", json=slow) as first,
                httpx.stream("POST", f"{proxy_url}/stream_chat", json=slow) as second,
            ):
                assert first.status_code == second.status_code == 200
                shed = stream_chat(proxy_url, BODY)
                assert shed.status == 429 and shed.headers["retry-after"] == "1"
                assert "2 streams are open" in json.loads(shed.body)["detail"]
                shed_v1 = httpx.post(f"{proxy_url}/v1/chat/completions", json=chat)
                assert shed_v1.status_code == 429 and shed_v1.json()["error"]["code"] == "proxy_overloaded"
                # Refused before it is parsed: while saturated, a refusal costs as little as it can.
                unparsed = httpx.post(f"{proxy_url}/stream_chat", content=b"{not json")
                assert unparsed.status_code == 429
                metrics = httpx.get(f"{proxy_url}/metrics").text
            assert 'proxy_requests_shed_total{reason="streams"} 3.0' in metrics
            deadline = time.monotonic() + 5  # the streams above are closed: room again
            while (again := stream_chat(proxy_url, BODY)).status == 429 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert again.status == 200
    shed_lines = [json.loads(line) for line in log_file.read_text().splitlines() if '"shed_reason"' in line]
    assert [(line["status"], line["shed_reason"], line["error_type"]) for line in shed_lines] == [
        (429, "streams", "proxy_overloaded")
    ] * 3


def test_cors_preflight_allows_authorization(secured):
    proxy_url, _ = secured
    preflight = httpx.options(
        f"{proxy_url}/stream_chat",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


def test_cors_headers_on_responses_for_allowed_origins_only(secured):
    proxy_url, _ = secured
    allowed = stream_chat(proxy_url, BODY, headers={**auth(KEY_ONE), "Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    refused = stream_chat(proxy_url, BODY, headers={**auth(KEY_ONE), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


def test_bodies_over_the_limit_get_413(secured):
    proxy_url, _ = secured
    huge = json.dumps({"message": "x" * 5000}).encode()
    response = httpx.post(
        f"{proxy_url}/stream_chat", content=huge, headers={**auth(KEY_ONE), "content-type": "application/json"}
    )
    assert response.status_code == 413 and "4096 bytes" in response.json()["detail"]

    def chunked():  # no Content-Length: the limit must hold while reading
        for start in range(0, len(huge), 1000):
            yield huge[start : start + 1000]

    response = httpx.post(
        f"{proxy_url}/stream_chat", content=chunked(), headers={**auth(KEY_ONE), "content-type": "application/json"}
    )
    assert response.status_code == 413


def test_keys_never_reach_the_log(secured):
    proxy_url, log_file = secured
    stream_chat(proxy_url, BODY, headers=auth(KEY_ONE))
    httpx.get(f"{proxy_url}/metrics", headers=auth("a-wrong-key-that-must-not-be-logged"))
    log = log_file.read_text()
    assert '"status": 401' in log and '"status": 200' in log
    for secret in (
        KEY_ONE,
        KEY_TWO,
        "a-wrong-key-that-must-not-be-logged",
        hashlib.sha256(KEY_TWO.encode()).hexdigest(),
    ):
        assert secret not in log


def test_key_check_compares_every_digest_in_constant_time(monkeypatch):
    # Timing cannot depend on how much of a key was right: the presented key is hashed, and its
    # digest is compared with every stored digest by hmac.compare_digest, never with `==`.
    keys = ApiKeys.parse("alpha-key,beta-key,gamma-key")
    compared = []
    real_compare = proxy.asgi.api_keys.hmac.compare_digest

    def recording_compare(a, b):
        compared.append((len(a), len(b)))
        return real_compare(a, b)

    monkeypatch.setattr(proxy.asgi.api_keys.hmac, "compare_digest", recording_compare)
    for presented in ("alpha-key", "alpha-kez", "zzz", "x" * 1000):
        compared.clear()
        keys.identify(presented)
        assert compared == [(32, 32)] * 3
    assert keys.identify("beta-key") == hashlib.sha256(b"beta-key").hexdigest()[:8]
    assert keys.identify("beta-ke") is None


def test_behind_a_path_prefix_public_routes_stay_public_and_the_rest_needs_a_key():
    # Behind a reverse proxy that serves us under /api and strips the prefix (uvicorn --root-path /api),
    # ASGI's path is /api/health and routing strips root_path; the key check must look at the same
    # route path the router does.
    port = free_port()
    with start_localtgi("--lora-adapters", "qwen_therapist_lora") as tgi_url:
        command = [sys.executable, "-m", "uvicorn", "--factory", "proxy.app:create_app", "--root-path", "/api",
                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
        env = {"PROXY_TGI_URL": tgi_url, "PROXY_API_KEYS": KEY_ONE}
        with run_server(command, port, wait=True, timeout=30, env=env, log_file=None) as url:
            health = httpx.get(f"{url}/health")
            assert health.status_code == 200 and health.json()["status"] == "healthy"
            for method, path in [("POST", "/stream_chat"), ("GET", "/metrics"), ("GET", "/nope")]:
                assert httpx.request(method, f"{url}{path}", json=BODY).status_code == 401
            assert stream_chat(url, BODY, headers=auth(KEY_ONE)).status == 200
