"""`lowbench evaluate`: run the harness on one variant, print a table, write one record."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lowbench.errors import LowbenchError
from lowbench.fsutil import check_output_folder


def config_from_args(args: argparse.Namespace):  # -> EvalConfig (import kept lazy)
    """The harness configuration of parsed `lowbench evaluate` arguments."""
    from lowbench.harness import EvalConfig

    # ranges of --threads, --limit and the latency options are checked by the parser
    if args.tegrastats is not None:
        from lowbench.energy.meter import check_tegrastats_path

        check_tegrastats_path(args.tegrastats)
    return EvalConfig(
        model=args.model, quant=args.quant, task=args.task, data_root=args.data_root,
        checkpoint=args.checkpoint, device=args.device, threads=args.threads, limit=args.limit,
        tegrastats=args.tegrastats, latency_budget_s=args.latency_budget,
        latency_min_runs=args.latency_min_runs, memory=not args.no_memory,
        energy=not args.no_energy, command=["lowbench", *sys.argv[1:]])


def out_folder(args: argparse.Namespace) -> Path:
    """Where the record and gallery PNGs go: ``--out``, the checkout's ``results/`` with
    ``--publish``, else the user results store (:func:`lowbench.paths.results_store`)."""
    from lowbench.paths import published_results_dir, results_store

    if args.publish and args.out is not None:
        raise LowbenchError("--publish and --out both choose where the record goes; pass one")
    if args.out is not None:
        return Path(args.out)
    return published_results_dir() if args.publish else results_store()


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the record atomically into :func:`out_folder` (the user results store
    unless ``--out`` or ``--publish``), print a table (or ``--json``).

    Exit code 0 for status ok/unsupported, 2 when the variant failed (NaN/Inf output)."""
    if args.model == "libraw" and args.checkpoint is not None:
        raise LowbenchError(f"libraw has no weights, so --checkpoint {args.checkpoint} would be "
                            "ignored; drop --checkpoint or pick a learned model")
    out = out_folder(args)  # before torch is imported: a wrong --publish answers at once
    from tabulate import tabulate

    from lowbench.harness import evaluate, summary_rows
    from lowbench.progress import Progress
    from lowbench.results.records import write_record

    cfg = config_from_args(args)
    out = check_output_folder(out)
    t0 = time.perf_counter()

    # on stderr, terminal or not (CI logs, nohup): a tqdm bar on a TTY, else a line every few s
    reporter = Progress(f"evaluate {cfg.model}/{cfg.quant}")

    def progress(pairs):
        return reporter.iterate(pairs, "pairs")

    def status(msg: str) -> None:
        reporter.stage(msg)

    with reporter:
        record = evaluate(cfg, results_dir=out, progress=progress, status=status)
    path = write_record(record, out)
    if args.json:
        sys.stdout.write(json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
    else:
        title = (f"{cfg.model} / {cfg.quant} on {record['task']['name']} "
                 f"({record['task']['pairs_evaluated']} pairs, "
                 f"{record['environment']['machine_label']})")
        print(title)
        print(tabulate(summary_rows(record), headers=["metric", "value", "unit"]))
        print(f"\nrecord: {path}  ({time.perf_counter() - t0:.0f} s)")
    if record["status"] == "failed":
        print(f"lowbench: error: {record['failure']['reason']}; the variant is marked failed in "
              f"{path}", file=sys.stderr)
        return 2
    if record["status"] == "unsupported":
        print(f"lowbench: warning: {cfg.model}/{cfg.quant} is unsupported here: "
              f"{record['failure']['reason']} (recorded in {path})", file=sys.stderr)
    return 0
