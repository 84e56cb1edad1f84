"""The one reader of the chat template an adapter folder ships, for the proxy, `check` and `merge`.

Where transformers looks, in its order: `chat_template.jinja`, else `chat_template` in
`tokenizer_config.json`, either a string or a list of named templates (`[{"name": "default",
"template": ...}, ...]`, of which transformers renders "default" unless told otherwise). A file
that is there but cannot be read is an error that names it, never a silent fall-back to another
template: the model would then be prompted in a format it was not trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateSyntaxError

from adapters.errors import AdapterInvalid

JINJA_FILE = "chat_template.jinja"
TOKENIZER_CONFIG = "tokenizer_config.json"


@dataclass(frozen=True)
class ShippedChatTemplate:
    source: str  # the Jinja text
    file: str  # the file it came from, inside the adapter folder


def read_chat_template(adapter_dir: Path) -> ShippedChatTemplate | None:
    """The adapter's own chat template; None when it ships none. Raises AdapterInvalid when a
    template file is there but unreadable or malformed."""
    if (adapter_dir / JINJA_FILE).is_file():
        source, file = _read_text(adapter_dir, JINJA_FILE), JINJA_FILE
    elif (adapter_dir / TOKENIZER_CONFIG).is_file():
        source = _template_in_config(adapter_dir, _tokenizer_config(adapter_dir).get("chat_template"))
        file = TOKENIZER_CONFIG
    else:
        return None
    if not source or not source.strip():
        return None
    try:
        Environment().parse(source)
    except TemplateSyntaxError as exc:
        raise AdapterInvalid(adapter_dir, [f"the chat template in {file} is not valid Jinja ({exc})"]) from None
    return ShippedChatTemplate(source, file)


def _template_in_config(adapter_dir: Path, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        named = {item.get("name"): item.get("template") for item in value}
        if "default" in named and isinstance(named["default"], str):
            return named["default"]
        names = ", ".join(repr(name) for name in named) or "none"
        raise AdapterInvalid(
            adapter_dir,
            [f"{TOKENIZER_CONFIG} lists chat templates ({names}) but none named 'default', the one the proxy renders"],
        )
    raise AdapterInvalid(
        adapter_dir, [f"chat_template in {TOKENIZER_CONFIG} is a {type(value).__name__}, not a template string"]
    )


def _tokenizer_config(adapter_dir: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(_read_text(adapter_dir, TOKENIZER_CONFIG))
    except json.JSONDecodeError as exc:
        raise AdapterInvalid(adapter_dir, [f"{TOKENIZER_CONFIG} is not valid JSON ({exc})"]) from None
    if not isinstance(loaded, dict):
        raise AdapterInvalid(adapter_dir, [f"{TOKENIZER_CONFIG} is not a JSON object"])
    return loaded


def _read_text(adapter_dir: Path, name: str) -> str:
    try:
        return (adapter_dir / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AdapterInvalid(adapter_dir, [f"{name} cannot be read ({exc})"]) from None
