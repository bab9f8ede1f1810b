"""Rows of `lowbench list models`: name, parameters, MACs at a stated size, fp32 size."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lowbench.models.complexity import count_macs, fp32_size_mib
from lowbench.models.registry import MODEL_NAMES, describe, get_model


def model_rows(names: Iterable[str] = MODEL_NAMES,
               packed_hw: tuple[int, int] = (256, 256)) -> list[dict[str, Any]]:
    """One row per model (default: every registered one, in registry order): ``name``,
    ``params`` (count), ``macs`` (multiply-accumulates of one forward pass on a
    ``(1, 4, *packed_hw)`` packed input), ``gmacs``, ``fp32_mib`` (MiB) and ``description``.
    The ``libraw`` baseline has 0 parameters and 0 MACs (it is not a network). Built on the
    meta device: no weights are allocated or loaded.
    """
    rows = []
    for name in names:
        info = describe(name)
        spec = get_model(name)
        if not spec.learned:
            macs, mib = 0, 0.0
        else:
            with torch.device("meta"):
                model = spec.build()
            macs, mib = count_macs(model, packed_hw), fp32_size_mib(model)
        rows.append({"name": name, "params": info["params"], "macs": macs,
                     "gmacs": round(macs / 1e9, 3), "fp32_mib": round(mib, 2),
                     "description": info["description"]})
    return rows
