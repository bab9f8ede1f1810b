"""The names of lowbench's models and quantization variants, importable without torch.

The asv suite imports these to declare its parameter grid: asv starts one process per
benchmark and parameter combination, so a torch import (~2 s) in every one of them would
dominate a quick run. :mod:`lowbench.models` and :mod:`lowbench.quant` re-export them. The
command line validates ``--model`` and ``--quant`` with the parse functions below, so a typo
is answered before torch is imported.
"""

from __future__ import annotations

from lowbench.errors import LowbenchError, VariantError

MODEL_NAMES: tuple[str, ...] = ("sid", "light", "lighter", "fire", "libraw")
LEARNED_MODELS: tuple[str, ...] = ("sid", "light", "lighter", "fire")
QUANT_NAMES: tuple[str, ...] = ("fp32", "fp16", "dynamic", "static", "qat")
#: The only variant of the (non-neural) LibRaw baseline.
LIBRAW_QUANTS: tuple[str, ...] = ("fp32",)


def is_valid_combination(model: str, quant: str) -> bool:
    """False for a model x quant that no machine can run: the (non-neural) LibRaw baseline
    with anything but :data:`LIBRAW_QUANTS`. Unknown names are not judged here (True)."""
    return model in LEARNED_MODELS or model not in MODEL_NAMES or quant in LIBRAW_QUANTS


def parse_model(name: str) -> str:
    """``name`` if it is a model of :data:`MODEL_NAMES`, else a LowbenchError listing them
    (an argparse ``type`` for ``--model``)."""
    if name not in MODEL_NAMES:
        raise LowbenchError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return name


def parse_learned_model(name: str) -> str:
    """``name`` if it is a learned model (:data:`LEARNED_MODELS`: trainable, exportable),
    else a LowbenchError listing them (an argparse ``type`` for ``--model``)."""
    if name not in LEARNED_MODELS:
        raise LowbenchError(f"model {name!r} is not a learned model; choose one of: "
                            f"{', '.join(LEARNED_MODELS)}")
    return name


def parse_quant(name: str) -> str:
    """``name`` if it is a variant of :data:`QUANT_NAMES`, else a LowbenchError listing them
    (an argparse ``type`` for ``--quant``)."""
    if name not in QUANT_NAMES:
        raise LowbenchError(f"unknown quant {name!r}; choose one of: {', '.join(QUANT_NAMES)}")
    return name


def check_combination(model: str, quant: str) -> None:
    """Raise VariantError for a model x quant that no machine can run (see
    :func:`is_valid_combination`)."""
    if not is_valid_combination(model, quant):
        raise VariantError(f"model '{model}' cannot take quant '{quant}' (it is not a "
                           f"neural network); valid: --quant {', '.join(LIBRAW_QUANTS)}")
