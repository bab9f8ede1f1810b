"""Prints fp32 vs static int8 model-only latency and size for every learned model, in one run.

    python benchmarks/quant_speed.py [--models sid,light] [--budget-s 1] [--rounds 5]
        [--threads N] [--strict]

Model-only median latency (``lowbench.measure.latency.measure_latency``) of the ``fp32`` and
``static`` variants on a 1 x 4 x 256 x 256 packed input, torch threads = all cores (or
``--threads``). fp32 and int8 are measured alternately for ``--rounds`` rounds; each variant's
figure is the median of its per-round medians and the speedup is the median of the per-round
ratios, so load from other processes on a shared machine hits both alike. Weights: the shipped
checkpoint where one exists, else seeded random init (said in the output; latency does not
depend on the weights' values). Static int8 is calibrated on the ``synth`` task's train split
(``lowbench.quant.calibrate.DEFAULT_CALIBRATION``; cached after the first run).
Target: ``sid`` static >= 1.5x faster than fp32.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

import torch

from lowbench.checkpoint import load_checkpoint, shipped_checkpoint_path
from lowbench.digest import sha256_file
from lowbench.errors import CheckpointError
from lowbench.measure.latency import measure_latency, set_threads
from lowbench.models import LEARNED_MODELS, build
from lowbench.models.complexity import serialized_size_bytes
from lowbench.quant.fx import select_engine
from lowbench.quant.recipes import build_fp32, build_static

TARGET_SPEEDUP = 1.5
MIB = 2**20


def _model(name: str) -> tuple[torch.nn.Module, str, str | None]:
    """Float model, where its weights came from, and the checkpoint sha256 (None if random)."""
    model = build(name)
    try:
        path = shipped_checkpoint_path(name)
    except CheckpointError:
        torch.manual_seed(0)
        return build(name).eval(), "random-init (no shipped checkpoint)", None
    model.load_state_dict(load_checkpoint(path, expected_model=name)[0])
    return model.eval(), f"shipped {path.name}", sha256_file(path)


def measure(name: str, budget_s: float, rounds: int) -> dict:
    """fp32 and static medians (ms), speedup, serialized sizes (bytes) for one model."""
    model, source, sha = _model(name)
    static, info = build_static(model, name, weights_id=sha, task="synth")
    fp32, _ = build_fp32(model)
    x = torch.rand(1, 4, 256, 256, generator=torch.Generator().manual_seed(0))
    medians: dict[str, list[float]] = {"fp32": [], "static": []}
    with torch.inference_mode():
        for _ in range(rounds):
            for label, module in (("fp32", fp32), ("static", static)):
                stats = measure_latency(lambda m=module: m(x), warmup=2, min_runs=5,
                                        budget_s=budget_s)
                medians[label].append(stats["median_ms"])
    fp32_ms = statistics.median(medians["fp32"])
    int8_ms = statistics.median(medians["static"])
    ratios = [a / b for a, b in zip(medians["fp32"], medians["static"], strict=True)]
    size32, _ = serialized_size_bytes(fp32)
    size8, _ = serialized_size_bytes(static)
    return {"model": name, "weights": source, "fp32_ms": fp32_ms, "static_ms": int8_ms,
            "speedup": statistics.median(ratios),
            "spread": (min(ratios), max(ratios)), "size_fp32": size32, "size_int8": size8,
            "layers": info["quantized_layers"], "engine": info["engine"],
            "cached": info["calibration"]["cached"]}


def main() -> int:
    """Run the comparison and print medians (ms), ratios and PASS/FAIL for sid."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(LEARNED_MODELS))
    ap.add_argument("--budget-s", type=float, default=1.0, help="timed seconds per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if the sid target is missed")
    args = ap.parse_args()
    threads = set_threads(args.threads or os.cpu_count() or 1)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {threads} threads, engine {select_engine()}; "
          "input 1x4x256x256 packed, model-only median latency")
    rows = [measure(name, args.budget_s, args.rounds) for name in args.models.split(",")]
    print(f"{'model':8s} {'fp32 ms':>9s} {'int8 ms':>9s} {'speedup':>8s} {'fp32 MiB':>9s} "
          f"{'int8 MiB':>9s} {'size x':>7s} {'int8 layers':>11s} {'speedup range':>14s}  weights")
    for r in rows:
        print(f"{r['model']:8s} {r['fp32_ms']:9.1f} {r['static_ms']:9.1f} {r['speedup']:7.2f}x "
              f"{r['size_fp32'] / MIB:9.2f} {r['size_int8'] / MIB:9.2f} "
              f"{r['size_fp32'] / r['size_int8']:6.2f}x {r['layers']:11d} "
              f"{r['spread'][0]:6.2f}-{r['spread'][1]:.2f}x  {r['weights']}")
    sid = next((r for r in rows if r["model"] == "sid"), None)
    ok = True
    if sid is not None:
        ok = sid["speedup"] >= TARGET_SPEEDUP
        print(f"sid static vs fp32: {sid['speedup']:.2f}x (target >= {TARGET_SPEEDUP}x) "
              f"{'PASS' if ok else 'FAIL'}")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
