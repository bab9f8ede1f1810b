"""Prints the pack-speed ratios of the foundation issue, measured in one run.

    python benchmarks/pack_speed.py [--numpy-only] [--strict]

Targets: lowbench's pack >= 4x faster than SID's reference pack_raw, and within 2x of a
single-pass uint16 -> float32 copy of the same 2848 x 4256 frame.
"""

from __future__ import annotations

import argparse
import sys

from lowbench import raw as rawpipe
from lowbench.environment import cpu_model
from lowbench.measure.preprocess import compare


def main() -> int:
    """Run the comparison and print medians (ms), ratios and PASS/FAIL."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--numpy-only", action="store_true", help="disable the numba kernel")
    ap.add_argument("--budget-s", type=float, default=2.0)
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()
    if args.numpy_only:
        rawpipe.HAVE_NUMBA = False
    import os

    res = compare(budget_s=args.budget_s)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; kernel: {res['kernel']}")
    for k, v in res["median_ms"].items():
        print(f"  {k:9s} median {v:8.2f} ms")
    ok1 = res["speedup_vs_sid"] >= 4
    ok2 = res["ratio_to_copy"] <= 2
    print(f"speedup vs SID pack_raw: {res['speedup_vs_sid']:.2f}x (target >= 4x) "
          f"{'PASS' if ok1 else 'FAIL'}")
    print(f"lowbench / copy floor:   {res['ratio_to_copy']:.2f}x (target <= 2x) "
          f"{'PASS' if ok2 else 'FAIL'}")
    return 1 if args.strict and not (ok1 and ok2) else 0


if __name__ == "__main__":
    sys.exit(main())
