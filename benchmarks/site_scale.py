"""Times `lowbench site build` on a large generated results store.

    python benchmarks/site_scale.py [--commits 1000] [--machines 10] [--store DIR] [--keep]

Target: 200,000 records (1,000 commits x 10 machines x 20 variants) build in under 30 s, reading
and schema validation included. The store is generated first (not timed) with
tests/site_fixtures.py: realistic records with noise, a few injected regressions and gallery
crops for the last commit. ``--store DIR`` reuses (or creates) a store there, so repeated runs
skip generation. The machine's load average is printed: other processes on a 2-core machine
slow the build down and the measurement is then not representative.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from site_fixtures import DEFAULT_VARIANTS, PAIRS, write_store  # noqa: E402

from lowbench.site.build import build_site  # noqa: E402

TARGET_S = 30.0


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _generate(store: Path, commits: int, machines: int) -> int:
    events = [  # a few real changes, so the history pages have something to flag
        {"from_commit": commits // 2, "model": "light", "quant": "static", "machine": 0,
         "scale": {"latency": 1.3}},
        {"from_commit": commits // 3, "model": "sid", "quant": "qat", "scale": {"psnr": 1.01}},
    ]
    return write_store(store, commits, machines, DEFAULT_VARIANTS, events=events,
                       gallery_pairs=PAIRS[:3], fast=True)


def main() -> int:
    """Generate (or reuse) the store, time build_site, print rows/s and PASS/FAIL."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--machines", type=int, default=10)
    ap.add_argument("--store", type=Path, default=None,
                    help="results store to reuse or create (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store and site")
    ap.add_argument("--target-s", type=float, default=TARGET_S)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lowbench-site-scale-"))
    store = args.store or work / "results"
    try:
        expected = args.commits * args.machines * len(DEFAULT_VARIANTS)
        if not (store.is_dir() and any(store.iterdir())):
            t = time.perf_counter()
            n = _generate(store, args.commits, args.machines)
            print(f"generated {n} records in {time.perf_counter() - t:.1f} s (not timed) "
                  f"into {store}")
        else:
            print(f"reusing the store {store} (expecting {expected} records)")
        load = os.getloadavg()[0]
        print(f"{os.cpu_count()} CPUs, load average {load:.2f} before the build"
              + (" (busy: other processes will slow the build)" if load > 0.5 else ""))
        cpu0 = _cpu_s()
        t = time.perf_counter()
        summary = build_site([store], work / "site")
        took = time.perf_counter() - t
        cpu = _cpu_s() - cpu0
        rows = summary["rows"]
        print(f"built {summary['pages']} pages, {summary['tables']} tables from {rows} rows "
              f"in {took:.1f} s: {rows / took:,.0f} rows/s")
        ncpu = os.cpu_count() or 1
        print(f"CPU time {cpu:.1f} s (this process and its workers), {cpu / took:.2f} CPUs busy "
              f"on average; lower bound of the wall time on {ncpu} idle CPUs: "
              f"{cpu / ncpu:.1f} s")
        print("  " + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings"].items()))
        ok = took < args.target_s and rows == expected
        print(f"target < {args.target_s:.0f} s for {expected} records: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
