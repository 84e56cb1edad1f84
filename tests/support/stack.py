"""The local stack for tests: the stand-in for TGI (localtgi) or for vLLM (localvllm), scripted engine,
with the proxy in front of it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from tests.support.servers import start_localtgi, start_localvllm, start_proxy

MODEL_NAME = "qwen_therapist_lora"


ENGINES = ("tgi", "vllm")


@dataclass(frozen=True)
class Stack:
    upstream_url: str
    proxy_url: str
    engine: str = "tgi"

    @property
    def tgi_url(self) -> str:
        return self.upstream_url

    @property
    def admin_url(self) -> str:
        """The stand-in's own routes: faults and generation counters."""
        return f"{self.upstream_url}/_local{self.engine}"


def upstream_args(engine: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The flags that make either stand-in serve the therapist adapter's name, plus `extra`."""
    if engine == "tgi":
        return ["--engine", "scripted", "--lora-adapters", MODEL_NAME, *extra]
    return ["--engine", "scripted", "--enable-lora", "--lora-modules", f"{MODEL_NAME}=/adapters/{MODEL_NAME}", *extra]


def start_upstream(engine: str, *args: str, **kwargs) -> contextlib.AbstractContextManager[str]:
    return (start_localtgi if engine == "tgi" else start_localvllm)(*args, **kwargs)


@contextlib.contextmanager
def start_stack(
    localtgi_args: list[str] | tuple[str, ...] = (), proxy_settings: dict | None = None, engine: str = "tgi"
) -> Iterator[Stack]:
    """The stand-in for `engine` serving the therapist adapter's name, and a proxy pointed at it.
    `localtgi_args` are the flags both stand-ins share (pacing, faults)."""
    with start_upstream(engine, *upstream_args(engine, localtgi_args)) as upstream_url:
        with start_proxy(upstream_url, engine=engine, **(proxy_settings or {})) as proxy_url:
            yield Stack(upstream_url, proxy_url, engine)
