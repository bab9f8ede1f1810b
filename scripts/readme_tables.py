"""Print the README's results tables (markdown) from published records: the latest evaluate run
of every variant per machine, with quantization deltas against fp32, then the paired QAT-vs-static
PSNR differences (mean and standard error over the task's pairs, dB).

    python scripts/readme_tables.py [--results results]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics

from lowbench.models.registry import MODEL_NAMES, QUANT_NAMES
from lowbench.results.records import iter_records
from lowbench.results.table import load_table
from lowbench.site.model import group_tables, latest, variant_of
from lowbench.units import SIZE_UNIT, format_mib

QUANTS = QUANT_NAMES
MODELS = MODEL_NAMES


def _f(v: object, fmt: str = "{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def main() -> int:
    """Print one table per (task, machine) at its latest commit (the site's own rule)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", default="results")
    args = ap.parse_args()
    evaluate_rows = [r for r in load_table([args.results]).rows if r["source"] == "evaluate"]
    records = {r["run_id"]: r for _, r in iter_records([args.results])}  # for per-pair figures
    for lt in map(latest, group_tables(evaluate_rows)):
        # the reference cells only: a user checkpoint or a --limit subset measured something else
        rows = [r for r in lt.rows if variant_of(r).is_reference]
        machine, task = lt.table.machine, lt.table.task
        by = {(r["model"], r["quant"]): r for r in rows}
        commits = sorted({r["commit"][:10] for r in rows})
        print(f"**{task}** on *{machine}* (commit {', '.join(commits)}; "
              f"{rows[0]['pairs']} pairs; energy: "
              f"{rows[0]['reasons'].get('energy_per_inference_net_mj', 'measured')})\n")
        print("| model | quant | PSNR dB | dPSNR vs fp32 | SSIM | latency median ms | p90 ms "
              "| speed-up vs fp32 | end-to-end ms | peak RSS MiB | peak swap MiB "
              f"| size {SIZE_UNIT} "
              "| int8 layers |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for m in MODELS:
            base = by.get((m, "fp32"))
            for q in QUANTS:
                r = by.get((m, q))
                if r is None:
                    continue
                if r["status"] != "ok":
                    why = r["reasons"].get("psnr_db", r["status"])
                    slow = re.search(r"(\d+x slower)", why)
                    short = why.split(":")[0] + (f" (emulated fp16, {slow.group(1)})"
                                                 if slow else "")
                    print(f"| {m} | {q} | {short} |" + " |" * 10)
                    continue
                d = (r["psnr_db"] - base["psnr_db"]) if base and q != "fp32" else None
                sp = (base["latency_median_ms"] / r["latency_median_ms"]
                      if base and q != "fp32" else None)
                ql = r.get("quantized_layers")
                if r.get("quantized_nothing"):
                    ql_text = "0 (quantized nothing)"
                else:
                    ql_text = "-" if q in ("fp32", "fp16") else str(ql)
                print(f"| {m} | {q} | {_f(r['psnr_db'])} | {_f(d, '{:+.2f}')} "
                      f"| {_f(r['ssim'], '{:.4f}')} | {_f(r['latency_median_ms'], '{:.1f}')} "
                      f"| {_f(r['latency_p90_ms'], '{:.1f}')} | {_f(sp, '{:.2f}x')} "
                      f"| {_f(r['end_to_end_ms'], '{:.1f}')} | {_f(r['peak_rss_mib'], '{:.0f}')} "
                      f"| {_f(r['swap_peak_mib'], '{:.0f}')} "
                      f"| {format_mib(r['size_bytes'])} | {ql_text} |")
        print()
        _print_qat_vs_static(records, by)
    return 0


def _per_pair_psnr(records: dict[str, dict], row: dict) -> dict[str, float]:
    """pair id -> PSNR (dB) from the record of ``row`` (``records``: run id -> record)."""
    return {p["pair"]: p["psnr_db"] for p in records[row["run_id"]]["quality"]["per_pair"]}


def _print_qat_vs_static(records: dict[str, dict], by: dict) -> None:
    """QAT minus static PSNR per model, paired over the same pairs: mean, standard error (dB)
    and how many pairs QAT wins (``records``: run id -> record)."""
    lines = []
    for m in MODELS:
        if (m, "qat") not in by or (m, "static") not in by:
            continue
        qat = _per_pair_psnr(records, by[m, "qat"])
        static = _per_pair_psnr(records, by[m, "static"])
        d = [qat[k] - static[k] for k in sorted(static)]
        mean, se = statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))
        wins = sum(x > 0 for x in d)
        lines.append(f"| {m} | {mean:+.3f} | {se:.3f} | {wins} of {len(d)} |")
    if lines:
        print("| model | qat - static PSNR dB (mean over pairs) | standard error dB "
              "| pairs where qat is better |")
        print("|---|---:|---:|---:|")
        print("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
