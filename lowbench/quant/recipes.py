"""The quantization recipes: fp32, fp16, bf16, dynamic, static int8 and QAT int8, and their table.

Every builder takes a float :class:`~lowbench.models.unet.PaddedModel` (weights loaded; QAT: a
QAT state dict) and returns ``(module or None, info)`` with the keys of
:func:`lowbench.quant.report.quant_info`; :func:`lowbench.variants.build_variant` resolves
weights and checkpoints and adds the model/checkpoint/device keys. :data:`RECIPES` maps each
quant name to its builder and description; :func:`apply_recipe` applies one by name.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lowbench.models.unet import PaddedModel
from lowbench.quant.calibrate import DEFAULT_CALIBRATION, CalibrationSettings, calibrated_static
from lowbench.quant.fx import convert, quiet_ao, use_engine
from lowbench.quant.qat import convert_qat
from lowbench.quant.report import cpu_only, int8_layers, quant_info

_WHY_STATIC = "the int8 transposed conv of engine '{engine}' gives wrong results in this PyTorch"
_WHY_QAT = "QAT keeps them float on every engine so checkpoints fit all engines"


# -- fp32 / fp16 / dynamic --------------------------------------------------------------------
def build_fp32(model: PaddedModel, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The float32 eval model on ``device``."""
    return model.eval().to(device), quant_info()


class HalfPrecision(nn.Module):
    """Run ``inner`` (already ``.half()``) on a float16 copy of the input; return float32."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``(N, 4, h, w)`` -> float32 ``(N, 3, 2h, 2w)``, computed in float16."""
        return self.inner(x.half()).float()


#: On a CPU, fp16 slower than this many times fp32 is emulation, not fp16 support.
FP16_EMULATED_RATIO = 4.0


def fp16_unsupported_reason(device: str) -> str | None:
    """None if float16 convolution runs on ``device``, else the reason (probes a tiny conv)."""
    try:
        x = torch.zeros(1, 4, 8, 8, dtype=torch.float16, device=device)
        w = torch.zeros(8, 4, 3, 3, dtype=torch.float16, device=device)
        F.conv2d(x, w, padding=1)
    except (RuntimeError, NotImplementedError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"fp16 convolution unsupported on this device: {first}"
    return None


def cpu_has_native_fp16() -> bool:
    """Whether oneDNN has native float16 arithmetic on this CPU (x86: AVX512-FP16 or AMX-FP16;
    Arm: FP16)."""
    return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


def probe_ms(fn: Callable[[], Any], runs: int = 7) -> float:
    """Fastest of ``runs`` timed calls of ``fn`` after one warm-up (ms): the minimum, so that
    a busy shared machine cannot flip the fp16 verdict from one process to the next (a single
    timed call did: asv skipped sid/fp16 in one of its three processes)."""
    fn()
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def build_fp16(model: PaddedModel, device: str = "cpu") -> tuple[nn.Module | None, dict]:
    """Weights and activations in float16 on ``device``; status "unsupported" where fp16
    convolution does not run (never a silent fp32 run under the fp16 label)."""
    reason = fp16_unsupported_reason(device)
    if reason is not None:
        return None, quant_info(dtype="float16", status="unsupported", reason=reason)
    half = model.eval().to(device).half()
    module = HalfPrecision(half).eval()
    try:
        with torch.inference_mode():
            module(torch.zeros(1, 4, 16, 16, device=device))
    except (RuntimeError, NotImplementedError) as err:
        first = str(err).strip().splitlines()[0]
        return None, quant_info(dtype="float16", status="unsupported",
                                reason=f"fp16 inference unsupported on this device: {first}")
    note = None
    if torch.device(device).type == "cpu":
        x = torch.rand(1, 32, 64, 64, device=device)
        w = torch.rand(32, 32, 3, 3, device=device)
        with torch.inference_mode():
            t32 = probe_ms(lambda: F.conv2d(x, w, padding=1))
            t16 = probe_ms(lambda: F.conv2d(x.half(), w.half(), padding=1))
        measured = (f"a 32->32 3x3 conv at 64x64 took {t16:.1f} ms in fp16 vs {t32:.1f} ms in "
                    "fp32 here")
        # decided by oneDNN's own CPU check (AVX512-FP16 / AMX-FP16, Arm FP16) where it says
        # "native"; else by the timing. A timing alone flipped under load (a loaded fp32 probe
        # let an emulated fp16 through, 0.19x of fp32).
        native = cpu_has_native_fp16()
        if (not native or t16 > FP16_EMULATED_RATIO * t32) and os.environ.get(
                "LOWBENCH_FP16_CPU") != "emulated":
            why = (f"{t16 / t32:.0f}x slower" if native else
                   "oneDNN finds no AVX512-FP16/AMX-FP16 (x86) or FP16 (Arm)")
            return None, quant_info(dtype="float16", status="unsupported", reason=(
                f"fp16 convolution unsupported on this device: no native fp16 arithmetic on "
                f"this CPU ({measured}; {why}: PyTorch emulates it); use "
                "--device cuda, a CPU with fp16 arithmetic, or LOWBENCH_FP16_CPU=emulated to "
                "time the emulation anyway"))
        note = (f"fp16 on CPU: {measured} (CPUs without native fp16 fall back to slow "
                "kernels); the timing is measured as is")
    return module, quant_info(dtype="float16", note=note)


class BFloat16Precision(nn.Module):
    """Run ``inner`` (already ``.to(torch.bfloat16)``) on a bfloat16 copy of the input; return
    float32."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``(N, 4, h, w)`` -> float32 ``(N, 3, 2h, 2w)``, computed in bfloat16."""
        return self.inner(x.to(torch.bfloat16)).float()


def bf16_unsupported_reason(device: str) -> str | None:
    """None if bfloat16 convolution runs natively on ``device``, else the reason: on a CPU,
    oneDNN's own check (AVX512-BF16 / AMX on x86, BF16 on Arm); elsewhere a tiny conv probe."""
    if torch.device(device).type == "cpu":
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return ("bf16 convolution unsupported on this device: this CPU has no native "
                    "bfloat16 arithmetic (x86 needs AVX512-BF16 or AMX, Arm needs BF16); "
                    "PyTorch would emulate it")
        return None
    try:
        x = torch.zeros(1, 4, 8, 8, dtype=torch.bfloat16, device=device)
        F.conv2d(x, torch.zeros(8, 4, 3, 3, dtype=torch.bfloat16, device=device), padding=1)
    except (RuntimeError, NotImplementedError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"bf16 convolution unsupported on this device: {first}"
    return None


def build_bf16(model: PaddedModel, device: str = "cpu") -> tuple[nn.Module | None, dict]:
    """Weights and activations in bfloat16 on ``device`` (float32 in and out); status
    "unsupported" where bfloat16 convolution is not native (never an emulated or fp32 run
    under the bf16 label)."""
    reason = bf16_unsupported_reason(device)
    if reason is not None:
        return None, quant_info(dtype="bfloat16", status="unsupported", reason=reason)
    module = BFloat16Precision(model.eval().to(device).to(torch.bfloat16)).eval()
    return module, quant_info(dtype="bfloat16")


def build_dynamic(model: PaddedModel, device: str = "cpu") -> tuple[nn.Module | None, dict]:
    """``torch.ao.quantization.quantize_dynamic`` as the original study ran it.

    Dynamic quantization only covers Linear and recurrent layers, so on these fully
    convolutional models it quantizes nothing: the result is the fp32 model, reported with
    ``quantized_layers == 0`` and ``quantized_nothing`` True.
    """
    unsupported = cpu_only("dynamic", device)
    if unsupported is not None:
        return None, unsupported
    engine = use_engine()
    with quiet_ao():
        module = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), dtype=torch.qint8)
    layers = int8_layers(module)
    note = None
    if layers["quantized_nothing"]:
        note = ("quantize_dynamic only quantizes Linear/LSTM/GRU/RNN layers and these models "
                "are fully convolutional: nothing was quantized, this runs the fp32 model")
    dtype = "float32" if layers["quantized_nothing"] else "int8 (dynamic)"
    return module, quant_info(engine=engine, dtype=dtype, note=note, **layers)


# -- int8 -------------------------------------------------------------------------------------
def build_static(
    model: PaddedModel,
    model_name: str,
    *,
    weights_id: str | None = None,
    task: str = "synth",
    data_root: str | Path | None = None,
    device: str = "cpu",
    settings: CalibrationSettings = DEFAULT_CALIBRATION,
    use_shipped: bool = True,
) -> tuple[nn.Module | None, dict[str, Any]]:
    """Post-training static int8 (FX graph mode) of ``model.core``, re-wrapped in float pad/crop.

    ``weights_id`` identifies the float weights (the checkpoint's sha256; default: a digest of
    the state dict). The observer state comes from, in this order: the package (the shipped
    checkpoints' calibration, :data:`lowbench.quant.calibrate.SHIPPED_CALIBRATION_DIR`, unless
    ``use_shipped`` is False), the cache ``cache_dir()/calibration``, or a calibration on
    :func:`lowbench.quant.calibrate.calibration_crops` of the train split of ``task``, then
    cached. Each is keyed by :func:`lowbench.quant.calibrate.static_calibration_key`;
    ``info["calibration"]["source"]`` says which ("shipped", "cache", "calibrated"; ``cached``
    is True for the first two). The shipped state comes first because a calibration is not
    portable: its fp32 forward rounds differently on other CPUs and the histogram search turns
    that into other ranges (docs/quantization.md). Raises VariantError for a missing engine,
    DataError for missing data.
    """
    unsupported = cpu_only("static", device)
    if unsupported is not None:
        return None, unsupported
    engine = use_engine()
    prepared, calibration = calibrated_static(
        model, model_name, engine, weights_id=weights_id, task=task, data_root=data_root,
        settings=settings, use_shipped=use_shipped)
    module = PaddedModel(convert(prepared), model.multiple, model.scale).eval()
    return module, quant_info(engine=engine, calibration=calibration, dtype="int8",
                              **int8_layers(module, _WHY_STATIC.format(engine=engine)))


def build_qat(
    model_name: str,
    state_dict: dict[str, torch.Tensor],
    *,
    source: str = "QAT checkpoint",
    device: str = "cpu",
    metadata: dict[str, str] | None = None,
) -> tuple[nn.Module | None, dict[str, Any]]:
    """Int8 model from a QAT state dict: rebuild the QAT-prepared model, load it, convert_fx.

    The int8 ranges come from the fake-quant observers trained with the weights; ``metadata``
    (the checkpoint's) names the task and steps they were observed on (``info["calibration"]``).
    """
    unsupported = cpu_only("qat", device)
    if unsupported is not None:
        return None, unsupported
    module, engine, calibration = convert_qat(model_name, state_dict, source=source,
                                              metadata=metadata or {})
    return module, quant_info(engine=engine, dtype="int8", calibration=calibration,
                              **int8_layers(module, _WHY_QAT))


# -- the table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecipeInput:
    """Everything a recipe may need. ``model``: the float model (weights loaded; all but qat);
    ``weights_id``: the checkpoint's sha256 (static's cache key); ``task``/``data_root``: what
    calibrates static; ``qat_state``/``qat_metadata``/``source``: the QAT checkpoint."""

    model_name: str
    device: str = "cpu"
    model: PaddedModel | None = None
    weights_id: str | None = None
    task: str = "synth"
    data_root: str | Path | None = None
    settings: CalibrationSettings = DEFAULT_CALIBRATION
    qat_state: dict[str, torch.Tensor] | None = None
    qat_metadata: dict[str, str] | None = None
    source: str = "QAT checkpoint"


@dataclass(frozen=True)
class Recipe:
    """One quantization recipe: its quant name, a one-line description and its builder."""

    name: str
    description: str
    build: Callable[[RecipeInput], tuple[nn.Module | None, dict[str, Any]]]


def _float_model(given: RecipeInput) -> PaddedModel:
    if given.model is None:
        raise ValueError(f"recipe for {given.model_name} needs the float model")
    return given.model


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("fp32", "float32 eval model (reference)",
           lambda i: build_fp32(_float_model(i), i.device)),
    Recipe("fp16", "weights and activations in float16 (CUDA; CPU only where fp16 conv runs)",
           lambda i: build_fp16(_float_model(i), i.device)),
    Recipe("bf16", "weights and activations in bfloat16 (CPUs with AVX512-BF16/AMX or Arm BF16; "
           "Ampere+ GPUs)", lambda i: build_bf16(_float_model(i), i.device)),
    Recipe("dynamic", "torch dynamic int8 (Linear/RNN only): quantizes nothing in these conv nets",
           lambda i: build_dynamic(_float_model(i), i.device)),
    Recipe("static", "post-training static int8, FX graph mode, calibrated on the task's train "
           "split",
           lambda i: build_static(_float_model(i), i.model_name, weights_id=i.weights_id,
                                  task=i.task, data_root=i.data_root, device=i.device,
                                  settings=i.settings)),
    Recipe("qat", "int8 from a quantization-aware-trained checkpoint (lowbench train --qat)",
           lambda i: build_qat(i.model_name, i.qat_state or {}, source=i.source,
                               device=i.device, metadata=i.qat_metadata)),
)}
#: quant name -> one-line description (``lowbench list quants``).
QUANT_DESCRIPTIONS: dict[str, str] = {name: r.description for name, r in RECIPES.items()}


def apply_recipe(quant_name: str, given: RecipeInput) -> tuple[nn.Module | None, dict[str, Any]]:
    """Apply the recipe ``quant_name`` of :data:`RECIPES` to ``given``: (module or None, info).
    Raises KeyError for an unknown name (check it with ``lowbench.models.registry`` first)."""
    return RECIPES[quant_name].build(given)
