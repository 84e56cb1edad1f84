"""How to start the inference server: settings (env prefix TGI_) and the launcher argument list.

The argument list is TGI's `text-generation-launcher` flags. `localtgi` takes the same
flags, so `TGI_COMMAND="python -m localtgi --engine scripted"` starts the local
stand-in with exactly the arguments production gives TGI.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.lora_arg import format_lora_adapters
from proxy.settings import Settings, load_settings

Quantization = Literal[
    "awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin",
    "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4", "fp8",
]  # fmt: skip


class LaunchSettings(BaseSettings):
    """Every knob of the inference server child process. Env: `TGI_<FIELD>` (e.g. TGI_MODEL_ID)."""

    model_config = SettingsConfigDict(env_prefix="TGI_", frozen=True)

    command: str = Field(
        default="text-generation-launcher",
        description="executable (plus any leading arguments) that takes TGI's launcher flags; "
        "a leading `python` means this interpreter, e.g. `python -m localtgi --engine scripted`",
    )
    model_id: str = Field(default="Qwen/Qwen2.5-7B-Instruct", description="base model (hub id or local folder)")
    adapter_name: str = Field(default="qwen_therapist_lora", description="the adapter_id requests ask TGI for")
    adapter_dir: Path | None = Field(
        default=Path("/data/qwen_therapist_lora"),
        description="LoRA adapter folder; empty serves the base model alone (e.g. an adapter already merged)",
    )
    hostname: str = Field(default="127.0.0.1", description="TGI's bind address: only the proxy beside it talks to it")
    port: int = Field(default=3000, ge=1, le=65535)
    max_concurrent_requests: PositiveInt = Field(default=128, description="TGI answers 429 beyond this")
    max_input_tokens: PositiveInt | None = Field(default=6144, description="longest prompt; empty lets TGI decide")
    max_total_tokens: PositiveInt | None = Field(
        default=8192, description="prompt + reply; 8192 - 6144 leaves room for the proxy's 2048-token max_tokens"
    )
    quantize: Quantization | None = None
    dtype: Literal["float16", "bfloat16"] | None = None
    hf_home: Path | None = Field(default=None, description="HF_HOME for the child: where base weights are cached")
    extra_args: str = Field(default="", description="more launcher flags, shell-quoted, appended as they are")

    startup_timeout_s: PositiveFloat = Field(default=1200.0, description="deadline for the first healthy /health")
    health_poll_interval_s: PositiveFloat = 1.0
    stop_timeout_s: PositiveFloat = Field(default=10.0, description="grace after SIGTERM before SIGKILL")

    @field_validator(
        "adapter_dir", "hf_home", "max_input_tokens", "max_total_tokens", "quantize", "dtype", mode="before"
    )
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_combinations(self) -> LaunchSettings:
        # The same checks TGI's launcher makes, so a bad deploy fails before a GPU is spent on it.
        if self.quantize and self.dtype:
            raise ValueError("quantize and dtype cannot be combined (TGI refuses it)")
        if self.max_input_tokens and self.max_total_tokens and self.max_input_tokens >= self.max_total_tokens:
            raise ValueError("max_input_tokens must be smaller than max_total_tokens")
        if self.adapter_dir is not None and not self.adapter_name:
            raise ValueError("adapter_dir is set but adapter_name is empty")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.hostname}:{self.port}"

    @property
    def served_adapters(self) -> frozenset[str]:
        """The adapter ids TGI will know; asking it for any other silently gets the base model."""
        return frozenset({self.adapter_name}) if self.adapter_dir is not None else frozenset()


def load_launch_settings(**overrides) -> LaunchSettings:
    """Build launch settings from the environment; keyword overrides win."""
    return LaunchSettings(**overrides)


def proxy_settings_for(launch: LaunchSettings, **overrides: Any) -> Settings:
    """Proxy settings that point at the launched server and ask it only for the adapter it serves."""
    adapter_id = launch.adapter_name if launch.adapter_dir is not None else ""  # "" = the base model
    return load_settings(**overrides, tgi_url=launch.url, adapter_id=adapter_id, adapter_dir=launch.adapter_dir)


def build_launcher_args(settings: LaunchSettings, adapter_dir: Path | None = None) -> list[str]:
    """The full argv of the inference server. `adapter_dir` is the checked folder (it may be a
    checkpoint inside the configured one); it defaults to the configured folder."""
    command = shlex.split(settings.command)
    if command[:1] == ["python"]:
        command[0] = sys.executable
    args = [
        *command,
        "--model-id", settings.model_id,
        # Always explicit: an unset --hostname falls back to $HOSTNAME, which shells set to the machine name.
        "--hostname", settings.hostname,
        "--port", str(settings.port),
        "--max-concurrent-requests", str(settings.max_concurrent_requests),
    ]  # fmt: skip
    adapter_dir = adapter_dir or settings.adapter_dir
    if adapter_dir is not None:
        args += ["--lora-adapters", format_lora_adapters({settings.adapter_name: adapter_dir})]
    optional = {
        "--max-input-tokens": settings.max_input_tokens,
        "--max-total-tokens": settings.max_total_tokens,
        "--quantize": settings.quantize,
        "--dtype": settings.dtype,
    }
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    return args + shlex.split(settings.extra_args)


def build_child_env(settings: LaunchSettings, parent_env: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ours, with the HF cache set and nothing that points into our Python."""
    env = dict(parent_env)
    # TGI runs its own interpreter (/usr/src/.venv in its image): our PYTHONPATH must not leak into it.
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"  # Python children (TGI shards, localtgi) flush each log line to our pipe
    if settings.hf_home is not None:
        env["HF_HOME"] = os.fspath(settings.hf_home)
    return env
