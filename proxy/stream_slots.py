"""A ceiling on concurrent streams per API key, so one caller cannot take every slot."""

from __future__ import annotations

from collections import Counter
from typing import Callable

from proxy.errors import TooManyStreams


class StreamSlots:
    def __init__(self, per_key: int) -> None:
        self._per_key = per_key
        self._open: Counter[str] = Counter()

    def acquire(self, key_id: str) -> Callable[[], None]:
        """Take a slot for `key_id`; returns the function that gives it back (call it exactly once)."""
        if self._open[key_id] >= self._per_key:
            raise TooManyStreams(f"this API key already has {self._per_key} streams open; wait for one to finish")
        self._open[key_id] += 1

        def release() -> None:
            self._open[key_id] -= 1
            if not self._open[key_id]:
                del self._open[key_id]

        return release
