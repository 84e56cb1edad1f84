"""TGI's `--lora-adapters` / `LORA_ADAPTERS` value: a comma list of `name=path`.

TGI splits the value on ",", strips each item, and rejects items with more than one
"=" or "@" ("@" starts a hub revision). So names and paths must avoid all three.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from adapters.errors import InvalidLoraSpec

_RESERVED = ("=", "@", ",")


def format_lora_adapters(adapters: Mapping[str, str | os.PathLike[str]]) -> str:
    """`{"therapist": "/data/qwen_therapist_lora"}` -> `therapist=/data/qwen_therapist_lora`."""
    if not adapters:
        raise InvalidLoraSpec("no adapters given; pass at least one NAME=PATH")
    items = []
    for name, path in adapters.items():
        _check_part("adapter name", name)
        _check_part("adapter path", os.fspath(path))
        items.append(f"{name}={os.fspath(path)}")
    return ",".join(items)


def parse_adapter_spec(spec: str) -> tuple[str, str]:
    """One `NAME=PATH` item -> (name, path)."""
    name, sep, path = spec.strip().partition("=")
    if not sep:
        raise InvalidLoraSpec(f"{spec!r} is not NAME=PATH (e.g. therapist=/data/qwen_therapist_lora)")
    _check_part("adapter name", name)
    _check_part("adapter path", path)
    return name, path


def parse_lora_adapters(value: str) -> dict[str, str]:
    """A whole `LORA_ADAPTERS` value -> {name: path}."""
    return adapters_from_specs(value.split(","))


def adapters_from_specs(specs: Iterable[str]) -> dict[str, str]:
    """`NAME=PATH` items -> {name: path}; a name given twice is an error."""
    adapters: dict[str, str] = {}
    for spec in specs:
        name, path = parse_adapter_spec(spec)
        if name in adapters:
            raise InvalidLoraSpec(f"adapter name {name!r} is given twice")
        adapters[name] = path
    return adapters


def _check_part(what: str, text: str) -> None:
    if not text or text != text.strip():
        raise InvalidLoraSpec(f"{what} {text!r} is empty or has surrounding spaces")
    bad = [char for char in _RESERVED if char in text]
    if bad:
        raise InvalidLoraSpec(f"{what} {text!r} contains {' '.join(bad)}, which TGI's LORA_ADAPTERS format reserves")
