"""One model x quantization variant, ready for the harness: :func:`build_variant`.

Building a variant is one straight pass: check the names against the registry
(:func:`lowbench.models.registry.check_combination`), build the model (the registry), resolve its
checkpoint and load it (:func:`lowbench.checkpoint.resolve_checkpoint`: shipped or user file,
float or QAT, with its path and sha256), apply the quantization recipe (:mod:`lowbench.quant`),
hand back a :class:`Variant`. Every variant's module maps float32 ``(N, 4, h, w)`` on its
device to float32 ``(N, 3, 2h, 2w)``, so the harness treats all of them the same; ``info``
says what was really run (engine, how many layers are int8, calibration set, checkpoint,
dtype, status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lowbench.checkpoint import resolve_checkpoint
from lowbench.errors import LowbenchError
from lowbench.models.registry import check_combination
from lowbench.quant import recipes
from lowbench.quant.report import quant_info

#: ``info["note"]`` of a float variant built from a QAT checkpoint's weights.
QAT_FLOAT_NOTE = ("float weights of a QAT checkpoint (its fake-quant and observer state is not "
                  "used; --quant qat runs it as trained)")


@dataclass
class Variant:
    """A built variant: ``module`` is None when the variant is unsupported here or is LibRaw."""

    model_name: str
    quant: str
    module: nn.Module | None
    info: dict[str, Any] = field(default_factory=dict)


def _check_device(device: str) -> str:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LowbenchError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LowbenchError(f"device {device!r} requested but CUDA is not available in this "
                            "PyTorch build/machine; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise LowbenchError(f"unsupported device {device!r}; use cpu or cuda")
    return device


def build_variant(
    model_name: str,
    quant_name: str,
    *,
    checkpoint: str | Path | None = None,
    task: str = "synth",
    data_root: str | Path | None = None,
    device: str = "cpu",
    calibration: recipes.CalibrationSettings | None = None,
) -> Variant:
    """Build ``model_name`` x ``quant_name`` on ``device`` (``"cpu"`` or ``"cuda"``).

    Weights: ``checkpoint`` (a user file) or the shipped checkpoint (for ``qat``: the shipped
    QAT checkpoint); the other variants of a QAT checkpoint use its float weights (``note``
    says so). ``task``/``data_root`` pick the train split that calibrates ``static``
    (``calibration`` overrides :data:`lowbench.quant.DEFAULT_CALIBRATION`). ``info`` keys:
    model, quant, engine, quantized_layers, quantized_nothing, calibration, checkpoint
    ({"path", "sha256", "source": "shipped"|"user"|None}), device, dtype, status
    ("ok"|"unsupported"), reason, note. Raises LowbenchError for an unknown quant/model or an
    unavailable device, VariantError for a combination the model cannot take.
    """
    spec = check_combination(model_name, quant_name)
    device = _check_device(device)
    base = {"model": model_name, "quant": quant_name, "device": device}
    if spec.builder is None:  # the LibRaw baseline: the harness develops it directly
        info = quant_info(note="LibRaw baseline, handled by the harness")
        info.update(base, checkpoint={"path": None, "sha256": None, "source": None})
        return Variant(model_name, quant_name, None, info)

    if quant_name == "qat":
        weights = resolve_checkpoint(spec, checkpoint, qat=True)
        module, info = recipes.build_qat(model_name, weights.state_dict,
                                         source=str(weights.path), device=device,
                                         metadata=weights.metadata)
    else:
        model = spec.build()
        weights = resolve_checkpoint(spec, checkpoint, into=model)
        model.eval()
        if quant_name == "fp32":
            module, info = recipes.build_fp32(model, device)
        elif quant_name == "fp16":
            module, info = recipes.build_fp16(model, device)
        elif quant_name == "bf16":
            module, info = recipes.build_bf16(model, device)
        elif quant_name == "dynamic":
            module, info = recipes.build_dynamic(model, device)
        else:
            module, info = recipes.build_static(
                model, model_name, weights_id=weights.sha256, task=task, data_root=data_root,
                device=device, settings=calibration or recipes.DEFAULT_CALIBRATION)
        if weights.qat:
            info["note"] = "; ".join(n for n in (QAT_FLOAT_NOTE, info.get("note")) if n)
    info.update(base, checkpoint={"path": str(weights.path), "sha256": weights.sha256,
                                  "source": weights.source})
    return Variant(model_name, quant_name, module, info)
