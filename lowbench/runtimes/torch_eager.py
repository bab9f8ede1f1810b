"""Eager PyTorch: the variant's module as built, run by the harness itself (the default).

Nothing is deployed: :func:`deploy` builds the variant (:func:`lowbench.variants.build_variant`)
and states what it runs. The precision is read back from the module: its parameters' dtype, and
int8 when its quantized layers (counted by :func:`lowbench.quant.report.int8_layers`) are any.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import torch

from lowbench.runtimes.base import (
    PRECISION_WORDS,
    REQUESTED,
    DeployRequest,
    runtime_info,
    summarize_precisions,
)
from lowbench.variants import Variant, build_variant

NAME = "torch"
EXTRA = None
#: The deployed file(s) ``lowbench export --runtime`` writes (None: no file is deployed).
ARTIFACT: str | None = None


def unavailable(device: str) -> str | None:
    """Eager torch runs wherever lowbench does (CUDA is checked when the variant is built)."""
    return None


def unsupported(quant: str, device: str) -> str | None:
    """Every quant is a torch recipe (a recipe that cannot run here says so when built)."""
    return None


def executed_precisions(module: torch.nn.Module | None, quantized_layers: int | None
                        ) -> dict[str, int]:
    """Count the module's convolutions by the precision they compute in: int8 for quantized
    layers, else the dtype of their weight."""
    counts: Counter[str] = Counter()
    if module is None:
        return {}
    for m in module.modules():
        name = type(m).__name__
        if "Conv" not in name or any(True for _ in m.children()):
            continue
        if type(m).__module__.startswith("torch.ao.nn.quantized"):
            counts["int8"] += 1
            continue
        weight = getattr(m, "weight", None)
        if isinstance(weight, torch.Tensor):
            word = str(weight.dtype).removeprefix("torch.")
            counts[PRECISION_WORDS.get(word, word)] += 1
    if not counts.get("int8") and quantized_layers:
        counts["int8"] = quantized_layers
    return dict(counts)


def describe(variant: Variant, req: DeployRequest, *, name: str = NAME,
             build_s: float | None = None, provider: str | None = None, **extra: Any
             ) -> dict[str, Any]:
    """The ``runtime`` section of a torch variant (eager or compiled)."""
    counts = executed_precisions(variant.module, variant.info.get("quantized_layers"))
    return runtime_info(
        name, version=torch.__version__, provider=provider, device=req.device,
        precision=summarize_precisions(counts), requested=REQUESTED[req.quant],
        threads=torch.get_num_threads(), build_s=build_s, precision_counts=counts,
        precision_source="the module's convolutions: quantized modules count as int8, the "
                         "others by their weight's dtype", **extra)


def deploy(req: DeployRequest) -> Variant:
    """The torch variant of ``req``, with its ``info["runtime"]`` (a variant without a module
    - LibRaw, or unsupported here - is returned as built, with the reason)."""
    t0 = time.perf_counter()
    variant = build_variant(req.model, req.quant, checkpoint=req.checkpoint, task=req.task,
                            data_root=req.data_root, device=req.device,
                            calibration=req.calibration)
    if variant.module is None:  # LibRaw (developed by the harness) or unsupported here
        variant.info["runtime"] = {"name": NAME, "version": torch.__version__,
                                   "reason": variant.info.get("reason") or variant.info.get(
                                       "note")}
        return variant
    variant.info["runtime"] = describe(variant, req, build_s=time.perf_counter() - t0)
    return variant
