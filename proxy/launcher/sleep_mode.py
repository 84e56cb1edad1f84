"""vLLM's sleep mode around a GPU memory snapshot (docs/deploy.md, "Cold starts"): warm the engine up,
put it to sleep (level 1: weights to CPU memory, KV cache dropped), let the platform snapshot the
container, and wake it on restore. Needs `vllm serve --enable-sleep-mode` and VLLM_SERVER_DEV_MODE=1
(LaunchSettings.enable_sleep_mode sets both)."""

from __future__ import annotations

import logging

import httpx

logger = logging.getLogger(__name__)

WARM_UP_PROMPT = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"


def warm_up(base_url: str, model: str, requests: int = 3, timeout_s: float = 120.0) -> None:
    """A few short completions, so the first real request does not pay for lazy set-up."""
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        for _ in range(requests):
            body = {"model": model, "prompt": WARM_UP_PROMPT, "max_tokens": 8, "temperature": 0.0}
            client.post("/v1/completions", json=body).raise_for_status()
    logger.info("warmed up the inference server with %d requests", requests)


def sleep(base_url: str, level: int = 1, timeout_s: float = 120.0) -> None:
    httpx.post(f"{base_url}/sleep", params={"level": level}, timeout=timeout_s).raise_for_status()
    logger.info("inference server asleep (level %d): ready for the memory snapshot", level)


def wake_up(base_url: str, timeout_s: float = 120.0) -> None:
    httpx.post(f"{base_url}/wake_up", timeout=timeout_s).raise_for_status()
    asleep = httpx.get(f"{base_url}/is_sleeping", timeout=timeout_s).json()["is_sleeping"]
    if asleep:
        raise RuntimeError(f"the inference server at {base_url} is still asleep after /wake_up")
    logger.info("inference server awake")
