"""The A/A test of the regression verdicts on this machine: the same commit measured again and
again by the real front door, every round compared with the next by the code the history page
and `lowbench results compare` use.

    python benchmarks/aa_noise.py [--variants lighter/fp32,lighter/static,light/static,sid/qat]
        [--rounds 6] [--limit 3] [--threads N] [--keep DIR] [--json]
    python benchmarks/aa_noise.py --from DIR      # re-judge the rounds a --keep run left

Each round runs ``lowbench evaluate`` once per variant, each a fresh process (``--no-energy``;
the memory worker and the accuracy pass included, the latency loop with its default early
stopping), in the same order every round, so consecutive rounds are what a commit and its
predecessor look like when nothing changed. Consecutive rounds are compared with
:func:`lowbench.results.compare.compare_many` (rank tests, minimum effects, the common session
shift, and the noise floor the history would learn: estimated from the *other* steps, leave
one out, so no step judges itself); every flag is a false alarm. It prints the comparisons and
flags per metric, with and without the noise floor, the false-alarm rate with its 95%
Clopper-Pearson interval (scipy), and the common shifts seen.
Figures are this machine's, this run's; the header names the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from scipy.stats import binomtest
from tabulate import tabulate

from lowbench.environment import machine_info, machine_label
from lowbench.results.columns import header, metric_names
from lowbench.results.compare import (
    VARIANT_KEY,
    compare_many,
    net_steps,
    noise_floors,
    pair_runs,
)
from lowbench.results.records import read_record, record_files
from lowbench.results.table import row_from_record


def _round(variants: list[tuple[str, str]], out: Path, args: argparse.Namespace) -> list[dict]:
    rows = []
    for model, quant in variants:
        cmd = [sys.executable, "-m", "lowbench", "evaluate", "--model", model, "--quant", quant,
               "--limit", str(args.limit), "--no-energy", "--out", str(out)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    for path in record_files(out):
        rows.append(row_from_record(read_record(path)))
    return rows


def main() -> int:
    """Run the A/A rounds and print the false alarms (exit 0)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="lighter/fp32,lighter/static,light/static,sid/qat")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--limit", type=int, default=3, help="pairs scored per run")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--keep", type=Path, default=None, help="keep the records in DIR")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--from", dest="source", type=Path, default=None,
                   help="re-judge the round-NN folders a --keep run left in DIR")
    args = p.parse_args()
    if args.source is not None:
        folders = sorted(args.source.glob("round-*"))
        rounds = [[row_from_record(read_record(f)) for f in record_files(d)] for d in folders]
        return report(rounds, args, machine_label(machine_info()), 0.0)
    variants = [tuple(v.split("/")) for v in args.variants.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="lowbench-aa-"))
    machine = machine_info()
    print(f"# A/A on {machine_label(machine)} ({machine.get('cpu')}, {machine.get('cores')} "
          f"cores); {len(variants)} variants x {args.rounds} rounds, records in {root}",
          file=sys.stderr)
    rounds = []
    t0 = time.perf_counter()
    for r in range(args.rounds):
        rounds.append(_round(variants, root / f"round-{r:02d}", args))
        print(f"# round {r + 1}/{args.rounds} done ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
    return report(rounds, args, machine_label(machine), time.perf_counter() - t0)


def report(rounds: list[list[dict]], args: argparse.Namespace, machine: str,
           wall_s: float) -> int:
    """Compare every round with the next and print the false alarms (exit 0)."""
    metrics = metric_names()
    compared, flagged, shifts = Counter(), Counter(), []
    flags = []
    steps = [pair_runs(a, b) for a, b in zip(rounds, rounds[1:], strict=False)]
    unfloored = Counter()
    for r, pairs in enumerate(steps):
        floors = noise_floors(net_steps([s for k, s in enumerate(steps) if k != r], metrics))
        unfloored.update(v.metric for vs in compare_many(pairs, metrics)[0].values()
                         for v in vs if v.flagged)
        per, common = compare_many(pairs, metrics, floors=floors)
        shifts += [(r + 1, v.metric, round(v.after, 3), v.kind) for v in common]
        for key, verdicts in per.items():
            for v in verdicts:
                if v.kind in ("n/a",):
                    continue
                compared[v.metric] += 1
                if v.flagged:
                    flagged[v.metric] += 1
                    flags.append({"round": r + 1, "model": key[VARIANT_KEY.index("model")],
                                  "quant": key[VARIANT_KEY.index("quant")], "metric": v.metric,
                                  "kind": v.kind, "reason": v.reason})
    total, alarms = sum(compared.values()), sum(flagged.values())
    ci = binomtest(alarms, total).proportion_ci(0.95) if total else None
    summary = {"machine": machine, "variants": args.variants.split(","),
               "rounds": len(rounds),
               "false_alarms_without_floor": sum(unfloored.values()), "comparisons": total,
               "false_alarms": alarms,
               "rate": alarms / total if total else None,
               "rate_ci95": None if ci is None else [ci.low, ci.high],
               "per_metric": {m: [flagged[m], compared[m]] for m in metrics if compared[m]},
               "shifts": shifts, "flags": flags, "wall_s": round(wall_s, 1)}
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(tabulate([[header(m), compared[m], unfloored[m], flagged[m]]
                    for m in metrics if compared[m]],
                   headers=["metric", "comparisons", "false alarms, catalogue minimum only",
                            "false alarms, with the noise floor"]))
    rate = "n/a" if not total else (f"{alarms}/{total} = {alarms / total:.2%} (95% CI "
                                      f"{ci.low:.2%} to {ci.high:.2%})")
    print(f"\nfalse-alarm rate with the noise floor: {rate} (catalogue minimum only: "
          f"{sum(unfloored.values())}/{total})")
    for f in flags:
        print(f"  round {f['round']}: {f['model']}/{f['quant']} {f['metric']} {f['kind']}: "
              f"{f['reason']}")
    for r, metric, factor, kind in shifts:
        print(f"  session shift at round {r}: {metric} x{factor} ({kind})")
    return 0

if __name__ == "__main__":
    sys.exit(main())
