"""The ONNX file every ONNX-consuming runtime starts from: the variant's core net, any input size.

The padded model's core (:class:`lowbench.models.unet.PaddedModel`) is exported with dynamic
batch, height and width, so one file serves every input size; the pad to a multiple of 16 and
the crop back stay outside, in :class:`lowbench.runtimes.base.RuntimeModule` (exporting the
pad would freeze its amounts at the example's size). A float core exports as float32 Conv /
ConvTranspose; a torch int8 core (static or QAT, FX) as QuantizeLinear / DequantizeLinear
(QDQ), which ONNX Runtime, OpenVINO and TensorRT all take.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lowbench.errors import LowbenchError, VariantError
from lowbench.export import ONNX_OPSET, quiet_export, require_onnx
from lowbench.fsutil import atomic_path
from lowbench.models.unet import PaddedModel
from lowbench.runtimes.base import DeployRequest, RuntimeUnavailable
from lowbench.runtimes.loaders import INPUT
from lowbench.variants import Variant, build_variant

#: Output name of every lowbench ONNX file (the input's is :data:`INPUT`).
OUTPUT = "srgb"


def core_of(variant: Variant) -> torch.nn.Module:
    """The core net inside ``variant.module`` (a :class:`PaddedModel`); VariantError when the
    variant has no module or another wrapper (fp16/bf16 casts are the runtime's job)."""
    module = variant.module
    if not isinstance(module, PaddedModel):
        why = variant.info.get("reason") or f"a {type(module).__name__}, not a padded model"
        raise VariantError(f"{variant.model_name} x {variant.quant} cannot be exported for a "
                           f"runtime ({why})")
    return module.core


def write_core_onnx(variant: Variant, path: Path, example_hw: tuple[int, int] = (64, 64),
                    opset: int = ONNX_OPSET) -> Path:
    """Export ``variant``'s core to ONNX ``opset`` at ``path`` (atomically; checked by
    onnx.checker) with dynamic batch, height and width; ``example_hw`` (multiples of 16,
    pixels) is the tracing input."""
    try:
        require_onnx()
    except LowbenchError as err:
        raise RuntimeUnavailable(str(err)) from None
    core = core_of(variant)
    x = torch.rand(1, 4, *example_hw, generator=torch.Generator().manual_seed(0))
    axes = {INPUT: {0: "batch", 2: "height", 3: "width"},
            OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}}
    with atomic_path(path) as tmp:
        try:
            with quiet_export(), torch.no_grad():
                torch.onnx.export(core, (x,), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=axes)
        except Exception as err:  # the exporter raises many types; report one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise VariantError(f"ONNX export of {variant.model_name} x {variant.quant} failed "
                               f"({first})") from None
        import onnx

        onnx.checker.check_model(str(tmp))
    return path


def export_request(req: DeployRequest, path: Path) -> tuple[Variant, Path]:
    """The torch variant a runtime starts from for ``req`` (``qat``: the QAT int8 model, whose
    export is QDQ; every other quant: the float model, which the runtime's own tooling then
    quantizes or casts) and its core exported to ONNX at ``path``."""
    variant = build_variant(req.model, "qat" if req.quant == "qat" else "fp32",
                            checkpoint=req.checkpoint, task=req.task, data_root=req.data_root,
                            device="cpu")
    return variant, write_core_onnx(variant, path, opset=req.onnx_opset)
