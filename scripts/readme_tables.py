"""Print the README's results tables (markdown) from published records: the latest evaluate run
of every eager-torch variant per machine, with quantization deltas against fp32; the runtime
axis (each runtime's fastest row within 0.3 dB PSNR of eager torch fp32, per model); then the
paired QAT-vs-static PSNR differences (mean and standard error over the task's pairs, dB).

    python scripts/readme_tables.py [--results results]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics

from lowbench.models.registry import LEARNED_MODELS, MODEL_NAMES, QUANT_NAMES
from lowbench.results.records import iter_records
from lowbench.results.table import load_table
from lowbench.runtimes.registry import RUNTIME_NAMES
from lowbench.site.model import group_tables, latest, variant_of
from lowbench.units import SIZE_UNIT, format_mib

QUANTS = QUANT_NAMES
MODELS = MODEL_NAMES
RUNTIMES = RUNTIME_NAMES
#: A runtime row counts for the runtime table when it loses at most this much PSNR (dB) against
#: eager torch fp32 of the same model.
MAX_PSNR_LOSS_DB = 0.3


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
        every = [r for r in lt.rows if variant_of(r).is_reference]
        rows = [r for r in every if r.get("runtime", "torch") == "torch"]
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
                    short = why.split(":")[0] + (f" (emulated fp16, {slow.group(1)})" if slow
                                                 else " (no native fp16 on this CPU)"
                                                 if "no native fp16" in why else "")
                    print(f"| {m} | {q} | {short} |" + " |" * 10)
                    continue
                d = (r["psnr_db"] - base["psnr_db"]) if base and q != "fp32" else None
                sp = (base["latency_median_ms"] / r["latency_median_ms"]
                      if base and q != "fp32" else None)
                ql = r.get("quantized_layers")
                if r.get("quantized_nothing"):
                    ql_text = "0 (quantized nothing)"
                else:
                    ql_text = "-" if q in ("fp32", "fp16", "bf16") else str(ql)
                print(f"| {m} | {q} | {_f(r['psnr_db'])} | {_f(d, '{:+.2f}')} "
                      f"| {_f(r['ssim'], '{:.4f}')} | {_f(r['latency_median_ms'], '{:.1f}')} "
                      f"| {_f(r['latency_p90_ms'], '{:.1f}')} | {_f(sp, '{:.2f}x')} "
                      f"| {_f(r['end_to_end_ms'], '{:.1f}')} | {_f(r['peak_rss_mib'], '{:.0f}')} "
                      f"| {_f(r['swap_peak_mib'], '{:.0f}')} "
                      f"| {format_mib(r['size_bytes'])} | {ql_text} |")
        print()
        _print_runtimes(every, by)
        _print_qat_vs_static(records, by)
    return 0


def _print_runtimes(rows: list[dict], torch_by: dict) -> None:
    """Per model and runtime: the fastest ok row within :data:`MAX_PSNR_LOSS_DB` of eager torch
    fp32 (quant, executed precision, median ms, speed-up vs torch fp32, PSNR change)."""
    present = [rt for rt in RUNTIMES if any(r.get("runtime", "torch") == rt for r in rows)]
    if present == ["torch"] or not present:
        return
    print(f"Fastest row per runtime within {MAX_PSNR_LOSS_DB} dB PSNR of eager torch fp32 "
          "(quant, precision the runtime executed, median ms, speed-up vs torch fp32, dPSNR):\n")
    print("| model | " + " | ".join(present) + " |")
    print("|---|" + "---|" * len(present))
    for m in LEARNED_MODELS:
        base = torch_by.get((m, "fp32"))
        if base is None or base.get("latency_median_ms") is None:
            continue
        cells = []
        for rt in present:
            ok = [r for r in rows if r["model"] == m and r.get("runtime", "torch") == rt
                  and r["status"] == "ok" and r.get("latency_median_ms")
                  and r["psnr_db"] >= base["psnr_db"] - MAX_PSNR_LOSS_DB]
            if not ok:
                cells.append("-")
                continue
            best = min(ok, key=lambda r: r["latency_median_ms"])
            cells.append(f"{best['quant']} ({best.get('precision') or '?'}) "
                         f"{best['latency_median_ms']:.1f} ms, "
                         f"{base['latency_median_ms'] / best['latency_median_ms']:.2f}x, "
                         f"{best['psnr_db'] - base['psnr_db']:+.2f} dB")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print()


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
