"""The snapshot path's steps, against localvllm with sleep mode on: warm up, sleep, wake; requests that
arrive while it sleeps wait for it, as vLLM's do."""

from __future__ import annotations

import threading

import httpx

from proxy.launcher import sleep_mode
from tests.support.servers import start_localvllm

MODEL = "Qwen/Qwen2.5-7B-Instruct"


def test_warm_up_sleep_and_wake():
    args = (MODEL, "--engine", "scripted", "--enable-sleep-mode")
    with start_localvllm(*args, env={"VLLM_SERVER_DEV_MODE": "1"}) as url:
        sleep_mode.warm_up(url, MODEL)
        assert httpx.get(f"{url}/_localvllm/stats").json()["completed"] == 3
        sleep_mode.sleep(url)
        assert httpx.get(f"{url}/is_sleeping").json() == {"is_sleeping": True}
        answers = []
        waiting = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=10)))  # fmt: skip
        waiting.start()
        waiting.join(0.5)
        assert not answers  # queued while asleep
        sleep_mode.wake_up(url)
        waiting.join(10)
    assert answers[0].status_code == 200


def test_without_dev_mode_there_are_no_sleep_routes():
    with start_localvllm(MODEL, "--engine", "scripted", "--enable-sleep-mode") as url:
        assert httpx.post(f"{url}/sleep").status_code == 404
