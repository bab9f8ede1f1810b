"""What the site shows: variants, their order, tables per task x machine, the latest commit of
each, commit labels, slugs for file names and number formatting (units in the column headers).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lowbench.units import format_mib

#: Natural order of models and quantizations (others follow, alphabetically).
MODEL_ORDER = ("sid", "light", "lighter", "fire", "libraw")
QUANT_ORDER = ("fp32", "fp16", "dynamic", "static", "qat")
#: Hook for the fast-preprocessing ablation: a row whose ``preprocess`` column is set (e.g.
#: "fast") is a distinct variant; rows without it use the reference preprocessing.
PREPROCESS_FIELD = "preprocess"

#: (metric column, header, unit shown, divisor applied for display)
COLUMNS: tuple[tuple[str, str, str, float], ...] = (
    ("params", "Params", "M", 1e6),
    ("macs", "MACs", "G", 1e9),
    ("size_bytes", "Size", "MiB", 2.0 ** 20),
    ("latency_median_ms", "Latency median", "ms", 1.0),
    ("latency_p90_ms", "Latency p90", "ms", 1.0),
    ("latency_p99_ms", "Latency p99", "ms", 1.0),
    ("end_to_end_ms", "End-to-end", "ms", 1.0),
    ("peak_rss_mib", "Peak RSS", "MiB", 1.0),
    ("swap_peak_mib", "Peak swap", "MiB", 1.0),
    ("energy_per_inference_net_mj", "Energy/image net", "mJ", 1.0),
    ("energy_per_inference_gross_mj", "Energy/image gross", "mJ", 1.0),
    ("psnr_db", "PSNR", "dB", 1.0),
    ("ssim", "SSIM", "", 1.0),
)
COLUMN = {c[0]: c for c in COLUMNS}
#: The leaderboard's metric columns, in order.
LEADERBOARD_METRICS = (
    "params", "macs", "size_bytes", "latency_median_ms", "latency_p90_ms", "end_to_end_ms",
    "peak_rss_mib", "swap_peak_mib", "energy_per_inference_net_mj", "psnr_db", "ssim")


class Variant(NamedTuple):
    """One benchmarked configuration: model, quantization and preprocessing (None: reference)."""

    model: str
    quant: str
    preprocess: str | None = None

    @property
    def label(self) -> str:
        """'model / quant' (+ ' / <preprocess> preprocessing')."""
        text = f"{self.model} / {self.quant}"
        return f"{text} / {self.preprocess} preprocessing" if self.preprocess else text

    def sort_key(self) -> tuple:
        """Natural order: MODEL_ORDER, then QUANT_ORDER, reference preprocessing first."""
        return (_rank(self.model, MODEL_ORDER), _rank(self.quant, QUANT_ORDER),
                self.preprocess or "")


def _rank(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), value)


def variant_of(row: dict[str, Any]) -> Variant:
    """The variant of a row."""
    return Variant(row["model"], row["quant"], row.get(PREPROCESS_FIELD) or None)


def slug(*parts: Any) -> str:
    """A safe, unique, deterministic file stem: readable prefix + 10 hex of a digest."""
    text = "-".join(str(p) for p in parts)
    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-")
    digest = hashlib.sha1(repr(tuple(str(p) for p in parts)).encode()).hexdigest()[:10]
    return f"{readable}-{digest}" if readable else digest


def recency(row: dict[str, Any]) -> tuple:
    """Sort key: newer is larger. Commit position first (a commit without a position ranks below
    any with one), then creation time, then run id (a stable tie-break)."""
    pos = row.get("commit_position")
    return (pos is not None, pos if pos is not None else 0, row["created_utc"], row["run_id"])


def commit_label(commit: str, position: int | None, dirty: bool | None) -> str:
    """Short commit label: first 10 hex, '#position', '+dirty'."""
    text = commit[:10] if commit != "unknown" else "unknown commit"
    if position is not None:
        text += f" #{position}"
    return text + ("+dirty" if dirty else "")


@dataclass
class Table:
    """The rows of one task on one machine."""

    task: str
    machine_id: str
    machine: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        """(task, machine_id)."""
        return (self.task, self.machine_id)

    @property
    def slug(self) -> str:
        """File stem of this table's pages and downloads."""
        return slug(self.task, self.machine, self.machine_id)

    @property
    def title(self) -> str:
        """'task on machine'."""
        return f"{self.task} on {self.machine}"


def group_tables(rows: Iterable[dict[str, Any]]) -> list[Table]:
    """Rows grouped by (task, machine_id), tables sorted by task, machine label, machine id."""
    tables: dict[tuple[str, str], Table] = {}
    for row in rows:
        key = (row["task"], row["machine_id"])
        table = tables.get(key)
        if table is None:
            table = tables[key] = Table(row["task"], row["machine_id"], row["machine"])
        table.rows.append(row)
    return sorted(tables.values(), key=lambda t: (t.task, t.machine, t.machine_id))


@dataclass
class Latest:
    """The latest commit of a table and one row per variant measured at it (the latest run)."""

    table: Table
    commit: str
    position: int | None
    dirty: bool | None
    rows: list[dict[str, Any]]
    #: variants measured only at older commits (not on the leaderboard)
    older: list[Variant]

    @property
    def commit_label(self) -> str:
        """Short label of the latest commit."""
        return commit_label(self.commit, self.position, self.dirty)


def latest(table: Table) -> Latest:
    """The latest commit of ``table`` (highest commit position; ties and unknown positions are
    broken by the latest creation time) and the latest run of each variant at that commit."""
    newest = max(table.rows, key=recency)
    commit = newest["commit"]
    per_variant: dict[Variant, dict[str, Any]] = {}
    others: set[Variant] = set()
    for row in table.rows:
        v = variant_of(row)
        if row["commit"] != commit:
            others.add(v)
        elif v not in per_variant or recency(row) > recency(per_variant[v]):
            per_variant[v] = row
    chosen = sorted(per_variant.items(), key=lambda kv: kv[0].sort_key())
    older = sorted(others - per_variant.keys(), key=Variant.sort_key)
    return Latest(table, commit, newest.get("commit_position"), newest.get("commit_dirty"),
                  [r for _, r in chosen], older)


def number(value: float | None, metric: str | None = None) -> str:
    """A value for display in the unit of its column (see COLUMNS); '' for None."""
    if value is None:
        return ""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return str(value)
    if metric == "size_bytes":
        return format_mib(value)  # one unit and rounding everywhere (lowbench.units)
    if metric in COLUMN:
        value = value / COLUMN[metric][3]
    if metric == "ssim":
        return f"{value:.3f}"
    if metric and metric.startswith("psnr"):
        return f"{value:.2f}"
    mag = abs(value)
    if mag == 0:
        return "0"
    if mag >= 1000:
        return f"{value:,.0f}"
    if mag >= 100:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def header(metric: str) -> str:
    """Column header with its unit, e.g. 'Latency median (ms)'."""
    _, name, unit, _ = COLUMN.get(metric, (metric, metric, "", 1.0))
    return f"{name} ({unit})" if unit else name


def reason(row: dict[str, Any], metric: str) -> str:
    """Why ``metric`` of ``row`` is null (the record's reason, else a generic one)."""
    return (row.get("reasons") or {}).get(metric) or (
        f"{row['status']}" if row.get("status") != "ok" else "not recorded by this run")
