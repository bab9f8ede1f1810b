"""The names of lowbench's models and quantization variants, importable without torch.

The asv suite imports these to declare its parameter grid: asv starts one process per
benchmark and parameter combination, so a torch import (~2 s) in every one of them would
dominate a quick run. :mod:`lowbench.models` and :mod:`lowbench.quant` re-export them.
"""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("sid", "light", "lighter", "fire", "libraw")
LEARNED_MODELS: tuple[str, ...] = ("sid", "light", "lighter", "fire")
QUANT_NAMES: tuple[str, ...] = ("fp32", "fp16", "dynamic", "static", "qat")
#: The only variant of the (non-neural) LibRaw baseline.
LIBRAW_QUANTS: tuple[str, ...] = ("fp32",)


def is_valid_combination(model: str, quant: str) -> bool:
    """False for a model x quant that no machine can run: the (non-neural) LibRaw baseline
    with anything but :data:`LIBRAW_QUANTS`. Unknown names are not judged here (True)."""
    return model in LEARNED_MODELS or model not in MODEL_NAMES or quant in LIBRAW_QUANTS
