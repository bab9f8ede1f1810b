"""Pareto charts with matplotlib (Agg): one PNG per task x machine with three panels, PSNR vs
latency, vs energy and vs peak memory; one point per variant, the front as a step line. A variant
run by a deployment runtime other than eager torch is drawn hollow (its label, when it is on the
front, names the runtime).

Byte-stable output: no 'Software' metadata in the PNG, mathtext off (names are plain text), a
fixed size and dpi, and inputs in a fixed order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after selecting the backend
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402

from lowbench.fsutil import atomic_write_bytes  # noqa: E402
from lowbench.results.columns import column, header  # noqa: E402
from lowbench.site.model import MODEL_ORDER, QUANT_ORDER, variant_of  # noqa: E402
from lowbench.site.pareto import COSTS, QUALITY, front, pareto_mask  # noqa: E402

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a", "#00838f", "#5d4037")
_RC = {"font.size": 8, "svg.hashsalt": "lowbench", "path.simplify": False}


def _plain(text: str) -> str:
    """Text for a legend label: '$' escaped so that a name never turns into mathtext."""
    return text.replace("$", r"\$")


def _style(values: Sequence[str], order: Sequence[str], palette: Sequence[str]) -> dict:
    """Style of each name: known names keep their place in ``order`` (the same colour/marker in
    every chart); others take the following styles, alphabetically."""
    names = sorted(set(values), key=lambda v: (order.index(v) if v in order else len(order), v))
    extra = [n for n in names if n not in order]
    return {n: palette[(order.index(n) if n in order else len(order) + extra.index(n))
                       % len(palette)] for n in names}


def pareto_figure(rows: Sequence[dict[str, Any]], path: Path, title: str) -> bool:
    """Write the three-panel Pareto chart of ``rows`` (one task x machine, latest commit) to
    ``path`` (PNG); returns False (writing nothing) when no row has a PSNR. Only reference rows
    are drawn (a user checkpoint or a subset of the pairs measured something else)."""
    ok = [r for r in rows if r.get("status") == "ok" and isinstance(r.get(QUALITY), (int, float))
          and variant_of(r).is_reference]
    if not ok:
        return False
    models = _style([r["model"] for r in ok], MODEL_ORDER, _COLOURS)
    quants = _style([r["quant"] for r in ok], QUANT_ORDER, _MARKERS)
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, len(COSTS), figsize=(12, 4.2), dpi=100)
        for ax, (name, metric) in zip(axes, COSTS, strict=True):
            div = column(metric).divisor
            pts = [(r[metric] / div, r[QUALITY], r) for r in ok
                   if isinstance(r.get(metric), (int, float))]
            if not pts:
                ax.text(0.5, 0.5, f"{name}: not measured", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            mask = pareto_mask([p[0] for p in pts], [p[1] for p in pts], metric, QUALITY)
            for (x, y, r), opt in zip(pts, mask, strict=True):
                if variant_of(r).runtime:  # a deployment runtime: hollow, in the model's colour
                    ax.scatter([x], [y], facecolors="none", marker=quants[r["quant"]], s=36,
                               edgecolors=models[r["model"]], linewidths=1.6 if opt else 1.0,
                               zorder=3)
                else:
                    ax.scatter([x], [y], c=models[r["model"]], marker=quants[r["quant"]], s=36,
                               edgecolors="black" if opt else "none", linewidths=0.8, zorder=3)
                if opt:
                    ax.annotate(variant_of(r).label, (x, y), textcoords="offset points",
                                xytext=(4, 3), fontsize=6.5, zorder=4, parse_math=False)
            fr = front([(p[0], p[1]) for p in pts], metric, QUALITY)
            ax.step([p[0] for p in fr], [p[1] for p in fr], where="post", color="#555",
                    linewidth=1, zorder=2)
            xs = [p[0] for p in pts]
            if min(xs) > 0 and max(xs) / min(xs) > 20:
                ax.set_xscale("log")  # costs spanning decades: keep the cheap variants apart
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks: slow, cluttered
                ax.set_xlabel(f"{header(metric)}, log scale")
            else:
                ax.set_xlabel(header(metric))
            ax.set_ylabel(header(QUALITY))
            ax.set_title(f"PSNR vs {name}")
            ax.margins(x=0.12, y=0.1)
            ax.grid(True, linewidth=0.3)
        handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=_plain(m))
                   for m, c in models.items()]
        handles += [plt.Line2D([], [], color="#777", marker=mk, linestyle="", label=_plain(q))
                    for q, mk in quants.items()]
        if any(variant_of(r).runtime for r in ok):
            handles.append(plt.Line2D([], [], color="#777", marker="o", markerfacecolor="none",
                                      linestyle="", label="hollow: runtime other than torch"))
        fig.suptitle(title, y=0.99, fontsize=9, parse_math=False)
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, 0.95))
        # fixed margins: tight_layout would draw the figure twice (half the chart time)
        fig.subplots_adjust(left=0.055, right=0.975, bottom=0.13, top=0.82, wspace=0.25)
        save_png(fig, path)
    return True


def save_png(fig: Any, path: Path) -> None:
    """Write ``fig`` as a byte-stable PNG (no 'Software' metadata) to ``path`` atomically (a
    killed build leaves no partial PNG) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
