"""`lowbench list tasks|models|quants|runtimes [--json]`: what can be evaluated."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `lowbench list` to ``parser``."""
    parser.add_argument("what", choices=["tasks", "models", "quants", "runtimes"],
                        help="what to list")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--device", default="cpu",
                        help="runtimes: which are usable on this device (cpu, cuda)")


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
    if args.what == "runtimes":
        return _list_runtimes(args)
    from lowbench.quant.recipes import QUANT_DESCRIPTIONS

    rows = [{"name": k, "description": v} for k, v in QUANT_DESCRIPTIONS.items()]
    if args.json:
        _print_json(rows)
    else:
        print(tabulate(rows, headers="keys"))
    return 0


def _list_runtimes(args: argparse.Namespace) -> int:
    """Each runtime: usable here or why not, and per quant "yes" or the reason it cannot."""
    from tabulate import tabulate

    from lowbench.models.registry import QUANT_NAMES
    from lowbench.runtimes.registry import runtime_table

    rows = runtime_table(QUANT_NAMES, args.device)
    if args.json:
        _print_json(rows)
        return 0
    print(tabulate([{"runtime": r["name"], "usable here": "yes" if r["why_not"] is None
                     else f"no: {r['why_not']}",
                     "quants": ", ".join(q for q, why in r["quants"].items() if why is None)
                     or "-", "description": r["description"]} for r in rows],
                   headers="keys", maxcolwidths=[None, 48, None, 44]))
    unusable = [(r["name"], q, why) for r in rows if r["why_not"] is None
                for q, why in r["quants"].items() if why]
    if unusable:
        print("\nnot offered on a usable runtime (quant: why):")
        for name, quant, why in unusable:
            print(f"  {name} {quant}: {why}")
    return 0
