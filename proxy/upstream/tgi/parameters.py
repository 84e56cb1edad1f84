"""The contract's sampling fields as TGI's `parameters`, avoiding values TGI rejects (wire.md §5)."""

from __future__ import annotations

import struct
from typing import Any

from proxy.core.chat import Sampling


def tgi_parameters(sampling: Sampling, stop: str, adapter_id: str | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "max_new_tokens": sampling.max_tokens,
        "stop": [stop, *sampling.stop],
        "details": True,  # the final event then carries input_length and generated_tokens
    }
    # TGI reads both as 32-bit floats: 5e-324 arrives as 0.0 and 0.999999999 as 1.0, which it refuses.
    temperature, top_p = _as_float32(sampling.temperature), _as_float32(sampling.top_p)
    if sampling.greedy or temperature == 0.0 or top_p == 0.0:
        # TGI rejects temperature 0, and any top_p < 1 would switch sampling back on.
        # (A top_p that is 0 in 32 bits keeps only the most likely token: greedy as well.)
        parameters["do_sample"] = False
    else:
        parameters["do_sample"] = True
        parameters["temperature"] = sampling.temperature
        if top_p < 1.0:  # TGI rejects top_p == 1.0; leaving it out means the same
            parameters["top_p"] = sampling.top_p
    if sampling.seed is not None:
        parameters["seed"] = sampling.seed
    if adapter_id:
        parameters["adapter_id"] = adapter_id
    return parameters


def _as_float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]
