"""Injected faults and generation counters, both readable (and faults writable) over /_localtgi/."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

ENDINGS_KEPT = 10_000


@dataclass
class Faults:
    """What goes wrong, counted in tokens already sent for the request."""

    fail_after: int | None = None  # generation error event after N tokens
    stall_after: int | None = None  # pause stall_seconds after N tokens, then go on
    stall_seconds: float = 30.0
    drop_after: int | None = None  # cut the TCP connection after N tokens, no final event
    malformed_after: int | None = None  # streams: after N tokens one `data:` event that is not JSON, then go on
    overload: bool = False  # every generate request is refused as overloaded
    unhealthy: bool = False  # /health answers 503

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document: Any) -> Faults:
        """A complete fault set; fields left out take their defaults. ValueError on bad input."""
        if not isinstance(document, dict):
            raise ValueError("expected a JSON object")
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(document) - set(known))
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}; known: {', '.join(known)}")
        return cls(**{name: _field_value(name, value, known[name].default) for name, value in document.items()})


def _field_value(name: str, value: Any, default: Any) -> Any:
    is_count = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if isinstance(default, bool) and isinstance(value, bool):
        return value
    if isinstance(default, float) and (is_count or (isinstance(value, float) and value >= 0)):
        return float(value)
    if default is None and (value is None or is_count):
        return value  # a token count, or null for off
    raise ValueError(f"`{name}` has an invalid value: {value!r}")


@dataclass
class Stats:
    """Generations admitted past validation, by outcome."""

    active: int = 0
    started: int = 0
    completed: int = 0
    cancelled: int = 0  # the client went away mid-generation
    failed: int = 0  # generation error, injected or not, or an injected connection drop
    #: the latest cancellations and completions as [seed, wall-clock time, tokens generated]: when
    #: a load test's client hung up, and when the generation stopped or ended, compare across processes
    cancellations: list[tuple[int | None, float, int]] = dataclasses.field(default_factory=list)
    completions: list[tuple[int | None, float, int]] = dataclasses.field(default_factory=list)

    def note_ending(self, outcome: str, seed: int | None, tokens: int) -> None:
        endings = {"cancelled": self.cancellations, "completed": self.completions}.get(outcome)
        if endings is not None:
            endings.append((seed, time.time(), tokens))
            del endings[:-ENDINGS_KEPT]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
