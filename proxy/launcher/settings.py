"""How to start the inference server: settings (env prefix LAUNCH_, or TGI_ as before) and its environment.

The argument list is built per engine in `argv.py`: TGI's `text-generation-launcher` flags, or
`vllm serve`'s. The local stand-ins take the same flags, so `LAUNCH_COMMAND="python -m localtgi
--engine scripted"` (or `"python -m localvllm serve --engine scripted"`) starts them with exactly
the arguments production gives the real servers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from proxy.settings import Engine, Settings, load_settings

TGI_QUANTIZATIONS = frozenset({
    "awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin", "bitsandbytes", "bitsandbytes-nf4",
    "bitsandbytes-fp4", "fp8",
})  # fmt: skip
VLLM_QUANTIZATIONS = frozenset(
    {"awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "compressed-tensors", "bitsandbytes"}
)
# Kept for the Modal recipe's knob, which names TGI's choices.
Quantization = Literal[
    "awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin",
    "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4", "fp8",
]  # fmt: skip
DEFAULT_COMMANDS = {"tgi": "text-generation-launcher", "vllm": "vllm serve"}


class LaunchSettings(BaseSettings):
    """Every knob of the inference server child process. Env: `LAUNCH_<FIELD>` (e.g. LAUNCH_MODEL_ID);
    `TGI_<FIELD>`, their earlier names, still work when the LAUNCH_ one is not set."""

    model_config = SettingsConfigDict(env_prefix="LAUNCH_", frozen=True)

    engine: Engine = Field(default="tgi", description="the server to start: `tgi` or `vllm`")
    command: str | None = Field(
        default=None,
        description="executable (plus any leading arguments) that takes the engine's flags [default: "
        "text-generation-launcher, or `vllm serve`]; a leading `python` means this interpreter, "
        "e.g. `python -m localtgi --engine scripted`",
    )
    model_id: str = Field(default="Qwen/Qwen2.5-7B-Instruct", description="base model (hub id or local folder)")
    adapter_name: str = Field(default="qwen_therapist_lora", description="the name requests ask for the adapter by")
    adapter_dir: Path | None = Field(
        default=Path("/data/qwen_therapist_lora"),
        description="LoRA adapter folder; empty serves the base model alone (e.g. an adapter already merged)",
    )
    hostname: str = Field(default="127.0.0.1", description="the bind address: only the proxy beside it talks to it")
    port: int = Field(default=3000, ge=1, le=65535)
    max_concurrent_requests: PositiveInt = Field(
        default=128, description="TGI answers 429 beyond this; vLLM (--max-num-seqs) batches this many, queues more"
    )
    max_input_tokens: PositiveInt | None = Field(
        default=6144, description="longest prompt (TGI); empty lets TGI decide. vLLM's limit is max_total_tokens"
    )
    max_total_tokens: PositiveInt | None = Field(
        default=8192,
        description="prompt + reply (TGI --max-total-tokens, vLLM --max-model-len); 8192 - 6144 leaves room for "
        "the proxy's 2048-token max_tokens",
    )
    quantize: str | None = Field(default=None, description="TGI --quantize / vLLM --quantization")
    dtype: Literal["float16", "bfloat16"] | None = None
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1, description="vLLM only")
    enable_sleep_mode: bool = Field(
        default=False, description="vLLM only: serve /sleep and /wake_up (for GPU memory snapshots)"
    )
    hf_home: Path | None = Field(default=None, description="HF_HOME for the child: where base weights are cached")
    extra_args: str = Field(default="", description="more launcher flags, shell-quoted, appended as they are")

    startup_timeout_s: PositiveFloat = Field(default=1200.0, description="deadline for the first healthy /health")
    health_poll_interval_s: PositiveFloat = 1.0
    stop_timeout_s: PositiveFloat = Field(default=10.0, description="grace after SIGTERM before SIGKILL")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        earlier_names = EnvSettingsSource(settings_cls, env_prefix="TGI_")  # read after LAUNCH_: LAUNCH_ wins
        return init_settings, env_settings, earlier_names, dotenv_settings, file_secret_settings

    @field_validator(
        "adapter_dir", "hf_home", "max_input_tokens", "max_total_tokens", "quantize", "dtype", "command",
        "gpu_memory_utilization", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_combinations(self) -> LaunchSettings:
        # The same checks the servers make, so a bad deploy fails before a GPU is spent on it.
        choices = TGI_QUANTIZATIONS if self.engine == "tgi" else VLLM_QUANTIZATIONS
        if self.quantize and self.quantize not in choices:
            raise ValueError(f"quantize {self.quantize!r} is not one of {self.engine}'s: {', '.join(sorted(choices))}")
        if self.quantize and self.dtype and self.engine == "tgi":
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
    def launch_command(self) -> str:
        return self.command or DEFAULT_COMMANDS[self.engine]

    @property
    def requested_model(self) -> str:
        """What a request names to get the therapist: the adapter when there is one, else the base model."""
        return self.adapter_name if self.adapter_dir is not None else self.model_id

    @property
    def served_adapters(self) -> frozenset[str]:
        """The adapter names the server will know (TGI answers any other with its base model)."""
        return frozenset({self.adapter_name}) if self.adapter_dir is not None else frozenset()


def load_launch_settings(**overrides) -> LaunchSettings:
    """Build launch settings from the environment; keyword overrides win."""
    return LaunchSettings(**overrides)


def proxy_settings_for(launch: LaunchSettings, **overrides: Any) -> Settings:
    """Proxy settings that point at the launched server and ask it only for the adapter it serves."""
    adapter_id = launch.adapter_name if launch.adapter_dir is not None else ""  # "" = the base model
    return load_settings(
        **overrides,
        engine=launch.engine,
        upstream_url=launch.url,
        adapter_id=adapter_id,
        adapter_dir=launch.adapter_dir,
    )


def build_child_env(settings: LaunchSettings, parent_env: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ours, with the HF cache set and nothing that points into our Python."""
    env = dict(parent_env)
    # TGI runs its own interpreter (/usr/src/.venv in its image): our PYTHONPATH must not leak into it.
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"  # Python children (TGI shards, vLLM, the stand-ins) flush each line to our pipe
    if settings.hf_home is not None:
        env["HF_HOME"] = os.fspath(settings.hf_home)
    if settings.enable_sleep_mode:
        env["VLLM_SERVER_DEV_MODE"] = "1"  # vLLM serves /sleep and /wake_up only with it
    return env
