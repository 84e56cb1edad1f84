"""All proxy settings, read from the environment (prefix PROXY_) by `load_settings()`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

Engine = Literal["tgi", "vllm"]

DEFAULT_SYSTEM_PROMPT = (
    "You are a warm, compassionate therapist. Listen carefully, reflect the person's feelings back "
    "to them, ask gentle open questions, and offer practical coping ideas. You are not a substitute "
    "for emergency help: if someone may be in danger, encourage them to contact local emergency "
    "services or a crisis line."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROXY_", frozen=True, populate_by_name=True)

    # Upstream inference server: TGI or vLLM (or their local stand-ins, localtgi and localvllm).
    #: which wire the server at upstream_url speaks
    engine: Engine = "tgi"
    #: the server's base URL; PROXY_TGI_URL, its earlier name, still works
    upstream_url: str = Field(
        default="http://127.0.0.1:3000",
        validation_alias=AliasChoices("upstream_url", "PROXY_UPSTREAM_URL", "tgi_url", "PROXY_TGI_URL"),
    )
    #: the name /health and /v1/models report, and the default adapter to ask the server for
    model_name: str = "qwen_therapist_lora"
    #: the adapter to ask for (TGI: parameters.adapter_id, vLLM: model); unset means `model_name`, empty
    #: means the base model
    adapter_id: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    #: the chat template's end-of-turn marker; also sent to TGI as a stop sequence
    end_of_turn: str = "<|im_end|>"
    #: the LoRA adapter folder: its chat template and tokenizer are used when it has them
    adapter_dir: Path | None = None
    #: tokenizer.json (or its folder) for counting prompt tokens; default: the adapter's, else Qwen2.5's
    tokenizer_path: Path | None = None

    # Request limits (the contract table's "limits from settings").
    max_message_chars: PositiveInt = 16_000
    max_history_items: PositiveInt = 100
    max_history_chars: PositiveInt = 200_000
    max_tokens_limit: PositiveInt = 2048
    default_max_tokens: PositiveInt = 512

    # Who may call, and how much.
    #: comma-separated API keys, or `sha256:<hex>` digests of keys; empty = no authentication
    api_keys: str = Field(default="", repr=False)
    #: a file with more keys or digests, one per line (e.g. mounted from a secret)
    api_keys_file: Path | None = None
    max_streams_per_key: PositiveInt = 16
    max_body_bytes: PositiveInt = 1_000_000
    #: comma-separated origins allowed to call from a browser (`*` for any); empty = no CORS headers
    cors_origins: str = ""

    # Streaming behaviour.
    keepalive_interval_s: PositiveFloat = 15.0  # intermediaries drop idle connections (Cloudflare: 100 s)
    stream_idle_timeout_s: PositiveFloat = 60.0  # upstream silence (no byte at all) that ends a stream

    # Upstream connection handling.
    connect_timeout_s: PositiveFloat = 2.0
    connect_attempts: PositiveInt = 3  # tries before the first token only; never after
    upstream_max_connections: PositiveInt = 1024
    health_timeout_s: PositiveFloat = 2.0
    retry_after_overloaded_s: PositiveInt = 1
    retry_after_unavailable_s: PositiveInt = 5

    host: str = Field(default="127.0.0.1", description="bind address for `python -m proxy`")
    port: int = Field(default=8000, ge=0, le=65535)

    @cached_property
    def upstream_adapter_id(self) -> str | None:
        if self.adapter_id is None:
            return self.model_name
        return self.adapter_id or None


def load_settings(**overrides) -> Settings:
    """Build settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)
