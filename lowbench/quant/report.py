"""What a quantization recipe reports: the info dict, counts of int8 layers, notes.

Every builder of :mod:`lowbench.quant.recipes` returns ``(module or None, info)`` with
:func:`quant_info`'s keys; :func:`lowbench.variants.build_variant` adds the
model/quant/checkpoint/device keys and the record stores the result.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn

from lowbench.quant.weight_only import count_weight_only_int8

#: The quantized-module namespaces counted as "quantized layers".
QUANTIZED_NAMESPACES: tuple[str, ...] = (
    "torch.ao.nn.quantized",
    "torch.ao.nn.quantized.dynamic",
    "torch.ao.nn.intrinsic.quantized",
)


def quant_info(**kw: Any) -> dict[str, Any]:
    """The info dict of a variant: the defaults of a float32 variant that quantized nothing,
    updated with ``kw``. Keys: engine, quantized_layers, quantized_nothing,
    quantized_layer_types, weight_only_int8_layers, calibration, dtype, status ("ok" or
    "unsupported"), reason, note."""
    info = {"engine": None, "quantized_layers": 0, "quantized_nothing": None,
            "quantized_layer_types": {}, "weight_only_int8_layers": 0, "calibration": None,
            "dtype": "float32",
            "status": "ok", "reason": None, "note": None}
    info.update(kw)
    return info


def _is_quantized_type(module: nn.Module) -> bool:
    where = type(module).__module__
    return any(where == ns or where.startswith(ns + ".") for ns in QUANTIZED_NAMESPACES)


def quantized_layer_types(module: nn.Module) -> dict[str, int]:
    """Count of quantized modules by class name (types from :data:`QUANTIZED_NAMESPACES`)."""
    counts = Counter(type(m).__name__ for m in module.modules() if _is_quantized_type(m))
    return dict(sorted(counts.items()))


def count_quantized_layers(module: nn.Module) -> int:
    """Number of modules whose type lives in a torch.ao quantized namespace (0 = nothing)."""
    return sum(quantized_layer_types(module).values())


def int8_layers(module: nn.Module, why_float: str | None = None) -> dict[str, Any]:
    """The layer keys of :func:`quant_info` for ``module``: quantized_layers,
    quantized_layer_types, quantized_nothing, weight_only_int8_layers and, with ``why_float``
    (why its transposed convs compute in float32 from int8 weights), the record's ``note`` on
    them (None when it has none)."""
    types = quantized_layer_types(module)
    n = sum(types.values())
    weight_only = count_weight_only_int8(module)
    layers = {"quantized_layers": n, "quantized_layer_types": types, "quantized_nothing": n == 0,
              "weight_only_int8_layers": weight_only}
    if why_float is not None:
        layers["note"] = float_layers_note(weight_only, why_float)
    return layers


def float_layers_note(n: int, why: str) -> str | None:
    """The record's note on ``n`` transposed convs computed in float32 from int8 weights
    (``why`` says why); None when ``n`` is 0."""
    if n == 0:
        return None
    # the text records store: it still names the module by its old path, so the published
    # records and the site stay byte-identical
    return (f"{n} ConvTranspose2d layers compute in float32 (dequantize/quantize around them) "
            f"from int8 weights (per-channel, lowbench.weight_only): {why}; every other conv, "
            "activation, pool and cat is int8")


def cpu_only(quant: str, device: str) -> dict[str, Any] | None:
    """None when ``device`` is a CPU, else the "unsupported" info of the FX int8 ``quant``."""
    if torch.device(device).type == "cpu":
        return None
    return quant_info(dtype="int8", status="unsupported", reason=(
        f"quant '{quant}' uses PyTorch's FX int8 kernels, which run on CPU only; use --device "
        "cpu (for Jetson GPUs export fp16/fp32 ONNX to TensorRT)"))
