"""ONNX Runtime: the variant's ONNX file in an InferenceSession (CPU EP; CUDA EP on a GPU).

fp32 runs the float file; ``static`` (``int8``) is made by ONNX Runtime's own tooling,
``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights, uint8
activations, MinMax ranges) on the same calibration crops of the train split as torch's static
int8; ``qat`` runs the torch QAT int8 model exported as QDQ. The precision is read back from
the graph the session really executes (``optimized_model_filepath``: which convolutions became
QLinearConv / ConvInteger and which stayed float), the providers from ``get_providers()``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lowbench.runtimes.base import (
    REQUESTED,
    Artifact,
    DeployRequest,
    RuntimeModule,
    RuntimeUnavailable,
    artifact_folder,
    precision_fields,
    quiet_root_logger,
    runtime_info,
    summarize_precisions,
)
from lowbench.runtimes.loaders import ort_runner, ort_session
from lowbench.runtimes.onnx_files import INPUT, export_request
from lowbench.variants import Variant

NAME = "onnxruntime"
EXTRA = "onnxruntime"
#: The deployed file(s) ``lowbench export --runtime`` writes (None: no file is deployed).
ARTIFACT: str | None = "onnx"
#: ONNX op types that compute a convolution, by the precision they compute in.
FLOAT_CONV_OPS = {"Conv", "ConvTranspose", "FusedConv", "NchwcConv"}
INT8_CONV_OPS = {"QLinearConv", "ConvInteger", "QLinearConvTranspose"}


def unavailable(device: str) -> str | None:
    """None when ONNX Runtime can run on ``device`` here, else why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return f"not installed: pip install 'lowbench[{EXTRA}]'"
    if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        return ("no CUDA execution provider in this onnxruntime build (install onnxruntime-gpu "
                "on a machine with a CUDA GPU)")
    return None


def unsupported(quant: str, device: str) -> str | None:
    """None when ONNX Runtime can run ``quant`` on ``device``, else why not."""
    if quant in ("fp16", "bf16") and not device.startswith("cuda"):
        return (f"ONNX Runtime's CPU execution provider has no {REQUESTED[quant]} convolution "
                "kernels (it would run float32 between casts); use --runtime openvino or torch")
    if quant == "bf16":
        return "ONNX Runtime has no bfloat16 convolution kernels; use --runtime openvino or torch"
    if quant == "dynamic":
        return ("dynamic int8 quantizes only Linear/recurrent layers (these models have none); "
                "use --quant static for ONNX Runtime's int8")
    return None


def providers(device: str) -> list[str]:
    """Execution providers for ``device``, in preference order."""
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") \
        else ["CPUExecutionProvider"]


class _Crops:
    """ONNX Runtime's CalibrationDataReader over packed crops (one at a time)."""

    def __init__(self, crops: list[Any]) -> None:
        self._feeds = iter([{INPUT: c[None].numpy().astype(np.float32)} for c in crops])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - ORT calls it only for some methods
        pass


def quantize_int8(float_path: Path, int8_path: Path, req: DeployRequest) -> dict[str, Any]:
    """ONNX Runtime static int8 (QDQ) of ``float_path`` into ``int8_path``, calibrated on the
    train split's crops; returns the calibration summary."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from lowbench.quant.calibrate import calibration_crops, calibration_summary

    crops, pair_ids = calibration_crops(req.task, req.data_root, req.calibration)
    reader = type("CropReader", (_Crops, CalibrationDataReader), {})(crops)
    with quiet_root_logger():  # "consider pre-processing": shape inference adds nothing here
        quantize_static(str(float_path), str(int8_path), reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    summary = calibration_summary(req.task, crops, pair_ids, req.calibration)
    summary["observer"] = "onnxruntime.quantization MinMax (QDQ, per-channel weights)"
    return summary


def executed_precisions(optimized: Path) -> dict[str, int]:
    """Count the convolutions of the graph ONNX Runtime executes, by precision."""
    import onnx

    graph = onnx.load(str(optimized), load_external_data=False).graph
    counts: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in INT8_CONV_OPS:
            counts["int8"] += 1
        elif node.op_type in FLOAT_CONV_OPS:
            counts["float32"] += 1
    return dict(counts)


def deploy(req: DeployRequest) -> Variant:
    """Build ``req`` for ONNX Runtime: export, quantize (static), create the session; the
    variant's ``info["runtime"]`` says what runs. Raises RuntimeUnavailable with the reason."""
    import onnxruntime as ort

    why = unavailable(req.device) or unsupported(req.quant, req.device)
    if why:
        raise RuntimeUnavailable(why)
    folder = artifact_folder(NAME)
    root = Path(folder.name)
    t0 = time.perf_counter()
    torch_variant, path = export_request(req, root / "model.onnx")
    info = dict(torch_variant.info)
    if req.quant == "static":
        float_path, path = path, root / "model.int8.onnx"
        info["calibration"] = quantize_int8(float_path, path, req)
        float_path.unlink()
    optimized = root / "executed.onnx"
    sess = ort_session(path, req.threads, providers(req.device), optimized)
    build_s = time.perf_counter() - t0
    counts = executed_precisions(optimized)
    optimized.unlink(missing_ok=True)
    artifact = Artifact(root, [path], "onnx")

    module = RuntimeModule(lambda _shape: ort_runner(sess), keep=folder)
    module.worker = {"runtime": NAME, "file": str(path), "threads": req.threads,
                     "providers": sess.get_providers()}
    info.update(precision_fields(req.quant, counts))
    info["runtime"] = runtime_info(
        NAME, version=ort.__version__, provider=sess.get_providers()[0], device=req.device,
        precision=summarize_precisions(counts), requested=REQUESTED[req.quant],
        threads=req.threads or sess.get_session_options().intra_op_num_threads or None,
        build_s=build_s, artifact=artifact, precision_counts=counts,
        precision_source="convolution ops of the session's optimized graph "
                         "(optimized_model_filepath)")
    return Variant(req.model, req.quant, module, info)
