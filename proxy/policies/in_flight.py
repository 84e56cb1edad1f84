"""The streams admitted and not yet closed: the drain waits for them, the load shedder caps them."""

from __future__ import annotations

import asyncio

from proxy.policies.admission import Admission


class StreamsInFlight:
    """A chat policy that refuses nothing: it counts each admitted request until its stream closes."""

    def __init__(self) -> None:
        self.count = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the streams' loop, once one has come
        self._all_closed: asyncio.Event | None = None

    def admit(self, admission: Admission) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        self.count += 1
        admission.on_close(self._release)

    def _release(self) -> None:
        self.count -= 1
        if not self.count and self._all_closed is not None:
            self._all_closed.set()

    async def all_closed_within(self, seconds: float) -> bool:
        if not self.count:
            return True
        self._all_closed = asyncio.Event()
        try:
            await asyncio.wait_for(self._all_closed.wait(), seconds)
        except TimeoutError:
            return False
        return True
