"""Keep user text from becoming control tokens of the chat template (prompt injection).

TGI tokenizes the rendered prompt as one string, and a tokenizer turns every occurrence of
an added token's text (`<|im_start|>`, `<|im_end|>`, `<tool_call>`...) into that token, wherever
it came from. So text the client sent (message and history, assistant turns included) is
neutralized before rendering: a zero-width space goes after the first character of each
such marker. The model sees the same characters as plain text; only the template itself
can open or close a turn.
"""

from __future__ import annotations

import re
from typing import Iterable

from proxy.core.chat import Turn
from proxy.policies.admission import Admission

ZERO_WIDTH_SPACE = "\u200b"

# ChatML's markers: the families of control tokens every Qwen / SmolLM chat tokenizer has.
# `<|` starts every `<|...|>` token, so breaking it covers ones not listed anywhere.
DEFAULT_CONTROL_MARKERS = ("<|", "<|im_start|>", "<|im_end|>", "<|endoftext|>")


class ControlTokenGuard:
    def __init__(self, control_strings: Iterable[str] = DEFAULT_CONTROL_MARKERS) -> None:
        markers = sorted({s for s in (*DEFAULT_CONTROL_MARKERS, *control_strings) if len(s) > 1}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(marker) for marker in markers))

    def neutralize(self, text: str) -> str:
        return self._pattern.sub(lambda match: match[0][0] + ZERO_WIDTH_SPACE + match[0][1:], text)

    def admit(self, admission: Admission) -> None:
        chat, neutralize = admission.chat, self.neutralize
        history = tuple(Turn(turn.role, neutralize(turn.content)) for turn in chat.history)
        context = neutralize(chat.context) if chat.context else chat.context
        admission.chat = chat.with_texts(history, neutralize(chat.message), context)
