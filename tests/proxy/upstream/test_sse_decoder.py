"""The proxy's SSE decoder (proxy/upstream/sse_decoder.py): the spec's line and field rules, however the
bytes are cut."""

import pytest

from proxy.upstream.sse_decoder import EventStreamDecoder


def decode(*chunks: bytes) -> list[str]:
    decoder = EventStreamDecoder()
    events = [data for chunk in chunks for data in decoder.feed(chunk)]
    return events + decoder.close()


def every_split(body: bytes) -> list[list[bytes]]:
    return [[body[:cut], body[cut:]] for cut in range(len(body) + 1)]


TGI_STREAM = b'data: {"index":1}\n\ndata:{"index":2}\n\n:\n\ndata: {"index":3}\n\n'


@pytest.mark.parametrize("chunks", every_split(TGI_STREAM))
def test_tgi_events_come_out_whole_wherever_the_body_is_cut(chunks):
    assert decode(*chunks) == ['{"index":1}', '{"index":2}', '{"index":3}']


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_is_a_line_end(newline):
    body = b"data: a" + newline + b"data: b" + newline + newline + b": comment" + newline + newline
    for chunks in every_split(body):
        assert decode(*chunks) == ["a\nb"]


def test_only_one_space_after_the_colon_is_dropped_and_other_fields_do_not_add_data():
    assert decode(b"event: x\ndata:  two\nretry: 5\nfoo: bar\n\n") == [" two"]


def test_an_event_needs_its_blank_line():
    assert decode(b"data: complete\n\ndata: cut off") == ["complete"]


def test_a_lone_carriage_return_at_the_very_end_is_a_blank_line():
    assert decode(b"data: x\n\r") == ["x"]


def test_an_id_is_kept_across_events_so_later_blank_lines_dispatch():
    # The spec (and httpx-sse before us) never reset the last event id: a blank line then dispatches
    # an event with empty data, which TGI never sends but the proxy must read the same way.
    assert decode(b"id: 1\ndata: a\n\n:\n\n") == ["a", ""]


def test_invalid_utf8_is_replaced_not_fatal():
    assert decode(b"data: caf\xc3\n\ndata: \xe2\x82\xac\n\n") == ["caf\ufffd", "\u20ac"]
