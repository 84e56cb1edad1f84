"""A ceiling on concurrent streams per API key, so one caller cannot take every slot."""

from __future__ import annotations

from collections import Counter

from proxy.core.errors import TooManyStreams
from proxy.policies.admission import Admission


class StreamSlots:
    def __init__(self, per_key: int) -> None:
        self._per_key = per_key
        self._open: Counter[str] = Counter()

    def admit(self, admission: Admission) -> None:
        """Take a slot for the request's key (none without API keys) until its stream closes."""
        key_id = admission.api_key_id
        if key_id is None:
            return
        if self._open[key_id] >= self._per_key:
            raise TooManyStreams(f"this API key already has {self._per_key} streams open; wait for one to finish")
        self._open[key_id] += 1

        def release() -> None:
            self._open[key_id] -= 1
            if not self._open[key_id]:
                del self._open[key_id]

        admission.on_close(release)
