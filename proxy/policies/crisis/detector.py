"""The crisis detector: the latest user message, with the assistant's turn before it as context, in;
a `SafetyVerdict` out. Rules first (unmistakable statements, and a "yes" to a question about a plan);
then the fine-tuned model, over the message in windows when it is long, so risk at the end of a long
message is read too.

CPU-bound (a few milliseconds a message, docs/benchmarks.md): the chat service runs it in a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from proxy.core.chat import ChatInput, SafetyVerdict
from proxy.policies.crisis.model import MODEL_DIR, RiskModel
from proxy.policies.crisis.rules import rule_category

CONTEXT_CHARS = 400  # of the assistant's last turn: its question is at the end
WINDOW_CHARS = 360  # about the model's window of tokens; longer messages are read in overlapping windows
MAX_WINDOWS = 6  # the first three and the last three of a very long message (the rules read it all)


def context_of(chat: ChatInput) -> str:
    """The assistant's turn just before the message: "yes" means something after "do you have a plan?"."""
    for turn in reversed(chat.history):
        if turn.role == "assistant":
            return turn.content[-CONTEXT_CHARS:]
        if turn.role == "user":
            return ""
    return ""


def windows(text: str) -> Iterator[str]:
    if len(text) <= WINDOW_CHARS:
        yield text
        return
    step = WINDOW_CHARS * 2 // 3
    starts = list(range(0, len(text) - WINDOW_CHARS + step, step))
    if len(starts) > MAX_WINDOWS:
        starts = starts[: MAX_WINDOWS // 2] + starts[-(MAX_WINDOWS // 2) :]
    for start in starts:
        if start:  # from the next word: a window that opens mid-word reads as noise
            space = text.find(" ", start, start + 40)
            start = space + 1 if space >= 0 else start
        yield text[start : start + WINDOW_CHARS]


class CrisisDetector:
    def __init__(self, model: RiskModel) -> None:
        self._model = model

    @classmethod
    def load(cls, folder: Path = MODEL_DIR) -> CrisisDetector:
        return cls(RiskModel(folder))

    def assess_chat(self, chat: ChatInput) -> SafetyVerdict:
        return self.assess(chat.message, context_of(chat))

    def assess(self, message: str, context: str = "") -> SafetyVerdict:
        category = rule_category(message, context)
        if category is not None:
            return SafetyVerdict(True, category)
        readings = [self._model.probabilities(window, context) for window in windows(message)]
        return self._model.verdict(max(readings, key=lambda probabilities: 1.0 - probabilities[0]))
