"""All proxy settings, read from the environment (prefix PROXY_) by `load_settings()`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

Engine = Literal["tgi", "vllm"]
SafetyPolicy = Literal["off", "annotate", "prepend", "block"]

# Illinois (HB 1806) and Nevada (AB 406) forbid presenting an AI as a therapist: it is a companion.
DEFAULT_SYSTEM_PROMPT = (
    "You are a warm, supportive AI companion for people who want to talk through how they feel. "
    "Listen carefully, reflect the person's feelings back to them, ask gentle open questions, and "
    "offer everyday coping ideas. You are not a therapist or any other licensed professional, and "
    "you do not diagnose or treat: when someone needs more than a conversation, encourage them to "
    "reach a professional. If someone may be in danger, encourage them to contact a crisis line or "
    "emergency services."
)
DEFAULT_AI_DISCLOSURE = (
    "You are talking with an AI, not a person. It is not a therapist or any other licensed professional."
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
    #: load shedding: new streams get 429 past this many open streams, or while the event loop runs
    #: later than this (0 turns the lag check off)
    max_streams: PositiveInt = 1024
    max_loop_lag_ms: NonNegativeFloat = 100.0
    #: after SIGTERM, how long streams in flight may take to finish before they end with a restart error
    drain_timeout_s: NonNegativeFloat = 20.0

    # Care for people in crisis (docs/safety.md, the published protocol).
    #: off | annotate (flag only) | prepend (crisis resources first, then the reply) | block (only them)
    safety_policy: SafetyPolicy = "prepend"
    #: whose crisis lines the resources message gives (built in: US, CA, GB, ES, MX)
    safety_region: str = "US"
    #: a JSON file of regions, or of changed lines, for the resources message (docs/safety.md)
    safety_resources_file: Path | None = None
    #: threads that run the detector; unset: one core fewer than the machine has, at least one, so
    #: that a burst of requests cannot take the core the event loop needs (docs/reliability.md)
    safety_workers: PositiveInt | None = None
    #: what the person is told the model is: added to the system prompt, shown on the page
    ai_disclosure: str = DEFAULT_AI_DISCLOSURE
    #: also send the disclosure as the first text of every new conversation (empty history)
    ai_disclosure_notice: bool = False

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
