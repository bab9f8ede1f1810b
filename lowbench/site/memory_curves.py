"""The site's Memory page: each swap curve (``results/memory-curves/*.json``, written by
``benchmarks/memory_curve.py``) as a two-panel matplotlib figure - peak RSS (MiB) and forward
time (ms) against the memory limit, one line per tile size, a cross where the limit killed the
worker - and its numbers as a table.

Byte-stable PNGs like the Pareto charts (fixed size and dpi, no metadata).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lowbench.measure.memory_curve import FOLDER, SCHEMA
from lowbench.site.charts import plt, save_png  # pyplot on the Agg backend

_COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a")
_MIB = 2**20


def load_curves(folders: Iterable[Path]) -> list[dict[str, Any]]:
    """Every memory-curve document under ``folder/memory-curves`` of each results folder,
    sorted by task, model, quant and machine; files of another schema are skipped."""
    docs = []
    for folder in folders:
        for path in sorted((Path(folder) / FOLDER).glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("schema") == SCHEMA and doc.get("points"):
                doc["slug"] = path.stem
                docs.append(doc)
    return sorted(docs, key=lambda d: (d["task"], d["model"], d["quant"], d["machine_label"]))


def _x(point: dict[str, Any], unlimited_at: float) -> float:
    return point["limit_bytes"] / 2**30 if point["limit_bytes"] else unlimited_at


def curve_figure(doc: dict[str, Any], path: Path) -> None:
    """Write the two-panel PNG of one curve to ``path``: x = memory limit (GiB; the unlimited
    point at the right, labelled "none"), y = peak RSS (MiB) and forward ms per tile size."""
    limits = sorted({p["limit_bytes"] for p in doc["points"] if p["limit_bytes"]})
    top = limits[-1] / 2**30 if limits else 1.0
    unlimited_at = top * 1.35
    tiles = list(dict.fromkeys(p["tile_px"] for p in doc["points"]))
    with plt.rc_context({"font.size": 8, "path.simplify": False}):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
        for ax, key, label in ((axes[0], "peak_rss_mib", "peak RSS of the worker (MiB)"),
                               (axes[1], "forward_ms_median", "forward pass (ms)")):
            for k, tile in enumerate(tiles):
                colour = _COLOURS[k % len(_COLOURS)]
                pts = sorted((p for p in doc["points"] if p["tile_px"] == tile),
                             key=lambda p: _x(p, unlimited_at))
                ok = [p for p in pts if p["outcome"] == "completed" and p[key] is not None]
                name = f"tile {tile}" if tile else "whole frame"
                ax.plot([_x(p, unlimited_at) for p in ok], [p[key] for p in ok], "o-",
                        color=colour, label=name)
                killed = [p for p in pts if p["outcome"] == "killed"]
                if killed:
                    ax.plot([_x(p, unlimited_at) for p in killed], [0] * len(killed), "x",
                            color=colour, markersize=8, markeredgewidth=2,
                            label=f"{name}: killed by the limit")
            ax.set_xlabel("memory limit (GiB; 'none' = unlimited)")
            ax.set_ylabel(label)
            ticks = [b / 2**30 for b in limits] + [unlimited_at]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks[:-1]] + ["none"])
            ax.set_ylim(bottom=-0.03 * max((p[key] or 0) for p in doc["points"]) - 1)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{doc['model']} {doc['quant']} on {doc['task']} "
                     f"({doc['frame_packed_hw'][0]} x {doc['frame_packed_hw'][1]} packed), "
                     f"{doc['machine_label']}, swap {doc['swap_total_mib'] or 0:.0f} MiB")
        fig.tight_layout()
        save_png(fig, path)


def curve_context(doc: dict[str, Any], src: str) -> dict[str, Any]:
    """Template data of one curve: title, figure, machine, and a row per point."""
    def num(v: float | None) -> str:
        return "" if v is None else f"{v:,.0f}"

    return {
        "title": f"{doc['model']} / {doc['quant']} on {doc['task']}", "src": src,
        "machine": doc["machine_label"], "swap_mib": doc["swap_total_mib"],
        "frame": "{} x {}".format(*doc["frame_packed_hw"]), "overlap": doc["overlap_px"],
        "runs": doc["runs"], "created": doc["created_utc"],
        "commit": ((doc.get("commit") or {}).get("sha") or "unknown")[:10],
        "survives": doc.get("smallest_surviving_limit") or {},
        "rows": [{"tile": p["tile_px"] or "whole frame", "limit": p["limit_label"],
                  "outcome": p["outcome"], "peak": num(p["peak_rss_mib"]),
                  "swap": num(p["swap_peak_mib"]), "ms": num(p["forward_ms_median"]),
                  "faults": "" if p["major_faults"] is None else p["major_faults"],
                  "swapped_out": (p.get("vmstat") or {}).get("pswpout", ""),
                  "reason": p["reason"] if p["outcome"] != "completed" else ""}
                 for p in doc["points"]],
    }
