"""The swap curve: one variant on a full frame at several memory limits and tile sizes.

The original study's Nano story: the SID U-Net on a 4 GB board spilled 2.5 GB into swap and
took 325 s per image; most of int8's "speed-up" was escaping swap. :func:`run_curve` measures
that story on any Linux machine: for every tile size (None: the whole frame at once) x memory
limit (None: no limit) it runs the clean memory worker of the harness
(:func:`lowbench.harness.worker.measure_memory`, the one every record's memory comes from)
and keeps its outcome (completed, or killed by the limit), peak RSS and swap (MiB), each
forward pass (ms), major faults and pages swapped in/out. On a machine with swap the curve
shows the slowdown under tight limits; without swap it shows the smallest limit each tile size
survives (:func:`smallest_surviving_limit`), and a killed point says so.

The document (``schema: lowbench.memory_curve``) is written into ``results/memory-curves/``;
``lowbench site build`` draws it (:mod:`lowbench.site.memory_curves`).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from lowbench.measure.memory_limit import format_size

SCHEMA = "lowbench.memory_curve"
#: Folder of the curve documents inside a results folder (the record readers skip it).
FOLDER = "memory-curves"


def _point(tile: int | None, limit: int | None, mem: dict[str, Any]) -> dict[str, Any]:
    """One point of the curve from the worker's memory section."""
    times = mem.get("forward_ms") or []
    lim = mem.get("limit") or {}
    reasons = mem.get("reasons") or {}
    return {
        "tile_px": tile, "limit_bytes": limit,
        "limit_label": format_size(limit) if limit else "none",
        "outcome": mem.get("outcome"),
        "peak_rss_mib": mem.get("peak_rss_mib"), "swap_peak_mib": mem.get("swap_peak_mib"),
        "rss_sampled_peak_mib": mem.get("rss_sampled_peak_mib"),
        "forward_ms": times, "forward_ms_median": statistics.median(times) if times else None,
        "major_faults": mem.get("major_faults"), "vmstat": mem.get("vmstat"),
        "group_peak_mib": lim.get("group_peak_mib"), "oom_kills": lim.get("oom_kills"),
        "method": lim.get("method"),
        "reason": reasons.get("peak_rss_mib"), "wall_s": mem.get("wall_s"),
    }


def run_curve(model: str, quant: str = "fp32", task: str = "synth-full", *,
              tiles: list[int | None], limits: list[int | None], overlap: int = 32,
              runs: int = 1, data_root: str | None = None, threads: int | None = None,
              say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every ``tiles`` (packed px; None: untiled) x ``limits`` (bytes; None: no limit)
    point of ``model`` x ``quant`` on the task's first frame; the curve document. ``runs``
    forward passes per point (ms each)."""
    from lowbench.environment import git_commit, machine_info, machine_label
    from lowbench.harness.session import EvalConfig, Session
    from lowbench.harness.worker import measure_memory
    from lowbench.measure.memory import system_swap_mib

    say = say or (lambda _m: None)
    base = EvalConfig(model=model, quant=quant, task=task, data_root=data_root, limit=1,
                      threads=threads, memory=True, energy=False, gallery=False,
                      command=list(sys.argv))
    session = Session(base)
    points = []
    for tile in tiles:
        for limit in limits:
            cfg = dataclasses.replace(base, tile=tile, overlap=overlap if tile else 0,
                                      memory_limit=limit)
            say(f"tile {tile or 'none'} x limit {format_size(limit) if limit else 'none'}")
            point = _point(tile, limit, measure_memory(cfg, session, runs=runs))
            say(f"  -> {point['outcome']}, peak RSS {point['peak_rss_mib']} MiB, "
                f"forward {point['forward_ms_median']} ms")
            points.append(point)
    machine = machine_info()
    _, swap_total = system_swap_mib()
    return {
        "schema": SCHEMA, "version": 1,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model, "quant": quant, "runtime": "torch", "task": session.task.name,
        "task_version": session.task.version, "pair": session.pairs[0].pair_id,
        "frame_packed_hw": list(session.input_hw), "overlap_px": overlap, "runs": runs,
        "threads": session.threads, "swap_total_mib": swap_total,
        "machine": machine, "machine_label": machine_label(machine), "commit": git_commit(),
        "command": base.command, "points": points,
        "smallest_surviving_limit": smallest_surviving_limit(points),
    }


def smallest_surviving_limit(points: list[dict[str, Any]]) -> dict[str, str | None]:
    """For each tile size (``"none"``: untiled), the smallest limit whose point completed
    (``"none"`` when only the unlimited one did; None when none did)."""
    out: dict[str, str | None] = {}
    for tile in dict.fromkeys(p["tile_px"] for p in points):
        survived = [p for p in points if p["tile_px"] == tile and p["outcome"] == "completed"]
        smallest = min(survived, default=None, key=lambda p: (p["limit_bytes"] is None,
                                                               p["limit_bytes"] or 0))
        out[str(tile or "none")] = smallest["limit_label"] if smallest else None
    return out
