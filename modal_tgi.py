"""The therapist streaming endpoint on Modal: the inference server (vLLM or TGI) with the LoRA adapter,
and our proxy, in one GPU container.

    modal deploy modal_tgi.py   # https://<workspace>--therapist-streaming.modal.run/stream_chat
    modal run modal_tgi.py      # smoke test: stream one reply, print time to first token and tokens/s

Deploy-time knobs are DEPLOY_* environment variables, all in `DeployConfig` below (table in
docs/deploy.md), e.g. `DEPLOY_ENGINE=tgi DEPLOY_GPU=H100 modal deploy modal_tgi.py`.

With vLLM (the default), a cold start restores a GPU memory snapshot: the first containers of a
deploy start vLLM, warm it up and put it to sleep, and Modal snapshots them; later ones wake it from
the snapshot instead of loading the model again (docs/deploy.md, "Cold starts").
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Literal

import httpx
import modal
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from proxy.app import create_app, freeze_startup_objects
from proxy.launcher import sleep_mode
from proxy.launcher.process import InferenceServer
from proxy.launcher.settings import TGI_QUANTIZATIONS, VLLM_QUANTIZATIONS, LaunchSettings, proxy_settings_for
from proxy.observability.logs import configure_logging
from proxy.policies.drain import Drain
from proxy.policies.in_flight import StreamsInFlight
from therapist_client import print_summary, stream_chat

APP_NAME = "therapist-streaming"
WEB_LABEL = "therapist-streaming"  # the URL: https://<workspace>--therapist-streaming.modal.run
DATA_DIR = "/data"  # the `training-data` volume, where training saved the adapter
HF_CACHE_DIR = "/hf-cache"  # base weights, kept across cold starts
VLLM_CACHE_DIR = "/root/.cache/vllm"  # vLLM's compilation cache, kept across cold starts
# vLLM in a virtualenv of its own, as TGI's image keeps TGI in /usr/src/.venv: its pins (huggingface-hub
# >= 2, transformers 5) and the proxy's (text-generation wants huggingface-hub < 1) cannot share one.
VLLM_VENV = "/opt/vllm"
ENGINE_PORT = 3000
# Python sources, the chat page's files, and the crisis detector's model (no torch needed to run it).
SOURCE_FILES = ("**/*.py", "**/static/*", "**/crisis/model/*")


class DeployConfig(BaseSettings):
    """Every deploy-time knob. Env: DEPLOY_<FIELD>; read when Modal imports this file (locally and
    in the container, which gets the same values through `env=` below)."""

    model_config = SettingsConfigDict(env_prefix="DEPLOY_", frozen=True)

    engine: Literal["vllm", "tgi"] = "vllm"  # docs/deploy.md says why vLLM is the default
    gpu: str = "A10G"
    vllm_version: str = "0.34.0"  # the release docs/wire-vllm.md was read from
    tgi_version: str = "3.3.7"  # TGI's last release (archived 2026-03-21)
    model_id: str = "Qwen/Qwen2.5-7B-Instruct"  # 15 GB in bf16: fits an A10G's 24 GB with room for the KV cache
    adapter_path: str = f"{DATA_DIR}/qwen_therapist_lora"  # empty: serve the base model alone (e.g. merged)
    quantize: str | None = None  # TGI's --quantize or vLLM's --quantization, e.g. fp8 on H100
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)  # vLLM's share of GPU memory
    snapshot: bool = True  # vLLM: GPU memory snapshot + sleep mode for fast cold starts (TGI has no such path)
    scaledown_window: int = Field(default=300, ge=2, le=3600)  # seconds a warm container waits for the next request
    startup_timeout: int = Field(default=1200, ge=60)  # seconds for a cold start: image, weights, warm-up
    max_inputs: int = Field(default=32, ge=1, le=128)  # requests per container; <= the server's concurrency
    min_containers: int = Field(default=0, ge=0)  # > 0 keeps GPUs warm (and billed) to skip cold starts
    max_containers: int = Field(default=4, ge=1)  # cost ceiling: traffic beyond it queues
    secret_name: str | None = None  # a Modal secret with PROXY_* keys (API keys) and/or HF_TOKEN
    requires_proxy_auth: bool = False  # Modal checks a workspace proxy token before waking a GPU

    @field_validator("quantize", "secret_name", "gpu_memory_utilization", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("adapter_path")
    @classmethod
    def _adapter_on_volume(cls, path: str) -> str:
        if path and not path.startswith(f"{DATA_DIR}/"):
            raise ValueError(f"adapter_path must be inside the training-data volume, under {DATA_DIR}/")
        return path

    @model_validator(mode="after")
    def _quantization_the_engine_knows(self) -> DeployConfig:
        choices = TGI_QUANTIZATIONS if self.engine == "tgi" else VLLM_QUANTIZATIONS
        if self.quantize and self.quantize not in choices:
            raise ValueError(f"quantize {self.quantize!r} is not one of {self.engine}'s: {', '.join(sorted(choices))}")
        return self

    @property
    def snapshots(self) -> bool:
        """Whether containers start from a GPU memory snapshot (vLLM only: TGI has no sleep mode)."""
        return self.engine == "vllm" and self.snapshot

    def container_env(self) -> dict[str, str]:
        """The knobs as DEPLOY_* variables, so the container reads what the deploy read."""
        return {f"DEPLOY_{name.upper()}": str(value) for name, value in self.model_dump().items() if value is not None}


def engine_launch_settings(config: DeployConfig) -> LaunchSettings:
    """The inference server's settings in the container; LAUNCH_* defaults fill in the rest."""
    return LaunchSettings(
        engine=config.engine,
        command="text-generation-launcher" if config.engine == "tgi" else f"{VLLM_VENV}/bin/vllm serve",
        model_id=config.model_id,
        adapter_dir=config.adapter_path or None,
        quantize=config.quantize,
        gpu_memory_utilization=config.gpu_memory_utilization if config.engine == "vllm" else None,
        enable_sleep_mode=config.snapshots,
        port=ENGINE_PORT,
        hf_home=HF_CACHE_DIR,
        # Our deadline ends first, so the log says why before Modal gives up on the container.
        startup_timeout_s=config.startup_timeout - 30,
    )


config = DeployConfig()
launch_settings = engine_launch_settings(config)  # built now, so a bad knob fails the deploy, not a GPU container
app = modal.App(APP_NAME)


def engine_image(config: DeployConfig) -> modal.Image:
    if config.engine == "tgi":
        return modal.Image.from_registry(
            f"ghcr.io/huggingface/text-generation-inference:{config.tgi_version}",
            # Our own interpreter (in /usr/local, first on PATH) keeps the proxy's packages out of
            # TGI's virtualenv (/usr/src/.venv), whose pinned packages TGI's shards rely on.
            add_python="3.11",
        ).entrypoint([])  # the image would start text-generation-launcher itself; we start it in @modal.enter
    # vLLM's wheel brings its own CUDA libraries (through torch); the CUDA image gives the driver side.
    return (
        modal.Image.from_registry("nvidia/cuda:12.8.1-devel-ubuntu22.04", add_python="3.11")
        .entrypoint([])
        .run_commands(f"python -m venv {VLLM_VENV}", f"{VLLM_VENV}/bin/pip install vllm=={config.vllm_version}")
        .env(
            {
                "VLLM_CACHE_ROOT": VLLM_CACHE_DIR,
                "TORCHINDUCTOR_COMPILE_THREADS": "1",  # as Modal's snapshot examples set it: restores reliably
            }
        )  # fmt: skip
    )


image = (
    engine_image(config)
    .pip_install_from_pyproject(str(Path(__file__).parent / "pyproject.toml"))  # core deps, no local-model extras
    # Python sources and the data files they read (Modal's default would leave everything else out).
    .add_local_python_source("proxy", "adapters", "therapist_client", ignore=~modal.FilePatternMatcher(*SOURCE_FILES))
)

training_data = modal.Volume.from_name("training-data")  # must exist: training creates it
hf_cache = modal.Volume.from_name("huggingface-cache", create_if_missing=True)
volumes = {DATA_DIR: training_data, HF_CACHE_DIR: hf_cache}
if config.engine == "vllm":
    volumes[VLLM_CACHE_DIR] = modal.Volume.from_name("vllm-cache", create_if_missing=True)
secrets = [modal.Secret.from_name(config.secret_name)] if config.secret_name else []


@app.cls(
    image=image,
    gpu=config.gpu,
    volumes=volumes,
    secrets=secrets,
    env=config.container_env(),
    scaledown_window=config.scaledown_window,
    startup_timeout=config.startup_timeout,
    min_containers=config.min_containers,
    max_containers=config.max_containers,
    enable_memory_snapshot=config.snapshots,
    experimental_options={"enable_gpu_snapshot": True} if config.snapshots else None,
)
@modal.concurrent(max_inputs=config.max_inputs)
class TherapistEndpoint:
    @modal.enter(snap=config.snapshots)
    def start_engine(self) -> None:
        """Start the server and wait for it; with snapshots, then warm it up and put it to sleep, and
        Modal snapshots the container at that point (this method never runs again on a restore)."""
        configure_logging()
        self.drain = Drain(StreamsInFlight())  # SIGTERM's: the proxy's streams finish before the engine stops
        # A missing or broken adapter raises here, with the guide's "Model not found" message.
        self.engine = InferenceServer(launch_settings, on_failure=_exit_container)
        self.engine.start()
        self.engine.wait_until_ready()
        if config.snapshots:
            sleep_mode.warm_up(launch_settings.url, launch_settings.requested_model)
            sleep_mode.sleep(launch_settings.url)

    @modal.enter(snap=False)
    def wake_engine(self) -> None:
        """Every start, restored or not: a sleeping server (the snapshot's) wakes up."""
        if config.snapshots:
            configure_logging()
            sleep_mode.wake_up(launch_settings.url)

    @modal.exit()
    def stop_engine(self) -> None:
        """On SIGTERM (a scale-down, a redeploy): drain the proxy (PROXY_DRAIN_TIMEOUT_S; see
        proxy/policies/drain.py), then stop the engine the streams in flight were reading from."""
        self.drain.run_from_thread(proxy_settings_for(self.engine.settings).drain_timeout_s)
        self.engine.stop()

    @modal.asgi_app(label=WEB_LABEL, requires_proxy_auth=config.requires_proxy_auth)
    def web(self):
        app = create_app(proxy_settings_for(self.engine.settings), inference_server=self.engine, drain=self.drain)
        freeze_startup_objects()  # see docs/benchmarks.md: full GC passes stalled every stream
        return app


def _exit_container(error: Exception) -> None:
    # The inference server died after it was serving: end the container with a failure so Modal
    # starts a fresh one. The pause lets in-flight streams send their final error event first.
    logging.getLogger(APP_NAME).error("the inference server failed; exiting the container: %s", error)
    time.sleep(2)
    os._exit(1)


@app.local_entrypoint()
def main(
    message: str = "I've been feeling stressed about work",
    max_tokens: int = 128,
    deployed: bool = False,
    api_key: str = "",
    modal_key: str = "",
    modal_secret: str = "",
) -> None:
    """Stream one reply; print how long the endpoint took to answer at all (the cold start, when the
    container was not running), then time to first token and tokens/s.

    By default it asks this run's own temporary endpoint (the code as it is now; `modal run` makes
    no snapshots, so this is a start from scratch); `--deployed` asks the app `modal deploy` made
    (after its first few starts, a restore from the snapshot). `--api-key` is sent as a Bearer token
    (the proxy's PROXY_API_KEYS); `--modal-key/--modal-secret` are a Modal proxy auth token, needed
    when the app was deployed with DEPLOY_REQUIRES_PROXY_AUTH=true.
    """
    endpoint = modal.Cls.from_name(APP_NAME, "TherapistEndpoint") if deployed else TherapistEndpoint
    base_url = endpoint().web.get_web_url()
    headers = {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if modal_key:
        headers.update({"Modal-Key": modal_key, "Modal-Secret": modal_secret})
    with httpx.Client(base_url=base_url, headers=headers, timeout=150) as client:
        print(f"endpoint: {base_url} (engine: {config.engine}, snapshots: {config.snapshots})")
        started = time.monotonic()
        _wait_until_healthy(client, deadline_s=config.startup_timeout)
        print(f"healthy after {time.monotonic() - started:.1f} s (the cold start, if no container was running)")
        _stream_one_reply(client, {"message": message, "max_tokens": max_tokens})


def _wait_until_healthy(client: httpx.Client, deadline_s: float) -> None:
    # A cold container answers only after @modal.enter, and Modal ends a web request after
    # 150 s (with a 303), so keep asking until the model is loaded.
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            status = client.get("/health").status_code
        except httpx.TransportError:
            status = None
        if status == 200:
            return
        if status == 401:
            raise SystemExit("401 from Modal: the app requires proxy auth; pass --modal-key and --modal-secret")
        if time.monotonic() > deadline:
            raise SystemExit(f"not healthy after {deadline_s:.0f} s; see `modal app logs {APP_NAME}`")
        print(f"waiting for the container to start (/health: {status or 'no answer'})...")
        time.sleep(5)


def _stream_one_reply(client: httpx.Client, body: dict) -> None:
    report = stream_chat(
        str(client.base_url), body, headers=dict(client.headers), on_token=lambda text: print(text, end="", flush=True)
    )
    print_summary(report)
