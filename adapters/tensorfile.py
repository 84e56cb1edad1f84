"""Tensor names and shapes of an adapter weights file, without loading the weights."""

from __future__ import annotations

import json
import struct
from pathlib import Path

Shapes = dict[str, tuple[int, ...]]


class UnreadableTensorFile(ValueError):
    """The weights file is truncated, corrupt, or not in the format its name says."""


def read_tensor_shapes(path: Path) -> Shapes:
    if path.suffix == ".safetensors":
        return _safetensors_shapes(path)
    return _torch_pickle_shapes(path)


def _safetensors_shapes(path: Path) -> Shapes:
    # Format: 8-byte little-endian header size, a JSON header, then the raw data.
    # Reading only the header keeps `adapters check` fast and free of torch.
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise UnreadableTensorFile(f"{path.name} is truncated ({size} bytes)")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > size - 8:
            raise UnreadableTensorFile(f"{path.name} is truncated or not a safetensors file")
        try:
            header = json.loads(file.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UnreadableTensorFile(f"{path.name} has a corrupt header: {exc}") from exc
    if not isinstance(header, dict):
        raise UnreadableTensorFile(f"{path.name} has a corrupt header")
    data_size = size - 8 - header_size
    shapes: Shapes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape, (start, end) = tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise UnreadableTensorFile(f"{path.name}: bad header entry for {name}") from exc
        if not 0 <= start <= end <= data_size:
            raise UnreadableTensorFile(f"{path.name} is truncated: {name} lies past the end of the file")
        shapes[name] = shape
    return shapes


def _torch_pickle_shapes(path: Path) -> Shapes:
    try:
        import torch
    except ImportError as exc:
        raise UnreadableTensorFile(f"{path.name} is a torch pickle; install torch to check it") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for a bad pickle
        raise UnreadableTensorFile(f"{path.name} cannot be loaded: {exc}") from exc
    if not isinstance(state, dict):
        raise UnreadableTensorFile(f"{path.name} holds no state dict")
    return {name: tuple(tensor.shape) for name, tensor in state.items()}
