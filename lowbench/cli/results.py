"""`lowbench results table`: evaluate records and asv results as one table."""

from __future__ import annotations

import argparse
import json
import sys

from lowbench.errors import LowbenchError

#: ``marks``: what sets a row apart from the reference cell, as on the site ("checkpoint
#: 1a2b3c4d", "3/21 pairs"); empty for a full run of the shipped weights.
COLUMNS = ("source", "commit", "machine", "task", "model", "quant", "marks", "psnr_db", "ssim",
           "latency_median_ms", "end_to_end_ms", "peak_rss_mib", "swap_peak_mib",
           "energy_per_inference_net_mj", "size_mib")


def run_from_args(args: argparse.Namespace) -> int:
    """Print every row (keyed by commit, machine, task, model, quant); ``--json`` for all
    fields (exact ``size_bytes``). Units in the column names (ms, MiB, mJ, dB); the size in
    MiB with 2 decimals, as everywhere (:func:`lowbench.units.format_mib`)."""
    from pathlib import Path

    from tabulate import tabulate

    from lowbench.paths import user_results_folders
    from lowbench.results import load_table
    from lowbench.site.model import variant_of
    from lowbench.units import format_mib

    folders = [Path(f) for f in args.results] if args.results else user_results_folders()
    for f in folders:
        if not f.is_dir():
            raise LowbenchError(f"results folder {f} does not exist; pass --results DIR "
                                "(a folder of evaluate records and/or asv results)")
    table = load_table(folders)
    if args.json:
        rows = [{k: v for k, v in r.items() if k != "gallery"} for r in table.rows]
        sys.stdout.write(json.dumps(rows, indent=1, sort_keys=True, default=str) + "\n")
        return 0

    def cell(r: dict, c: str) -> object:
        if c == "commit":
            return str(r.get(c))[:10]
        if c == "marks":
            return ", ".join(variant_of(r).marks) if r.get("source") == "evaluate" else ""
        if c == "size_mib":
            return format_mib(r.get("size_bytes"), missing=None)
        return r.get(c)

    rows = [[cell(r, c) for c in COLUMNS] for r in table.rows]
    print(tabulate(rows, headers=COLUMNS, floatfmt=".2f", missingval="n/a"))
    print(f"\n{len(table.rows)} rows from {len(table.machines)} machine(s)")
    return 0
