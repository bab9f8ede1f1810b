"""Machines side by side (issue 20): each machine named in full, and for each task one table of
the reference variants (rows) on every machine that ran the task (columns), each cell the
machine's latest value of a metric and its ratio to a reference machine's.

Only like is compared with like: one task (name, version, manifest digest, crop), one variant
key (model / quant / runtime, preprocessing; the shipped weights on every pair:
:meth:`lowbench.site.model.Variant.is_reference`), and evaluate records only (asv times the
forward pass with another harness). A variant a machine never ran is "—" in its column.

The page (machines.html) is rendered for a default reference, the machine with the most rows,
so it reads correctly without JavaScript; a ``<select>`` and a few lines of script recompute the
ratios for another reference from the values embedded as JSON (:func:`page_data`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from lowbench.results.columns import column, direction, header, number
from lowbench.site.model import Table, Variant, commit_label, reason, recency, slug, variant_of
from lowbench.site.pages import Writer, machine_href

#: The metrics compared, in the catalogue's units; one a task's runs never hold (energy on a
#: machine without a meter) is left out of that task's table.
COMPARED = ("latency_median_ms", "end_to_end_ms", "peak_rss_mib", "energy_per_inference_net_mj")
#: Shown in a cell with no run of its variant on its machine.
ABSENT = "—"


@dataclass(frozen=True)
class Machine:
    """One machine as the page names it: ``id`` (the machine id), ``label`` (the records'),
    ``name`` (CPU, cores, architecture, accelerator, Jetson model, host label), ``isa`` (its ISA
    features, None where its records predate them) and ``rows`` (its result rows, evaluate
    records and asv results), ``ram_mib`` (its RAM in MiB)."""

    id: str
    label: str
    name: str
    isa: tuple[str, ...] | None
    rows: int
    ram_mib: float | None = None


@dataclass
class TaskComparison:
    """One task's table: its machines (ids, page order), metrics, reference variants and the
    latest evaluate row of each (variant, machine) that ran it."""

    title: str
    slug: str
    machines: list[str]
    metrics: tuple[str, ...]
    variants: list[Variant]
    cells: dict[tuple[Variant, str], dict[str, Any]] = field(default_factory=dict)

    def value(self, variant: Variant, machine: str, metric: str) -> float | None:
        """The value of ``metric`` (the catalogue's unit) of the latest run of ``variant`` on
        ``machine``; None where it did not run, failed or did not measure it."""
        row = self.cells.get((variant, machine))
        if row is None or row.get("status") != "ok":
            return None
        v = row.get(metric)
        return float(v) if _finite(v) else None


@dataclass
class Comparison:
    """Every machine (page order: label, id), the default reference and one table per task."""

    machines: list[Machine]
    default: str | None
    tasks: list[TaskComparison]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def machine_name(machine: dict[str, Any]) -> str:
    """A machine named in full from its record's ``environment.machine``: 'AMD EPYC, 2 cores,
    x86_64, no accelerator' (+ the Jetson model, + the host label where the user set one)."""
    parts = [str(machine.get("cpu") or "unknown CPU"), f"{machine.get('cores') or '?'} cores",
             str(machine.get("arch") or "unknown arch"),
             str(machine.get("accelerator") or "no accelerator")]
    jet = machine.get("jetson")
    if isinstance(jet, dict) and jet.get("model"):
        parts.insert(0, str(jet["model"]))
    if machine.get("hostname_label"):
        parts.append(f"host {machine['hostname_label']}")
    return ", ".join(parts)


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference`` (how many times the reference's), None unless both are positive
    finite numbers (a zero or negative net energy has no meaningful ratio)."""
    if not (_finite(value) and _finite(reference)) or value <= 0 or reference <= 0:
        return None
    return value / reference


def ratio_text(r: float | None) -> str:
    """'1.24×' (two decimals, halves rounded up as JavaScript's toFixed does, so the page's
    script writes the same text); '' for None."""
    if r is None:
        return ""
    return f"{Decimal(r).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}×"


def verdict(r: float | None, better: str | None) -> str:
    """'better', 'worse' or 'same' (at the shown precision) than the reference for a ratio
    ``r`` of a metric whose ``better`` direction is 'lower' or 'higher'; '' when either is
    None."""
    if r is None or better is None:
        return ""
    text = ratio_text(r)
    if text == "1.00×":
        return "same"
    return "better" if (r < 1) == (better == "lower") else "worse"


def compare(rows: list[dict[str, Any]], machines: dict[str, dict[str, Any]],
            metrics: tuple[str, ...] = COMPARED) -> Comparison:
    """The comparison of ``rows`` (:func:`lowbench.results.table.load_table`'s) across
    ``machines`` (its machine descriptions by id), for ``metrics`` (catalogue names)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["machine_id"]] = counts.get(row["machine_id"], 0) + 1
    listed = [Machine(mid, str(desc.get("label")), machine_name(desc.get("machine") or {}),
                      _isa(desc.get("machine") or {}), counts.get(mid, 0),
                      (desc.get("machine") or {}).get("ram_mib"))
              for mid, desc in machines.items()]
    listed.sort(key=lambda m: (m.label, m.id))
    order = {m.id: i for i, m in enumerate(listed)}
    latest: dict[tuple, dict[tuple[Variant, str], dict[str, Any]]] = {}
    for row in rows:
        if row.get("source") != "evaluate" or row["machine_id"] not in order:
            continue
        v = variant_of(row)
        if not v.is_reference:
            continue
        key = (row["task"], row.get("task_version"), row.get("task_digest"), row.get("crop"))
        cells = latest.setdefault(key, {})
        old = cells.get((v, row["machine_id"]))
        if old is None or recency(row) > recency(old):
            cells[(v, row["machine_id"])] = row
    names: dict[str, int] = {}
    for key in latest:
        names[key[0]] = names.get(key[0], 0) + 1
    tasks = []
    for key in sorted(latest, key=lambda k: (k[0], str(k[1]), k[2] or "", k[3] or 0)):
        cells = latest[key]
        label = Table(key[0], "", "", task_version=key[1], task_digest=key[2], crop=key[3],
                      qualified=names[key[0]] > 1).task_label
        mids = sorted({m for _, m in cells}, key=order.__getitem__)
        variants = sorted({v for v, _ in cells}, key=Variant.sort_key)
        t = TaskComparison(label, slug("compare", *key), mids, (), variants, cells)
        t.metrics = tuple(m for m in metrics if any(
            t.value(v, mid, m) is not None for v in variants for mid in mids))
        tasks.append(t)
    compared = {mid for t in tasks for mid in t.machines}
    default = max((m for m in listed if m.id in compared), key=lambda m: m.rows, default=None)
    return Comparison(listed, default.id if default else None, tasks)


def _isa(machine: dict[str, Any]) -> tuple[str, ...] | None:
    isa = machine.get("isa")
    return tuple(map(str, isa)) if isinstance(isa, list) else None


def _cell(t: TaskComparison, v: Variant, mid: str, metric: str, ref: str | None
          ) -> dict[str, Any]:
    """Template data of one cell for the reference machine ``ref``."""
    row = t.cells.get((v, mid))
    if row is None:
        return {"text": ABSENT, "na": False, "title": "not run on this machine", "v": "",
                "ratio": "", "cls": ""}
    value = t.value(v, mid, metric)
    title = (f"{commit_label(row['commit'], row.get('commit_position'), row.get('commit_dirty'))}"
             f" · {row['created_utc']} · run {row['run_id']}")
    if value is None:
        return {"text": "n/a", "na": True, "title": f"{reason(row, metric)} ({title})", "v": "",
                "ratio": "", "cls": ""}
    r = ratio(value, t.value(v, ref, metric)) if ref in t.machines else None
    col = column(metric)
    unit = f" {col.unit}" if col and col.unit else ""
    return {"text": f"{number(value, metric)}{unit}", "na": False, "title": title,
            "v": repr(value), "ratio": f" · {ratio_text(r)}" if r is not None else "",
            "cls": verdict(r, direction(metric))}


def page_data(cmp: Comparison) -> dict[str, Any]:
    """What the page's script needs to recompute the ratios for another reference: the default
    reference, each machine's name, and per table its machines, metric directions and values
    (``values[variant][metric][machine]``, the catalogue's units, null where there is none)."""
    return {"default": cmp.default,
            "machines": {m.id: m.label for m in cmp.machines},
            "tables": [{"id": t.slug, "machines": t.machines,
                        "directions": [direction(m) for m in t.metrics],
                        "values": [[[t.value(v, mid, m) for mid in t.machines]
                                    for m in t.metrics] for v in t.variants]}
                       for t in cmp.tasks]}


def page_context(cmp: Comparison) -> dict[str, Any]:
    """Template data of machines.html: the machines, the reference choice, the tables (rendered
    for the default reference) and the JSON for the script."""
    ref = cmp.default
    by_id = {m.id: m for m in cmp.machines}
    compared = {mid for t in cmp.tasks for mid in t.machines}
    machines = [{"href": machine_href(m.id), "label": m.label, "id": m.id, "name": m.name,
                 "isa": _isa_text(m.isa), "rows": m.rows, "ram": m.ram_mib,
                 "default": m.id == ref, "compared": m.id in compared}
                for m in cmp.machines]
    tables = []
    for t in cmp.tasks:
        tables.append({
            "slug": t.slug, "title": t.title, "has_ref": ref in t.machines,
            "machines": [{"id": mid, "label": by_id[mid].label, "short": mid[:6],
                          "ref": mid == ref} for mid in t.machines],
            "metrics": [{"header": header(m), "better": direction(m) or ""} for m in t.metrics],
            "rows": [{"label": v.label,
                      "cells": [[_cell(t, v, mid, m, ref) for mid in t.machines]
                                for m in t.metrics]} for v in t.variants]})
    return {"machines": machines, "default": ref,
            "default_label": by_id[ref].label if ref else "", "tables": tables,
            "data": page_data(cmp)}


def _isa_text(isa: tuple[str, ...] | None) -> str:
    if isa is None:
        return "not recorded"
    return " ".join(isa) if isa else "none of note"


def write_machine_pages(w: Writer, rows: list[dict[str, Any]], tables: list[Table],
                        machines: dict[str, dict[str, Any]]) -> None:
    """Write machines.html (the list and the comparison) and one page per machine (its full
    name, ISA features, tables, description and software)."""
    cmp = compare(rows, machines)
    for m in cmp.machines:
        desc = machines[m.id]
        mine = [{"slug": t.slug, "title": t.title, "history_href": f"history/{t.slug}.html"}
                for t in tables if t.machine_id == m.id]
        w.page(machine_href(m.id), "machine.html", title=f"Machine: {m.label}", machine_id=m.id,
               name=m.name, isa=_isa_text(m.isa),
               isa_reason=(desc.get("machine") or {}).get("isa_reason") or "", rows=m.rows,
               tables=mine,
               machine_json=json.dumps(desc.get("machine") or {}, indent=2, sort_keys=True,
                                       default=str),
               software_json=json.dumps(desc.get("software"), indent=2, sort_keys=True,
                                        default=str))
    w.page("machines.html", "machines.html", title="Machines", **page_context(cmp))
