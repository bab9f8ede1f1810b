"""OpenVINO: the variant as OpenVINO IR, compiled for the CPU (x86 and Arm).

The ONNX file (:mod:`lowbench.runtimes.onnx_files`) is converted (``ov.convert_model``) and
saved as IR (``.xml`` + ``.bin``, float32 weights); ``static`` (``int8``) is quantized by NNCF
(``nncf.quantize``) on the same calibration crops of the train split as torch's static int8;
``qat`` reads the torch QAT int8 model's QDQ graph. Each input size is compiled once (reshaped
to a static shape) with ``INFERENCE_PRECISION_HINT`` pinned: f32 for fp32 and for the float
parts of int8, bf16 / f16 for bf16 / fp16. OpenVINO's default hint on a CPU with bf16 is bf16,
so an unpinned "fp32" row would be a bf16 row. The precision is read back from the compiled
model (each convolution's ``runtimePrecision`` in the runtime model, and the hint it reports);
a request it does not honour (f16 on a CPU without fp16 arithmetic runs bf16) is refused with
the reason, never relabelled.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lowbench.runtimes.base import (
    PRECISION_WORDS,
    REQUESTED,
    Artifact,
    DeployRequest,
    RuntimeModule,
    RuntimeUnavailable,
    artifact_folder,
    padded_shape,
    precision_fields,
    quiet_root_logger,
    runtime_info,
    summarize_precisions,
)
from lowbench.runtimes.loaders import openvino_compile, openvino_make_runner
from lowbench.runtimes.onnx_files import export_request
from lowbench.variants import Variant

NAME = "openvino"
EXTRA = "openvino"
#: The deployed file(s) ``lowbench export --runtime`` writes (None: no file is deployed).
ARTIFACT: str | None = "openvino-ir"
#: INFERENCE_PRECISION_HINT per quant (int8 variants pin the float parts to f32).
HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "static": "f32", "qat": "f32"}
#: Runtime-model layer types that compute a convolution.
CONV_LAYERS = {"Convolution", "Deconvolution", "GroupConvolution"}


def unavailable(device: str) -> str | None:
    """None when OpenVINO can run on ``device`` here, else why not."""
    if not device.startswith("cpu"):
        return "lowbench runs OpenVINO on the CPU only (use --device cpu)"
    try:
        import openvino  # noqa: F401
    except ImportError:
        return f"not installed: pip install 'lowbench[{EXTRA}]'"
    return None


def unsupported(quant: str, device: str) -> str | None:
    """None when OpenVINO can run ``quant``, else why not (precisions the CPU lacks are found
    when compiling: the read-back precision decides)."""
    if quant == "dynamic":
        return ("dynamic int8 quantizes only Linear/recurrent layers (these models have none); "
                "use --quant static for OpenVINO's int8 (NNCF)")
    if quant in ("fp16", "bf16"):
        import openvino as ov

        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if quant.upper() not in caps:
            return (f"this CPU has no native {REQUESTED[quant]} arithmetic for OpenVINO "
                    f"(CPU capabilities: {', '.join(caps)}); it would run another precision")
    if quant == "static":
        try:
            import nncf  # noqa: F401
        except ImportError:
            return ("static int8 needs NNCF, which is not installed: "
                    f"pip install 'lowbench[{EXTRA}]'")
    return None


def compile_config(quant: str, threads: int | None) -> dict[str, Any]:
    """The compile configuration: latency hint, pinned precision hint, threads."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY",
                              "INFERENCE_PRECISION_HINT": HINTS[quant]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def executed_precisions(compiled: Any) -> dict[str, int]:
    """Count the convolutions of the compiled (runtime) model by the precision they run in."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        if rt["layerType"].astype(str) in CONV_LAYERS:
            word = rt["runtimePrecision"].astype(str)
            counts[PRECISION_WORDS.get(word, word)] += 1
    return dict(counts)


def quantize_nncf(model: Any, req: DeployRequest) -> tuple[Any, dict[str, Any]]:
    """NNCF int8 of the OpenVINO ``model`` on the train split's crops, and the summary."""
    import nncf

    from lowbench.quant.calibrate import calibration_crops, calibration_summary

    crops, pair_ids = calibration_crops(req.task, req.data_root, req.calibration)
    data = nncf.Dataset([c[None].numpy().astype(np.float32) for c in crops])
    with quiet_root_logger():
        quantized = nncf.quantize(model, data, subset_size=len(crops))
    summary = calibration_summary(req.task, crops, pair_ids, req.calibration)
    summary["observer"] = f"nncf.quantize {nncf.__version__} (default preset)"
    return quantized, summary


def deploy(req: DeployRequest) -> Variant:
    """Build ``req`` for OpenVINO: export, convert to IR, quantize (static, NNCF), compile at
    the request's input size; the variant's ``info["runtime"]`` says what runs. Raises
    RuntimeUnavailable with the reason (also when the CPU would run another precision)."""
    import openvino as ov

    why = unavailable(req.device) or unsupported(req.quant, req.device)
    if why:
        raise RuntimeUnavailable(why)
    folder = artifact_folder(NAME)
    root = Path(folder.name)
    t0 = time.perf_counter()
    torch_variant, onnx_path = export_request(req, root / "model.onnx")
    # convert_model, not Core.read_model: its conversion passes let NNCF quantize the
    # depthwise convolutions too (read_model left lighter's 18 in float: docs/lighter-int8.md)
    model = ov.convert_model(str(onnx_path))
    info = dict(torch_variant.info)
    if req.quant == "static":
        model, info["calibration"] = quantize_nncf(model, req)
    xml = root / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    onnx_path.unlink()
    config = compile_config(req.quant, req.threads)
    padded = padded_shape((1, 4, *req.input_hw))
    compiled = openvino_compile(xml, padded, config)
    build_s = time.perf_counter() - t0
    counts = executed_precisions(compiled)
    executed = summarize_precisions(counts)
    hint_type = compiled.get_property("INFERENCE_PRECISION_HINT")
    hint = PRECISION_WORDS.get(hint_type.to_string(), hint_type.to_string())
    requested = REQUESTED[req.quant]
    if req.quant in ("fp32", "fp16", "bf16") and executed != requested:
        raise RuntimeUnavailable(f"OpenVINO {ov.__version__} on this CPU executes {executed} "
                                 f"when asked for {requested} (precision hint read back: "
                                 f"{hint}); no {requested} row can be measured here")
    module = RuntimeModule(openvino_make_runner(xml, config, {padded: compiled}), keep=folder)
    module.prepare((1, 4, *req.input_hw))
    module.worker = {"runtime": NAME, "file": str(xml), "shape": list(padded), "config": config}
    info.update(precision_fields(req.quant, counts))
    info["runtime"] = runtime_info(
        NAME, version=ov.__version__, provider="CPU", device=req.device, precision=executed,
        requested=requested, threads=int(compiled.get_property("INFERENCE_NUM_THREADS")) or None,
        build_s=build_s, artifact=Artifact(root, [xml, xml.with_suffix(".bin")], "openvino-ir"),
        precision_counts=counts, precision_hint=hint,
        precision_source="runtimePrecision of the compiled model's convolutions "
                         "(get_runtime_model)")
    return Variant(req.model, req.quant, module, info)
