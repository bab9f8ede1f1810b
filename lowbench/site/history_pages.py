"""The pages made of a history: one per task x machine (sparklines, flagged changes, session
shifts), one per variant (its latest run, charts across commits, changes, recent runs), the
template data of a flagged change (also on the overview) and the changes downloads; the
changes themselves are :mod:`lowbench.site.history`'s."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np

from lowbench.results.columns import (
    direction,
    header,
    metric_names,
    min_effect,
    number,
    shown,
    view,
)
from lowbench.results.runtime_fields import EAGER
from lowbench.site.gallery import ImageStore
from lowbench.site.history import Change, HistoryTable, rule_definitions
from lowbench.site.model import Latest, reason
from lowbench.site.pages import (
    RATIO_COLUMN,
    RECENT_RUNS,
    Writer,
    machine_href,
    measurement_notes,
    runtime_ctx,
    status_reason,
    value_cell,
)
from lowbench.site.svg import line_chart

#: How many changes a page lists at most (the downloads have all).
MAX_CHANGES = 500
#: Columns of changes.csv / changes.json (``runtime`` only where a change is of a runtime other
#: than eager torch: :func:`change_columns`).
CHANGE_COLUMNS = ("task", "task_version", "task_digest", "machine", "machine_id", "model",
                  "quant", "runtime", "preprocess", "checkpoint", "pairs", "metric",
                  "before_commit", "after_commit", "before_position", "after_position", "before",
                  "after", "delta", "relative", "threshold", "kind", "reason")



def change_ctx(c: Change, h: HistoryTable, href: str) -> dict[str, Any]:
    """Template data of one flagged change (``href``: its variant page)."""
    after, before = h.commits[c.after_index], h.commits[c.before_index]
    is_status = c.metric == "status"
    rel = c.relative
    return {
        "table": h.table.title, "commit": after.label, "before_commit": before.label,
        "index": "" if after.position is None else after.position,
        "variant": c.variant.label, "href": href,
        "metric": "status" if is_status else header(c.metric),
        "before": c.before if is_status else number(c.before, c.metric),
        "after": c.after if is_status else number(c.after, c.metric),
        "before_v": "" if is_status else repr(c.before),
        "after_v": "" if is_status else repr(c.after),
        "rel_v": "" if rel is None else repr(rel),
        "rel": "" if rel is None else (f"{rel:+.1%}" if c.before else ""),
        "threshold_v": "" if c.threshold is None else repr(c.threshold),
        "threshold": "" if c.threshold is None else number(c.threshold, c.metric),
        "kind": c.kind, "reason": c.reason,
    }


def mark_text(c: Change, h: HistoryTable) -> str:
    after = h.commits[c.after_index]
    if c.metric == "status":
        return f"{after.label}: {c.before} -> {c.after} ({c.kind})"
    return (f"{after.label}: {number(c.before, c.metric)} -> {number(c.after, c.metric)} "
            f"{header(c.metric)} ({c.kind}: {c.reason})")


def changes_latest_first(changes: Iterable[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: -c.after_index)


def history_page(w: Writer, h: HistoryTable, hrefs: dict) -> dict[str, Any]:
    """Write the history page of one table; its line of the history overview."""
    t = h.table
    shown = view("history")
    series = []
    for s in h.series:
        cells = []
        for m in shown:
            vals = s.values[m]
            finite = np.flatnonzero(np.isfinite(vals))
            ch = s.changes_of(m)
            marks = [(c.after_index, c.kind, mark_text(c, h)) for c in ch]
            cells.append({
                "svg": line_chart(vals, width=120, height=26, marks=marks,
                                  min_span=min_span(m, vals[finite]),
                                  title=f"{s.variant.label}: {header(m)}"),
                "last": number(float(vals[finite[-1]]), m) if finite.size else None,
                "bad": sum(c.bad for c in ch), "good": sum(not c.bad for c in ch)})
        series.append({"label": s.variant.label, "cells": cells,
                       "href": hrefs[(t.key, s.variant)]})
    changes = changes_latest_first(h.changes)
    rel = f"history/{t.slug}.html"
    w.page(rel, "history_table.html", title=f"History: {t.title}", slug=t.slug,
           machine=t.machine, machine_href=machine_href(t.machine_id),
           n_commits=len(h.commits), first=h.commits[0].label, last=h.commits[-1].label,
           metrics=[{"header": header(m)} for m in shown], series=series,
           changes=[change_ctx(c, h, hrefs[(t.key, c.variant)])
                    for c in changes[:MAX_CHANGES]],
           truncated=len(changes) if len(changes) > MAX_CHANGES else 0, show_table=False,
           bands=bands(t.rows), shifts=[shift_ctx(h, i, j, v) for i, j, v in h.shifts],
           floors=[{"metric": header(m), "floor": f"{f:.1%}"} for m, f in h.floors.items()])
    last = len(h.commits) - 1
    return {"href": rel, "title": t.title, "n_commits": len(h.commits),
            "n_variants": len(h.series), "n_bad": sum(c.bad for c in changes),
            "n_good": sum(not c.bad for c in changes), "n_shifts": len(h.shifts),
            "latest": h.commits[-1].label,
            "latest_bad": sum(c.bad and c.after_index == last for c in changes),
            "recent": [c for c in changes if c.bad and c.after_index == last]}


def shift_ctx(h: HistoryTable, before: int, after: int, v: Any) -> dict[str, Any]:
    """Template data of one common session shift (every variant moved together)."""
    return {"commit": h.commits[after].label, "before_commit": h.commits[before].label,
            "metric": header(v.metric), "factor": f"x{v.after:.3f}", "reason": v.reason}


def min_span(metric: str, finite: np.ndarray) -> float:
    """Smallest y range of a history chart: four minimum effects around the median value, so
    that changes too small to report draw as a nearly flat line and real changes stand out."""
    if finite.size == 0:
        return 0.0
    rel, floor = min_effect(metric)
    mid = abs(float(np.median(finite)))
    return 4 * max(rel * mid, floor, 0.01 * mid)


def bands(rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """How a change is decided, for the pages of ``rows``: of every metric they show
    (:func:`lowbench.results.columns.shown`)."""
    return [{"metric": header(m), "direction": direction(m) or "-", "text": text}
            for m, text in rule_definitions(shown(metric_names(), rows))]


def change_columns(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The columns of the downloads of ``rows`` (:func:`changes_rows`): :data:`CHANGE_COLUMNS`,
    less ``runtime`` when every change is of eager torch (as before runtimes were recorded)."""
    if any(r.get("runtime") != EAGER for r in rows):
        return CHANGE_COLUMNS
    return tuple(c for c in CHANGE_COLUMNS if c != "runtime")


def changes_rows(histories: list[HistoryTable]) -> list[dict[str, Any]]:
    """Every flagged change as a flat row (changes.csv / changes.json)."""
    out = []
    for h in histories:
        for c in h.changes:
            a, b = h.commits[c.before_index], h.commits[c.after_index]
            out.append({"task": h.table.task, "task_version": h.table.task_version,
                        "task_digest": h.table.task_digest, "machine": h.table.machine,
                        "machine_id": h.table.machine_id, "model": c.variant.model,
                        "quant": c.variant.quant, "runtime": c.variant.runtime_name,
                        "preprocess": c.variant.preprocess,
                        "checkpoint": c.variant.checkpoint, "pairs": c.variant.pairs,
                        "metric": c.metric, "before_commit": a.sha, "after_commit": b.sha,
                        "before_position": a.position, "after_position": b.position,
                        "before": c.before, "after": c.after, "delta": c.delta,
                        "relative": c.relative, "threshold": c.threshold, "kind": c.kind,
                        "reason": c.reason})
    return out


def variant_pages(w: Writer, h: HistoryTable, lt: Latest, hrefs: dict,
                   store: ImageStore) -> None:
    """Write the page of every variant of one table: latest run, charts, changes, runs."""
    t = h.table
    commits = h.commits
    first, last = commits[0].label, commits[-1].label
    all_metrics, recent_metrics = shown(metric_names(), t.rows), shown(view("recent"), t.rows)
    for s in h.series:
        href = hrefs[(t.key, s.variant)]
        measured = [i for i, r in enumerate(s.rows) if r is not None]
        row = s.rows[measured[-1]]
        extra = sorted(k for k in row if RATIO_COLUMN.fullmatch(k))
        metrics = []
        for m in (*all_metrics, *extra):
            cell = value_cell(row, m)
            text = f"{cell['text']} ±{cell['pm']}" if cell.get("pm") else cell["text"]
            metrics.append({"header": header(m), "na": cell["na"], "text": text,
                            "title": cell["title"],
                            "reason": reason(row, m) if cell["na"] else "",
                            "direction": f"{direction(m) or '-'} is better"})
        gallery = [{"pair": g.get("pair"), "src": store.add(row["results_root"], g.get("output"))}
                   for g in row.get("gallery") or []]
        charts = []
        for m in all_metrics:
            vals = s.values[m]
            finite = vals[np.isfinite(vals)]
            if finite.size == 0:
                continue
            marks = [(c.after_index, c.kind, mark_text(c, h)) for c in s.changes_of(m)]
            marks += [(c.after_index, c.kind, mark_text(c, h)) for c in s.changes_of("status")]
            charts.append({"header": header(m), "svg": line_chart(
                vals, width=560, height=120, axes=True, marks=marks, title=header(m),
                min_span=min_span(m, finite),
                x_labels=(first, last), y_format=partial(number, metric=m))})
        changes = changes_latest_first(s.changes)
        recent = []
        for i in measured[::-1][:RECENT_RUNS]:
            r = s.rows[i]
            recent.append({"commit": commits[i].label,
                           "index": "" if commits[i].position is None else commits[i].position,
                           "status": r["status"],
                           "cells": [value_cell(r, m) for m in recent_metrics]})
        latest_ctx = {
            "commit": commits[measured[-1]].label, "run_id": row["run_id"],
            "created_utc": row["created_utc"], "engine": row.get("engine"),
            "quantized_layers": row.get("quantized_layers"),
            "quantized_nothing": bool(row.get("quantized_nothing")), "status": row["status"],
            "status_reason": status_reason(row), "metrics": metrics,
            "reasons": sorted((row.get("reasons") or {}).items()), "gallery": gallery,
            "runtime": runtime_ctx(row), "measurement": measurement_notes(row),
        }
        w.page(href, "variant.html", title=f"{s.variant.label}: {t.title}", task=t.task,
               machine=t.machine, machine_href=machine_href(t.machine_id),
               history_href=f"history/{t.slug}.html", table_slug=t.slug, latest=latest_ctx,
               on_leaderboard=row["commit"] == lt.commit, table_commit=lt.commit_label,
               n_commits=len(commits), first=first, last=last, charts=charts,
               changes=[change_ctx(c, h, href) for c in changes[:MAX_CHANGES]],
               truncated=len(changes) if len(changes) > MAX_CHANGES else 0, show_table=False,
               recent=recent, recent_headers=[header(m) for m in recent_metrics],
               recent_more=len(measured) if len(measured) > RECENT_RUNS else 0)
