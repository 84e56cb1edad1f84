"""One request on its way to the model, as the policies leave it."""

from __future__ import annotations

from typing import Callable, Protocol

from proxy.core.chat import ChatInput, Notice


class Admission:
    """What the policies made of one request.

    `chat` is what goes to the model (a policy may replace it); `notices` go to the client first;
    `answer_without_model()` means the notices are the whole reply. What a policy holds for the
    request (a stream slot) it gives back through `on_close`, which the service calls exactly once,
    whether the stream ran or the request failed before it.
    """

    __slots__ = ("chat", "api_key_id", "notices", "model_needed", "_closers")

    def __init__(self, chat: ChatInput, api_key_id: str | None) -> None:
        self.chat = chat
        self.api_key_id = api_key_id
        self.notices: list[Notice] = []
        self.model_needed = True
        self._closers: list[Callable[[], None]] = []

    def answer_without_model(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.model_needed = False

    def on_close(self, callback: Callable[[], None]) -> None:
        self._closers.append(callback)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for callback in reversed(closers):
            callback()


class ChatPolicy(Protocol):
    def admit(self, admission: Admission) -> None:
        """Allow by returning, refuse by raising a `ClientError`, or change the admission."""
        ...


class Gate(Protocol):
    """A policy that refuses on the server's state alone (draining, saturated). Faces ask the gates
    before they parse a request, so that a refusal costs as little as it can while the server is
    busiest; the gates are chat policies too, and look again when the request is admitted."""

    def check(self) -> None:
        """Allow by returning, refuse by raising a `ProxyError`."""
        ...
