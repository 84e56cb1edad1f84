"""The therapist streaming endpoint on Modal: TGI with the LoRA adapter, and our proxy, in one GPU container.

    modal deploy modal_tgi.py   # https://<workspace>--therapist-streaming.modal.run/stream_chat
    modal run modal_tgi.py      # smoke test: stream one reply, print time to first token and tokens/s

Deploy-time knobs are DEPLOY_* environment variables, all in `DeployConfig` below
(table in docs/deploy.md), e.g. `DEPLOY_GPU=H100 modal deploy modal_tgi.py`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx
import modal
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from proxy.app import create_app, freeze_startup_objects
from proxy.launcher.process import InferenceServer
from proxy.launcher.settings import LaunchSettings, Quantization, proxy_settings_for
from proxy.observability.logs import configure_logging
from therapist_client import print_summary, stream_chat

APP_NAME = "therapist-streaming"
WEB_LABEL = "therapist-streaming"  # the URL: https://<workspace>--therapist-streaming.modal.run
DATA_DIR = "/data"  # the `training-data` volume, where training saved the adapter
HF_CACHE_DIR = "/hf-cache"  # base weights, kept across cold starts
TGI_PORT = 3000
SOURCE_FILES = ("**/*.py", "**/static/*")


class DeployConfig(BaseSettings):
    """Every deploy-time knob. Env: DEPLOY_<FIELD>; read when Modal imports this file (locally and
    in the container, which gets the same values through `env=` below)."""

    model_config = SettingsConfigDict(env_prefix="DEPLOY_", frozen=True)

    gpu: str = "A10G"
    tgi_version: str = "3.3.5"  # the newest tag of ghcr.io/huggingface/text-generation-inference we know is published
    model_id: str = "Qwen/Qwen2.5-7B-Instruct"  # 15 GB in bf16: fits an A10G's 24 GB with room for the KV cache
    adapter_path: str = f"{DATA_DIR}/qwen_therapist_lora"  # empty: serve the base model alone (e.g. merged)
    quantize: Quantization | None = None  # TGI's --quantize, e.g. fp8 on H100 (awq/gptq need such a model id)
    scaledown_window: int = Field(default=300, ge=2, le=3600)  # seconds a warm container waits for the next request
    startup_timeout: int = Field(default=1200, ge=60)  # seconds for a cold start: image, weights, TGI warmup
    max_inputs: int = Field(default=32, ge=1, le=128)  # requests per container; <= TGI's --max-concurrent-requests
    min_containers: int = Field(default=0, ge=0)  # > 0 keeps GPUs warm (and billed) to skip cold starts
    max_containers: int = Field(default=4, ge=1)  # cost ceiling: traffic beyond it queues
    secret_name: str | None = None  # a Modal secret with PROXY_* keys (API keys) and/or HF_TOKEN
    requires_proxy_auth: bool = False  # Modal checks a workspace proxy token before waking a GPU

    @field_validator("quantize", "secret_name", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("adapter_path")
    @classmethod
    def _adapter_on_volume(cls, path: str) -> str:
        if path and not path.startswith(f"{DATA_DIR}/"):
            raise ValueError(f"adapter_path must be inside the training-data volume, under {DATA_DIR}/")
        return path

    def container_env(self) -> dict[str, str]:
        """The knobs as DEPLOY_* variables, so the container reads what the deploy read."""
        return {f"DEPLOY_{name.upper()}": str(value) for name, value in self.model_dump().items() if value is not None}


def tgi_launch_settings(config: DeployConfig) -> LaunchSettings:
    """TGI's launcher settings in the container; TGI_* defaults fill in the rest."""
    return LaunchSettings(
        command="text-generation-launcher",
        model_id=config.model_id,
        adapter_dir=config.adapter_path or None,
        quantize=config.quantize,
        port=TGI_PORT,
        hf_home=HF_CACHE_DIR,
        # Our deadline ends first, so the log says why before Modal gives up on the container.
        startup_timeout_s=config.startup_timeout - 30,
    )


config = DeployConfig()
launch_settings = tgi_launch_settings(config)  # built now, so a bad knob fails the deploy, not a GPU container
app = modal.App(APP_NAME)

image = (
    modal.Image.from_registry(
        f"ghcr.io/huggingface/text-generation-inference:{config.tgi_version}",
        # Our own interpreter (in /usr/local, first on PATH) keeps the proxy's packages out of
        # TGI's virtualenv (/usr/src/.venv), whose pinned packages TGI's shards rely on.
        add_python="3.11",
    )
    .entrypoint([])  # the image would start text-generation-launcher itself; we start it in @modal.enter
    .pip_install_from_pyproject(str(Path(__file__).parent / "pyproject.toml"))  # core deps, no local-model extras
    # Python sources, and the chat page's files (Modal's default would leave everything else out).
    .add_local_python_source("proxy", "adapters", "therapist_client", ignore=~modal.FilePatternMatcher(*SOURCE_FILES))
)

training_data = modal.Volume.from_name("training-data")  # must exist: training creates it
hf_cache = modal.Volume.from_name("huggingface-cache", create_if_missing=True)
secrets = [modal.Secret.from_name(config.secret_name)] if config.secret_name else []


@app.cls(
    image=image,
    gpu=config.gpu,
    volumes={DATA_DIR: training_data, HF_CACHE_DIR: hf_cache},
    secrets=secrets,
    env=config.container_env(),
    scaledown_window=config.scaledown_window,
    startup_timeout=config.startup_timeout,
    min_containers=config.min_containers,
    max_containers=config.max_containers,
)
@modal.concurrent(max_inputs=config.max_inputs)
class TherapistEndpoint:
    @modal.enter()
    def start_tgi(self) -> None:
        configure_logging()
        # A missing or broken adapter raises here, with the guide's "Model not found" message.
        self.tgi = InferenceServer(launch_settings, on_failure=_exit_container)
        self.tgi.start()
        self.tgi.wait_until_ready()

    @modal.exit()
    def stop_tgi(self) -> None:
        self.tgi.stop()

    @modal.asgi_app(label=WEB_LABEL, requires_proxy_auth=config.requires_proxy_auth)
    def web(self):
        app = create_app(proxy_settings_for(self.tgi.settings), inference_server=self.tgi)
        freeze_startup_objects()  # see docs/benchmarks.md: full GC passes stalled every stream
        return app


def _exit_container(error: Exception) -> None:
    # TGI died after it was serving: end the container with a failure so Modal starts a fresh
    # one. The pause lets in-flight streams send their final error event first.
    logging.getLogger(APP_NAME).error("TGI failed; exiting the container: %s", error)
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
    """Stream one reply; print time to first token and tokens/s.

    By default it asks this run's own temporary endpoint (the code as it is now);
    `--deployed` asks the app `modal deploy` made. `--api-key` is sent as a Bearer
    token (the proxy's PROXY_API_KEYS); `--modal-key/--modal-secret` are a Modal proxy
    auth token, needed when the app was deployed with DEPLOY_REQUIRES_PROXY_AUTH=true.
    """
    endpoint = modal.Cls.from_name(APP_NAME, "TherapistEndpoint") if deployed else TherapistEndpoint
    base_url = endpoint().web.get_web_url()
    headers = {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if modal_key:
        headers.update({"Modal-Key": modal_key, "Modal-Secret": modal_secret})
    with httpx.Client(base_url=base_url, headers=headers, timeout=150) as client:
        print(f"endpoint: {base_url}")
        _wait_until_healthy(client, deadline_s=config.startup_timeout)
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
