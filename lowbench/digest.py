"""Digests: the one sha256 of a file, of a model's weights and of a JSON-able key.

Checkpoints and task files are identified by :func:`sha256_file`; in-memory weights (a random
init, DDP ranks agreeing, the static-calibration cache key) by :func:`weights_digest`; cache keys
and machine identities by :func:`json_digest`.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def weights_digest(state_dict: Any) -> str:
    """Hex sha256 over the sorted names and raw bytes of a state dict (or of an ``nn.Module``'s
    ``state_dict()``): equal exactly when every tensor has the same name, dtype and values."""
    if hasattr(state_dict, "state_dict"):
        state_dict = state_dict.state_dict()
    h = hashlib.sha256()
    for name, value in sorted(state_dict.items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(value.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


def json_digest(obj: Any, length: int = 64) -> str:
    """The first ``length`` hex digits of the sha256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:length]


def bytes_digest(data: bytes, length: int = 64, algorithm: str = "sha256") -> str:
    """The first ``length`` hex digits of ``data``'s digest (``algorithm``: a hashlib name;
    sha1 only where an existing published name was built with it)."""
    return hashlib.new(algorithm, data).hexdigest()[:length]
