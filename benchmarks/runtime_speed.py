"""Prints every usable runtime x precision of each model: latency vs eager torch fp32, executed
precision, build time, artifact size and PSNR from the runtime's own outputs, in one run.

    python benchmarks/runtime_speed.py [--models sid,lighter] [--runtimes torch,openvino,...]
        [--quants fp32,bf16,...] [--threads 2] [--rounds 5] [--budget-s 0.3] [--min-runs 2]
        [--pairs 21] [--calibration-crops N] [--quick] [--json FILE]

Every runtime x quant that ``lowbench.runtimes.registry.why_not`` allows is deployed once
(``registry.deploy``; rows it skips or that refuse when deployed are printed with the reason),
then:

* quality: ``Session(EvalConfig(model, quant, runtime=...), variant=<deployed>).run_quality()``
  on the first ``--pairs`` pairs of the ``synth`` task (PSNR in dB from that runtime's outputs);
* latency: ``lowbench.measure.latency.measure_latency`` of ``Session.forward_once`` (model-only
  forward on the synth task's 1 x 4 x 256 x 256 packed input) with ``--threads`` threads, all
  rows of all models interleaved in ``--rounds`` rounds, so load from other processes hits every
  row alike (odd rounds in reverse order). A row's ms is the median of its per-round medians;
  its ratio is the median of the per-round ratios to eager torch fp32 of the same model (>1:
  faster than torch fp32). Each round prints the load average: under other processes' load
  torch's OpenMP rows slow down far more than ONNX Runtime's and OpenVINO's thread pools, so
  ratios of loaded rounds overstate the runtimes' speedups (the per-round figures are in
  ``--json``).

Per row it prints runtime, quant, executed precision (read back from the runtime), median ms,
ratio, the ratio's range over rounds, build s, artifact MiB (torch rows: the serialized
module, ``serialized_size_bytes``; torch-compile: none on disk), PSNR (dB) and the harness's
output check of the timed loop (TEST01). Then per model the best row (highest ratio) within
0.3 dB PSNR of torch fp32, and whether lighter's best row beats sid's best row (median of
per-round ms ratios).
Numbers are measured on this machine in this run; the header names the CPU and its ISA flags.
``--quick``: 2 rounds, 0.1 s budget, 1 timed run, 3 pairs (each explicit option wins).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from lowbench.environment import cpu_model
from lowbench.harness.session import EvalConfig, Session
from lowbench.measure.latency import measure_latency, set_threads
from lowbench.models.complexity import serialized_size_bytes
from lowbench.models.registry import QUANT_NAMES
from lowbench.quant.calibrate import DEFAULT_CALIBRATION, CalibrationSettings
from lowbench.runtimes.base import DeployRequest, RuntimeUnavailable
from lowbench.runtimes.registry import RUNTIME_NAMES, deploy, why_not
from lowbench.variants import Variant

MIB = 2**20
TASK = "synth"
#: PSNR loss (dB) vs torch fp32 of the same model that a "best row" may have.
MAX_PSNR_LOSS_DB = 0.3
#: ISA flags that decide which precisions a CPU runs natively (x86 /proc/cpuinfo names).
ISA_FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni",
             "avx512_fp16", "avx512f", "avx2")
FULL = {"rounds": 5, "budget_s": 0.3, "min_runs": 2, "pairs": None}
QUICK = {"rounds": 2, "budget_s": 0.1, "min_runs": 1, "pairs": 3}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo ``flags``; empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_header(threads: int) -> str:
    """One line: CPU model, cores, the ISA flags that matter (present / absent), threads and
    the versions of the runtimes installed."""
    flags = cpu_flags()
    have = [f for f in ISA_FLAGS if f in flags]
    lack = [f for f in ISA_FLAGS if f not in flags]
    versions = [f"torch {torch.__version__}"]
    for mod in ("onnxruntime", "openvino", "nncf"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} not installed")
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores; ISA has: {' '.join(have) or '-'}; "
            f"lacks: {' '.join(lack) or '-'}; {threads} threads; {', '.join(versions)}; "
            f"load average at start {load}")


@dataclass
class Row:
    """One deployed runtime x quant of a model and what was measured of it."""

    model: str
    runtime: str
    quant: str
    session: Session
    precision: str | None
    build_s: float | None
    size_bytes: int | None
    size_method: str | None
    psnr_db: float | None = None
    round_ms: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    output_check: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.model}/{self.runtime}/{self.quant}"

    @property
    def median_ms(self) -> float:
        return statistics.median(self.round_ms)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "runtime": self.runtime, "quant": self.quant,
                "precision": self.precision, "median_ms": self.median_ms,
                "ratio_vs_torch_fp32": self.ratio, "round_ms": self.round_ms,
                "round_ratios": self.ratios, "build_s": self.build_s,
                "size_bytes": self.size_bytes, "size_method": self.size_method,
                "psnr_db": self.psnr_db, "output_check": self.output_check,
                "runtime_info": self.session.variant.info.get("runtime")}


def deploy_row(model: str, runtime: str, quant: str, args: argparse.Namespace,
               calibration: CalibrationSettings) -> Row | str:
    """Deploy ``model`` x ``quant`` on ``runtime`` through the registry and wrap it in a
    harness Session; the reason instead when the runtime refuses it."""
    cfg = EvalConfig(model, quant, runtime=runtime, task=TASK, threads=args.threads,
                     limit=args.pairs, calibration=calibration, memory=False, energy=False,
                     gallery=False)
    request = DeployRequest(model, quant, threads=args.threads, input_hw=(256, 256),
                            task=TASK, calibration=calibration)
    try:
        variant: Variant = deploy(runtime, request)
    except RuntimeUnavailable as err:
        return str(err)
    if variant.module is None:
        return str(variant.info.get("reason") or (variant.info.get("runtime") or {})
                   .get("reason") or "no module")
    session = Session(cfg, variant=variant)
    info = variant.info["runtime"]
    artifact = info.get("artifact")
    if artifact:  # the deployed file(s) on disk, as the harness's size figure takes them
        size, method = artifact["bytes"], f"{artifact['format']} file on disk"
    elif runtime == "torch":  # the harness's serialized size of the module
        size, method = serialized_size_bytes(variant.module)
    else:  # torch-compile keeps its compiled code in this process: no file to weigh
        size, method = None, "no artifact (compiled in process)"
    return Row(model, runtime, quant, session, info.get("precision"), info.get("build_s"),
               size, method)


def measure_rounds(rows: list[Row], args: argparse.Namespace) -> list[float]:
    """Interleaved latency rounds over every row; per-round ratios to each model's torch fp32.
    Returns the 1-minute load average after each round (other processes' load: torch's
    OpenMP rows slow down far more under it than ONNX Runtime's and OpenVINO's pools)."""
    loads: list[float] = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        # every other round runs the rows in reverse order, so no row always follows the
        # same one (the previous runtime's threads may still spin on a small machine)
        for row in (rows if r % 2 == 0 else rows[::-1]):
            stats = measure_latency(row.session.forward_once, warmup=1, min_runs=args.min_runs,
                                    budget_s=args.budget_s)
            row.round_ms.append(stats["median_ms"])
        base = {row.model: row.round_ms[-1] for row in rows
                if row.runtime == "torch" and row.quant == "fp32"}
        for row in rows:
            row.ratios.append(base[row.model] / row.round_ms[-1])
        load = os.getloadavg()[0]
        loads.append(load)
        print(f"  round {r + 1}/{args.rounds}: {time.perf_counter() - t0:.0f} s, load average "
              f"(1 min, this run included) {load:.1f} on {os.cpu_count()} cores", flush=True)
    return loads


def skipped_lines(skipped: list[dict[str, str]]) -> list[str]:
    """``models runtime quants: reason``, one line per runtime and reason, in first-seen order
    (a runtime missing here is one line, not one per model and quant)."""
    groups: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for s in skipped:
        models, quants = groups.setdefault((s["runtime"], s["reason"]), ([], []))
        if s["model"] not in models:
            models.append(s["model"])
        if s["quant"] not in quants:
            quants.append(s["quant"])
    return [f"{','.join(models)} {runtime} {','.join(quants)}: {reason}"
            for (runtime, reason), (models, quants) in groups.items()]


def best_row(rows: list[Row], model: str) -> Row | None:
    """The highest-ratio row of ``model`` within MAX_PSNR_LOSS_DB of its torch fp32 PSNR."""
    ref = next(r for r in rows if r.model == model and r.runtime == "torch" and r.quant == "fp32")
    ok = [r for r in rows if r.model == model and r.psnr_db is not None and ref.psnr_db is not None
          and r.psnr_db >= ref.psnr_db - MAX_PSNR_LOSS_DB]
    return max(ok, key=lambda r: r.ratio, default=None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sid,lighter")
    ap.add_argument("--runtimes", default=",".join(RUNTIME_NAMES))
    ap.add_argument("--quants", default=",".join(QUANT_NAMES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=None, help=f"default {FULL['rounds']}")
    ap.add_argument("--budget-s", type=float, default=None,
                    help=f"timed seconds per row per round (default {FULL['budget_s']})")
    ap.add_argument("--min-runs", type=int, default=None,
                    help=f"timed runs per row per round at least (default {FULL['min_runs']})")
    ap.add_argument("--pairs", type=int, default=None,
                    help="synth pairs scored per row (default: all 21)")
    ap.add_argument("--calibration-crops", type=int, default=None,
                    help="int8 calibration crops (default: CalibrationSettings defaults)")
    ap.add_argument("--quick", action="store_true", help="short run: " + ", ".join(
        f"{k}={v}" for k, v in QUICK.items()))
    ap.add_argument("--json", type=Path, default=None, help="save every figure here")
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.rounds < 1 or args.min_runs < 1:
        ap.error("--rounds and --min-runs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Deploy, score, time and print the table (see the module docstring)."""
    args = parse_args(argv)
    started = time.perf_counter()
    threads = set_threads(args.threads)
    calibration = (DEFAULT_CALIBRATION if args.calibration_crops is None
                   else replace(DEFAULT_CALIBRATION, crops=args.calibration_crops))
    models = args.models.split(",")
    runtimes = args.runtimes.split(",")
    quants = ["torch:fp32"] + [f"{rt}:{q}" for rt in runtimes for q in args.quants.split(",")
                               if (rt, q) != ("torch", "fp32")]
    print(machine_header(threads))
    print(f"task {TASK}: latency on its 1x4x256x256 packed input (Session.forward_once, "
          f"model-only), {args.rounds} interleaved rounds x >= {args.min_runs} runs / "
          f"{args.budget_s} s per row; PSNR over {args.pairs or 'all'} pairs; calibration "
          f"{calibration.crops} crops of {calibration.crop_packed} px", flush=True)
    rows: list[Row] = []
    skipped: list[dict[str, str]] = []
    for model in models:
        for item in quants:
            runtime, quant = item.split(":")
            reason = why_not(runtime, quant)
            if reason is None:
                t0 = time.perf_counter()
                got = deploy_row(model, runtime, quant, args, calibration)
                if isinstance(got, Row):
                    got.psnr_db = got.session.run_quality()["quality"]["psnr_db"]
                    rows.append(got)
                    print(f"  built+scored {got.key} ({got.precision}) in "
                          f"{time.perf_counter() - t0:.0f} s", flush=True)
                    continue
                reason = f"refused when deployed: {got}"
            skipped.append({"model": model, "runtime": runtime, "quant": quant,
                            "reason": reason})
    if not any(r.runtime == "torch" and r.quant == "fp32" for r in rows):
        print("no torch fp32 row to compare with: nothing measured")
        return 1
    loads = measure_rounds(rows, args)
    for row in rows:
        row.output_check = row.session.output_check()

    print(f"\n{'model':8s} {'runtime':14s} {'quant':8s} {'executed':14s} {'ms':>8s} "
          f"{'vs fp32':>8s} {'range':>11s} {'build s':>8s} {'MiB':>7s} {'PSNR dB':>8s} "
          f"{'TEST01':>6s}")
    for row in rows:
        lo, hi = min(row.ratios), max(row.ratios)
        size = "-" if row.size_bytes is None else f"{row.size_bytes / MIB:.2f}"
        build = "-" if row.build_s is None else f"{row.build_s:.1f}"
        check = {True: "ok", False: "FAIL", None: "-"}[(row.output_check or {}).get("ok")]
        print(f"{row.model:8s} {row.runtime:14s} {row.quant:8s} {row.precision or '-':14s} "
              f"{row.median_ms:8.1f} {row.ratio:7.2f}x {lo:5.2f}-{hi:4.2f}x {build:>8s} "
              f"{size:>7s} {row.psnr_db:8.3f} {check:>6s}")
    print("MiB: the runtime's artifact on disk; torch rows: serialized module "
          "(lowbench.models.complexity.serialized_size_bytes); torch-compile: none on disk. "
          "vs fp32: median of per-round (torch fp32 ms / row ms) of the same model, >1 faster; "
          "range: min-max over rounds. TEST01: timed-loop output == accuracy-pass output.")
    if skipped:
        print("\nskipped (why_not or the runtime's refusal; one line per runtime and reason):")
        for line in skipped_lines(skipped):
            print(f"  {line}")

    print(f"\nbest row within {MAX_PSNR_LOSS_DB} dB PSNR of torch fp32 (highest ratio):")
    best: dict[str, Row | None] = {}
    for model in models:
        best[model] = b = best_row(rows, model)
        if b is None:
            print(f"  {model}: none")
            continue
        print(f"  {model}: {b.runtime} {b.quant} ({b.precision}) {b.median_ms:.1f} ms, "
              f"{b.ratio:.2f}x vs torch fp32, PSNR {b.psnr_db:.3f} dB")
    comparison = None
    if best.get("sid") is not None and best.get("lighter") is not None:
        s, li = best["sid"], best["lighter"]
        per_round = [a / b for a, b in zip(s.round_ms, li.round_ms, strict=True)]
        speed = statistics.median(per_round)
        wins = sum(v > 1 for v in per_round)
        comparison = {"sid_best": s.key, "lighter_best": li.key, "sid_over_lighter_ms": speed,
                      "per_round": per_round, "lighter_faster_rounds": wins,
                      "lighter_faster": speed > 1.0, "psnr_db_delta": li.psnr_db - s.psnr_db}
        print(f"lighter best ({li.runtime} {li.quant}) vs sid best ({s.runtime} {s.quant}): "
              f"{speed:.2f}x {'faster' if speed > 1 else 'slower'} (median of per-round ms "
              f"ratios; faster in {wins}/{len(per_round)} rounds), PSNR "
              f"{li.psnr_db - s.psnr_db:+.3f} dB -> lighter's best row "
              f"{'beats' if speed > 1 else 'does not beat'} sid's on speed")
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": machine_header(threads), "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [r.as_dict() for r in rows], "skipped": skipped,
            "best": {m: (b.key if b else None) for m, b in best.items()},
            "lighter_vs_sid": comparison, "round_load_avg_1min": loads, "total_s": total},
            indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
