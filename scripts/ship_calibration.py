"""Calibrate static int8 for the shipped checkpoints and ship the observer states in the package.

A static int8 calibration is not portable: its fp32 forward rounds differently on another CPU
(other oneDNN/MKL kernels), and the histogram observers turn those last-bit differences into other
quantization ranges (lighter on synth: 22.97205 dB calibrated on an AMD EPYC, 22.98080 dB on the
Intel Xeon that published it; 22.96969 dB on the EPYC with PyTorch forced onto AVX2 kernels). So
lowbench ships the calibration of its shipped checkpoints (``lowbench/calibration/``, read before
the user's cache, see :func:`lowbench.quant.recipes.build_static`) and every machine evaluates
the same int8 model. Run this after retraining a shipped checkpoint or changing the static
recipe (the files are keyed by weights, settings, graph and torch version; a stale one is never
used, and ``tests/test_quant.py`` fails until it is replaced), then re-publish the static records.

    python scripts/ship_calibration.py [MODEL ...]      (default: every learned model)

Each model is calibrated afresh (never from the shipped file or the cache) in a temporary data
cache; the synth-train scenes it needs are generated there (seeded, a few seconds each).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def ship(model_name: str) -> Path:
    """Calibrate ``model_name``'s shipped checkpoint afresh; write its observer state into
    :data:`lowbench.quant.calibrate.SHIPPED_CALIBRATION_DIR`; return the written file."""
    from lowbench.checkpoint import load_into, shipped_checkpoint_path
    from lowbench.digest import sha256_file
    from lowbench.fsutil import atomic_write_bytes
    from lowbench.models import build
    from lowbench.quant.calibrate import SHIPPED_CALIBRATION_DIR
    from lowbench.quant.recipes import build_static

    checkpoint = shipped_checkpoint_path(model_name)
    model = build(model_name)
    load_into(model, checkpoint, model_name)
    _, info = build_static(model.eval(), model_name, weights_id=sha256_file(checkpoint),
                           use_shipped=False)
    calibration = info["calibration"]
    if calibration["source"] != "calibrated":
        raise SystemExit(f"ship_calibration: {model_name} came from {calibration['source']}, "
                         "not a fresh calibration; run with an empty LOWBENCH_DATA")
    cached = Path(calibration["cache_file"])
    target = SHIPPED_CALIBRATION_DIR / cached.name
    for old in SHIPPED_CALIBRATION_DIR.glob(f"{model_name}-{info['engine']}-*"):
        if old.name != target.name:
            old.unlink()
            print(f"ship_calibration: removed the stale {old.name}", file=sys.stderr)
    atomic_write_bytes(target, cached.read_bytes())
    return target


def main() -> None:
    from lowbench.models.registry import LEARNED_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(LEARNED_MODELS),
                        help="learned models to calibrate (default: all)")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="lowbench-ship-calibration-")
    os.environ["LOWBENCH_DATA"] = scratch  # empty cache: every model calibrates afresh
    try:
        for name in args.models:
            started = time.perf_counter()
            target = ship(name)
            print(f"{name}: {target} ({time.perf_counter() - started:.0f} s)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
