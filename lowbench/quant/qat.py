"""Quantization-aware training: the QAT qconfig, its fake-quant, preparing, calibrating,
reading and converting QAT checkpoints.

QAT starts from the static int8 recipe: activation ranges come from the same histogram
calibration (:func:`calibrate_qat_ranges`) and are frozen; weights are fine-tuned with
per-channel fake-quant on exactly the grid ``convert_fx`` deploys; activations are clamped
where the int8 model clamps (:class:`StorageRangeFakeQuantize`) and max-pool outputs share
their input's qparams (:func:`lowbench.quant.ties.tie_pool_qparams`). Measurements behind each
choice: docs/quantization.md, "Design notes".
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.ao.quantization.fake_quantize import FakeQuantize

from lowbench.errors import CheckpointError, LowbenchError
from lowbench.models.registry import build
from lowbench.models.unet import PaddedModel
from lowbench.quant.calibrate import DEFAULT_CALIBRATION, calibration_crops, calibration_summary
from lowbench.quant.fx import (
    EXAMPLE_INPUT,
    act_quant_max,
    convert,
    quiet_ao,
    set_transposed_conv,
    use_engine,
)
from lowbench.quant.observers import observe
from lowbench.quant.ties import tie_pool_qparams

#: Version of the QAT fake-quant numerics a checkpoint is trained with, stored in its metadata
#: (2: weight grid, activation clamp and pool qparams as the converted int8 model has them).
QAT_NUMERICS = "2"
#: What a record says beside a numerics version that needs retraining.
_QAT_NUMERICS_NOTES = {"1": "1 (trained before lowbench matched fake-quant to int8: retrain it)"}

_STORAGE_RANGE = {torch.quint8: (0, 255), torch.qint8: (-128, 127)}


class StorageRangeFakeQuantize(FakeQuantize):
    """Per-tensor ``FakeQuantize`` whose rounding grid comes from the observer and whose clamp
    is the full range of the stored dtype (what ``quantize_per_tensor`` applies).

    On the x86 engines the observer's ``quant_max`` is 127 (7-bit scales) but ``convert_fx``
    stores quint8 and the int8 kernels clamp to 0..255; this clamps there too, so QAT trains
    the clipping the shipped model has. With 8-bit observers (qnnpack) both are the same.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_per_channel:
            raise ValueError("StorageRangeFakeQuantize is per-tensor (activations) only")
        if self.dtype not in _STORAGE_RANGE:
            raise ValueError(f"StorageRangeFakeQuantize stores torch.quint8 or torch.qint8, "
                             f"not {self.dtype}")
        self.storage_min, self.storage_max = _STORAGE_RANGE[self.dtype]

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 - FakeQuantize's name
        """Observe (if enabled), then round on the observer's grid and clamp to the stored
        dtype's range; same units as ``X``."""
        if self.observer_enabled[0] == 1:
            self.activation_post_process(X.detach())
            scale, zero_point = self.calculate_qparams()
            self.scale.resize_(scale.shape).copy_(scale.to(self.scale.device))
            self.zero_point.resize_(zero_point.shape).copy_(zero_point.to(self.zero_point.device))
        if self.fake_quant_enabled[0] == 1:
            X = torch.fake_quantize_per_tensor_affine(
                X, self.scale, self.zero_point, self.storage_min, self.storage_max)
        return X


def qat_qconfig_mapping(engine: str) -> Any:
    """FX QConfigMapping for QAT: the static recipe with fake-quant on weights and activations.

    Activations: :class:`StorageRangeFakeQuantize` over the static recipe's
    ``HistogramObserver`` (ranges set by :func:`calibrate_qat`, then frozen). Weights:
    per-channel symmetric ``FakeQuantize`` over a moving-average observer with constant 1 (the
    current weights), not PyTorch's fused default, whose grid differs from the one
    ``convert_fx`` deploys (pytorch/pytorch#180990). Transposed convs and the final
    PixelShuffle stay float on every engine.
    """
    from torch.ao.quantization import QConfig, get_default_qat_qconfig_mapping
    from torch.ao.quantization.observer import (
        HistogramObserver,
        MovingAveragePerChannelMinMaxObserver,
    )

    act = StorageRangeFakeQuantize.with_args(  # clamps like the converted model
        observer=HistogramObserver, dtype=torch.quint8, quant_min=0,
        quant_max=act_quant_max(engine),
    )
    per_channel = FakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0,
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-128, quant_max=127,
    )
    with quiet_ao():
        mapping = get_default_qat_qconfig_mapping(engine)
    mapping.set_global(QConfig(activation=act, weight=per_channel))
    # Transposed convs stay float on every engine (see static_qconfig_mapping), so a QAT
    # checkpoint has the same keys whichever engine trained or evaluates it.
    mapping.set_object_type(nn.PixelShuffle, None)  # as in static_qconfig_mapping
    return set_transposed_conv(mapping, None)


def prepare_qat_model(model: PaddedModel, model_name: str, engine: str | None = None
                      ) -> nn.Module:
    """Wrap ``model`` (float, weights loaded) for quantization-aware training.

    Returns a :class:`PaddedModel` whose core is ``prepare_qat_fx``-prepared with
    :func:`qat_qconfig_mapping` (fake-quant on weights and activations), in train mode. Its
    ``state_dict()`` holds the float weights plus fake-quant/observer buffers; a QAT
    checkpoint stores exactly those keys and :func:`lowbench.quant.recipes.build_qat` converts
    it to int8.
    """
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    if not isinstance(model, PaddedModel):
        raise LowbenchError(f"prepare_qat_model needs lowbench.models.build('{model_name}'), "
                            f"got {type(model).__name__}")
    engine = use_engine(engine)
    core = copy.deepcopy(model.core).train()
    with quiet_ao():
        prepared = prepare_qat_fx(core, qat_qconfig_mapping(engine),
                                  (torch.zeros(*EXAMPLE_INPUT),))
    return PaddedModel(prepared, model.multiple, model.scale).train()


def activation_fake_quants(model: nn.Module) -> list[nn.Module]:
    """The activation fake-quants of a QAT-prepared ``model`` (those over a histogram)."""
    from torch.ao.quantization.observer import HistogramObserver

    return [m for m in model.modules() if isinstance(m, FakeQuantize)
            and isinstance(m.activation_post_process, HistogramObserver)]


def calibrate_qat(prepared: nn.Module, crops: list[torch.Tensor], batch: int) -> int:
    """Set the activation ranges of a :func:`prepare_qat_model` model from ``crops`` (the
    static calibration crops) and freeze them; returns the number of frozen activation
    fake-quants. Weight fake-quant keeps observing (the weights change while training)."""
    from torch.ao.quantization import disable_fake_quant, enable_fake_quant

    acts = activation_fake_quants(prepared)
    was_training = prepared.training
    prepared.apply(disable_fake_quant)
    for fq in acts:
        fq.enable_observer()
    prepared.eval()
    observe(prepared, crops, batch)
    prepared.apply(enable_fake_quant)
    for fq in acts:  # FakeQuantize.forward stored each batch's qparams: freeze the last
        fq.disable_observer()
    tie_pool_qparams(prepared.core if isinstance(prepared, PaddedModel) else prepared)
    prepared.train(was_training)
    return len(acts)


def calibrate_qat_ranges(model: nn.Module, task: str, data_root: str | Path | None
                         ) -> dict[str, Any]:
    """Freeze the QAT activation ranges of ``model`` at the static-int8 calibration of
    ``task`` (the same crops :func:`lowbench.quant.recipes.build_static` uses); returns what
    was used (:func:`calibration_summary` plus ``frozen_activation_ranges``, a count)."""
    settings = DEFAULT_CALIBRATION
    crops, pair_ids = calibration_crops(task, data_root, settings)
    frozen = calibrate_qat(model, crops, settings.batch)
    return {**calibration_summary(task, crops, pair_ids, settings),
            "frozen_activation_ranges": frozen}


def qat_numerics(meta: dict[str, str], recipe: dict[str, Any]) -> str:
    """Which fake-quant numerics version a QAT checkpoint was trained with ("1", "2", ...),
    from its metadata ``meta`` and training ``recipe``."""
    if meta.get("qat_numerics"):
        return meta["qat_numerics"]
    # a distill field without the marker: written between the numerics-2 commit and the marker
    return "2" if "distill" in recipe else "1"


def convert_qat(model_name: str, state_dict: dict[str, torch.Tensor], *, source: str,
                metadata: dict[str, str]) -> tuple[nn.Module, str, dict[str, Any]]:
    """Int8 model from a QAT state dict: rebuild the QAT-prepared model, load it, convert_fx.

    Returns (int8 :class:`PaddedModel`, engine, calibration summary from ``metadata``).
    Raises CheckpointError for newer numerics, float weights or a state dict that does not fit.
    """
    recipe = json.loads(metadata.get("recipe") or "{}")
    numerics = qat_numerics(metadata, recipe)
    if numerics.isdigit() and int(numerics) > int(QAT_NUMERICS):
        raise CheckpointError(
            f"{source}: trained with QAT numerics {numerics}, newer than this lowbench's "
            f"{QAT_NUMERICS} (e.g. learned activation scales, which it would not deploy); "
            f"evaluate it with the lowbench that wrote it or retrain it with "
            f"`lowbench train --model {model_name} --qat`")
    engine = use_engine()
    qat = prepare_qat_model(build(model_name), model_name, engine)
    if not any(".activation_post_process" in k or "fake_quant" in k for k in state_dict):
        raise CheckpointError(
            f"{source} holds float weights without fake-quant state, not a QAT checkpoint; "
            f"run `lowbench train --model {model_name} --qat --out ...` or use --quant static")
    try:
        qat.load_state_dict(state_dict)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"{source}: does not fit the QAT '{model_name}' model ({first}); "
                              f"re-train it with `lowbench train --model {model_name} --qat`"
                              ) from None
    module = PaddedModel(convert(qat.core), qat.multiple, qat.scale).eval()
    calibration = {"task": metadata.get("task") or None, "steps": metadata.get("steps") or None,
                   "method": "QAT: activation ranges from histogram calibration on the train "
                             "split, frozen before fine-tuning; weights fine-tuned with "
                             "fake-quant (saved with the checkpoint)",
                   "distill": recipe.get("distill", 0.0) if recipe else None,
                   "qat_numerics": _QAT_NUMERICS_NOTES.get(numerics, numerics),
                   "activation_calibration": json.loads(metadata.get("qat_calibration")
                                                        or "null")}
    return module, engine, calibration
