"""What the site shows: variants, their order, tables per task x machine, the latest commit of
each, commit labels and slugs for file names (headers, units and number formatting are the
catalogue's: :mod:`lowbench.results.columns`).

A table holds the rows of one task (name, version, digest, crop) on one machine; a variant (one
row of the leaderboard) is model x quantization x preprocessing x checkpoint x pairs scored x
runtime, so a run on a user checkpoint or on a ``--limit`` subset is its own row, marked, never
the reference cell, and never on a Pareto front or in the ablation (see
:meth:`Variant.is_reference`); a run by a deployment runtime (ONNX Runtime, OpenVINO, ...) is its
own row too, and a reference one (it competes on the Pareto fronts with eager torch).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lowbench.digest import bytes_digest
from lowbench.models.registry import MODEL_NAMES, QUANT_NAMES
from lowbench.results.runtime_fields import EAGER
from lowbench.results.table import REFERENCE, is_complete
from lowbench.runtimes.registry import RUNTIME_NAMES

#: Natural order of models and quantizations (others follow, alphabetically): the registry's.
MODEL_ORDER, QUANT_ORDER = MODEL_NAMES, QUANT_NAMES
#: Natural order of runtimes (others follow, alphabetically): the runtime registry's, eager torch
#: first.
RUNTIME_ORDER = RUNTIME_NAMES
#: Hook for the fast-preprocessing ablation: a row whose ``preprocess`` column is set (e.g.
#: "fast") is a distinct variant; rows without it use the reference preprocessing.
PREPROCESS_FIELD = "preprocess"

class Variant(NamedTuple):
    """One benchmarked configuration: model, quantization, preprocessing (None: reference),
    checkpoint (None: the shipped weights, else the first 12 hex of the file's sha256), pairs
    scored (None: all of the task's pairs, else e.g. "3/21") and runtime (None: eager torch,
    as every result from before runtimes were recorded; else e.g. "onnxruntime")."""

    model: str
    quant: str
    preprocess: str | None = None
    checkpoint: str | None = None
    pairs: str | None = None
    runtime: str | None = None

    @property
    def runtime_name(self) -> str:
        """The runtime's name, eager torch included ("torch")."""
        return self.runtime or EAGER

    @property
    def marks(self) -> list[str]:
        """What sets this variant apart from the reference cell, e.g. ['checkpoint 1a2b3c4d',
        '3/21 pairs'] (empty for the reference)."""
        out = []
        if self.checkpoint:
            out.append(f"checkpoint {self.checkpoint[:CHECKPOINT_HEX]}")
        if self.pairs:
            out.append(f"{self.pairs} pairs")
        return out

    @property
    def label(self) -> str:
        """'model / quant' (+ ' / <runtime>', + ' / <preprocess> preprocessing', + its marks),
        e.g. 'sid / static / openvino'."""
        text = f"{self.model} / {self.quant}"
        if self.runtime:
            text += f" / {self.runtime}"
        if self.preprocess:
            text += f" / {self.preprocess} preprocessing"
        return " / ".join([text, *self.marks])

    @property
    def is_reference(self) -> bool:
        """The shipped weights on every pair of the task: comparable with the other reference
        variants (Pareto fronts, ablation)."""
        return self.checkpoint is None and self.pairs is None

    @property
    def slug_parts(self) -> tuple[str, ...]:
        """Parts of this variant's page name (the reference variants keep their short names;
        a runtime other than eager torch is one more part, so eager torch pages keep theirs)."""
        base = (self.model, self.quant, self.preprocess or "")
        parts = base if self.is_reference else (*base, self.checkpoint or "", self.pairs or "")
        return (*parts, self.runtime) if self.runtime else parts

    def sort_key(self) -> tuple:
        """Natural order: MODEL_ORDER, then QUANT_ORDER, then RUNTIME_ORDER (eager torch
        first), reference preprocessing first, the reference checkpoint and complete runs
        before the others."""
        return (_rank(self.model, MODEL_ORDER), _rank(self.quant, QUANT_ORDER),
                _rank(self.runtime_name, RUNTIME_ORDER), self.preprocess or "",
                self.checkpoint or "", self.pairs or "")


def _rank(value: str, order: tuple[str, ...]) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), value)


#: Hex digits of a checkpoint digest shown in a variant's label.
CHECKPOINT_HEX = 8


def variant_of(row: dict[str, Any]) -> Variant:
    """The variant of a row (see lowbench.results.table.KEY: checkpoint, pairs and pairs_total,
    runtime)."""
    ckpt = row.get("checkpoint")
    checkpoint = None if ckpt in (None, REFERENCE) else str(ckpt)
    pairs = None
    if not is_complete(row):
        total = row.get("pairs_total")
        pairs = f"{row.get('pairs')}/{'?' if total is None else total}"
    runtime = row.get("runtime")
    return Variant(row["model"], row["quant"], row.get(PREPROCESS_FIELD) or None, checkpoint,
                   pairs, None if runtime in (None, EAGER) else str(runtime))


def runtime_rank(name: str) -> tuple[int, str]:
    """Sort key of a runtime's name in :data:`RUNTIME_ORDER` (others after, alphabetically)."""
    return _rank(name, RUNTIME_ORDER)


def variant_slug(table: Table, variant: Variant) -> str:
    """File stem of the page of ``variant`` in ``table``."""
    return slug(table.task, table.machine_id, *table.qualifier_parts, *variant.slug_parts)


def slug(*parts: Any) -> str:
    """A safe, unique, deterministic file stem: readable prefix + 10 hex of a digest."""
    text = "-".join(str(p) for p in parts)
    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-")
    digest = bytes_digest(repr(tuple(str(p) for p in parts)).encode(), 10, "sha1")
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
    """The rows of one task (name, version, digest, crop) on one machine."""

    task: str
    machine_id: str
    machine: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    task_version: Any = None
    #: the task's manifest digest (record task.manifest_sha256; a user task file's own digest)
    task_digest: str | None = None
    #: centred raw crop (raw pixels), None for the full frame
    crop: int | None = None
    #: another table has the same task name on the same machine (another version, digest or
    #: crop): the title and file names then say which this is
    qualified: bool = False

    @property
    def key(self) -> tuple:
        """(task, machine_id, task version, task digest, crop): :func:`table_key` of its rows."""
        return (self.task, self.machine_id, self.task_version, self.task_digest, self.crop)

    @property
    def qualifier_parts(self) -> tuple[str, ...]:
        """Version, digest and crop for file names when :attr:`qualified` (else nothing)."""
        if not self.qualified:
            return ()
        return (f"v{self.task_version}", (self.task_digest or "")[:12], str(self.crop or ""))

    @property
    def slug(self) -> str:
        """File stem of this table's pages and downloads."""
        return slug(self.task, self.machine, self.machine_id, *self.qualifier_parts)

    @property
    def task_label(self) -> str:
        """The task's name (+ version, digest and crop when another table shares the name)."""
        if not self.qualified:
            return self.task
        extra = [f"v{self.task_version}"]
        if self.task_digest:
            extra.append(f"task {self.task_digest[:CHECKPOINT_HEX]}")
        if self.crop:
            extra.append(f"crop {self.crop}")
        return f"{self.task} ({', '.join(extra)})"

    @property
    def title(self) -> str:
        """'task on machine'."""
        return f"{self.task_label} on {self.machine}"


def table_key(row: dict[str, Any]) -> tuple:
    """(task, machine_id, task version, task digest, crop): the :attr:`Table.key` of the table
    a row with a task digest belongs to."""
    return (row["task"], row["machine_id"], row.get("task_version"), row.get("task_digest"),
            row.get("crop"))


def group_tables(rows: Iterable[dict[str, Any]]) -> list[Table]:
    """Rows grouped by task (name, version, digest, crop) and machine_id; tables sorted by task,
    machine label, machine id, version, digest, crop.

    A row without a task digest (an asv result) joins the table of the same task name, version
    and machine that holds the newest row, since it cannot say which digest it ran."""
    tables: dict[tuple, Table] = {}
    undigested: list[dict[str, Any]] = []
    for row in rows:
        if row.get("task_digest") is None:
            undigested.append(row)
            continue
        key = table_key(row)
        table = tables.get(key)
        if table is None:
            table = tables[key] = Table(row["task"], row["machine_id"], row["machine"],
                                        task_version=key[2], task_digest=key[3], crop=key[4])
        table.rows.append(row)
    newest: dict[tuple, Table] = {}
    for table in tables.values():
        short = (table.task, table.machine_id, table.task_version)
        if short not in newest or (max(map(recency, table.rows))
                                   > max(map(recency, newest[short].rows))):
            newest[short] = table
    for row in undigested:
        short = (row["task"], row["machine_id"], row.get("task_version"))
        table = newest.get(short)
        if table is None:
            table = newest[short] = tables[(*short, None, None)] = Table(
                row["task"], row["machine_id"], row["machine"], task_version=short[2])
        table.rows.append(row)
    siblings: dict[tuple[str, str], int] = {}
    for table in tables.values():
        siblings[(table.task, table.machine_id)] = siblings.get(
            (table.task, table.machine_id), 0) + 1
    for table in tables.values():
        table.qualified = siblings[(table.task, table.machine_id)] > 1
    return sorted(tables.values(), key=lambda t: (t.task, t.machine, t.machine_id,
                                                  str(t.task_version), t.task_digest or "",
                                                  t.crop or 0))


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
    broken by the latest creation time) and the latest run of each variant at that commit.

    Only reference runs move the table to a newer commit (when it has any): a ``--limit`` or
    user-checkpoint run at a newer commit is listed among the older variants instead of hiding
    every reference row."""
    reference = [r for r in table.rows if variant_of(r).is_reference]
    newest = max(reference or table.rows, key=recency)
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


def reason(row: dict[str, Any], metric: str) -> str:
    """Why ``metric`` of ``row`` is null (the record's reason, else a generic one)."""
    return (row.get("reasons") or {}).get(metric) or (
        f"{row['status']}" if row.get("status") != "ok" else "not recorded by this run")
