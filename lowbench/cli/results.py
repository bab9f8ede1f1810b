"""`lowbench results table`: evaluate records and asv results as one table."""

from __future__ import annotations

import argparse
import json
import sys

from lowbench.errors import LowbenchError
from lowbench.results.columns import Column, results_table_columns, shown

#: Identity columns; ``runtime``: the deployment runtime (``torch``: eager PyTorch, every
#: record from before runtimes were recorded); ``marks``: what sets a row apart from the
#: reference cell, as on the site ("checkpoint 1a2b3c4d", "3/21 pairs"); empty for a full run
#: of the shipped weights. The metric columns follow: the catalogue's ``results_table`` view
#: (lowbench.results.columns), less optional columns no row holds (``build_s`` before runtimes).
KEY_COLUMNS = ("source", "commit", "machine", "task", "model", "quant", "runtime", "marks")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lowbench results table [--results DIR]... [--json]`."""
    rsub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = rsub.add_parser("table", help="print the combined table")
    t.add_argument("--results", action="append", default=None,
                   help="results folder (repeatable; default: the checkout's published "
                        "results/, your asv runs in .asv/results and the user results store)")
    t.add_argument("--json", action="store_true", help="print every field as JSON")


def run(args: argparse.Namespace) -> int:
    """Print every row (keyed by commit, machine, task, model, quant, runtime); ``--json`` for all
    fields (exact ``size_bytes``). Units in the column names (ms, MiB, mJ, dB); a column the
    catalogue shows in another unit than the row's (the size: bytes -> MiB with 2 decimals, as
    everywhere) is shown as the site shows it."""
    from pathlib import Path

    from tabulate import tabulate

    from lowbench.paths import user_results_folders
    from lowbench.results.table import load_table
    from lowbench.site.model import variant_of

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

    present = set(shown((c.name for _, c in results_table_columns()), table.rows))
    metrics = [(name, c) for name, c in results_table_columns() if c.name in present]

    def cell(r: dict, c: str) -> object:
        if c == "commit":
            return str(r.get(c))[:10]
        if c == "marks":
            return ", ".join(variant_of(r).marks) if r.get("source") == "evaluate" else ""
        return r.get(c)

    def metric_cell(r: dict, col: Column) -> object:
        v = r.get(col.name)
        if v is None or col.divisor == 1:
            return v
        return col.show(v)  # in the unit its name says, e.g. size_mib

    rows = [[cell(r, c) for c in KEY_COLUMNS] + [metric_cell(r, col) for _, col in metrics]
            for r in table.rows]
    headers = [*KEY_COLUMNS, *(name for name, _ in metrics)]
    print(tabulate(rows, headers=headers, floatfmt=".2f", missingval="n/a"))
    print(f"\n{len(table.rows)} rows from {len(table.machines)} machine(s)")
    return 0
