"""Quantization variants of the learned models: fp32, fp16, dynamic, static int8 and QAT int8.

Every builder takes a float :class:`~lowbench.models.unet.PaddedModel` (weights loaded) and
returns ``(module or None, info)``; :func:`lowbench.variants.build_variant` resolves weights
and checkpoints and adds the model/checkpoint/device keys. Int8 quantizes only the fx-traceable
``.core`` (FX graph mode) and keeps the pad/crop wrapper in float around it.

Static int8: what was tried (speed and quality) and what is kept
----------------------------------------------------------------
Dev box: AMD EPYC (Zen 4, AVX-512 VNNI), 2 cores, torch 2.13 CPU build, 2 threads. Model-only
median latency at 1x4x256x256 packed, fp32 re-timed next to every int8 model (ratio = fp32 /
int8, same process). Quality on the 21 synth test pairs: PSNR of int8 vs the fp32 output, and
the change of PSNR vs ground truth (fp32: sid 15.715 dB, lighter 11.388 dB). Weights: ``sid``
trained 300 steps and the shipped (500-step) ``lighter``; calibration = DEFAULT_CALIBRATION.
The machine is shared, so single ratios carry about +-10 % noise.

==================================================  ===============================  ==============
static int8 configuration                           sid: ms, x, vs fp32, dGT         lighter: same
==================================================  ===============================  ==============
fp32 (the ``fp32`` variant, NCHW eval model)        162 ms                           86 ms
fp32 with channels_last (not the fp32 variant)      140 ms (1.15x)                   37 ms (2.32x)
A default FX qconfig, engine fbgemm                 51, 3.5x, 19.1 dB, -1.79         1.9x, -1.45
B default FX qconfig, engine x86                    35, 4.8x, 21.1 dB, -1.37         5.9x, -1.52
C KEPT: x86, per-channel weights, 7-bit histogram   41, 4.2x, 37.3 dB, -0.05         5.3x, 43.6 dB,
  activations, ConvTranspose + final PixelShuffle                                    -0.007
  in fp32
D C with 8-bit activations                          40, 4.0x, 40.6 dB, +0.01         4.2x, 34.6 dB,
                                                                                     -0.13
E C with MinMax activation observers                43, 4.0x, 33.5 dB, -0.03         3.9x, -0.006
F C with per-tensor conv weights                    43, 3.6x, 37.3 dB, -0.07         5.3x, -0.007
G C with LeakyReLU left in fp32                     42, 4.4x, 37.3 dB, -0.05         4.2x, -0.007
H C with ConvTranspose as int8 1x1 conv + shuffle   55, 2.8x, 36.5 dB, -0.04         2.5x, -0.006
I C with a channels_last input                      42, 4.0x, 37.3 dB, -0.05         3.8x, -0.007
==================================================  ===============================  ==============

Findings. (1) The int8 ``conv_transpose2d`` kernels of the x86, onednn and fbgemm engines in
this torch build return wrong values for these 2x2 stride-2 layers (relative error > 100 %
against the dequantized reference; qnnpack is right): that is the -1.4 to -1.8 dB of A/B.
Kept: ConvTranspose2d in fp32 on those engines (dequantize -> fp32 -> quantize; per-tensor int8
on qnnpack), the fastest fix measured (H re-expresses it as an int8 1x1 conv + pixel shuffle:
exact, but the quantized pixel shuffle copies are slow). (2) Engine "x86" (oneDNN + fbgemm)
beats "fbgemm" alone by 1.3-2.5x; ARM uses qnnpack. (3) 8-bit activations saturate the u8 x s8
int16 accumulation of some x86 kernels (lighter -0.13 dB, 9 dB worse agreement) although sid
gains a little: kept 7-bit (``reduce_range``) on the x86 engines, 8-bit on qnnpack. (4) No
fusion applies (no BatchNorm; the FX backends have no int8 conv+LeakyReLU kernel); LeakyReLU
in int8 costs nothing extra (G), per-channel weights help quality at no cost (F), channels_last
input does not help (I: the int8 convs reorder anyway). (5) Histogram observers cost only
calibration time (cached) and beat MinMax on sid. The final PixelShuffle stays fp32 (no speed
cost) because it lets the int8 model export to ONNX (QDQ). With these early weights every loss
was inside the 0.5 dB budget; with the shipped (longer-trained) checkpoints ``lighter`` loses
0.56 dB (README, quantization table): better-trained depthwise weights quantize worse.
``benchmarks/quant_speed.py`` re-measures the speedups for all models.
QAT (same recipe, see :func:`qat_qconfig_mapping`): lighter fine-tuned 150 steps with
``lowbench train --qat --lr 1e-5`` gives 11.407 dB vs fp32 11.388 and static 11.381.

Calibration: :data:`DEFAULT_CALIBRATION` = one pair per scene of the first 32 scenes of the
task's *train* split (``calibration_task``; the exposure rotates with the scene so all ratios
are seen), one 256 x 256 packed crop each (``synth-train`` images are 256 x 256 packed, so
these are whole images, the input size the test split uses), seed 0. It replaced 32 random
128 x 128 crops of 16 scenes, which lost 0.56 dB on ``lighter`` (shipped checkpoint, synth,
fp32 23.28 dB): whole images gave -0.30 dB, while keeping the first conv, the last conv or
both in fp32 with the small crops gave -0.57, -0.55 and -0.56 dB (``lighter`` is the model
closest to the budget; the other models are in the README's quantization table). The
observer state (not the weights) is cached as safetensors under ``cache_dir()/calibration/``.

A calibration is not portable across CPUs, so the shipped checkpoints' observer states ship
in ``lowbench/calibration/`` (``scripts/ship_calibration.py``) and are read before the cache.
Calibrated afresh, lighter scored 22.97205 dB on synth on a 2-core AMD EPYC (1 or 2 threads:
bit-identical states) and 22.98080 on the Intel Xeon that published it, with the same cache
key, pairs and data; forcing PyTorch onto AVX2 kernels on the EPYC (``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2``) gave 22.96969 (scored with the default kernels: 22.96969 too). The
histogram observers turn last-bit differences of the fp32 calibration forward into other
quantization ranges; once the ranges are fixed, int8 evaluation moved by 4e-6 dB between those
kernel sets.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lowbench.digest import json_digest, weights_digest
from lowbench.errors import CheckpointError, DataError, LowbenchError, VariantError
from lowbench.models import build
from lowbench.models.unet import PaddedModel
from lowbench.names import QUANT_NAMES as QUANT_NAMES  # re-exported
from lowbench.paths import PACKAGE_DIR, cache_dir
from lowbench.qat_storage import decode as decode_qat_storage
from lowbench.qparam_ties import tie_pool_qparams
from lowbench.tensorfile import read_tensors, write_tensors
from lowbench.weight_only import count_weight_only_int8, int8_transposed_weights

QUANT_DESCRIPTIONS: dict[str, str] = {
    "fp32": "float32 eval model (reference)",
    "fp16": "weights and activations in float16 (CUDA; CPU only where fp16 conv runs)",
    "dynamic": "torch dynamic int8 (Linear/RNN only): quantizes nothing in these conv nets",
    "static": "post-training static int8, FX graph mode, calibrated on the task's train split",
    "qat": "int8 from a quantization-aware-trained checkpoint (lowbench train --qat)",
}

#: The quantized-module namespaces counted as "quantized layers".
QUANTIZED_NAMESPACES: tuple[str, ...] = (
    "torch.ao.nn.quantized",
    "torch.ao.nn.quantized.dynamic",
    "torch.ao.nn.intrinsic.quantized",
)
#: Bump when the qconfig or the observer-state layout changes (invalidates calibration caches).
CALIBRATION_FORMAT = "1"
#: Observer states of the shipped checkpoints' static int8 (``scripts/ship_calibration.py``).
SHIPPED_CALIBRATION_DIR = PACKAGE_DIR / "calibration"
_ARM_MACHINES = ("aarch64", "arm64")
_X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")
_EXAMPLE = (1, 4, 32, 32)  # FX example input (shape only matters for the trace)
_WHY_STATIC = "the int8 transposed conv of engine '{engine}' gives wrong results in this PyTorch"
_WHY_QAT = "QAT keeps them float on every engine so checkpoints fit all engines"


@dataclass(frozen=True)
class CalibrationSettings:
    """How static int8 observers are calibrated (numbers are counts; ``crop_packed`` in pixels).

    ``pairs`` pairs (one per scene, first scenes of the train split), ``crops`` random crops
    of ``crop_packed`` x ``crop_packed`` packed pixels spread evenly over them, drawn with
    ``seed``; forwarded ``batch`` crops at a time.
    """

    pairs: int = 32
    crops: int = 32
    crop_packed: int = 256
    seed: int = 0
    batch: int = 4


DEFAULT_CALIBRATION = CalibrationSettings()


# -- engine -----------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_ao() -> Iterator[None]:
    """Silence torch.ao.quantization's deprecation warnings inside the block.

    Why: the FX graph-mode API (prepare_fx/convert_fx/quantize_dynamic) is deprecated upstream
    but it is the int8 path that the PyTorch builds shipped for Jetsons (JetPack wheels) and
    today's CPU wheels both run, so lowbench uses it on purpose. Migration path: torchao's PT2E
    flow (``torch.export`` + ``prepare_pt2e``/``convert_pt2e`` with ``X86InductorQuantizer`` on
    x86 or ``XNNPACKQuantizer`` on ARM) once Jetson wheels ship it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated")
        yield


def _supported_engines() -> list[str]:
    """Quantized engines this PyTorch build has (``torch.backends.quantized``)."""
    return list(torch.backends.quantized.supported_engines)


def select_engine() -> str:
    """The quantized engine for this CPU: ``"x86"`` on x86-64, ``"qnnpack"`` on ARM."""
    machine = platform.machine().lower()
    if machine in _ARM_MACHINES:
        return "qnnpack"
    if machine in _X86_MACHINES:
        return "x86"
    raise VariantError(
        f"no int8 engine for CPU architecture {machine!r} (lowbench knows x86-64 and ARM); "
        "use --quant fp32"
    )


def use_engine(engine: str | None = None) -> str:
    """Check ``engine`` (default :func:`select_engine`) is built in, make it current, return it.

    Raises VariantError naming the engine and the supported ones otherwise.
    """
    engine = engine or select_engine()
    supported = _supported_engines()
    if engine not in supported:
        raise VariantError(
            f"quantized engine {engine!r} is not in this PyTorch build "
            f"(supported: {', '.join(supported) or 'none'}); install a PyTorch build with "
            f"{engine!r} or use --quant fp32/fp16"
        )
    torch.backends.quantized.engine = engine
    return engine


def reduce_range(engine: str) -> bool:
    """Whether activations use 7 bits (x86 engines: their u8 x s8 kernels saturate) not 8."""
    return engine in ("x86", "fbgemm", "onednn")


# -- qconfigs ---------------------------------------------------------------------------------
def _act_max(engine: str) -> int:
    return 127 if reduce_range(engine) else 255


def _set_transposed_conv(mapping: Any, qconfig: Any) -> Any:
    for op in (nn.ConvTranspose2d, F.conv_transpose2d):
        mapping.set_object_type(op, qconfig)
    return mapping


def static_qconfig_mapping(engine: str) -> Any:
    """FX QConfigMapping for static int8 (see the module docstring for the choices)."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import (
        HistogramObserver,
        MinMaxObserver,
        PerChannelMinMaxObserver,
    )

    act = HistogramObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=_act_max(engine))
    per_channel = PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-128, quant_max=127
    )
    per_tensor = MinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=-128, quant_max=127
    )
    with quiet_ao():
        mapping = get_default_qconfig_mapping(engine)
    mapping.set_global(QConfig(activation=act, weight=per_channel))
    # The int8 conv_transpose2d kernels of the x86/onednn/fbgemm engines return wrong values
    # for these 2x2 stride-2 layers (relative error > 100 % against the dequantized reference;
    # qnnpack is right), so transposed convs stay float there (dequantize -> fp32 -> quantize,
    # also the fastest option measured). FX has no per-channel observer for them: per-tensor.
    transposed = QConfig(activation=act, weight=per_tensor) if engine == "qnnpack" else None
    mapping.set_object_type(nn.PixelShuffle, None)  # fp32: free, and lets int8 export to ONNX
    return _set_transposed_conv(mapping, transposed)


def qat_qconfig_mapping(engine: str) -> Any:
    """FX QConfigMapping for QAT: the static recipe with fake-quant on weights and activations.

    Activations: fake-quant over the same ``HistogramObserver`` as static int8, clamped where
    the int8 model clamps (:mod:`lowbench.qat_fake_quant`), whose
    ranges :func:`calibrate_qat` sets from the static calibration crops and then *freezes*, so
    QAT starts exactly where static PTQ is and fine-tunes the weights to those ranges. Measured
    alternatives (shipped checkpoints, 200 steps at 1e-5, synth PSNR vs fp32): PyTorch's
    default moving average of per-batch ranges fits small training patches and clips brighter
    test images (lighter, 150 steps: -0.75 dB); a running global min/max (the previous recipe)
    gives ranges wider than the histogram's and coarser steps (light -0.59, lighter -0.71 dB
    against static's -0.04 and -0.56). Transposed convs stay float on every engine.

    Tried and not kept: learning the activation scales after calibration (LSQ, Esser et al.
    2020, through ``torch._fake_quantize_learnable_per_tensor_affine``; commit 6ccc5b6,
    ``bash scripts/train_qat.sh`` there). Activation rounding is almost all of int8's error
    (``python scripts/qat_fidelity.py --model sid --ablate``), and learned scales brought the
    fake-quant models 2-4 dB closer to their fp32 output on the held-out synth-train scenes
    than frozen ones (sid 42.47 against 38.70 dB, lighter 36.55 against 34.08, fire 36.48
    against 33.52; 600 distillation steps each). On the natural-image synth test they were
    not closer (sid 38.61 dB, as static; lighter 34.35 and fire 33.50 against frozen QAT's
    34.50 and 34.32): the scales shrank to fit dead-leaves activations (sid's median scale to
    0.68x, its input's clip from 1.97 to 0.81, one scale below zero) and clip brighter photos.

    Weights: per-channel symmetric ``FakeQuantize`` over an observer of the current weights
    (moving average with constant 1), so training rounds to exactly the grid ``convert_fx``
    deploys. Not PyTorch's default ``FusedMovingAvgObsFakeQuantize``: its fused kernel divides
    by 128 or 127 while the ``calculate_qparams`` that convert reads divides by 127.5
    (pytorch/pytorch#180990, #194816; unfixed in torch 2.13), so the weights were fine-tuned
    on one grid and shipped on another. With this, the activation clamp
    (:mod:`lowbench.qat_fake_quant`) and the pool ties (:mod:`lowbench.qparam_ties`), light's
    QAT model at step 0 scores 23.977 dB on synth as fake-quant and 23.981 as int8 (before:
    24.003 and 23.981, with outputs up to 0.23 apart).
    """
    from torch.ao.quantization import QConfig, get_default_qat_qconfig_mapping
    from torch.ao.quantization.fake_quantize import FakeQuantize
    from torch.ao.quantization.observer import (
        HistogramObserver,
        MovingAveragePerChannelMinMaxObserver,
    )

    from lowbench.qat_fake_quant import StorageRangeFakeQuantize

    act = StorageRangeFakeQuantize.with_args(  # clamps like the converted model
        observer=HistogramObserver, dtype=torch.quint8, quant_min=0, quant_max=_act_max(engine),
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
    return _set_transposed_conv(mapping, None)


def _activation_fake_quants(model: nn.Module) -> list[nn.Module]:
    from torch.ao.quantization.fake_quantize import FakeQuantize
    from torch.ao.quantization.observer import HistogramObserver

    return [m for m in model.modules() if isinstance(m, FakeQuantize)
            and isinstance(m.activation_post_process, HistogramObserver)]


def calibrate_qat(prepared: nn.Module, crops: list[torch.Tensor], batch: int) -> int:
    """Set the activation ranges of a :func:`prepare_qat_model` model from ``crops`` (the
    static calibration crops) and freeze them; returns the number of frozen activation
    fake-quants. Weight fake-quant keeps observing (the weights change while training)."""
    from torch.ao.quantization import disable_fake_quant, enable_fake_quant

    acts = _activation_fake_quants(prepared)
    was_training = prepared.training
    prepared.apply(disable_fake_quant)
    for fq in acts:
        fq.enable_observer()
    prepared.eval()
    _calibrate(prepared, crops, batch)
    prepared.apply(enable_fake_quant)
    for fq in acts:  # FakeQuantize.forward stored each batch's qparams: freeze the last
        fq.disable_observer()
    tie_pool_qparams(prepared.core if isinstance(prepared, PaddedModel) else prepared)
    prepared.train(was_training)
    return len(acts)


# -- inspection -------------------------------------------------------------------------------
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


def _info(**kw: Any) -> dict[str, Any]:
    info = {"engine": None, "quantized_layers": 0, "quantized_nothing": None,
            "quantized_layer_types": {}, "weight_only_int8_layers": 0, "calibration": None,
            "dtype": "float32",
            "status": "ok", "reason": None, "note": None}
    info.update(kw)
    return info


def _int8_layers(module: nn.Module) -> dict[str, Any]:
    types = quantized_layer_types(module)
    n = sum(types.values())
    return {"quantized_layers": n, "quantized_layer_types": types, "quantized_nothing": n == 0,
            "weight_only_int8_layers": count_weight_only_int8(module)}


def _float_layers_note(module: nn.Module, why: str) -> str | None:
    n = count_weight_only_int8(module)
    if n == 0:
        return None
    return (f"{n} ConvTranspose2d layers compute in float32 (dequantize/quantize around them) "
            f"from int8 weights (per-channel, lowbench.weight_only): {why}; every other conv, "
            "activation, pool and cat is int8")


def _cpu_only(quant: str, device: str) -> dict[str, Any] | None:
    if torch.device(device).type == "cpu":
        return None
    return _info(dtype="int8", status="unsupported", reason=(
        f"quant '{quant}' uses PyTorch's FX int8 kernels, which run on CPU only; use --device "
        "cpu (for Jetson GPUs export fp16/fp32 ONNX to TensorRT)"))


# -- fp32 / fp16 / dynamic --------------------------------------------------------------------
def build_fp32(model: PaddedModel, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The float32 eval model on ``device``."""
    return model.eval().to(device), _info()


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


def _probe_ms(fn: Any, runs: int = 7) -> float:
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
        return None, _info(dtype="float16", status="unsupported", reason=reason)
    half = model.eval().to(device).half()
    module = HalfPrecision(half).eval()
    try:
        with torch.inference_mode():
            module(torch.zeros(1, 4, 16, 16, device=device))
    except (RuntimeError, NotImplementedError) as err:
        first = str(err).strip().splitlines()[0]
        return None, _info(dtype="float16", status="unsupported",
                           reason=f"fp16 inference unsupported on this device: {first}")
    note = None
    if torch.device(device).type == "cpu":
        x = torch.rand(1, 32, 64, 64, device=device)
        w = torch.rand(32, 32, 3, 3, device=device)
        with torch.inference_mode():
            t32 = _probe_ms(lambda: F.conv2d(x, w, padding=1))
            t16 = _probe_ms(lambda: F.conv2d(x.half(), w.half(), padding=1))
        measured = (f"a 32->32 3x3 conv at 64x64 took {t16:.1f} ms in fp16 vs {t32:.1f} ms in "
                    "fp32 here")
        if t16 > FP16_EMULATED_RATIO * t32 and os.environ.get("LOWBENCH_FP16_CPU") != "emulated":
            return None, _info(dtype="float16", status="unsupported", reason=(
                f"fp16 convolution unsupported on this device: no native fp16 arithmetic on "
                f"this CPU ({measured}, {t16 / t32:.0f}x slower: PyTorch emulates it); use "
                "--device cuda, a CPU with fp16 arithmetic, or LOWBENCH_FP16_CPU=emulated to "
                "time the emulation anyway"))
        note = (f"fp16 on CPU: {measured} (CPUs without native fp16 fall back to slow "
                "kernels); the timing is measured as is")
    return module, _info(dtype="float16", note=note)


def build_dynamic(model: PaddedModel, device: str = "cpu") -> tuple[nn.Module | None, dict]:
    """``torch.ao.quantization.quantize_dynamic`` as the original study ran it.

    Dynamic quantization only covers Linear and recurrent layers, so on these fully
    convolutional models it quantizes nothing: the result is the fp32 model, reported with
    ``quantized_layers == 0`` and ``quantized_nothing`` True.
    """
    unsupported = _cpu_only("dynamic", device)
    if unsupported is not None:
        return None, unsupported
    engine = use_engine()
    with quiet_ao():
        module = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), dtype=torch.qint8)
    layers = _int8_layers(module)
    note = None
    if layers["quantized_nothing"]:
        note = ("quantize_dynamic only quantizes Linear/LSTM/GRU/RNN layers and these models "
                "are fully convolutional: nothing was quantized, this runs the fp32 model")
    dtype = "float32" if layers["quantized_nothing"] else "int8 (dynamic)"
    return module, _info(engine=engine, dtype=dtype, note=note, **layers)


# -- static int8: calibration data ------------------------------------------------------------
def calibration_task_name(task: str) -> str:
    """The train split that calibrates int8 for ``task`` (its ``calibration_task``, or itself
    when ``task`` is a train split); DataError if it has none."""
    from lowbench.tasks import get_task

    t = get_task(task)
    if t.calibration_task:
        return t.calibration_task
    if t.split == "train":
        return t.name
    raise DataError(
        f"task {task} declares no calibration_task (train split) for int8; use a task that "
        "does (see `lowbench list tasks`) or --quant fp32"
    )


def _calibration_root(task: str, cal_task: str, kind: str, data_root: Any) -> Any:
    # SID test and train splits live under the same --data-root; synth-train lives in the cache.
    return data_root if (kind == "sid" or cal_task == task) else None


def calibration_crops(
    task: str, data_root: str | Path | None, settings: CalibrationSettings
) -> tuple[list[torch.Tensor], list[str]]:
    """Random packed crops (float32 (4, c, c) each) from the train split of ``task``.

    One pair per scene from the first ``settings.pairs`` scenes (the exposure rotates with the
    scene), ``settings.crops`` crops spread evenly, crop side ``min(crop_packed, image side)``
    rounded down to a multiple of 16. Returns the crops and the pair ids used.
    """
    from lowbench.tasks import get_task, load_input

    cal_name = calibration_task_name(task)
    cal = get_task(cal_name)
    root = _calibration_root(task, cal_name, cal.kind, data_root)
    cal.resolve_root(root)  # DataError naming the fix before anything else happens
    listed = cal.listed()
    by_scene: dict[int, list[int]] = {}
    for i, p in enumerate(listed):
        by_scene.setdefault(p.scene_id, []).append(i)
    scenes = list(by_scene)[: settings.pairs]
    picks = [by_scene[s][k % len(by_scene[s])] for k, s in enumerate(scenes)]
    if not picks:
        raise DataError(f"calibration task {cal_name} lists no pairs; check its data root")
    pairs = cal.pairs(root, indices=picks)  # checks exactly the files calibration reads
    rng = np.random.default_rng(settings.seed)
    crops: list[torch.Tensor] = []
    for k, pair in enumerate(pairs):
        n = settings.crops // len(pairs) + (k < settings.crops % len(pairs))
        if n == 0:
            continue
        image = load_input(pair)
        side = min(settings.crop_packed, image.shape[1], image.shape[2]) // 16 * 16
        if side < 16:
            raise DataError(f"calibration pair {pair.pair_id} is smaller than 16 x 16 packed "
                            "pixels; use a task with full-size frames")
        for _ in range(n):
            y = int(rng.integers(0, image.shape[1] - side + 1))
            x = int(rng.integers(0, image.shape[2] - side + 1))
            crops.append(torch.from_numpy(np.ascontiguousarray(image[:, y:y + side,
                                                                       x:x + side])))
    return crops, [p.pair_id for p in pairs]


def calibration_summary(task: str, crops: list[torch.Tensor], pair_ids: list[str],
                        settings: CalibrationSettings) -> dict[str, Any]:
    """What calibrated the int8 ranges (counts; ``crop_packed`` in pixels), as records and
    QAT checkpoints state it."""
    return {"task": task, "pairs": len(pair_ids), "crops": len(crops),
            "crop_packed": int(crops[0].shape[-1]), "seed": settings.seed,
            "batch": settings.batch, "observer": "HistogramObserver", "pair_ids": pair_ids}


def _calibrate(prepared: nn.Module, crops: list[torch.Tensor], batch: int) -> None:
    by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for c in crops:
        by_shape.setdefault(tuple(c.shape), []).append(c)
    with torch.no_grad():
        for group in by_shape.values():
            for i in range(0, len(group), max(1, batch)):
                prepared(torch.stack(group[i:i + batch]))


# -- static int8: observer cache --------------------------------------------------------------
def _is_observer_key(key: str) -> bool:
    return "activation_post_process" in key


def _cache_path(key: dict[str, Any]) -> Path:
    digest = json_digest(key, 24)
    return cache_dir() / "calibration" / f"{key['model']}-{key['engine']}-{digest}.safetensors"


def _read_observer_cache(path: Path, key: dict[str, Any]) -> tuple[dict, dict] | None:
    if not path.is_file():
        return None
    try:
        state, meta = read_tensors(path)
        if json.loads(meta.get("key", "null")) != key:
            return None
        return state, json.loads(meta.get("calibration", "{}"))
    except (CheckpointError, ValueError):
        return None  # unreadable or stale cache file: recalibrate and overwrite it


def _prepare_static(core: nn.Module, engine: str) -> nn.Module:
    from torch.ao.quantization.quantize_fx import prepare_fx

    with quiet_ao():
        return prepare_fx(core.eval(), static_qconfig_mapping(engine),
                          (torch.zeros(*_EXAMPLE),))


def _convert(prepared: nn.Module) -> nn.Module:
    from torch.ao.quantization.quantize_fx import convert_fx

    with quiet_ao():
        converted = convert_fx(prepared.eval())
        int8_transposed_weights(converted)  # the float transposed convs: int8 weights
        with torch.inference_mode():  # first call warns once (deprecated qtensor creation)
            converted(torch.zeros(*_EXAMPLE))
    return converted


def static_calibration_key(prepared: nn.Module, model: PaddedModel, model_name: str, *,
                           weights_id: str | None, calibration_task: str, engine: str,
                           settings: CalibrationSettings) -> dict[str, Any]:
    """What identifies a static int8 observer state: model, weights, calibration task, engine,
    activation range, settings, the prepared graph and torch's minor version."""
    # The prepared graph's code pins where every observer sits, so a qconfig change can never
    # load observer statistics recorded at other positions.
    graph = hashlib.sha256(prepared.code.encode()).hexdigest()[:16]
    return {"format": CALIBRATION_FORMAT, "model": model_name,
            "weights": weights_id or weights_digest(model), "task": calibration_task,
            "engine": engine, "act_quant_max": _act_max(engine), "settings": asdict(settings),
            "graph": graph, "torch": ".".join(torch.__version__.split(".")[:2])}


def shipped_calibration_path(key: dict[str, Any]) -> Path:
    """Where the package ships the observer state for ``key`` (it may not exist)."""
    return SHIPPED_CALIBRATION_DIR / _cache_path(key).name


def _load_observer_state(prepared: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Load a cached observer state into ``prepared``; False if its layout does not fit (then
    ``prepared`` may hold part of it and must be prepared afresh)."""
    result = prepared.load_state_dict(state, strict=False)
    return not (result.unexpected_keys or any(_is_observer_key(k) for k in result.missing_keys))


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
    checkpoints' calibration, :data:`SHIPPED_CALIBRATION_DIR`, unless ``use_shipped`` is
    False), the cache ``cache_dir()/calibration``, or a calibration on
    :func:`calibration_crops` of the train split of ``task``, then cached. Each is keyed by
    :func:`static_calibration_key`; ``info["calibration"]["source"]`` says which ("shipped",
    "cache", "calibrated"; ``cached`` is True for the first two). The shipped state comes first
    because a calibration is not portable: its fp32 forward rounds differently on other CPUs
    and the histogram search turns that into other ranges (module docstring). Raises
    VariantError for a missing engine, DataError for missing data.
    """
    unsupported = _cpu_only("static", device)
    if unsupported is not None:
        return None, unsupported
    engine = use_engine()
    cal_name = calibration_task_name(task)
    prepared = _prepare_static(copy.deepcopy(model.core), engine)
    key = static_calibration_key(prepared, model, model_name, weights_id=weights_id,
                                 calibration_task=cal_name, engine=engine, settings=settings)
    path = _cache_path(key)
    shipped = shipped_calibration_path(key)
    places = ([("shipped", shipped)] if use_shipped else []) + [("cache", path)]
    source, calibration = "calibrated", None
    for name, where in places:
        hit = _read_observer_cache(where, key)
        if hit is None:
            continue
        if _load_observer_state(prepared, hit[0]):
            source, calibration = name, hit[1]
            break
        prepared = _prepare_static(copy.deepcopy(model.core), engine)  # layout changed
    if calibration is None:
        crops, pair_ids = calibration_crops(task, data_root, settings)
        _calibrate(prepared, crops, settings.batch)
        calibration = calibration_summary(cal_name, crops, pair_ids, settings)
        # clone: observers shared by cat inputs alias one buffer, safetensors refuses aliases
        state = {k: v.detach().cpu().clone() for k, v in prepared.state_dict().items()
                 if _is_observer_key(k)}
        meta = {"key": json.dumps(key, sort_keys=True), "calibration": json.dumps(calibration)}
        write_tensors(path, state, meta)
    cache_file = (shipped.relative_to(PACKAGE_DIR.parent).as_posix() if source == "shipped"
                  else str(path))
    calibration = {**calibration, "cached": source != "calibrated", "source": source,
                   "cache_file": cache_file}
    module = PaddedModel(_convert(prepared), model.multiple, model.scale).eval()
    return module, _info(engine=engine, calibration=calibration, dtype="int8",
                         note=_float_layers_note(module, _WHY_STATIC.format(engine=engine)),
                         **_int8_layers(module))


# -- QAT --------------------------------------------------------------------------------------
def prepare_qat_model(model: PaddedModel, model_name: str, engine: str | None = None
                      ) -> nn.Module:
    """Wrap ``model`` (float, weights loaded) for quantization-aware training.

    Returns a :class:`PaddedModel` whose core is ``prepare_qat_fx``-prepared with
    :func:`qat_qconfig_mapping` (fake-quant on weights and activations), in train mode. Its
    ``state_dict()`` holds the float weights plus fake-quant/observer buffers; a QAT
    checkpoint stores exactly those keys and :func:`build_qat` converts it to int8.
    """
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    if not isinstance(model, PaddedModel):
        raise LowbenchError(f"prepare_qat_model needs lowbench.models.build('{model_name}'), "
                            f"got {type(model).__name__}")
    engine = use_engine(engine)
    core = copy.deepcopy(model.core).train()
    with quiet_ao():
        prepared = prepare_qat_fx(core, qat_qconfig_mapping(engine), (torch.zeros(*_EXAMPLE),))
    return PaddedModel(prepared, model.multiple, model.scale).train()


def load_qat_checkpoint(path: str | Path, model_name: str) -> tuple[dict, dict[str, str]]:
    """Read a QAT checkpoint (``.safetensors`` only, never pickle): (state dict, metadata).

    Floating tensors are returned as float32. Raises CheckpointError for another file type, an
    unreadable file, or metadata naming another model.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{path}: QAT checkpoints are .safetensors files (written by "
                              "`lowbench train --qat`); pass one of those")
    if not path.is_file():
        raise CheckpointError(f"QAT checkpoint not found: {path}; check the path")
    state, meta = read_tensors(path)
    state = decode_qat_storage(state, meta, str(path))  # int8-coded weights -> float32
    declared = meta.get("model")
    if declared and declared != model_name:
        raise CheckpointError(f"{path}: checkpoint is for model '{declared}', not "
                              f"'{model_name}'; pass --model {declared} or a '{model_name}' one")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, meta


#: Version of the QAT fake-quant numerics a checkpoint is trained with, stored in its metadata
#: (2: weight grid, activation clamp and pool qparams as the converted int8 model has them).
QAT_NUMERICS = "2"


#: What a record says beside a numerics version that needs retraining.
_QAT_NUMERICS_NOTES = {"1": "1 (trained before lowbench matched fake-quant to int8: retrain it)"}


def _qat_numerics(meta: dict[str, str], recipe: dict[str, Any]) -> str:
    """Which fake-quant numerics version a QAT checkpoint was trained with ("1", "2", ...)."""
    if meta.get("qat_numerics"):
        return meta["qat_numerics"]
    # a distill field without the marker: written between the numerics-2 commit and the marker
    return "2" if "distill" in recipe else "1"


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
    unsupported = _cpu_only("qat", device)
    if unsupported is not None:
        return None, unsupported
    meta = metadata or {}
    recipe = json.loads(meta.get("recipe") or "{}")
    numerics = _qat_numerics(meta, recipe)
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
    module = PaddedModel(_convert(qat.core), qat.multiple, qat.scale).eval()
    calibration = {"task": meta.get("task") or None, "steps": meta.get("steps") or None,
                   "method": "QAT: activation ranges from histogram calibration on the train "
                             "split, frozen before fine-tuning; weights fine-tuned with "
                             "fake-quant (saved with the checkpoint)",
                   "distill": recipe.get("distill", 0.0) if recipe else None,
                   "qat_numerics": _QAT_NUMERICS_NOTES.get(numerics, numerics),
                   "activation_calibration": json.loads(meta.get("qat_calibration") or "null")}
    return module, _info(engine=engine, dtype="int8", calibration=calibration,
                         note=_float_layers_note(module, _WHY_QAT), **_int8_layers(module))
