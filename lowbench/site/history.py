"""Each metric of each variant across commits, per task x machine, and the changes that are
real and large enough to report (regressions and improvements, in each metric's direction).

Commits are ordered by ``commit_position`` (never by date); commits without a position come
after, ordered by their first run's creation time. At a commit with several runs of a variant,
the latest evaluate run counts (else the latest asv run). Consecutive commits at which a
variant was measured are compared by :mod:`lowbench.results.compare`, the one decision
`lowbench results compare` makes too: a rank test on the runs' raw values where they kept
them, the catalogue's minimum effect, each variant net of the common session shift of every
variant compared between the same two commits; the shifts themselves are listed apart
(:attr:`HistoryTable.shifts`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lowbench.results.columns import column, metric_names, min_effect
from lowbench.results.compare import (
    ALPHA,
    NOISE_MIN_STEPS,
    NOISE_SIGMAS,
    SHIFT_MIN_VARIANTS,
    Movement,
    Verdict,
    compare_many,
    net_steps,
    noise_floors,
    preference,
)
from lowbench.site.model import Table, Variant, commit_label, variant_of


def rule_definitions(metrics: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(metric, how a change of it is decided) for each of ``metrics`` (default: every metric
    of the catalogue), for the history pages."""
    out = []
    for metric in metric_names() if metrics is None else metrics:
        col = column(metric)
        rel, floor = min_effect(metric)
        if rel == 0 and floor == 0:
            out.append((metric, "any change (a count: it is exact, not measured)"))
            continue
        parts = ([f"{rel:.0%} x before"] if rel else []) + ([f"{floor:g}"] if floor else [])
        text = "at least " + (parts[0] if len(parts) == 1 else f"max({', '.join(parts)})")
        if col is not None and col.samples == "latency":
            text += (f", and Mann-Whitney U on the two runs' timed samples p < {ALPHA} "
                     "(runs without samples: the minimum effect alone)")
        elif col is not None and col.samples == "per_pair":
            text += (f", and Wilcoxon signed-rank on the pairs both runs scored p < {ALPHA}")
        else:
            text += " (one value per run: the minimum effect alone)"
        if col is not None and col.session_shift:
            text += (f"; net of the common shift of every variant compared between the same "
                     f"two commits (>= {SHIFT_MIN_VARIANTS} variants); the minimum effect rises "
                     f"to the table's noise floor where its history is noisier "
                     f"({NOISE_SIGMAS:g} robust sd of >= {NOISE_MIN_STEPS} net steps)")
        out.append((metric, text))
    return out


@dataclass
class Change(Movement):
    """A flagged change of one metric of one variant between two consecutive measured commits."""

    variant: Variant
    metric: str
    #: commit indices (into HistoryTable.commits) before and after
    before_index: int
    after_index: int
    before: float | str
    after: float | str
    #: the smallest change reported (the metric's unit); None for a status change
    threshold: float | None
    #: "regression", "improvement" (real and large enough), "broke" (ok -> failed), "fixed"
    kind: str
    #: the comparison's reasoning (test, p-value, effect, shift removed)
    reason: str = ""
    #: the common session shift the change was judged net of (a factor on ``after``)
    shift: float = 1.0

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
    #: common session shifts at least a metric's minimum effect: (before index, after index,
    #: verdict of kind "shift"; every variant moved together)
    shifts: list[tuple[int, int, Verdict]] = field(default_factory=list)
    #: this machine's noise floors (metric -> fraction) from its own history, where it has
    #: enough steps (:func:`lowbench.results.compare.noise_floors`)
    floors: dict[str, float] = field(default_factory=dict)

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


Steps = dict[tuple[int, int], dict[Variant, tuple[dict[str, Any], dict[str, Any]]]]


def _chosen_rows(table: Table, commits: list[Commit]) -> dict[Variant, dict[int, dict[str, Any]]]:
    """Per variant, per commit index: the one row the history shows (:func:`preference`)."""
    index = {c.sha: i for i, c in enumerate(commits)}
    chosen: dict[Variant, dict[int, dict[str, Any]]] = {}
    for row in table.rows:
        per = chosen.setdefault(variant_of(row), {})
        ci = index[row["commit"]]
        cur = per.get(ci)
        if cur is None or preference(row) > preference(cur):
            per[ci] = row
    return chosen


def _steps(chosen: dict[Variant, dict[int, dict[str, Any]]]) -> Steps:
    """Consecutive measured (status ok) commits of every variant, grouped by the pair of commit
    indices: ``(i, j) -> variant -> (row at i, row at j)``."""
    steps: Steps = {}
    for variant in sorted(chosen, key=Variant.sort_key):
        per = chosen[variant]
        ok = [ci for ci in sorted(per) if per[ci]["status"] == "ok"]
        for i, j in zip(ok, ok[1:], strict=False):
            steps.setdefault((i, j), {})[variant] = (per[i], per[j])
    return steps


def table_floors(table: Table, metrics: tuple[str, ...] | None = None) -> dict[str, float]:
    """The noise floors (metric -> fraction) ``table``'s own history gives
    (:func:`lowbench.results.compare.noise_floors` of its net steps), without the verdicts
    :func:`build_history` also computes."""
    steps = _steps(_chosen_rows(table, _order_commits(table.rows)))
    return noise_floors(net_steps(steps.values(), metrics or metric_names()))


def build_history(table: Table, metrics: tuple[str, ...] | None = None) -> HistoryTable:
    """Series of every variant of ``table`` over its commits, with the changes of ``metrics``
    (default: every metric of the catalogue) that :mod:`lowbench.results.compare` reports."""
    if metrics is None:
        metrics = metric_names()
    commits = _order_commits(table.rows)
    chosen = _chosen_rows(table, commits)
    n_commits = len(commits)
    out: list[Series] = []
    steps = _steps(chosen)
    by_variant: dict[Variant, Series] = {}
    for variant in sorted(chosen, key=Variant.sort_key):
        per = chosen[variant]
        cis = sorted(per)
        rows_at: list[dict[str, Any] | None] = [None] * n_commits
        for ci in cis:
            rows_at[ci] = per[ci]
        chosen_rows = [per[ci] for ci in cis]
        failed = np.array([r["status"] != "ok" for r in chosen_rows], dtype=bool)
        values = {}
        for metric in metrics:
            arr = np.full(n_commits, np.nan)
            arr[cis] = _column(chosen_rows, metric, failed)
            values[metric] = arr
        statuses = [None if r is None else r["status"] for r in rows_at]
        series = Series(variant, values, statuses, rows_at)
        series.changes = _status_changes(series)
        by_variant[variant] = series
        out.append(series)
    shifts: list[tuple[int, int, Verdict]] = []
    floors = noise_floors(net_steps(steps.values(), metrics))
    for (i, j), pairs in steps.items():
        verdicts, common = compare_many(pairs, metrics, floors=floors)
        shifts.extend((i, j, v) for v in common if v.kind == "shift")
        for variant, vs in verdicts.items():
            series = by_variant[variant]
            for v in vs:
                if v.flagged:
                    series.changes.append(Change(series.variant, v.metric, i, j, v.before,
                                                 v.after, v.threshold, v.kind, v.reason,
                                                 v.shift))
    return HistoryTable(table, commits, out, sorted(shifts, key=lambda s: (s[1], s[0])), floors)
