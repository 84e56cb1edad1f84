"""Load shedding on its own: the stream cap, the event loop's lateness, and what each refusal says."""

from __future__ import annotations

import asyncio
import time

import pytest

from proxy.core.chat import ChatInput, Sampling
from proxy.core.errors import ProxyOverloaded
from proxy.policies.admission import Admission
from proxy.policies.in_flight import StreamsInFlight
from proxy.policies.load_shedding import LoadShedder, LoopLag


def admission() -> Admission:
    return Admission(ChatInput((), "hello", Sampling(max_tokens=8, temperature=0.7, top_p=1.0)), None)


def test_a_stream_over_the_cap_is_refused_and_one_closing_makes_room() -> None:
    async def scenario() -> None:
        in_flight = StreamsInFlight()
        shedder = LoadShedder(in_flight, max_streams=2, lag=None, max_lag_s=0.1)
        opened = []
        for _ in range(2):
            opened.append(admission())
            shedder.admit(opened[-1])
            in_flight.admit(opened[-1])
        with pytest.raises(ProxyOverloaded, match="2 streams are open") as refused:
            shedder.admit(admission())
        assert refused.value.reason == "streams"
        opened[0].close()
        shedder.admit(admission())  # room again

    asyncio.run(scenario())


def test_a_loop_running_late_is_measured_and_sheds_new_streams() -> None:
    async def scenario() -> None:
        lag = LoopLag(tick_s=0.01)
        watching = asyncio.ensure_future(lag.watch())
        shedder = LoadShedder(StreamsInFlight(), max_streams=100, lag=lag, max_lag_s=0.05)
        await asyncio.sleep(0.05)
        assert lag.seconds < 0.05
        shedder.admit(admission())  # an idle loop takes new streams
        await asyncio.sleep(0.005)  # the watcher's timer is due while the loop is blocked:
        time.sleep(0.2)  # a callback that hogs the loop, as a saturated one does with ready work
        for _ in range(5):  # a few turns of the loop: the watcher's timer fires, then its task runs
            await asyncio.sleep(0)
        assert lag.seconds > 0.1
        with pytest.raises(ProxyOverloaded, match="ms behind") as refused:
            shedder.admit(admission())
        assert refused.value.reason == "event_loop_lag"
        await asyncio.sleep(0.05)  # the loop catches up: new streams are welcome again
        shedder.admit(admission())
        watching.cancel()

    asyncio.run(scenario())
