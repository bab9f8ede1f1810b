"""One model x quantization variant, ready for the harness: :func:`build_variant`.

Every variant's module maps float32 ``(N, 4, h, w)`` on its device to float32
``(N, 3, 2h, 2w)``, so the harness treats all of them the same; ``info`` says what was really
run (engine, how many layers are int8, calibration set, checkpoint, dtype, status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lowbench.checkpoint import (
    is_qat_checkpoint,
    load_checkpoint,
    shipped_checkpoint_path,
    shipped_qat_checkpoint_path,
)
from lowbench.digest import sha256_file
from lowbench.errors import CheckpointError, LowbenchError, VariantError
from lowbench.models import build
from lowbench.names import (
    LEARNED_MODELS,
    LIBRAW_QUANTS,
    MODEL_NAMES,
    QUANT_NAMES,
    is_valid_combination,
)
from lowbench.quant.calibrate import DEFAULT_CALIBRATION, CalibrationSettings
from lowbench.quant.qat import load_qat_checkpoint
from lowbench.quant.recipes import (
    build_dynamic,
    build_fp16,
    build_fp32,
    build_qat,
    build_static,
)
from lowbench.quant.report import quant_info


@dataclass
class Variant:
    """A built variant: ``module`` is None when the variant is unsupported here or is LibRaw."""

    model_name: str
    quant: str
    module: nn.Module | None
    info: dict[str, Any] = field(default_factory=dict)


def check_combination(model_name: str, quant_name: str) -> None:
    """Raise LowbenchError for an unknown model or quant, VariantError for an invalid pair."""
    if model_name not in MODEL_NAMES:
        raise LowbenchError(f"unknown model {model_name!r}; choose one of: "
                            f"{', '.join(MODEL_NAMES)}")
    if quant_name not in QUANT_NAMES:
        raise LowbenchError(f"unknown quant {quant_name!r}; choose one of: "
                            f"{', '.join(QUANT_NAMES)}")
    if not is_valid_combination(model_name, quant_name):
        raise VariantError(f"model '{model_name}' cannot take quant '{quant_name}' (it is not a "
                           f"neural network); valid: --quant {', '.join(LIBRAW_QUANTS)}")


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


def _checkpoint_info(path: Path | None, source: str | None) -> dict[str, Any]:
    if path is None:
        return {"path": None, "sha256": None, "source": None}
    return {"path": str(path), "sha256": sha256_file(path), "source": source}


#: ``info["note"]`` of a float variant built from a QAT checkpoint's weights.
QAT_FLOAT_NOTE = ("float weights of a QAT checkpoint (its fake-quant and observer state is not "
                  "used; --quant qat runs it as trained)")


def _float_weights(model_name: str, checkpoint: str | Path | None
                   ) -> tuple[nn.Module, dict[str, Any], bool]:
    """The eval-mode float model, its checkpoint info, and whether the file is a QAT checkpoint.

    A QAT checkpoint holds the model's float (latent) weights plus fake-quant/observer state;
    the float variants use the weights alone, as the model would run without fake quantization.
    """
    if checkpoint is not None:
        path, source = Path(checkpoint), "user"
    else:
        path, source = shipped_checkpoint_path(model_name), "shipped"  # CheckpointError if none
    state_dict, metadata = load_checkpoint(path, expected_model=model_name)
    model = build(model_name)
    qat = is_qat_checkpoint(metadata)
    if qat:
        weights = model.state_dict().keys()
        state_dict = {k: v for k, v in state_dict.items() if k in weights}
    model.load_state_dict(state_dict)
    return model.eval(), _checkpoint_info(path, source), qat


def _qat_weights(model_name: str, checkpoint: str | Path | None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, Any]]:
    if checkpoint is not None:
        path, source = Path(checkpoint), "user"
    else:
        try:
            path, source = shipped_qat_checkpoint_path(model_name), "shipped"
        except CheckpointError:
            raise VariantError(
                f"no QAT checkpoint for {model_name}; run `lowbench train --model {model_name} "
                "--qat --out ...` or pass --checkpoint"
            ) from None
    state_dict, metadata = load_qat_checkpoint(path, model_name)
    return state_dict, metadata, _checkpoint_info(path, source)


def build_variant(
    model_name: str,
    quant_name: str,
    *,
    checkpoint: str | Path | None = None,
    task: str = "synth",
    data_root: str | Path | None = None,
    device: str = "cpu",
    calibration: CalibrationSettings | None = None,
) -> Variant:
    """Build ``model_name`` x ``quant_name`` on ``device`` (``"cpu"`` or ``"cuda"``).

    Weights: ``checkpoint`` (a user file) or the shipped checkpoint (for ``qat``: the shipped
    QAT checkpoint); the other variants of a QAT checkpoint use its float weights (``note``
    says so). ``task``/``data_root`` pick the train split that calibrates ``static``
    (``calibration`` overrides :data:`lowbench.quant.calibrate.DEFAULT_CALIBRATION`).
    ``info`` keys:
    model, quant, engine, quantized_layers, quantized_nothing, calibration, checkpoint
    ({"path", "sha256", "source": "shipped"|"user"|None}), device, dtype, status
    ("ok"|"unsupported"), reason, note. Raises LowbenchError for an unknown quant/model or an
    unavailable device, VariantError for a combination the model cannot take.
    """
    check_combination(model_name, quant_name)
    device = _check_device(device)
    base = {"model": model_name, "quant": quant_name, "device": device}
    if model_name not in LEARNED_MODELS:
        info = quant_info(note="LibRaw baseline, handled by the harness")
        info.update(base, checkpoint=_checkpoint_info(None, None))
        return Variant(model_name, quant_name, None, info)

    if quant_name == "qat":
        state_dict, metadata, ckpt = _qat_weights(model_name, checkpoint)
        module, info = build_qat(model_name, state_dict, source=ckpt["path"],
                                 device=device, metadata=metadata)
    else:
        model, ckpt, from_qat = _float_weights(model_name, checkpoint)
        if quant_name == "fp32":
            module, info = build_fp32(model, device)
        elif quant_name == "fp16":
            module, info = build_fp16(model, device)
        elif quant_name == "dynamic":
            module, info = build_dynamic(model, device)
        else:
            module, info = build_static(
                model, model_name, weights_id=ckpt["sha256"], task=task, data_root=data_root,
                device=device, settings=calibration or DEFAULT_CALIBRATION)
        if from_qat:
            info["note"] = "; ".join(n for n in (QAT_FLOAT_NOTE, info.get("note")) if n)
    info.update(base, checkpoint=ckpt)
    return Variant(model_name, quant_name, module, info)
