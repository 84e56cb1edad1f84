"""Settings the server runs with, resolved from the command line (see cli.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The launcher limits TGI's router enforces and reports in /info."""

    max_concurrent_requests: int = 128
    max_best_of: int = 2
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_input_tokens: int = 4095
    max_total_tokens: int = 4096
    max_client_batch_size: int = 4
    payload_limit: int = 2_000_000


@dataclass(frozen=True)
class ServerConfig:
    model_id: str
    limits: Limits
    keep_alive_seconds: float = 15.0  # axum's KeepAlive::default()
    compute_type: str = "gpu+optimized"  # TGI's x-compute-type default (env COMPUTE_TYPE)
