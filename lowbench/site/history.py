"""Each metric of each variant across commits, per task x machine, and the changes that exceed
the measurement noise (regressions and improvements, in each metric's direction).

Commits are ordered by ``commit_position`` (never by date); commits without a position come
after, ordered by their first run's creation time. At a commit with several runs of a variant,
the latest run counts. A change is flagged between consecutive commits at which the variant was
measured: |after - before| > band, where band is defined per metric by the catalogue
(``Column.noise`` in :mod:`lowbench.results.columns`; see :func:`band_definitions`, printed on
the history page).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lowbench.results.columns import direction, metric_names, noise
from lowbench.site.model import Table, Variant, commit_label, recency, variant_of

#: sqrt(pi / 2): the standard error of a sample median over that of the mean (normal samples).
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)
#: Multiples of the standard error that count as a real change for latency_median_ms.
SIGMAS = 3.0
#: The metric whose band also uses the runs' own spread (latency_std_ms, latency_n): see
#: band_definitions.
SPREAD_METRIC = "latency_median_ms"
#: Relative band of latency_median_ms when a run lacks its spread (std_ms or n).
LATENCY_NO_STD_BAND = 0.05


def band_definitions(metrics: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(metric, definition) of the noise band of each of ``metrics`` (default: every metric of
    the catalogue), for the history pages."""
    out = []
    for metric in metric_names() if metrics is None else metrics:
        rel, floor = noise(metric)
        if metric == SPREAD_METRIC:
            text = (f"max({SIGMAS:g} x {MEDIAN_SE_FACTOR:.4f} x sqrt(s1^2/n1 + s2^2/n2), "
                    f"{rel:.0%} x before), where s = std_ms and n = samples of each run "
                    f"(the standard error of the difference of two medians); "
                    f"{LATENCY_NO_STD_BAND:.0%} x before when a run lacks std_ms or n")
        elif rel == 0 and floor == 0:
            text = "any change (a count: it is exact, not measured)"
        else:
            parts = ([f"{rel:.0%} x before"] if rel else []) + ([f"{floor:g}"] if floor else [])
            text = parts[0] if len(parts) == 1 else f"max({', '.join(parts)})"
        out.append((metric, text))
    return out


@dataclass
class Change:
    """A flagged change of one metric of one variant between two consecutive measured commits."""

    variant: Variant
    metric: str
    #: commit indices (into HistoryTable.commits) before and after
    before_index: int
    after_index: int
    before: float | str
    after: float | str
    band: float | None
    #: "regression", "improvement" (beyond the band), "broke" (ok -> failed), "fixed"
    kind: str

    @property
    def delta(self) -> float | None:
        """after - before (None for a status change)."""
        if isinstance(self.before, str) or isinstance(self.after, str):
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        """(after - before) / |before| (None when before is 0 or a status)."""
        d = self.delta
        return None if d is None or not self.before else d / abs(self.before)

    @property
    def bad(self) -> bool:
        """A regression or a breakage."""
        return self.kind in ("regression", "broke")


@dataclass
class Commit:
    """One commit of a history: sha, position, dirty flag (any run dirty)."""

    sha: str
    position: int | None
    dirty: bool

    @property
    def label(self) -> str:
        """Short label."""
        return commit_label(self.sha, self.position, self.dirty)


@dataclass
class Series:
    """One variant's history in one table: values[metric] is a float array over all commits of
    the table (NaN where not measured); statuses[i] is the status at commit i or None."""

    variant: Variant
    values: dict[str, np.ndarray]
    statuses: list[str | None]
    rows: list[dict[str, Any] | None]
    changes: list[Change] = field(default_factory=list)

    def changes_of(self, metric: str) -> list[Change]:
        """This variant's flagged changes of ``metric``."""
        return [c for c in self.changes if c.metric == metric]


@dataclass
class HistoryTable:
    """The history of one task x machine: ordered commits and one series per variant."""

    table: Table
    commits: list[Commit]
    series: list[Series]

    @property
    def changes(self) -> list[Change]:
        """Every flagged change, in commit order then variant order."""
        out = [c for s in self.series for c in s.changes]
        metrics = metric_names()
        out.sort(key=lambda c: (c.after_index, c.variant.sort_key(), metrics.index(c.metric)
                                if c.metric in metrics else 99))
        return out


def _float(v: Any) -> float:
    """A number as float; anything else (None, text, bool) as NaN."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _column(rows: list[dict[str, Any]], metric: str, failed: np.ndarray) -> np.ndarray:
    """``metric`` of each row as floats: NaN for None, non-numbers and failed runs."""
    vals = [r.get(metric) for r in rows]
    try:
        arr = np.array(vals, dtype=float)  # None -> NaN; fast path for the usual case
        if any(type(v) is bool for v in vals):
            raise TypeError
    except (TypeError, ValueError):
        arr = np.array([_float(v) for v in vals], dtype=float)
    arr[failed] = np.nan
    return arr


def _order_commits(rows: list[dict[str, Any]]) -> list[Commit]:
    info: dict[str, list] = {}
    for row in rows:
        sha = row["commit"]
        pos = row.get("commit_position")
        cur = info.get(sha)
        if cur is None:
            info[sha] = [pos, bool(row.get("commit_dirty")), row["created_utc"]]
        else:
            if cur[0] is None:
                cur[0] = pos
            cur[1] = cur[1] or bool(row.get("commit_dirty"))
            cur[2] = min(cur[2], row["created_utc"])
    order = sorted(info.items(), key=lambda kv: (kv[1][0] is None, kv[1][0] or 0, kv[1][2], kv[0]))
    return [Commit(sha, pos, dirty) for sha, (pos, dirty, _) in order]


def noise_band(metric: str, before: np.ndarray, std: tuple[np.ndarray, np.ndarray] | None = None,
               n: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The band (metric's unit) a change from ``before`` must exceed; arrays over pairs of
    consecutive commits. ``std``/``n``: latency spread (ms) and samples before/after."""
    rel, floor = noise(metric)
    base = np.abs(before)
    if metric != SPREAD_METRIC:
        return np.maximum(rel * base, floor)
    band = LATENCY_NO_STD_BAND * base
    if std is not None and n is not None:
        s1, s2 = std
        n1, n2 = n
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.sqrt(s1 ** 2 / n1 + s2 ** 2 / n2)
        stat = np.maximum(SIGMAS * MEDIAN_SE_FACTOR * se, rel * base)
        known = np.isfinite(se) & (n1 > 0) & (n2 > 0)
        band = np.where(known, stat, band)
    return np.maximum(band, floor)


def _detect(series: Series, metric: str, std: np.ndarray, n: np.ndarray) -> list[Change]:
    vals = series.values[metric]
    idx = np.flatnonzero(~np.isnan(vals))
    if idx.size < 2:
        return []
    a, b = vals[idx[:-1]], vals[idx[1:]]
    if metric == SPREAD_METRIC:
        band = noise_band(metric, a, (std[idx[:-1]], std[idx[1:]]), (n[idx[:-1]], n[idx[1:]]))
    else:
        band = noise_band(metric, a)
    delta = b - a
    hits = np.flatnonzero(np.abs(delta) > band)
    lower = direction(metric) == "lower"
    out = []
    for k in hits.tolist():
        worse = delta[k] > 0 if lower else delta[k] < 0
        out.append(Change(series.variant, metric, int(idx[k]), int(idx[k + 1]), float(a[k]),
                          float(b[k]), float(band[k]), "regression" if worse else "improvement"))
    return out


def _status_changes(series: Series) -> list[Change]:
    out = []
    prev: tuple[int, str] | None = None
    for i, st in enumerate(series.statuses):
        if st is None:
            continue
        if prev is not None and (prev[1] == "ok") != (st == "ok"):
            out.append(Change(series.variant, "status", prev[0], i, prev[1], st, None,
                              "broke" if st != "ok" else "fixed"))
        prev = (i, st)
    return out


def build_history(table: Table, metrics: tuple[str, ...] | None = None) -> HistoryTable:
    """Series of every variant of ``table`` over its commits, with flagged changes of
    ``metrics`` (default: every metric of the catalogue)."""
    if metrics is None:
        metrics = metric_names()
    commits = _order_commits(table.rows)
    index = {c.sha: i for i, c in enumerate(commits)}
    chosen: dict[Variant, dict[int, dict[str, Any]]] = {}
    for row in table.rows:
        per = chosen.setdefault(variant_of(row), {})
        ci = index[row["commit"]]
        cur = per.get(ci)
        if cur is None or recency(row) > recency(cur):
            per[ci] = row
    n_commits = len(commits)
    out: list[Series] = []
    for variant in sorted(chosen, key=Variant.sort_key):
        per = chosen[variant]
        cis = sorted(per)
        rows_at: list[dict[str, Any] | None] = [None] * n_commits
        for ci in cis:
            rows_at[ci] = per[ci]
        chosen_rows = [per[ci] for ci in cis]
        failed = np.array([r["status"] != "ok" for r in chosen_rows], dtype=bool)
        values = {}
        for metric in (*metrics, "latency_std_ms", "latency_n"):
            arr = np.full(n_commits, np.nan)
            arr[cis] = _column(chosen_rows, metric, failed)
            values[metric] = arr
        statuses = [None if r is None else r["status"] for r in rows_at]
        std, n = values.pop("latency_std_ms"), values.pop("latency_n")
        series = Series(variant, values, statuses, rows_at)
        changes = _status_changes(series)
        for metric in metrics:
            changes.extend(_detect(series, metric, std, n))
        series.changes = changes
        out.append(series)
    return HistoryTable(table, commits, out)
