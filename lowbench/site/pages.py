"""Template data of the site's pages (leaderboard tables, history and variant pages, flagged
changes) and the page writer. Values are formatted in the unit of their column header; a missing
value becomes "n/a" with its reason; every text from a record is escaped by the templates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from lowbench import __version__
from lowbench.paths import PACKAGE_DIR
from lowbench.results.columns import (
    column,
    header,
    number,
    shown,
    view,
)
from lowbench.results.runtime_fields import EAGER, has_runtime
from lowbench.site.costs import carbon_note
from lowbench.site.model import (
    MODEL_ORDER,
    QUANT_ORDER,
    RUNTIME_ORDER,
    Latest,
    reason,
    runtime_rank,
    slug,
    variant_of,
)
from lowbench.site.pareto import COSTS, row_marks
from lowbench.units import SIZE_UNIT

TEMPLATES = PACKAGE_DIR / "site_templates"
#: Per-exposure-ratio PSNR columns listed on a variant page (psnr_x100_db, ...).
RATIO_COLUMN = re.compile(r"psnr_x\d+_db")
#: How many runs a variant page lists at most (the downloads have all).
RECENT_RUNS = 20
def environment() -> jinja2.Environment:
    """The jinja2 environment: package templates, autoescape everywhere, strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.globals["version"] = __version__
    return env


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def value_cell(row: dict[str, Any], metric: str) -> dict[str, Any]:
    """Template data of one value: text, data-v (raw, for sorting), n/a flag and reason."""
    v = row.get(metric) if row.get("status") == "ok" else None
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return {"na": True, "title": reason(row, metric), "v": "", "text": "n/a"}
    if not _is_num(v):
        return {"na": False, "title": "", "v": "", "text": str(v)}
    cell = {"na": False, "title": "", "v": repr(v), "text": number(v, metric)}
    ci = row.get(f"{metric}_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(map(_is_num, ci)):
        # '12.3 ±0.4': half the width of the run's 95% interval, in the column's format
        cell["pm"] = number((ci[1] - ci[0]) / 2, metric)
        col = column(metric)
        over = ("a bootstrap over scenes" if col is not None and col.ci and col.ci[0] == "quality"
                else "distribution-free, of the timed runs")
        cell["title"] = f"95% interval [{number(ci[0], metric)}, {number(ci[1], metric)}] ({over})"
    return cell


def status_reason(row: dict[str, Any]) -> str:
    """Why a failed/unsupported run did not succeed (from its reasons), '' for an ok run."""
    if row.get("status") == "ok":
        return ""
    reasons = row.get("reasons") or {}
    text = reasons.get("psnr_db") or next((reasons[k] for k in sorted(reasons)), "")
    prefix = f"{row['status']}: "
    return text[len(prefix):] if text.startswith(prefix) else (text or "no reason recorded")


def _rank(value: str, order: Sequence[str]) -> str:
    return f"{order.index(value):02d} {value}" if value in order else f"{len(order):02d} {value}"


def machine_href(machine_id: str) -> str:
    """Site-relative path of the page of machine ``machine_id``."""
    stem = machine_id if re.fullmatch(r"[0-9a-f]{6,64}", machine_id) else slug(machine_id)
    return f"machine/{stem}.html"


class Writer:
    """Renders templates into the staging folder and counts pages."""

    def __init__(self, out: Path, env: jinja2.Environment, n_rows: int) -> None:
        self.out, self.env, self.n_rows, self.pages = out, env, n_rows, 0

    def page(self, rel: str, template: str, **ctx: Any) -> None:
        """Render ``template`` with ``ctx`` to ``rel`` (site-relative; ``root`` = the way back)."""
        root = "../" * rel.count("/")
        html = self.env.get_template(template).render(root=root, n_rows=self.n_rows, **ctx)
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        self.pages += 1


def runtime_title(row: dict[str, Any]) -> str:
    """Hover text of a row's runtime: version, provider, device, threads and the precision it
    executed (e.g. 'onnxruntime 1.32.0 · CPUExecutionProvider · cpu · 2 threads · executed
    int8'); '' for a row that does not say its runtime."""
    if not has_runtime(row):
        return ""
    parts = [" ".join(str(x) for x in (row.get("runtime"), row.get("runtime_version")) if x)]
    parts += [str(row[k]) for k in ("runtime_provider", "runtime_device") if row.get(k)]
    if row.get("runtime_threads") is not None:
        parts.append(f"{row['runtime_threads']} threads")
    precision = row.get("precision")
    parts.append(f"executed {precision}" if precision else
                 f"executed precision n/a: {reason(row, 'precision')}")
    return " · ".join(parts)


def precision_mismatch(row: dict[str, Any]) -> str:
    """'executed fp32, asked int8' when the runtime executed another precision than the one
    asked for (read back from the runtime), else ''."""
    got, asked = row.get("precision"), row.get("requested_precision")
    return f"executed {got}, asked {asked}" if got and asked and got != asked else ""


def leaderboard_ctx(lt: Latest, hrefs: dict, files: dict) -> dict[str, Any]:
    """Template data of one leaderboard table (``files``: its CSV/JSON names by table key).

    A runtime column when a row ran on another runtime than eager torch, and a filter by runtime
    when the table holds more than one; a table of eager torch only is as it was."""
    t = lt.table
    marks = row_marks(lt.rows)
    leaderboard = shown(view("leaderboard"), lt.rows)  # optional columns: where a row has one
    runtimes = sorted({variant_of(r).runtime_name for r in lt.rows}, key=runtime_rank)
    rows = []
    for row, mark in zip(lt.rows, marks, strict=True):
        v = variant_of(row)
        rows.append({
            "model": v.model, "quant": v.quant, "preprocess": v.preprocess, "marks": v.marks,
            "order": _rank(v.model, MODEL_ORDER), "quant_order": _rank(v.quant, QUANT_ORDER),
            "runtime": v.runtime_name, "runtime_title": runtime_title(row),
            "runtime_order": _rank(v.runtime_name, RUNTIME_ORDER),
            "precision_mismatch": precision_mismatch(row),
            "href": hrefs[(t.key, v)],
            "quantized_nothing": bool(row.get("quantized_nothing")),
            "status": row["status"], "status_reason": status_reason(row),
            "cells": [value_cell(row, m) for m in leaderboard],
            "pareto": [mark[name] for name, _ in COSTS],
        })
    versions = sorted({str(r.get("task_version")) for r in lt.rows})
    return {
        "slug": t.slug, "title": t.title, "task": t.task, "task_version": "/".join(versions),
        "machine": t.machine, "machine_id": t.machine_id,
        "machine_href": machine_href(t.machine_id), "commit": lt.commit_label,
        "history_href": f"history/{t.slug}.html", "chart_href": f"pareto.html#{t.slug}",
        "csv": f"data/{files[t.key][0]}", "json": f"data/{files[t.key][1]}",
        "older": [{"label": o.label, "href": hrefs[(t.key, o)]}
                  for o in lt.older],
        "headers": [header(m) for m in leaderboard],
        "show_runtime": runtimes != [EAGER], "runtimes": runtimes,
        "runtime_filter": len(runtimes) > 1,
        "pareto_headers": [{"text": f"Pareto {name}",
                            "title": f"Pareto-optimal: PSNR vs {header(metric)}"}
                           for name, metric in COSTS],
        "rows": rows, "carbon_note": carbon_note(lt.rows),
    }


def runtime_ctx(row: dict[str, Any]) -> dict[str, Any] | None:
    """Template data of a row's runtime for its variant page: name, version, provider, device,
    threads, executed precision (n/a with the reason when the runtime could not say), the
    precision asked for, build time (s) and artifact (format, size in MiB, input shape); None
    for a row that does not say its runtime (results from before runtimes were recorded)."""
    if not has_runtime(row):
        return None
    build = value_cell(row, "build_s")
    art = row.get("artifact") or {}
    size = art.get("bytes")
    shape = art.get("input_shape")
    return {
        "name": row.get("runtime"), "version": row.get("runtime_version"),
        "provider": row.get("runtime_provider"), "device": row.get("runtime_device"),
        "threads": row.get("runtime_threads"), "precision": row.get("precision"),
        "precision_reason": "" if row.get("precision") else reason(row, "precision"),
        "requested": row.get("requested_precision"), "mismatch": precision_mismatch(row),
        "build": build["text"], "build_reason": build["title"],
        "artifact": bool(art), "format": art.get("format"),
        "size": None if not _is_num(size) else f"{number(size, 'size_bytes')} {SIZE_UNIT}",
        "shape": "x".join(map(str, shape)) if isinstance(shape, list) else None,
    }


def measurement_notes(row: dict[str, Any]) -> list[str]:
    """How the latest run measured what the variant page shows: why the latency loop stopped,
    and the energy meter with its idle baseline (power in mW, windows in s)."""
    notes = []
    stop = row.get("latency_stop")
    if stop is not None:
        why = {"converged": "its median's 95% interval met the target",
               "budget": "it reached the time cap (--latency-budget)",
               "max_runs": "it reached the most runs allowed"}.get(stop, stop)
        notes.append(f"latency: {row.get('latency_n')} timed runs; the loop stopped because "
                     f"{why}")
    if row.get("energy_meter"):
        idle, window = row.get("energy_idle_power_mw"), row.get("energy_idle_window_s")
        text = f"energy: meter {row['energy_meter']}"
        if _is_num(row.get("energy_mean_power_mw")) and _is_num(row.get("energy_window_s")):
            text += (f"; workload {row['energy_mean_power_mw']:,.0f} mW over "
                     f"{row['energy_window_s']:.2f} s")
        if _is_num(idle):
            text += (f"; idle baseline {idle:,.0f} mW"
                     + (f" over {window:.2f} s" if _is_num(window) else "")
                     + "; net = gross - idle power x workload window")
        else:
            text += "; no idle baseline (net energy n/a)"
        notes.append(text)
    return notes


