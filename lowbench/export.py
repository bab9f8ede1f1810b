"""Export a built variant to TorchScript or ONNX (the deployment path to Jetsons / TensorRT).

TorchScript: the core is traced (``torch.jit.trace``; FX-generated int8 code is not
scriptable) and the pad/crop wrapper (and the fp16 cast wrapper) around it is scripted, so the
file accepts any ``(N, 4, h, w)`` input like the in-process module; if that fails the whole
module is traced at ``size`` (then the file is specific to that input size). ONNX: the
TorchScript-based exporter (``dynamo=False``, opset :data:`ONNX_OPSET`) with dynamic batch,
height and width, so one file takes any frame (a full Sony frame, 1424 x 2128 packed, included;
height and width at least :data:`ONNX_MIN_SIDE`): the pad to 16 is written as a reflect pad by
15 and a slice to the next multiple (:class:`OnnxPadded`), which the tracer records with the
input's shape instead of freezing the example's pad amounts. int8 variants export as
QuantizeLinear / DequantizeLinear (QDQ) graphs. Every file is checked before it is moved into place
(TorchScript: ``torch.jit.load`` of the bytes; ONNX: ``onnx.checker`` on a temp file, then
``os.replace``); :func:`max_abs_diff` compares a reloaded file with the in-process module.

A TorchScript file is a zip archive whose entries sit under one top folder; ``torch.jit.save``
to a path names that folder after the file, so the file's size would depend on its name (and
on a temp file's random name). It is serialized to memory instead (folder ``archive``) and
written with :func:`lowbench.fsutil.atomic_write_bytes`: its bytes are a property of the model.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from lowbench.errors import LowbenchError, VariantError
from lowbench.fsutil import atomic_path, atomic_write_bytes
from lowbench.models.unet import PaddedModel, pad_to_multiple
from lowbench.quant.fx import quiet_ao
from lowbench.quant.recipes import BFloat16Precision, HalfPrecision
from lowbench.variants import Variant

FORMATS: tuple[str, ...] = ("torchscript", "onnx")
ONNX_OPSET = 17
#: Smallest packed height / width an exported ONNX file takes (its reflect pad by 15 needs 16).
ONNX_MIN_SIDE = 16


class OnnxPadded(nn.Module):
    """:class:`PaddedModel` for the ONNX exporter: reflect-pad by ``multiple - 1``, slice to the
    next multiple, run the core, crop back. Equal to the wrapper's pad (a reflect pad's first
    rows do not depend on how many follow) for inputs of at least ``multiple`` pixels, and
    traced with symbolic sizes, so the file takes any frame size."""

    def __init__(self, core: nn.Module, multiple: int, scale: int) -> None:
        super().__init__()
        self.core = core
        self.multiple = multiple
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Packed ``(N, 4, h, w)`` -> sRGB ``(N, 3, scale*h, scale*w)``."""
        h, w = x.shape[-2], x.shape[-1]
        m = self.multiple
        padded = torch.nn.functional.pad(x, [0, m - 1, 0, m - 1], mode="reflect")
        y = self.core(padded[:, :, :(h + m - 1) // m * m, :(w + m - 1) // m * m])
        return y[:, :, :h * self.scale, :w * self.scale]


def onnx_exportable(module: nn.Module) -> nn.Module:
    """``module`` with its :class:`PaddedModel` (inside an fp16/bf16 cast wrapper too) swapped
    for :class:`OnnxPadded`; any other module unchanged."""
    if isinstance(module, PaddedModel):
        return OnnxPadded(module.core, module.multiple, module.scale)
    if isinstance(module, (HalfPrecision, BFloat16Precision)):
        return type(module)(onnx_exportable(module.inner))
    return module


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """TorchScript and the TorchScript-based ONNX exporter are deprecated upstream but are what
    Jetson toolchains (JetPack PyTorch, TensorRT's ONNX parser) consume today."""
    with quiet_ao(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        yield


def _device_of(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def example_input(module: nn.Module, size: int, seed: int = 0) -> torch.Tensor:
    """A seeded float32 ``(1, 4, size, size)`` packed input in [0, 1) on the module's device."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 4, size, size, generator=gen).to(_device_of(module))


def _traced_core(module: nn.Module, x: torch.Tensor) -> nn.Module:
    if isinstance(module, HalfPrecision):
        return HalfPrecision(_traced_core(module.inner, x.half()))
    if isinstance(module, BFloat16Precision):
        return BFloat16Precision(_traced_core(module.inner, x.to(torch.bfloat16)))
    if isinstance(module, PaddedModel):
        padded = pad_to_multiple(x, module.multiple)
        core = torch.jit.trace(module.core, padded, check_trace=False)
        return PaddedModel(core, module.multiple, module.scale)
    raise TypeError(f"cannot split {type(module).__name__} into wrapper and core")


def to_torchscript(module: nn.Module, x: torch.Tensor) -> tuple[torch.jit.ScriptModule, bool]:
    """ScriptModule of ``module`` and whether it accepts any input size (else only ``x``'s)."""
    with quiet_export(), torch.no_grad():
        try:
            return torch.jit.script(_traced_core(module, x)), True
        except (RuntimeError, TypeError, torch.jit.Error):
            return torch.jit.trace(module, x, check_trace=False), False


def torchscript_bytes(module: nn.Module, x: torch.Tensor) -> bytes:
    """The TorchScript file of ``module`` (see :func:`to_torchscript`) as bytes, loaded back once.

    Saved to memory, so the archive's top folder is always ``archive``: the same model gives
    the same bytes whatever file name they are written to.
    """
    scripted, _ = to_torchscript(module, x)
    buffer = io.BytesIO()
    with quiet_export():
        torch.jit.save(scripted, buffer)
        torch.jit.load(io.BytesIO(buffer.getvalue()), map_location=x.device)  # must load back
    return buffer.getvalue()


def require_onnx() -> None:
    """LowbenchError naming the extra to install when the ``onnx`` package is missing (torch's
    ONNX exporter needs it)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise LowbenchError("--format onnx needs the onnx package, which is not installed: "
                            "pip install 'lowbench[onnx]' (or use --format torchscript)"
                            ) from None


def _write_onnx(variant: Variant, x: torch.Tensor, tmp: Path) -> None:
    require_onnx()
    try:
        with quiet_export(), torch.no_grad():
            torch.onnx.export(
                onnx_exportable(variant.module), (x,), str(tmp), dynamo=False,
                opset_version=ONNX_OPSET, input_names=["packed"], output_names=["srgb"],
                dynamic_axes={"packed": {0: "batch", 2: "height", 3: "width"},
                              "srgb": {0: "batch", 2: "out_height", 3: "out_width"}},
            )
    except OSError:
        raise  # a refused write: export_variant names the file and the fix
    except Exception as err:  # the exporter raises many types; report one line
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise VariantError(
            f"ONNX export of {variant.model_name} x {variant.quant} failed ({first}); "
            "export it with --format torchscript instead"
        ) from None
    import onnx

    onnx.checker.check_model(str(tmp))


def export_variant(variant: Variant, fmt: str, out: str | Path, size: int = 256) -> Path:
    """Write ``variant`` as ``fmt`` ("torchscript" or "onnx") to ``out`` atomically; return it.

    ``size`` is the packed side (pixels) of the ``1 x 4 x size x size`` example input used for
    tracing; ONNX files take any height and width of at least :data:`ONNX_MIN_SIDE`. The file
    is reloaded before it replaces ``out``. Raises VariantError for a variant without a module
    (LibRaw, unsupported here) or a failed ONNX export, LowbenchError for a bad format or size.
    """
    if fmt not in FORMATS:
        raise LowbenchError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if size < 1:
        raise LowbenchError(f"--size {size} must be a positive packed side in pixels")
    if variant.module is None:
        why = variant.info.get("reason") or variant.info.get("note") or "no module"
        raise VariantError(f"{variant.model_name} x {variant.quant} has nothing to export ({why}); "
                           "pick a learned model and a variant supported here")
    out = Path(out)
    x = example_input(variant.module, size)
    if fmt == "torchscript":
        return atomic_write_bytes(out, torchscript_bytes(variant.module, x))
    with atomic_path(out) as tmp:
        _write_onnx(variant, x, tmp)
    return out


class OnnxRuntimeModule(nn.Module):
    """An exported ONNX file run by onnxruntime on the CPU, callable like the in-process
    module: float32 ``(N, 4, h, w)`` packed input -> float32 ``(N, 3, 2h, 2w)`` sRGB (0-1) on
    the CPU, any ``h``, ``w`` of at least :data:`ONNX_MIN_SIDE`."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise LowbenchError("onnxruntime is not installed; pip install 'lowbench[onnx]' "
                                "to run ONNX files") from None
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run(None, {"packed": x.detach().float().cpu().numpy()})
        return torch.from_numpy(y)


def reload_outputs(path: str | Path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """Run an exported file on ``x`` (TorchScript: torch.jit.load; ONNX: onnxruntime, CPU)."""
    path = Path(path)
    if fmt == "torchscript":
        with quiet_export(), torch.inference_mode():
            return torch.jit.load(str(path), map_location=x.device)(x).float().cpu()
    return OnnxRuntimeModule(path)(x)


def max_abs_diff(variant: Variant, path: str | Path, fmt: str, size: int = 256) -> float:
    """Max |reloaded - in-process| over the seeded ``1 x 4 x size x size`` input (sRGB units)."""
    if variant.module is None:
        raise VariantError(f"{variant.model_name} x {variant.quant} has no module to compare")
    x = example_input(variant.module, size)
    with torch.inference_mode():
        ref = variant.module(x).float().cpu()
    return float((reload_outputs(path, fmt, x) - ref).abs().max())
