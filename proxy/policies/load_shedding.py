"""Refusing at once what the proxy cannot serve at pace, so the streams it has keep theirs.

One event loop carries every stream. Past what it can turn around, each new stream would slow all
the others (and the cancellation of streams whose clients left) rather than wait its own turn. So a
new stream gets 429 with Retry-After while the proxy is saturated: more streams open than
PROXY_MAX_STREAMS, or the loop running late by more than PROXY_MAX_LOOP_LAG_MS. Streams already
admitted are never touched.
"""

from __future__ import annotations

import asyncio
import time

from proxy.core.errors import ProxyOverloaded
from proxy.policies.admission import Admission
from proxy.policies.in_flight import StreamsInFlight

LAG_TICK_S = 0.025  # how often the loop's lateness is sampled


class LoopLag:
    """How late the event loop ran a callback it had scheduled, the last time it looked: a loop
    with more ready work than it can do in a tick runs every timer late."""

    def __init__(self, tick_s: float = LAG_TICK_S) -> None:
        self.tick_s = tick_s
        self.seconds = 0.0

    async def watch(self) -> None:
        clock, tick = time.perf_counter, self.tick_s
        while True:
            due = clock() + tick
            await asyncio.sleep(tick)
            self.seconds = max(0.0, clock() - due)


class LoadShedder:
    def __init__(self, in_flight: StreamsInFlight, max_streams: int, lag: LoopLag | None, max_lag_s: float) -> None:
        self._in_flight = in_flight  # a later policy counts this request's stream
        self._max_streams = max_streams
        self._lag = lag
        self._max_lag_s = max_lag_s

    def admit(self, admission: Admission) -> None:
        self.check()

    def check(self) -> None:
        """A gate (proxy/policies/admission.py): it needs no request to refuse one."""
        if self._in_flight.count >= self._max_streams:
            raise ProxyOverloaded("streams", f"{self._max_streams} streams are open, the most this server takes")
        if self._lag is not None and self._lag.seconds > self._max_lag_s:
            raise ProxyOverloaded(
                "event_loop_lag", f"the server is running {self._lag.seconds * 1000:.0f} ms behind; too busy for more"
            )
