"""Pareto optimality of variants on two metrics; directions and the resolution of comparisons
are the catalogue's (``Column.direction``, ``Column.resolution`` in lowbench.results.columns).

A point is optimal when no other point is at least as good on both metrics and strictly better on
one, values compared at :data:`RESOLUTION`. Points with a missing value (None, NaN) take no part:
their mark is None; so do rows that measured something else than the reference cell (a user
checkpoint, a subset of the task's pairs: see lowbench.results.table.is_reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lowbench.results.columns import column, direction
from lowbench.results.table import is_reference

#: The quality metric and the three costs it is traded against, as (name, column): the axes of
#: the Pareto marks and charts (the chart's choice; every metric's facts are the catalogue's).
QUALITY = "psnr_db"
COSTS: tuple[tuple[str, str], ...] = (
    ("latency", "latency_median_ms"),
    ("energy", "energy_per_inference_net_mj"),
    ("memory", "peak_rss_mib"),
)


def _at_resolution(metric: str, v: float) -> float:
    """``v`` at the catalogue's resolution of ``metric`` (the precision the leaderboard shows):
    PSNRs that agree to 0.01 dB tie, so a variant cannot be "optimal" through a 0.0001 dB edge
    (fp16 vs fp32 did on the Intel Xeon table)."""
    col = column(metric)
    res = None if col is None else col.resolution
    return v if res is None else round(v / res) * res


def _ok(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _sign(metric: str) -> float:
    """+1 when higher is better, -1 when lower is better (so that larger signed = better)."""
    d = direction(metric)
    if d not in ("higher", "lower"):
        raise ValueError(f"no direction for metric {metric!r}")
    return 1.0 if d == "higher" else -1.0


def pareto_mask(xs: Sequence[float | None], ys: Sequence[float | None], x_metric: str,
                y_metric: str) -> list[bool | None]:
    """For each point (xs[i], ys[i]): True if Pareto-optimal, False if dominated, None if a value
    is missing. O(n^2), which is fine for the ~20 variants of a table."""
    sx, sy = _sign(x_metric), _sign(y_metric)
    pts = [(sx * _at_resolution(x_metric, x), sy * _at_resolution(y_metric, y))
           if _ok(x) and _ok(y) else None for x, y in zip(xs, ys, strict=True)]
    out: list[bool | None] = []
    for i, p in enumerate(pts):
        if p is None:
            out.append(None)
            continue
        dominated = any(
            q is not None and j != i and q[0] >= p[0] and q[1] >= p[1]
            and (q[0] > p[0] or q[1] > p[1])
            for j, q in enumerate(pts))
        out.append(not dominated)
    return out


def row_marks(rows: Sequence[dict[str, Any]]) -> list[dict[str, bool | None]]:
    """For each row: {cost name: Pareto mark of quality vs that cost} (None for failed rows and
    rows not comparable with the reference cells: a user checkpoint, a subset of the pairs)."""
    marks: list[dict[str, bool | None]] = [{} for _ in rows]
    ok = [r if r.get("status") == "ok" and is_reference(r) else {} for r in rows]
    for name, metric in COSTS:
        mask = pareto_mask([r.get(metric) for r in ok], [r.get(QUALITY) for r in ok],
                           metric, QUALITY)
        for m, flag in zip(marks, mask, strict=True):
            m[name] = flag
    return marks


def front(points: Sequence[tuple[float, float]], x_metric: str, y_metric: str
          ) -> list[tuple[float, float]]:
    """The distinct optimal points, sorted from the best x to the worst x (so y improves along
    the list), ready for a 'steps-post' line: at each x, the best y of any point at least as
    good on x."""
    mask = pareto_mask([p[0] for p in points], [p[1] for p in points], x_metric, y_metric)
    best = sorted({p for p, m in zip(points, mask, strict=True) if m})
    # walking x from its best end, y gets worse; draw from the worst-x end so y improves
    return best if _sign(x_metric) < 0 else best[::-1]
