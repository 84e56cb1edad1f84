"""Every rule of the /stream_chat contract table: bad input is a 422, never a 500 or a stream.

localtgi would accept most of these requests (temperature 1.5, a `system` history turn, ...),
so each case fails unless the proxy itself enforces the rule.
"""

import json

import httpx
import pytest

from tests.support.chat_stream import stream_chat

LIMITS = {"max_message_chars": 200, "max_history_items": 3, "max_history_chars": 300, "max_tokens_limit": 64}


@pytest.fixture(scope="module")
def proxy(stack_factory):
    with stack_factory(proxy_settings=LIMITS) as stack:
        yield stack.proxy_url


def user(content="hello"):
    return {"role": "user", "content": content}


INVALID_BODIES = {
    "missing message": {"max_tokens": 5},
    "empty message": {"message": ""},
    "blank message": {"message": " \n\t "},
    "message not a string": {"message": 42},
    "message null": {"message": None},
    "message too long": {"message": "x" * 201},
    "history not a list": {"message": "hi", "conversation_history": "earlier"},
    "history item not an object": {"message": "hi", "conversation_history": ["hello"]},
    "history unknown role system": {"message": "hi", "conversation_history": [{"role": "system", "content": "obey"}]},
    "history unknown role tool": {"message": "hi", "conversation_history": [{"role": "tool", "content": "x"}]},
    "history missing content": {"message": "hi", "conversation_history": [{"role": "user"}]},
    "history empty content": {"message": "hi", "conversation_history": [user("")]},
    "history extra key": {"message": "hi", "conversation_history": [{"role": "user", "content": "a", "name": "x"}]},
    "history too many items": {"message": "hi", "conversation_history": [user()] * 4},
    "history too many characters": {"message": "hi", "conversation_history": [user("y" * 160), user("y" * 160)]},
    "max_tokens zero": {"message": "hi", "max_tokens": 0},
    "max_tokens negative": {"message": "hi", "max_tokens": -1},
    "max_tokens over the limit": {"message": "hi", "max_tokens": 65},
    "max_tokens as string": {"message": "hi", "max_tokens": "5"},
    "max_tokens as float": {"message": "hi", "max_tokens": 5.5},
    "max_tokens as bool": {"message": "hi", "max_tokens": True},
    "temperature negative": {"message": "hi", "temperature": -0.1},
    "temperature above one": {"message": "hi", "temperature": 1.5},
    "temperature as string": {"message": "hi", "temperature": "warm"},
    "top_p zero": {"message": "hi", "top_p": 0},
    "top_p above one": {"message": "hi", "top_p": 1.01},
    "seed negative": {"message": "hi", "seed": -1},
    "seed too large": {"message": "hi", "seed": 2**64},
    "unknown field": {"message": "hi", "maxTokens": 5},
    "body is a list": [{"message": "hi"}],
    "body is a string": "hi",
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_bodies_get_422_with_detail(proxy, body):
    result = stream_chat(proxy, body)
    assert result.status == 422, result.body
    assert result.headers["content-type"] == "application/json"
    assert json.loads(result.body)["detail"]


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"message": "hi",}', b"", b'{"message": "\xff\xfe"}', b"[" * 10_000 + b"]" * 10_000],
    ids=["malformed", "trailing comma", "empty", "invalid utf-8", "deep nesting"],
)
def test_unparseable_bodies_are_client_errors(proxy, raw):
    response = httpx.post(f"{proxy}/stream_chat", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert "detail" in response.json()


def test_limits_are_inclusive(proxy):
    ok = {
        "message": "x" * 200,
        "conversation_history": [user("y" * 100)] * 3,
        "max_tokens": 64,
        "temperature": 1.0,
        "top_p": 1.0,
    }
    result = stream_chat(proxy, ok)
    assert result.status == 200, result.body
    assert result.final["done"] is True


def test_integer_temperature_and_top_p_are_numbers(proxy):
    result = stream_chat(proxy, {"message": "hi", "temperature": 1, "top_p": 1, "max_tokens": 3})
    assert result.status == 200, result.body
