"""Model registry: the learned SID variants and the LibRaw baseline.

Every learned model maps packed raw ``(N, 4, h, w)`` float32 to sRGB ``(N, 3, 2h, 2w)`` for any
h, w. :func:`build` returns a :class:`~lowbench.models.unet.PaddedModel` whose ``.core`` is the
fx-traceable U-Net body (input sides multiples of 16); quantize the core and re-wrap it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import nn

from lowbench.errors import LowbenchError, VariantError
from lowbench.models.complexity import count_params
from lowbench.models.fire import SQUEEZE_RATIO, build_fire_core
from lowbench.models.unet import PaddedModel, UNet, conv_factory
from lowbench.names import LEARNED_MODELS, MODEL_NAMES

_DESCRIPTIONS = {
    "sid": "SID U-Net (Chen et al. 2018): 32-512 channel encoder/decoder of plain 3x3 convs",
    "light": "SID U-Net with the second 3x3 conv of every stage depthwise-separable",
    "lighter": "SID U-Net with every 3x3 conv depthwise-separable",
    "fire": (
        "SID U-Net with every 3x3 conv replaced by a SqueezeNet fire module "
        f"(squeeze ratio {SQUEEZE_RATIO})"
    ),
    "libraw": (
        "traditional pipeline baseline: short exposure x ratio developed by LibRaw with the "
        "ground-truth settings"
    ),
}

# Stage-conv positions (1 = convK_1, 2 = convK_2) that are depthwise-separable.
_SEPARABLE_POSITIONS = {"sid": (), "light": (2,), "lighter": (1, 2)}


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise LowbenchError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")


def build_core(name: str) -> nn.Module:
    """Build the fx-traceable U-Net body of a learned model (input sides multiples of 16)."""
    _check_name(name)
    if name == "libraw":
        raise VariantError(
            "model 'libraw' is not a neural network (LibRaw development baseline); "
            "the harness runs it directly, do not build it"
        )
    if name == "fire":
        return build_fire_core()
    return UNet(conv_factory(_SEPARABLE_POSITIONS[name]))


def build(name: str) -> PaddedModel:
    """Build a learned model with fresh (PyTorch default) weights, on CPU, in train mode.

    The result maps packed raw ``(N, 4, h, w)`` float32 to sRGB ``(N, 3, 2h, 2w)`` for any h, w
    (padding to a multiple of 16 and cropping back). Raises ``LowbenchError`` for an unknown
    name and ``VariantError`` for ``libraw``, which is not a neural network.
    """
    return PaddedModel(build_core(name))


@cache
def _param_count(name: str) -> int:
    with torch.device("meta"):  # shapes only: no memory, no weight initialisation cost
        return count_params(build(name))


def describe(name: str) -> dict[str, Any]:
    """Describe a registered model: ``{"name", "params" (count, 0 for libraw), "description"}``."""
    _check_name(name)
    params = 0 if name == "libraw" else _param_count(name)
    return {"name": name, "params": params, "description": _DESCRIPTIONS[name]}


__all__ = [
    "LEARNED_MODELS",
    "MODEL_NAMES",
    "PaddedModel",
    "UNet",
    "build",
    "build_core",
    "describe",
]
