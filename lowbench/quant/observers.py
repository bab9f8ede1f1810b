"""The observers static int8 and QAT record activation and weight ranges with, and their state.

Activations: ``HistogramObserver`` (quint8, ``0..act_quant_max``); conv weights: per-channel
symmetric ``MinMax`` (qint8, -128..127); transposed-conv weights on qnnpack: per-tensor
symmetric (FX has no per-channel observer for them). Observer state is what a calibration
produces and what the calibration cache and ``lowbench/calibration/`` store (tensors only, no
weights). Why these choices: docs/quantization.md, "Design notes".
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def activation_observer(act_quant_max: int) -> Any:
    """Observer constructor for static int8 activations: quint8 histogram, ``0..act_quant_max``
    (127 for 7-bit, 255 for 8-bit activations)."""
    from torch.ao.quantization.observer import HistogramObserver

    return HistogramObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=act_quant_max)


def per_channel_weight_observer() -> Any:
    """Observer constructor for conv weights: qint8, symmetric, one scale per output channel."""
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    return PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-128, quant_max=127
    )


def per_tensor_weight_observer() -> Any:
    """Observer constructor for transposed-conv weights on qnnpack: qint8, symmetric, one
    scale per tensor."""
    from torch.ao.quantization.observer import MinMaxObserver

    return MinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=-128, quant_max=127
    )


def is_observer_key(key: str) -> bool:
    """Whether a state-dict ``key`` of a prepared graph belongs to an observer / fake-quant."""
    return "activation_post_process" in key


def observer_state(prepared: nn.Module) -> dict[str, torch.Tensor]:
    """The observer tensors of ``prepared`` (CPU copies, no weights), ready to store."""
    # clone: observers shared by cat inputs alias one buffer, safetensors refuses aliases
    return {k: v.detach().cpu().clone() for k, v in prepared.state_dict().items()
            if is_observer_key(k)}


def load_observer_state(prepared: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Load a stored observer state into ``prepared``; False if its layout does not fit (then
    ``prepared`` may hold part of it and must be prepared afresh)."""
    result = prepared.load_state_dict(state, strict=False)
    return not (result.unexpected_keys or any(is_observer_key(k) for k in result.missing_keys))


def observe(prepared: nn.Module, crops: list[torch.Tensor], batch: int) -> None:
    """Forward ``crops`` (float32 ``(4, c, c)`` each) through ``prepared`` under no_grad,
    ``batch`` crops of one shape at a time, so its observers record their ranges."""
    by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for c in crops:
        by_shape.setdefault(tuple(c.shape), []).append(c)
    with torch.no_grad():
        for group in by_shape.values():
            for i in range(0, len(group), max(1, batch)):
                prepared(torch.stack(group[i:i + batch]))
