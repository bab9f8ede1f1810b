"""The swap curve: one variant on a full Sony frame at several memory limits and tile sizes.

    python benchmarks/memory_curve.py [--model sid] [--quant fp32] [--task synth-full]
        [--tiles none,512,256] [--limits 1GiB,1.5GiB,2GiB,3GiB,none] [--overlap 32]
        [--runs 1] [--threads N] [--out results/memory-curves]

Every tile size (packed px; ``none``: the whole frame at once) x memory limit (``none``: no
limit) runs the harness's clean memory worker (the one behind every record's peak RSS) on the
task's first frame under that limit (a cgroup, swap left on: see
``lowbench.measure.memory_limit``) and prints its outcome (completed / killed by the limit),
peak RSS and swap (MiB), forward ms, major faults and pages swapped in/out. Then, per tile
size, the smallest limit it survived. The curve document goes to ``--out`` (one JSON per task x
model x quant x machine, written atomically); ``lowbench site build`` draws it on the site's
Memory page. Figures are this machine's, this run's; the header names the machine and its swap.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tabulate import tabulate

from lowbench.fsutil import atomic_write_text
from lowbench.measure.memory_curve import run_curve
from lowbench.measure.memory_limit import parse_size
from lowbench.paths import git_checkout_root
from lowbench.results.provenance import machine_id


def _tiles(text: str) -> list[int | None]:
    return [None if t == "none" else int(t) for t in text.split(",")]


def _limits(text: str) -> list[int | None]:
    return [None if t == "none" else parse_size(t) for t in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    """Run the curve, print it, write its document; exit 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sid")
    p.add_argument("--quant", default="fp32")
    p.add_argument("--task", default="synth-full")
    p.add_argument("--tiles", default="none,512,256", type=_tiles)
    p.add_argument("--limits", default="1GiB,1.5GiB,2GiB,3GiB,none", type=_limits)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    repo = git_checkout_root()
    p.add_argument("--out", default=str((repo or Path(".")) / "results" / "memory-curves"))
    args = p.parse_args(argv)

    doc = run_curve(args.model, args.quant, args.task, tiles=args.tiles, limits=args.limits,
                    overlap=args.overlap, runs=args.runs, threads=args.threads,
                    say=lambda m: print(m, file=sys.stderr, flush=True))
    m = doc["machine"]
    print(f"{doc['model']} {doc['quant']} on {doc['task']} ({doc['frame_packed_hw'][0]} x "
          f"{doc['frame_packed_hw'][1]} packed), overlap {doc['overlap_px']} px, "
          f"{doc['runs']} pass(es) per point")
    print(f"machine: {doc['machine_label']}; cpu {m.get('cpu')}; RAM {m.get('ram_mib')} MiB; "
          f"swap {doc['swap_total_mib']} MiB; threads {doc['threads']}")

    def f(v: float | None, fmt: str = "{:.0f}") -> str:
        return "-" if v is None else fmt.format(v)

    rows = [[pt["tile_px"] or "none", pt["limit_label"], pt["outcome"], f(pt["peak_rss_mib"]),
             f(pt["rss_sampled_peak_mib"]), f(pt["swap_peak_mib"]),
             f(pt["forward_ms_median"]), pt["major_faults"] if pt["major_faults"] is not None
             else "-", (pt["vmstat"] or {}).get("pswpout", "-")] for pt in doc["points"]]
    print(tabulate(rows, headers=["tile", "limit", "outcome", "peak RSS MiB",
                                  "sampled RSS MiB", "swap MiB", "forward ms", "major faults",
                                  "pages swapped out"]))
    print("smallest limit survived, by tile:",
          ", ".join(f"{k}: {v}" for k, v in doc["smallest_surviving_limit"].items()))
    name = (f"{doc['task']}__{doc['model']}__{doc['quant']}__"
            f"{machine_id(doc['machine'])}.json")
    path = atomic_write_text(Path(args.out) / name,
                             json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    print(f"curve: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
