"""`lowbench list tasks|models|quants [--json]`: what can be evaluated."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `lowbench list` to ``parser``."""
    parser.add_argument("what", choices=["tasks", "models", "quants"], help="what to list")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def run(args: argparse.Namespace) -> int:
    """Print the tasks, models (with parameters, MACs and size) or quantization variants as a
    table, or ``--json``; exit code 0."""
    from tabulate import tabulate

    if args.what == "tasks":
        from lowbench.tasks import all_tasks

        rows = [{"name": t.name, "version": t.version, "split": t.split, "kind": t.kind,
                 "pairs": t.expected_pairs,
                 "crop": f"{t.crop}x{t.crop} raw" if t.crop else "full",
                 "exclusions": list(t.exclusions), "default": t.is_default,
                 "description": " ".join(t.description.split())} for t in all_tasks()]
        if args.json:
            _print_json(rows)
        else:
            print(tabulate([{k: v for k, v in r.items() if k != "description"} for r in rows],
                           headers="keys"))
        return 0
    if args.what == "models":
        from lowbench.models.registry import MODEL_NAMES
        from lowbench.models.table import model_rows

        rows = model_rows(MODEL_NAMES, packed_hw=(256, 256))
        if args.json:
            _print_json(rows)
        else:
            print(tabulate(rows, headers="keys", floatfmt=".2f"))
            print("\nMACs at a 512 x 512 raw input (256 x 256 packed).")
        return 0
    from lowbench.quant.recipes import QUANT_DESCRIPTIONS

    rows = [{"name": k, "description": v} for k, v in QUANT_DESCRIPTIONS.items()]
    if args.json:
        _print_json(rows)
    else:
        print(tabulate(rows, headers="keys"))
    return 0
