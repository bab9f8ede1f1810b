"""`lowbench ingest`: a device's result.tar -> result records (the work is
:mod:`lowbench.bundle.ingest`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add every `lowbench ingest` option to ``p``."""
    p.add_argument("archive", nargs="+", help="result.tar file(s) written by a bundle's run.py")
    p.add_argument("--bundle", default=None,
                   help="the bundle folder the archive was made from (default: found by its "
                        "id among the bundles made here)")
    p.add_argument("--data-root", default=None,
                   help="folder holding the task's raw files (the ground truth)")
    p.add_argument("--out", default=None,
                   help="folder for the records (default: the user results store)")
    p.add_argument("--publish", action="store_true",
                   help="write into the checkout's tracked results/ instead")


def run(args: argparse.Namespace) -> int:
    """Check and score every archive, then write its records (all archives are read before
    anything is written). Exit code 0."""
    from tabulate import tabulate

    from lowbench.bundle.ingest import ingest
    from lowbench.cli.evaluate import out_folder
    from lowbench.fsutil import check_output_folder
    from lowbench.results.records import write_record

    out = check_output_folder(out_folder(args))
    records = []
    for archive in args.archive:
        records += ingest(Path(archive), bundle=Path(args.bundle) if args.bundle else None,
                          data_root=args.data_root)
    from lowbench.results.records import validate

    for record in records:  # every record is valid before any is written
        validate(record)
    rows = []
    for record in records:
        path = write_record(record, out)
        lat = record.get("latency") or {}
        q = record.get("quality") or {}
        mem = record.get("memory") or {}
        en = record.get("energy") or {}
        rows.append([record["bundle"]["variant"], record["status"],
                     (record["variant"].get("runtime") or {}).get("precision"),
                     q.get("psnr_db"), lat.get("median_ms"), mem.get("peak_rss_mib"),
                     en.get("energy_per_inference_net_mj"), path.name])
        machine = record["environment"]["machine_label"]
    print(f"{len(records)} record(s) from {machine} into {out}")
    print(tabulate(rows, headers=["variant", "status", "precision", "PSNR dB", "median ms",
                                  "peak RSS MiB", "net mJ", "record"], floatfmt=".2f"))
    return 0
