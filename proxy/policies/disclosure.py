"""Say that it is an AI: in the system prompt always, and, when the operator asks, as the first text
of a new conversation (New York's GBL Art. 47 wants the notice at the start; SB 243 wants it clear)."""

from __future__ import annotations

from proxy.core.chat import Notice
from proxy.policies.admission import Admission

NOTICE_KIND = "ai_disclosure"


def system_prompt_with_disclosure(system_prompt: str, disclosure: str) -> str:
    """The model is told what the person was told, so it answers "are you real?" the same way."""
    if not disclosure.strip():
        return system_prompt
    told = disclosure.strip()
    return f'{system_prompt}\n\nThe person has been told: "{told}" If they ask what you are, say so plainly.'


class DisclosureNotice:
    def __init__(self, disclosure: str) -> None:
        self._notice = Notice(NOTICE_KIND, disclosure.strip() + "\n\n")

    def admit(self, admission: Admission) -> None:
        if not admission.chat.history:  # a new conversation
            admission.notices.insert(0, self._notice)
