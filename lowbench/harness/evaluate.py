"""The whole evaluation of one variant on one task: :func:`evaluate` returns the result record.

:func:`evaluate` builds a :class:`~lowbench.harness.session.Session`, runs its measured
callables (quality and end-to-end, latency, size, energy) plus memory in a clean worker
(:func:`~lowbench.harness.worker.measure_memory`) and returns a version-1 result record
(``lowbench/schema/record-v1.json``, not yet written); :func:`summary_rows` is the CLI's table
of it. Units live in key names: ms, MiB, mJ, dB.
"""

from __future__ import annotations

import shlex
import statistics
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from lowbench.energy.carbon import carbon_section
from lowbench.environment import git_commit, machine_info, machine_label, software_versions
from lowbench.harness.session import EvalConfig, NonFiniteOutput, Session
from lowbench.harness.worker import measure_memory
from lowbench.pairs import Pair
from lowbench.results.provenance import checkpoint_identity, portable_calibration, portable_command
from lowbench.results.records import SCHEMA_VERSION
from lowbench.tasks import Task
from lowbench.units import SIZE_UNIT, format_mib


def environment(session: Session | None, cfg: EvalConfig) -> dict[str, Any]:
    """Commit, machine, software versions, threads, engine and the exact command line."""
    machine = machine_info()
    return {"machine": machine, "machine_label": machine_label(machine),
            "commit": git_commit(), "software": software_versions(),
            "threads": torch.get_num_threads(),
            "quantized_engine": torch.backends.quantized.engine,
            "command": shlex.join(portable_command(cfg.command)) if cfg.command else None}


def variant_section(session: Session) -> dict[str, Any]:
    """The record's ``variant``: what was built, with no path of this machine in it (the
    checkpoint by package-relative or file name + sha256 + ``reference``; the calibration cache
    by file name)."""
    info = dict(session.variant.info)
    keep = ("model", "quant", "engine", "quantized_layers", "quantized_nothing", "calibration",
            "checkpoint", "device", "dtype", "note", "reason", "status", "layer_types",
            "runtime")
    out = {k: info.get(k) for k in keep if k in info}
    ckpt = out.get("checkpoint")
    if isinstance(ckpt, dict):
        out["checkpoint"] = checkpoint_identity(ckpt.get("path"), ckpt.get("sha256"),
                                                ckpt.get("source"))
    if "calibration" in out:
        out["calibration"] = portable_calibration(out["calibration"])
    return out


def _pairs_total(task: Task) -> int:
    """How many pairs the whole task has (what a ``--limit`` run scored a part of)."""
    return len(task.listed())


def new_record(cfg: EvalConfig, task: Task, pairs: int) -> dict[str, Any]:
    """A record skeleton: identity, task fingerprint, every measurement null."""
    fp = task.fingerprint()
    return {
        "schema": "lowbench.record", "schema_version": SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": "ok", "failure": None,
        "task": {"name": task.name, "version": task.version, "pairs_evaluated": pairs,
                 "pairs_total": _pairs_total(task), "crop": task.crop,
                 # the input's normalisation: the task's constant (SID: 16383 DN, as SID's
                 # pack_raw) or, null, each file's own white level as rawpy reads it
                 "white_level_dn": task.white_level,
                 "white_level_source": "task" if task.white_level is not None else "file",
                 "limit": cfg.limit, "manifest_sha256": fp["manifest_sha256"],
                 "files_sha256": fp["files_sha256"]},
        "variant": {"model": cfg.model, "quant": cfg.quant, "device": cfg.device},
        "quality": {"psnr_db": None, "ssim": None, "per_ratio": {}, "per_pair": []},
        "inference": {"tiling": cfg.tiling.describe() if cfg.tiling is not None else None,
                      "frame_packed_hw": None},
        "latency": None, "end_to_end": None, "memory": None, "energy": None, "size": None,
        "carbon": carbon_section(None, cfg.grid), "gallery": [],
    }


def evaluate(cfg: EvalConfig, *, results_dir: Path | None = None,
             progress: Callable[[Iterable[Pair]], Iterable[Pair]] | None = None,
             status: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure one variant on one task; return the result record (not yet written).

    Gallery PNGs go to ``results_dir/gallery`` when ``results_dir`` is given. A NaN/Inf output
    returns a record with status "failed" and the pair named in ``failure``; a variant that
    cannot run here returns status "unsupported" with the reason.
    """
    say = status or (lambda _msg: None)
    say("building variant")
    session = Session(cfg)
    record = new_record(cfg, session.task, len(session.pairs))
    record["inference"]["frame_packed_hw"] = list(session.input_hw)
    record["variant"].update(variant_section(session))
    record["environment"] = environment(session, cfg)
    if not session.supported:
        record["status"] = "unsupported"
        record["failure"] = {"reason": session.variant.info.get("reason") or "unsupported",
                             "pair": None}
        return record
    gallery_dir = (results_dir / "gallery") if (results_dir is not None and cfg.gallery) else None
    say("quality and end-to-end")
    try:
        q = session.run_quality(progress, gallery_dir)
    except NonFiniteOutput as err:
        record["status"] = "failed"
        record["failure"] = {"reason": str(err), "pair": err.pair}
        return record
    record.update(q)
    say("latency")
    record["latency"] = session.measure_latency()
    check = record["latency"].get("output_check") or {}
    if check.get("ok") is False:  # the timed loop computed something else: its times are void
        record["status"] = "failed"
        record["failure"] = {
            "reason": f"the output of the timed loop differs from the accuracy pass's on the "
                      f"same input by {check['max_abs_diff']:.3g} (> {check['tolerance']:g}): "
                      "the runtime skipped, cached or changed work between the two",
            "pair": session.pairs[0].pair_id}
    say("size")
    record["size"] = session.measure_size()
    say("energy")
    record["energy"] = session.measure_energy()
    record["carbon"] = carbon_section(record["energy"], cfg.grid)
    if cfg.memory:
        say("memory (clean worker)")
        record["memory"] = measure_memory(cfg, session)
        if record["size"] and record["size"].get("static_estimate"):
            record["memory"]["static_estimate"] = record["size"]["static_estimate"]
    else:
        reason = "memory measurement skipped (--no-memory)"
        record["memory"] = {"peak_rss_mib": None, "swap_peak_mib": None,
                            "reasons": {"peak_rss_mib": reason, "swap_peak_mib": reason}}
    return record


def summary_rows(record: dict[str, Any]) -> list[list[Any]]:
    """(metric, value, unit) rows of a record for the CLI table; null -> 'n/a (reason)'.
    The size is in MiB with 2 decimals (:func:`lowbench.units.format_mib`)."""
    def val(v: Any, reason: str | None = None, fmt: str = "{:.2f}") -> str:
        if v is None:
            return f"n/a ({reason})" if reason else "n/a"
        return fmt.format(v) if isinstance(v, float) else str(v)

    lat = record.get("latency") or {}
    e2e = record.get("end_to_end") or {}
    mem = record.get("memory") or {}
    en = record.get("energy") or {}
    co2 = record.get("carbon") or {}
    size = record.get("size") or {}
    q = record.get("quality") or {}
    mr = mem.get("reasons") or {}
    runtime = record["variant"].get("runtime") or {}
    rows = [["status", record["status"], ""]]
    if runtime:
        rows.append(["runtime", " ".join(str(v) for v in (runtime.get("name"),
                                                          runtime.get("version")) if v), ""])
        rows.append(["precision executed", val(runtime.get("precision"), runtime.get("reason")),
                     ""])
        if runtime.get("build_s") is not None:
            rows.append(["build (export, quantize, compile)", val(runtime["build_s"]), "s"])
    if record.get("failure"):
        rows.append(["reason", record["failure"]["reason"], ""])
    if record["variant"].get("quantized_nothing"):
        rows.append(["quantized layers", "0 (quantized nothing: runs fp32)", ""])
    elif record["variant"]["quant"] not in ("fp32", "fp16"):
        rows.append(["quantized layers", record["variant"]["quantized_layers"], ""])
    tiling = (record.get("inference") or {}).get("tiling")
    frame = (record.get("inference") or {}).get("frame_packed_hw")
    if frame:
        rows.append(["frame (packed)", f"{frame[0]} x {frame[1]}", "px"])
    if tiling:
        rows.append(["tiles (packed)", f"{tiling['tile_px']}, overlap {tiling['overlap_px']}",
                     "px"])
    if mem.get("limit"):
        lim = mem["limit"]
        how = lim.get("method") or lim.get("reason")
        rows.append(["memory limit", f"{lim.get('label') or lim.get('bytes')} ({how})", ""])
        rows.append(["memory worker", mem.get("outcome"), ""])
    if mem.get("forward_ms"):
        rows.append(["memory worker forward (median)",
                     val(float(statistics.median(mem["forward_ms"]))), "ms"])
    rows += [["PSNR", with_ci(q, "psnr_db"), "dB"], ["SSIM", with_ci(q, "ssim", "{:.4f}"), ""]]
    for label, s in (q.get("per_ratio") or {}).items():
        rows.append([f"PSNR {label}", val(s.get("psnr_db")), "dB"])
    rows += [
        ["latency median", with_ci(lat, "median_ms"), "ms"],
        ["latency p90", with_ci(lat, "p90_ms"), "ms"],
        ["latency runs", runs_line(lat), ""],
        ["end-to-end per image", val(e2e.get("total_ms")), "ms"],
        ["peak RSS", val(mem.get("peak_rss_mib"), mr.get("peak_rss_mib"), "{:.1f}"), "MiB"],
        ["static memory estimate",
         val((mem.get("static_estimate") or {}).get("total_mib"), "no estimate", "{:.1f}"),
         "MiB"],
        ["peak swap", val(mem.get("swap_peak_mib"), mr.get("swap_peak_mib"), "{:.1f}"), "MiB"],
        ["energy / image (net)", val(en.get("energy_per_inference_net_mj"), en.get("reason")),
         "mJ"],
        ["CO2 / 1,000 images (gross)", val(co2.get("gco2e_per_1k_gross"), co2.get("reason"),
                                           "{:.4g}"), "gCO2e"],
        ["params", val(size.get("params")), ""],
        ["MACs", val(size.get("macs")), ""],
        ["size", val(format_mib(size.get("size_bytes"), missing=None),
                     (size.get("reasons") or {}).get("size_bytes")), SIZE_UNIT],
    ]
    return rows



def with_ci(section: dict[str, Any], name: str, fmt: str = "{:.2f}") -> str:
    """``section[name]`` with its 95% interval from ``section["ci"][name]`` (same unit), e.g.
    '12.31 ±0.40 [11.95, 12.75]'; the value alone where the record holds no interval; '-'
    without a value."""
    value = section.get(name)
    if value is None:
        return "-"
    ci = (section.get("ci") or {}).get(name)
    if not ci:
        return fmt.format(value)
    lo, hi = ci
    return (f"{fmt.format(value)} ±{fmt.format((hi - lo) / 2)} "
            f"[{fmt.format(lo)}, {fmt.format(hi)}]")


def runs_line(lat: dict[str, Any]) -> str:
    """Timed runs and why the loop stopped, e.g. '64 (converged: ±0.9% <= ±1%)'."""
    n = lat.get("n")
    if n is None:
        return "-"
    stop = lat.get("stop") or {}
    reason = stop.get("reason")
    half = stop.get("median_half_width_rel")
    width = f"±{half:.1%}" if half is not None else "no interval"
    if reason == "converged":
        return f"{n} (converged: {width} <= ±{stop['target_rel']:.0%})"
    if reason == "budget":
        return f"{n} (time cap {stop.get('timed_s', 0):.1f} s reached; median {width})"
    return f"{n} ({reason})" if reason else str(n)
