"""The drain and the stream count it waits on: refusing once draining, the grace, and the cut."""

from __future__ import annotations

import asyncio
import threading

import pytest

from proxy.core.chat import ChatInput, Sampling
from proxy.core.errors import ShuttingDown
from proxy.policies.admission import Admission
from proxy.policies.drain import Drain
from proxy.policies.in_flight import StreamsInFlight


def admitted(drain: Drain) -> Admission:
    """Through the drain, then counted: the order the app puts them in."""
    admission = Admission(ChatInput((), "hello", Sampling(max_tokens=8, temperature=0.7, top_p=1.0)), None)
    drain.admit(admission)
    drain.in_flight.admit(admission)
    return admission


def new_drain() -> Drain:
    return Drain(StreamsInFlight())


def test_streams_are_counted_until_they_close() -> None:
    async def scenario() -> None:
        drain = new_drain()
        first, second = admitted(drain), admitted(drain)
        assert drain.in_flight.count == 2
        first.close()
        second.close()
        assert drain.in_flight.count == 0

    asyncio.run(scenario())


def test_with_nothing_in_flight_the_drain_is_over_at_once_and_refuses_from_then_on() -> None:
    async def scenario() -> None:
        drain = new_drain()
        assert await asyncio.wait_for(drain.run(grace_s=30), timeout=1) == 0
        assert drain.draining and not drain.cutting
        with pytest.raises(ShuttingDown, match="restarting"):
            admitted(drain)

    asyncio.run(scenario())


def test_streams_that_finish_within_the_grace_are_not_cut() -> None:
    async def scenario() -> None:
        drain = new_drain()
        stream = admitted(drain)
        asyncio.get_running_loop().call_later(0.05, stream.close)
        assert await drain.run(grace_s=5) == 0
        assert not drain.cutting

    asyncio.run(scenario())


def test_streams_open_at_the_end_of_the_grace_are_cut() -> None:
    async def scenario() -> None:
        drain = new_drain()
        admitted(drain)
        stream = admitted(drain)
        cut = asyncio.ensure_future(drain.run(grace_s=0.05))
        while not drain.cutting:  # the chat service ends each open stream at its next event
            await asyncio.sleep(0.01)
        stream.close()
        assert await cut == 2
        assert drain.in_flight.count == 1  # never closed: the drain stops waiting after CUT_WAIT_S

    asyncio.run(scenario())


def test_run_from_thread_drains_on_the_streams_loop() -> None:
    """Modal's exit hook runs in a thread of its own while the streams run on the server's loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        drain = new_drain()
        stream = asyncio.run_coroutine_threadsafe(_admit_on_loop(drain), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.call_later, 0.1, stream.close)
        assert drain.run_from_thread(grace_s=5) == 0
        assert drain.draining and drain.in_flight.count == 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_run_from_thread_before_any_stream_only_starts_refusing() -> None:
    drain = new_drain()
    assert drain.run_from_thread(grace_s=5) == 0
    assert drain.draining


async def _admit_on_loop(drain: Drain) -> Admission:
    return admitted(drain)
