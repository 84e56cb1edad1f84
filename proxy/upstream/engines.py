"""The one place that picks the engine behind the upstream interface."""

from __future__ import annotations

from proxy.settings import Settings
from proxy.upstream.interface import Upstream
from proxy.upstream.tgi.client import TGIClient
from proxy.upstream.vllm.client import VLLMClient

ENGINES: dict[str, type] = {"tgi": TGIClient, "vllm": VLLMClient}  # PROXY_ENGINE -> its client


def build_upstream(settings: Settings) -> Upstream:
    return ENGINES[settings.engine](settings)
