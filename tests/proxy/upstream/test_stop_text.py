"""The client's stop sequences kept out of the text, however the model's tokens cut them."""

import asyncio

import pytest

from proxy.core.chat import StreamEnd
from proxy.upstream.tgi.stop_text import without_stop_text

END = StreamEnd("stop", 10, 5)


def filtered(tokens, stops):
    async def events():
        for token in tokens:
            yield token
        yield END

    async def run():
        return [event async for event in without_stop_text(events(), stops)]

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("tokens", "stops", "text"),
    [
        (["Hello", " wor", "ld", " again"], ["world"], "Hello "),
        (["a", "b", "END", "c"], ["END"], "ab"),
        (["a", "E", "N", "D"], ["END"], "a"),
        (["x", "E", "N", "x"], ["END"], "xENx"),  # a false start is released once it cannot be a stop
        (["one two"], ["two", "one"], ""),  # the earliest stop wins
        (["ab", "c"], ["bcd"], "abc"),  # held back until the end, then given back in full
    ],
)
def test_text_ends_before_the_first_stop(tokens, stops, text):
    events = filtered(tokens, stops)
    assert events[-1] is END
    assert "".join(events[:-1]) == text
    assert all(event for event in events[:-1])  # never an empty token


def test_nothing_is_held_back_longer_than_a_stop_could_need():
    events = filtered(["abc", "xyz"], ["zz"])
    assert events == ["abc", "xy", "z", END]
