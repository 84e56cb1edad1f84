"""One request's context: who sent it, when it arrived, and what its stream did.

The request log makes it as the request arrives and writes its log line from it at the end;
API-key authentication fills in the caller; the chat service reads the arrival time and the caller
and attaches the stream record. It travels in the ASGI scope's `state`, the one place ASGI gives
per-request data, under one key.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from proxy.core.errors import ProxyError
from proxy.observability.stream_record import StreamRecord

Scope = MutableMapping[str, Any]  # an ASGI scope, named without importing an ASGI framework

_STATE_KEY = "request_context"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started_at: float = field(default_factory=time.perf_counter)  # perf_counter() at arrival
    api_key_id: str | None = None  # first 8 hex digits of the key's digest; None when keys are off
    stream_record: StreamRecord | None = None  # set once a chat stream starts
    error: ProxyError | None = None  # what the request was answered with instead, if anything

    @staticmethod
    def of(scope: Scope) -> RequestContext:
        """The context of the request in `scope`. An app served without the request log (a unit test)
        gets one made here."""
        state = scope.setdefault("state", {})
        context = state.get(_STATE_KEY)
        if context is None:
            context = state[_STATE_KEY] = RequestContext(request_id="")
        return context

    def attach(self, scope: Scope) -> None:
        scope.setdefault("state", {})[_STATE_KEY] = self
