"""Going away without cutting anyone off: what the proxy does between SIGTERM and its exit.

Modal sends SIGTERM on scale-down and on every redeploy. From then on /health is unhealthy (the
platform stops routing here) and new streams get 503 with Retry-After; streams in flight keep going
for up to the grace period (PROXY_DRAIN_TIMEOUT_S). Any still open then end at their next event with a
final event whose error says the server is restarting: a whole frame, never a cut connection.
"""

from __future__ import annotations

import asyncio
import logging
import time

from proxy.core.errors import ShuttingDown
from proxy.policies.admission import Admission
from proxy.policies.in_flight import StreamsInFlight

logger = logging.getLogger(__name__)

CUT_WAIT_S = 2.0  # after the grace: how long the streams cut at their next event get to send it


class Drain:
    """A chat policy: it refuses every new stream once draining."""

    def __init__(self, in_flight: StreamsInFlight) -> None:
        self.in_flight = in_flight
        self.draining = False
        self.cutting = False  # the grace is over: open streams end at their next event (the chat service reads it)

    def admit(self, admission: Admission) -> None:
        self.check()

    def check(self) -> None:
        """A gate (proxy/policies/admission.py): it needs no request to refuse one."""
        if self.draining:
            raise ShuttingDown()

    async def run(self, grace_s: float) -> int:
        """Drain: refuse from now on, wait up to `grace_s` for the open streams, then cut the rest.
        Returns how many streams had to be cut."""
        started, in_flight = time.monotonic(), self.in_flight
        self.draining = True
        logger.info("draining: %d streams in flight, up to %.1f s for them to finish", in_flight.count, grace_s)
        cut = 0
        if not await in_flight.all_closed_within(grace_s):
            cut, self.cutting = in_flight.count, True
            logger.warning("drain grace over: ending %d open streams with a restart error", cut)
            await in_flight.all_closed_within(CUT_WAIT_S)
        logger.info(
            "drained in %.2f s (%d streams cut, %d still open)", time.monotonic() - started, cut, in_flight.count
        )
        return cut

    def run_from_thread(self, grace_s: float) -> int:
        """run() on the streams' event loop, from another thread (Modal's @modal.exit hook), waiting
        for it. Nothing to wait for when no stream ever started, or when called on that loop's thread."""
        loop = self.in_flight.loop
        if loop is None or loop.is_closed() or _running_loop() is loop:
            self.draining = True
            return 0
        return asyncio.run_coroutine_threadsafe(self.run(grace_s), loop).result(grace_s + CUT_WAIT_S + 1)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
