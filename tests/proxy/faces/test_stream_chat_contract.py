"""/stream_chat end to end: the proxy and the stand-in for each engine as real servers on loopback ports."""

import json
from urllib.parse import urlsplit

import pytest

from tests.support.chat_stream import stream_chat
from tests.support.direct import generate_direct


@pytest.fixture(scope="module")
def stack(stack_factory, engine):
    with stack_factory(engine=engine) as stack:
        yield stack


def test_stream_equals_direct_generation_including_multibyte(stack):
    # Find a seed whose reply has a non-ASCII character, so the check covers split UTF-8 tokens.
    for seed in range(100):
        expected = generate_direct(stack, seed=seed, max_new_tokens=48).text
        if any(ord(ch) > 127 for ch in expected):
            break
    else:
        pytest.fail("no scripted reply with a multi-byte character in 100 seeds")
    result = stream_chat(stack.proxy_url, {"message": "I feel anxious", "seed": seed, "max_tokens": 48})
    assert result.status == 200
    assert result.text == expected


def test_response_headers_and_framing(stack):
    result = stream_chat(stack.proxy_url, {"message": "I feel anxious", "max_tokens": 40, "seed": 3})
    assert result.headers["content-type"] == "text/event-stream"
    assert result.headers["cache-control"] == "no-cache"
    assert result.headers["x-accel-buffering"] == "no"
    *tokens, final = result.events
    assert tokens, "no token events"
    for event in tokens:
        assert set(event) == {"token", "done"} and event["done"] is False
        assert event["token"] != "" and "<|im_end|>" not in event["token"]
    assert final["done"] is True and final["token"] == ""
    assert sum(event["done"] for event in result.events) == 1


def test_length_finish_and_usage(stack):
    result = stream_chat(stack.proxy_url, {"message": "Tell me more", "max_tokens": 5, "seed": 1})
    final = result.final
    assert final["finish_reason"] == "length"
    assert final["usage"]["completion_tokens"] == 5
    assert final["usage"]["prompt_tokens"] > 0


def test_model_ending_its_turn_is_stop_and_hides_the_end_token(stack):
    result = stream_chat(stack.proxy_url, {"message": "Hi", "max_tokens": 1000, "seed": 11})
    assert result.final["finish_reason"] == "stop"
    direct = generate_direct(stack, seed=11, max_new_tokens=1000)
    assert direct.finish_reason == "stop"
    assert direct.ended_on_special_token in (True, None)  # TGI shows its EOS as a special token; vLLM never
    assert result.text == direct.text
    assert result.final["usage"]["completion_tokens"] == direct.completion_tokens


def test_temperature_zero_is_greedy_and_deterministic(stack):
    # TGI rejects temperature 0: the proxy must send do_sample=false instead (vLLM takes 0), and seeds do not matter.
    first = stream_chat(stack.proxy_url, {"message": "Hi", "temperature": 0, "max_tokens": 30, "seed": 1})
    second = stream_chat(stack.proxy_url, {"message": "Hi", "temperature": 0, "max_tokens": 30, "seed": 2})
    assert first.status == second.status == 200
    assert first.text == second.text == generate_direct(stack, greedy=True, max_new_tokens=30).text


def test_top_p_one_is_accepted(stack):
    # TGI rejects top_p == 1.0; the proxy leaves it out.
    result = stream_chat(stack.proxy_url, {"message": "Hi", "top_p": 1.0, "max_tokens": 10, "seed": 4})
    assert result.status == 200 and result.final["finish_reason"] in ("length", "stop")


def test_seed_passes_through(stack):
    same = [stream_chat(stack.proxy_url, {"message": "Hi", "max_tokens": 30, "seed": 5}).text for _ in range(2)]
    other = stream_chat(stack.proxy_url, {"message": "Hi", "max_tokens": 30, "seed": 6}).text
    assert same[0] == same[1] != other


def test_history_and_system_prompt_reach_the_model(stack):
    alone = stream_chat(stack.proxy_url, {"message": "And now?", "max_tokens": 2, "seed": 1})
    history = [
        {"role": "user", "content": "I have been sleeping badly for weeks."},
        {"role": "assistant", "content": "That sounds exhausting. What keeps you awake?"},
    ]
    with_history = stream_chat(
        stack.proxy_url, {"message": "And now?", "max_tokens": 2, "seed": 1, "conversation_history": history}
    )
    assert with_history.final["usage"]["prompt_tokens"] > alone.final["usage"]["prompt_tokens"]


def test_guide_defaults_apply(stack):
    # The guide's curl body: only message and max_tokens. Defaults fill the rest.
    result = stream_chat(stack.proxy_url, {"message": "I feel anxious", "max_tokens": 256})
    assert result.status == 200
    assert result.final["finish_reason"] in ("stop", "length")
    assert json.dumps(result.final["usage"])


def tcp_states_towards(port: int) -> list[str]:
    """TCP states (hex, /proc/net/tcp) of every loopback socket whose remote end is `port`."""
    states = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port:
                states.append(fields[3])
    return states


def test_finished_streams_give_their_upstream_connection_back(stack_factory, engine):
    # A fresh stack: no other test's connections. Streams read to the end hand their connection to
    # the server back to the pool, so sequential streams share one; a connection closed after each
    # stream would leave one TIME_WAIT socket (state 06) behind per stream on the proxy's side.
    with stack_factory(engine=engine) as fresh:
        tgi_port = urlsplit(fresh.tgi_url).port
        stream_chat(fresh.proxy_url, {"message": "hello", "max_tokens": 1})  # opens the pooled connection
        before = tcp_states_towards(tgi_port)
        for max_tokens in (1, 5, 1, 5, 1, 5, 1, 5):
            result = stream_chat(fresh.proxy_url, {"message": "hello", "max_tokens": max_tokens})
            assert result.status == 200 and result.final["done"] is True
        after = tcp_states_towards(tgi_port)
    assert after.count("01") == 1, after  # ESTABLISHED: the one pooled connection
    assert after.count("06") == before.count("06"), (before, after)
