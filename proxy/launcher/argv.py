"""The inference server's full argument list, per engine, from the launch settings."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from adapters.lora_arg import format_lora_adapters
from proxy.launcher.settings import LaunchSettings

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # what --max-lora-rank accepts (and 1)


def build_launcher_args(settings: LaunchSettings, adapter_dir: Path | None = None, adapter_rank: int = 16) -> list[str]:
    """`adapter_dir` is the checked folder (it may be a checkpoint inside the configured one); it
    defaults to the configured folder. `adapter_rank` is its LoRA rank (vLLM must be told)."""
    command = shlex.split(settings.launch_command)
    if command[:1] == ["python"]:
        command[0] = sys.executable
    adapter_dir = adapter_dir or settings.adapter_dir
    engine_args = _tgi_args if settings.engine == "tgi" else _vllm_args
    return [*command, *engine_args(settings, adapter_dir, adapter_rank), *shlex.split(settings.extra_args)]


def _tgi_args(settings: LaunchSettings, adapter_dir: Path | None, adapter_rank: int) -> list[str]:
    args = [
        "--model-id", settings.model_id,
        # Always explicit: an unset --hostname falls back to $HOSTNAME, which shells set to the machine name.
        "--hostname", settings.hostname,
        "--port", str(settings.port),
        "--max-concurrent-requests", str(settings.max_concurrent_requests),
    ]  # fmt: skip
    if adapter_dir is not None:
        args += ["--lora-adapters", format_lora_adapters({settings.adapter_name: adapter_dir})]
    return args + _optional({
        "--max-input-tokens": settings.max_input_tokens,
        "--max-total-tokens": settings.max_total_tokens,
        "--quantize": settings.quantize,
        "--dtype": settings.dtype,
    })  # fmt: skip


def _vllm_args(settings: LaunchSettings, adapter_dir: Path | None, adapter_rank: int) -> list[str]:
    args = [
        settings.model_id,
        "--host", settings.hostname,
        "--port", str(settings.port),
        "--max-num-seqs", str(settings.max_concurrent_requests),
        # The proxy sends every sampling knob; the model's generation_config.json must not add its own.
        "--generation-config", "vllm",
    ]  # fmt: skip
    if adapter_dir is not None:
        rank = next((choice for choice in VLLM_LORA_RANKS if choice >= adapter_rank), adapter_rank)
        args += [
            "--enable-lora",
            "--max-lora-rank",
            str(rank),
            "--lora-modules",
            f"{settings.adapter_name}={adapter_dir}",
        ]
    if settings.enable_sleep_mode:
        args.append("--enable-sleep-mode")
    return args + _optional({
        "--max-model-len": settings.max_total_tokens,
        "--quantization": settings.quantize,
        "--dtype": settings.dtype,
        "--gpu-memory-utilization": settings.gpu_memory_utilization,
    })  # fmt: skip


def _optional(flags: dict[str, object]) -> list[str]:
    return [part for flag, value in flags.items() if value is not None for part in (flag, str(value))]
