"""Does the ONNX file score what the in-process variant scores? Runs it through the harness.

    python scripts/onnx_quality.py [--models sid light lighter fire] [--quants fp32 static qat]

The Jetson path deploys the ONNX file (`lowbench export --format onnx`, then TensorRT or
onnxruntime), whose int8 graph (QuantizeLinear / DequantizeLinear) is computed by another
runtime with its own rounding. For each variant this exports the ONNX file at the task's input
size, runs it with onnxruntime (CPU) in place of the in-process module in the evaluation
harness (`lowbench.harness.session.Session`: same decode, packing and metrics), and prints, on the
task (default synth): the PSNR (dB) against the ground truth of both, how close each is to the
fp32 model's output (PSNR dB, mean over pairs), how close the two are to each other (PSNR dB),
and their largest output difference after clipping to [0, 1] as the metrics do (sRGB units).
Scores use `lowbench.metrics.psnr` (the SID protocol), as `lowbench evaluate` does.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from tabulate import tabulate

from lowbench.export import OnnxRuntimeModule, export_variant
from lowbench.harness.session import EvalConfig, Session
from lowbench.metrics import mean_psnr
from lowbench.models.registry import LEARNED_MODELS
from lowbench.pairs import load_truth


def rows(model: str, quants: list[str], task: str, limit: int | None) -> list[list[object]]:
    """One row per variant: ground-truth PSNR and closeness (dB), in process and in onnxruntime;
    a variant that does not run here (fp16 on some CPUs) gets its reason instead."""
    def session(quant: str) -> Session:
        return Session(EvalConfig(model=model, quant=quant, task=task, limit=limit,
                                  memory=False, energy=False, gallery=False))

    fp32 = session("fp32")
    pairs = fp32.pairs
    truths = [load_truth(p) for p in pairs]
    reference = [fp32.process_pair(p) for p in pairs]
    if len({t.shape for t in truths}) != 1:
        raise SystemExit(f"{task}: its pairs differ in size; an ONNX file has one input size")
    table: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="lowbench-onnx-") as tmp:
        for quant in quants:
            s = fp32 if quant == "fp32" else session(quant)
            if not s.supported:
                table.append([model, quant, f"does not run here: {s.variant.info.get('reason')}"])
                continue
            h, w = s.input_hw
            if h != w:
                raise SystemExit(f"{task}: ONNX is exported square; input is {h} x {w}")
            path = export_variant(s.variant, "onnx", Path(tmp) / f"{model}-{quant}.onnx",
                                  size=h)
            in_process = reference if quant == "fp32" else [s.process_pair(p) for p in pairs]
            # the same harness (decode, packing, metrics) with the file's forward
            ort = Session(s.cfg, dataclasses.replace(s.variant, module=OnnxRuntimeModule(path)),
                          pairs=pairs)
            in_ort = [ort.process_pair(p) for p in pairs]
            largest = max(float(np.abs(np.clip(a, 0, 1) - np.clip(b, 0, 1)).max())
                          for a, b in zip(in_ort, in_process, strict=True))
            torch_psnr, ort_psnr = mean_psnr(in_process, truths), mean_psnr(in_ort, truths)
            table.append([model, quant, torch_psnr, ort_psnr, ort_psnr - torch_psnr,
                          mean_psnr(in_process, reference), mean_psnr(in_ort, reference),
                          mean_psnr(in_ort, in_process), largest])
    return table


def main() -> int:
    """Print the table (dB, sRGB units) for each model x variant."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(LEARNED_MODELS), choices=LEARNED_MODELS)
    ap.add_argument("--quants", nargs="+", default=["fp32", "static", "qat"],
                    choices=["fp32", "fp16", "dynamic", "static", "qat"])
    ap.add_argument("--task", default="synth")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs only")
    args = ap.parse_args()
    table: list[list[object]] = []
    for model in args.models:
        table += rows(model, args.quants, args.task, args.limit)
    print(tabulate(table, floatfmt=".3f", headers=[
        "model", "quant", "PSNR dB", "ONNX PSNR dB", "ONNX - in-process dB",
        "in-process vs fp32 dB", "ONNX vs fp32 dB", "ONNX vs in-process dB", "max |diff|"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
