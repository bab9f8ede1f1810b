"""The one reader and writer of safetensors files (checkpoints, shipped calibration, the
observer cache, optimizer state): tensors + string metadata, never pickle."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from lowbench.errors import CheckpointError
from lowbench.fsutil import atomic_write_bytes


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors (on the CPU) and the string metadata of a safetensors file.

    Raises CheckpointError naming the file when it is missing, truncated or not safetensors."""
    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{os.fspath(path)}: not a readable safetensors file (truncated or corrupt: "
            f"{_first_line(err)}); re-download or re-train it") from None
    return tensors, metadata


def tensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
                  ) -> bytes:
    """The safetensors serialization of ``tensors`` with string ``metadata`` (its size in bytes
    is the stored size of those tensors)."""
    return save(tensors, metadata=metadata)


def write_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor],
                  metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` + ``metadata`` as a safetensors file atomically; returns the path."""
    return atomic_write_bytes(path, tensors_bytes(tensors, metadata))
