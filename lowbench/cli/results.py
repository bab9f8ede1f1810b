"""`lowbench results table`: evaluate records and asv results as one table; `lowbench results
compare A B`: did anything change from A to B (:mod:`lowbench.results.compare`)."""

from __future__ import annotations

import argparse
import json
import os
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
    c = rsub.add_parser("compare", help="did a metric change from A to B? (rank test on the "
                                        "runs' raw values + minimum effect, per metric)")
    c.add_argument("before", metavar="A", help="a record file, or a commit (sha prefix, or a "
                                               "git revision such as HEAD~1)")
    c.add_argument("after", metavar="B", nargs="?", default=None,
                   help="a record file, or a commit (as A); without B, A is compared with the "
                        "commit measured before it (by commit position)")
    c.add_argument("--results", action="append", default=None,
                   help="results folder to find commits in (repeatable; default as `table`)")
    c.add_argument("--metric", action="append", default=None,
                   help="compare only this metric (repeatable; default: every metric)")
    c.add_argument("--all", action="store_true",
                   help="list unchanged metrics too (default: changes and n/a only)")
    c.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when any metric regressed (for CI)")
    c.add_argument("--json", action="store_true", help="print the verdicts as JSON")


def run(args: argparse.Namespace) -> int:
    """`lowbench results ACTION`."""
    return run_compare(args) if getattr(args, "action", "table") == "compare" else run_table(args)


def _folders(args: argparse.Namespace) -> list:
    """The results folders of ``--results`` (checked), else the default ones."""
    from pathlib import Path

    from lowbench.paths import user_results_folders

    folders = [Path(f) for f in args.results] if args.results else user_results_folders()
    for f in folders:
        if not f.is_dir():
            raise LowbenchError(f"results folder {f} does not exist; pass --results DIR "
                                "(a folder of evaluate records and/or asv results)")
    return folders


def run_table(args: argparse.Namespace) -> int:
    """Print every row (keyed by commit, machine, task, model, quant, runtime); ``--json`` for all
    fields (exact ``size_bytes``). Units in the column names (ms, MiB, mJ, dB); a column the
    catalogue shows in another unit than the row's (the size: bytes -> MiB with 2 decimals, as
    everywhere) is shown as the site shows it."""
    from tabulate import tabulate

    from lowbench.results.table import load_table
    from lowbench.site.model import variant_of

    table = load_table(_folders(args))
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


def _runs_of(ref: str, rows: list[dict], what: str) -> tuple[list[dict], str]:
    """The rows ``ref`` names (a record file, a commit sha prefix or a git revision) and a
    label; one clear error when it names none."""
    from pathlib import Path

    from lowbench.results.records import read_record
    from lowbench.results.table import row_from_record

    path = Path(ref)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise LowbenchError(f"{what} {ref}: no such record file")
        try:
            return [row_from_record(read_record(path))], path.name
        except (ValueError, OSError) as err:  # InvalidRecord, bad JSON, unreadable
            raise LowbenchError(f"{what} {ref} is not a lowbench record: {err}") from None
    sha = ref.lower()
    hits = [r for r in rows if str(r.get("commit", "")).startswith(sha)] if len(sha) >= 4 else []
    if not hits:
        resolved = _git_revision(ref)
        hits = [r for r in rows if r.get("commit") == resolved] if resolved else []
    if not hits:
        raise LowbenchError(f"{what} {ref!r} names no record file and no measured commit in "
                            "the results folders; pass a record .json, a commit sha prefix "
                            "(>= 4 hex) or a git revision that was measured (see `lowbench "
                            "results table`)")
    commits = {r["commit"] for r in hits}
    if len(commits) > 1:
        raise LowbenchError(f"{what} {ref!r} matches {len(commits)} commits "
                            f"({', '.join(sorted(c[:12] for c in commits))}); give more hex")
    return hits, hits[0]["commit"][:10]


def _predecessor(after: list[dict], rows: list[dict]) -> tuple[list[dict], str]:
    """The runs of the latest commit measured before ``after``'s (by commit position, then
    creation time) that share a variant with it; one clear error when there is none."""
    from lowbench.results.compare import VARIANT_KEY

    keys = {tuple(r.get(k) for k in VARIANT_KEY) for r in after}
    commit = after[0]["commit"]
    mark = max((r.get("commit_position") or -1, str(r["created_utc"])) for r in after)
    earlier: dict[str, tuple] = {}
    for r in rows:
        order = (r.get("commit_position") or -1, str(r["created_utc"]))
        if (r["commit"] != commit and order < mark
                and tuple(r.get(k) for k in VARIANT_KEY) in keys):
            earlier[r["commit"]] = max(earlier.get(r["commit"], order), order)
    if not earlier:
        raise LowbenchError(f"no commit measured before {commit[:10]} shares a variant with it; "
                            "pass A and B explicitly")
    prev = max(earlier, key=earlier.__getitem__)
    return [r for r in rows if r["commit"] == prev], prev[:10]


def _noise_floors(rows: list[dict]) -> dict[tuple, dict[str, float]]:
    """The noise floors each history table of ``rows`` learned (``Table.key`` -> metric ->
    fraction): the same minimum effects the site's history applies."""
    if not rows:
        return {}
    from lowbench.site.history import table_floors
    from lowbench.site.model import group_tables

    return {t.key: table_floors(t) for t in group_tables(rows)}


def _git_revision(ref: str) -> str | None:
    """The full sha of git revision ``ref`` in the current checkout, or None."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options",
                              f"{ref}^{{commit}}"], capture_output=True, text=True, timeout=20,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_compare(args: argparse.Namespace) -> int:
    """Print, per variant measured in both A and B, each metric's verdict (regression,
    improvement, same, n/a) with its reasoning; the common session shifts first. Exit 1 with
    ``--fail-on-regression`` when anything regressed."""
    from tabulate import tabulate

    from lowbench.results.columns import header, metric_names, number
    from lowbench.results.compare import compare_many, pair_runs
    from lowbench.results.table import load_table
    from lowbench.site.model import table_key

    metrics = tuple(args.metric or metric_names())
    unknown = [m for m in metrics if m not in metric_names()]
    if unknown:
        raise LowbenchError(f"--metric {unknown[0]}: not a metric; use one of: "
                            f"{', '.join(metric_names())}")
    files = all(a.endswith(".json") or os.path.isfile(a)
                for a in (args.before, args.after))
    rows = [] if files else load_table(_folders(args)).rows
    if args.after is None:
        after, label_b = _runs_of(args.before, rows, "A")
        before, label_a = _predecessor(after, rows)
    else:
        before, label_a = _runs_of(args.before, rows, "A")
        after, label_b = _runs_of(args.after, rows, "B")
    pairs = pair_runs(before, after)
    if not pairs:
        raise LowbenchError(f"A ({label_a}) and B ({label_b}) share no successful variant run "
                            "(same machine, task, model, quant, runtime, checkpoint, pairs)")
    per, shifts = {}, []
    floors = _noise_floors(rows)
    groups: dict[tuple, dict] = {}
    for key, pair in pairs.items():
        groups.setdefault(table_key(pair[0]), {})[key] = pair
    for tkey, group in groups.items():
        got, common = compare_many(group, metrics, floors=floors.get(tkey))
        per.update(got)
        shifts += common
    if args.json:
        out = {"before": label_a, "after": label_b,
               "shifts": [_verdict_json(v) for v in shifts],
               "variants": [{**{k: p[0].get(k) for k in ("model", "quant", "runtime",
                                                          "machine", "task")},
                             "verdicts": [_verdict_json(v) for v in per[key]]}
                            for key, p in pairs.items()]}
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
    else:
        print(f"A = {label_a}, B = {label_b}: {len(pairs)} variant(s) measured in both")
        for v in shifts:
            print(f"session shift of {header(v.metric)}: x{v.after:.3f} ({v.kind}): {v.reason}")
        for key, (b, _) in pairs.items():
            shown_v = [v for v in per[key] if args.all or v.kind != "same"
                       and not (v.before is None and v.after is None)]
            title = f"{b['model']} / {b['quant']} / {b.get('runtime') or 'torch'} on {b['task']}"
            if not shown_v:
                print(f"\n{title}: no change in {len(per[key])} metric(s)")
                continue
            table = [[header(v.metric), number(v.before, v.metric), number(v.after, v.metric),
                      "" if v.relative is None else f"{v.relative:+.1%}", v.kind, v.reason]
                     for v in shown_v]
            print(f"\n{title}")
            print(tabulate(table, headers=["metric", "A", "B", "change", "verdict", "why"],
                           missingval="n/a"))
    regressions = sum(v.bad for vs in per.values() for v in vs)
    if not args.json:
        print(f"\n{regressions} regression(s), "
              f"{sum(v.kind == 'improvement' for vs in per.values() for v in vs)} "
              "improvement(s)")
    return 1 if args.fail_on_regression and regressions else 0


def _verdict_json(v) -> dict:
    """One verdict as JSON (units: the metric's)."""
    return {"metric": v.metric, "before": v.before, "after": v.after, "kind": v.kind,
            "relative": v.relative, "threshold": v.threshold, "shift": v.shift,
            "test": None if v.test is None else v.test.test,
            "p_value": None if v.test is None else v.test.p_value, "reason": v.reason}
