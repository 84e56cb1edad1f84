"""The local stack for tests: localtgi (scripted engine) with the proxy in front of it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from tests.support.servers import start_localtgi, start_proxy

MODEL_NAME = "qwen_therapist_lora"


@dataclass(frozen=True)
class Stack:
    tgi_url: str
    proxy_url: str


@contextlib.contextmanager
def start_stack(localtgi_args: list[str] | tuple[str, ...] = (), proxy_settings: dict | None = None) -> Iterator[Stack]:
    """localtgi serving the therapist adapter name, and a proxy pointed at it."""
    with start_localtgi("--engine", "scripted", "--lora-adapters", MODEL_NAME, *localtgi_args) as tgi_url:
        with start_proxy(tgi_url, **(proxy_settings or {})) as proxy_url:
            yield Stack(tgi_url, proxy_url)
