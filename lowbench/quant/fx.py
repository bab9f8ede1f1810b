"""FX graph mode: the quantized engine, the static int8 qconfig, prepare and convert.

Int8 quantizes only the fx-traceable ``.core`` of a :class:`~lowbench.models.unet.PaddedModel`
and keeps the pad/crop wrapper in float around it. Engine: ``"x86"`` on x86-64 (7-bit
activations, :func:`reduce_range`), ``"qnnpack"`` on ARM (8-bit). Transposed convs stay float
on the x86 engines (their int8 kernels are wrong in this PyTorch) with int8 weights
(:mod:`lowbench.quant.weight_only`); the final PixelShuffle stays float (ONNX export).
"""

from __future__ import annotations

import contextlib
import platform
import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lowbench.errors import VariantError
from lowbench.quant.observers import (
    activation_observer,
    per_channel_weight_observer,
    per_tensor_weight_observer,
)
from lowbench.quant.weight_only import int8_transposed_weights

_ARM_MACHINES = ("aarch64", "arm64")
_X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")
#: FX example input (N, C, H, W) for prepare/convert; only the shape matters for the trace.
EXAMPLE_INPUT = (1, 4, 32, 32)


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


def supported_engines() -> list[str]:
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
    supported = supported_engines()
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


def act_quant_max(engine: str) -> int:
    """The activation observers' ``quant_max`` on ``engine``: 127 (7 bits) or 255 (8 bits)."""
    return 127 if reduce_range(engine) else 255


def set_transposed_conv(mapping: Any, qconfig: Any) -> Any:
    """Give ``nn.ConvTranspose2d`` and ``F.conv_transpose2d`` ``qconfig`` (None: float) in
    the QConfigMapping ``mapping``; returns ``mapping``."""
    for op in (nn.ConvTranspose2d, F.conv_transpose2d):
        mapping.set_object_type(op, qconfig)
    return mapping


def static_qconfig_mapping(engine: str) -> Any:
    """FX QConfigMapping for static int8 (choices: docs/quantization.md, "Design notes")."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping

    act = activation_observer(act_quant_max(engine))
    with quiet_ao():
        mapping = get_default_qconfig_mapping(engine)
    mapping.set_global(QConfig(activation=act, weight=per_channel_weight_observer()))
    # The int8 conv_transpose2d kernels of the x86/onednn/fbgemm engines return wrong values
    # for these 2x2 stride-2 layers (relative error > 100 % against the dequantized reference;
    # qnnpack is right), so transposed convs stay float there (dequantize -> fp32 -> quantize,
    # also the fastest option measured). FX has no per-channel observer for them: per-tensor.
    transposed = (QConfig(activation=act, weight=per_tensor_weight_observer())
                  if engine == "qnnpack" else None)
    mapping.set_object_type(nn.PixelShuffle, None)  # fp32: free, and lets int8 export to ONNX
    return set_transposed_conv(mapping, transposed)


def prepare_static(core: nn.Module, engine: str) -> nn.Module:
    """``prepare_fx`` of ``core`` (put in eval mode) with :func:`static_qconfig_mapping`."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    with quiet_ao():
        return prepare_fx(core.eval(), static_qconfig_mapping(engine),
                          (torch.zeros(*EXAMPLE_INPUT),))


def convert(prepared: nn.Module) -> nn.Module:
    """``convert_fx`` of a prepared (static or QAT) graph, its float transposed convs given
    int8 weights, run once on a zero input (the first call warns once, here, quietly)."""
    from torch.ao.quantization.quantize_fx import convert_fx

    with quiet_ao():
        converted = convert_fx(prepared.eval())
        int8_transposed_weights(converted)  # the float transposed convs: int8 weights
        with torch.inference_mode():  # first call warns once (deprecated qtensor creation)
            converted(torch.zeros(*EXAMPLE_INPUT))
    return converted
