"""Render a conversation into the prompt text the therapist model was trained on.

Templates are Jinja, rendered in a sandbox the way transformers renders a tokenizer's
`chat_template`, so an adapter's own template can replace the default ChatML one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from adapters.chat_template import read_chat_template
from proxy.core.chat import Turn
from proxy.core.errors import ChatTemplateError

#: ChatML, the format of Qwen2/2.5 chat models (and of our dev model's tokenizer).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _raise_exception(message: str) -> None:
    # Templates written for transformers call raise_exception() to reject a conversation.
    raise TemplateError(message)


class ChatTemplate:
    def __init__(self, source: str = CHATML_TEMPLATE) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_exception
        self.source = source
        self._template = env.from_string(source)

    def render(self, turns: Iterable[Turn]) -> str:
        messages = [{"role": turn.role, "content": turn.content} for turn in turns]
        try:
            return self._template.render(messages=messages, add_generation_prompt=True)
        except TemplateError as exc:
            raise ChatTemplateError(str(exc)) from exc


def conversation_turns(system_prompt: str, history: Iterable[Turn], message: str) -> list[Turn]:
    """The turns a request sends to the model: system prompt, earlier turns, the new message."""
    turns = [Turn("system", system_prompt)] if system_prompt else []
    turns.extend(history)
    turns.append(Turn("user", message))
    return turns


def load_chat_template(adapter_dir: Path | None) -> ChatTemplate:
    """The adapter's own template (adapters/chat_template.py reads it), else ChatML. Raises AdapterInvalid
    when the adapter's template files are there but unreadable."""
    shipped = read_chat_template(adapter_dir) if adapter_dir is not None else None
    return ChatTemplate(shipped.source) if shipped else ChatTemplate()
