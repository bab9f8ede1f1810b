"""One table of every result: evaluate records and asv results, keyed by :data:`KEY`: commit,
machine, task (name, version, digest, crop), model, quant, runtime (``"torch"``: eager PyTorch,
also for every record without a ``variant.runtime`` section), checkpoint (``"reference"`` for the
shipped weights, else the first 12 hex of the user file's sha256) and pairs scored out of the
task's total.

Rows are flat dicts; which metrics a row holds, where a record keeps them and which direction is
better is the catalogue's (:mod:`lowbench.results.columns`; asv's ``track_`` results have no
direction, asv #1617). Two machines never share a row: ``machine_id`` is a digest of the machine
description (:func:`lowbench.results.provenance.machine_id`).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowbench.results.asv import load_asv_rows
from lowbench.results.columns import Column, metric_columns
from lowbench.results.provenance import checkpoint_is_reference, machine_id, pairs_total_of
from lowbench.results.records import RecordWarning, read_record, record_files
from lowbench.results.runtime_fields import runtime_fields

#: Identity columns of a row: two rows that differ in any of them measured different things.
KEY = ("commit", "machine_id", "task", "task_version", "task_digest", "crop", "model", "quant",
       "runtime", "tiling", "memory_limit", "checkpoint", "pairs", "pairs_total")
#: The ``checkpoint`` column of a row measured with the shipped weights (or no weights: LibRaw).
REFERENCE = "reference"


#: (catalogue's metric columns, ((section, column names), ...)): rebuilt when the catalogue
#: changes; a row is read ~200,000 times per site build.
_sections: tuple[Any, tuple[tuple[str, tuple[str, ...]], ...]] = (None, ())


def _by_section(columns: tuple[Column, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The record sections the catalogue reads, each with the columns read from it."""
    global _sections
    if _sections[0] is not columns:
        grouped: dict[str, list[str]] = {}
        for c in columns:
            grouped.setdefault(c.record[0], []).append(c.name)
        _sections = (columns, tuple((k, tuple(v)) for k, v in grouped.items()))
    return _sections[1]


def _reasons(record: dict[str, Any], columns: tuple[Column, ...]) -> dict[str, str]:
    """Why a metric is null, by column: a record section's own ``reason`` (energy: no meter)
    for every catalogue column read from that section, then each section's ``reasons``."""
    reasons: dict[str, str] = {}
    sections = [(record.get(name), names) for name, names in _by_section(columns)]
    for section, names in sections:
        if isinstance(section, dict) and section.get("reason"):
            reasons.update(dict.fromkeys(names, section["reason"]))
    for section, _names in sections:
        if isinstance(section, dict) and section.get("reasons"):
            reasons.update(section["reasons"])
    return reasons


def row_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """Flatten one evaluate record into a table row: :data:`KEY`, every metric of the catalogue
    (:func:`lowbench.results.columns.metric_names`, read from its record field) and
    ``psnr_<ratio>_db`` per exposure ratio."""
    env = record["environment"]
    commit = env.get("commit") or {}
    lat = record.get("latency") or {}
    quality = record.get("quality") or {}
    variant = record["variant"]
    metrics = metric_columns()
    reasons = _reasons(record, metrics)
    if record["status"] != "ok":
        why = (record.get("failure") or {}).get("reason") or variant.get("reason") or "failed"
        for c in metrics:
            reasons.setdefault(c.name, f"{record['status']}: {why}")
    for c in metrics:
        if c.optional and not _holds_parent(record, c.record):
            reasons.pop(c.name, None)  # a record from before the column: read as before
    task = record["task"]
    ckpt = variant.get("checkpoint")
    ckpt = ckpt if isinstance(ckpt, dict) else {}
    reference = checkpoint_is_reference(ckpt)
    row: dict[str, Any] = {
        "source": "evaluate",
        "run_id": record["run_id"],
        "created_utc": record["created_utc"],
        "commit": commit.get("sha") or "unknown",
        "commit_dirty": commit.get("dirty"),
        "commit_position": commit.get("position"),
        "machine_id": machine_id(env["machine"]),
        "machine": env["machine_label"],
        "task": task["name"],
        "task_version": task["version"],
        "task_digest": task.get("manifest_sha256"),
        "crop": task.get("crop"),
        "model": variant["model"],
        "quant": variant["quant"],
        **runtime_fields(variant.get("runtime"), reasons),
        **inference_fields(record),
        "checkpoint": REFERENCE if reference else str(ckpt["sha256"])[:12],
        "checkpoint_name": ckpt.get("name") or _basename(ckpt.get("path")),
        "status": record["status"],
        "engine": variant.get("engine"),
        "quantized_layers": variant.get("quantized_layers"),
        "quantized_nothing": variant.get("quantized_nothing"),
        "pairs": task["pairs_evaluated"],
        "pairs_total": pairs_total_of(task),
        "limit": task.get("limit"),
    }
    for c in metrics:  # the record field; inlined: 13 columns x 200,000 records
        v: Any = record
        for key in c.record:
            v = v.get(key) if isinstance(v, dict) else None
        row[c.name] = v
    row["latency_std_ms"] = lat.get("std_ms")
    if isinstance(record.get("carbon"), dict):  # issue 20; older rows keep their old columns
        row["grid_intensity_g_per_kwh"] = record["carbon"].get("grid_intensity_g_per_kwh")
        row["grid_source"] = grid_source(record["carbon"])
    row["latency_n"] = lat.get("n")
    energy = record.get("energy") or {}
    # the idle baseline behind the net energy figures (shown beside them on the site)
    row["energy_meter"] = energy.get("meter")
    row["energy_idle_power_mw"] = energy.get("idle_power_mw")
    row["energy_idle_window_s"] = energy.get("idle_window_s")
    row["energy_mean_power_mw"] = energy.get("mean_power_mw")
    row["energy_window_s"] = energy.get("window_s")
    row["latency_stop"] = (lat.get("stop") or {}).get("reason")
    # the raw values a comparison tests (lowbench.results.compare), shared, not copied
    row["latency_samples_ms"] = lat.get("samples_ms")
    row["latency_interleaved"] = lat.get("interleaved")
    row["per_pair"] = quality.get("per_pair")
    for c in metrics:
        if c.ci is not None:
            v = record
            for key in c.ci:
                v = v.get(key) if isinstance(v, dict) else None
            row[f"{c.name}_ci"] = v
    row["reasons"] = reasons
    row["gallery"] = record.get("gallery") or []
    for label, stats in sorted((quality.get("per_ratio") or {}).items()):
        row[f"psnr_{label}_db"] = stats.get("psnr_db")
    return row


def grid_source(carbon: dict[str, Any]) -> str | None:
    """Where a record's grid intensity came from, in words: '--grid-intensity' or 'France
    2023 (codecarbon 3.3.2 global_energy_mix.json)'; None without an intensity."""
    source = carbon.get("source")
    if not source or carbon.get("grid_intensity_g_per_kwh") is None:
        return None
    where = " ".join(str(carbon[k]) for k in ("country", "year") if carbon.get(k) is not None)
    return f"{where} ({source})" if where else str(source)


def inference_fields(record: dict[str, Any]) -> dict[str, Any]:
    """How a record's network met its frame (issue 19): ``tiling`` (``"512/32"``: tile /
    overlap, packed px; None: the whole frame at once, as every older record), ``frame``
    (``"1424x2128"`` packed; None when unrecorded), ``memory_limit`` (``"2GiB"``: the RAM the
    memory worker ran under; None: no limit) and ``memory_outcome`` (``completed``, ``killed``
    by the limit, ...; None when unrecorded)."""
    inference = record.get("inference") or {}
    tiling = inference.get("tiling") or None
    frame = inference.get("frame_packed_hw")
    memory = record.get("memory") or {}
    limit = memory.get("limit") or {}
    return {"tiling": f"{tiling['tile_px']}/{tiling['overlap_px']}" if tiling else None,
            "frame": f"{frame[0]}x{frame[1]}" if frame else None,
            "memory_limit": limit.get("label") or (f"{limit['bytes']}B" if limit.get("bytes")
                                                   else None),
            "memory_outcome": memory.get("outcome")}


def _holds_parent(record: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Whether ``record`` holds the section a field at ``path`` lives in (its value may be
    null), e.g. ``variant.runtime`` for ``("variant", "runtime", "build_s")``."""
    node: Any = record
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return isinstance(node, dict) or node is None


def _basename(path: Any) -> str | None:
    """The file name of a recorded path (records before schema 1.1 kept the absolute path)."""
    return path.replace("\\", "/").rsplit("/", 1)[-1] if isinstance(path, str) else None


def is_complete(row: dict[str, Any]) -> bool:
    """Whether a row scored every pair of its task (unknown totals count as complete unless a
    ``--limit`` cut the run short)."""
    pairs, total = row.get("pairs"), row.get("pairs_total")
    if pairs is None:
        return True
    if total is None:
        return row.get("limit") is None
    return pairs >= total


def is_reference(row: dict[str, Any]) -> bool:
    """Whether a row is comparable with the published leaderboard cell of its variant: the
    shipped (reference) checkpoint on every pair of the task."""
    return row.get("checkpoint") in (None, REFERENCE) and is_complete(row)


@dataclass
class ResultTable:
    """Every row, plus one description per machine and the software of each run."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    #: machine_id -> {"label": str, "machine": dict (environment.machine of a record)}
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)


def _rows_of_paths(folder: str, paths: list[str]
                   ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], list[str]]:
    """Rows, first-seen machines and skip warnings of ``paths`` (one chunk of one folder)."""
    rows: list[dict[str, Any]] = []
    machines: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for path in paths:
        try:
            rec = read_record(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            skipped.append(f"skipping {path}: {str(exc).splitlines()[0][:200]}")
            continue
        row = row_from_record(rec)
        row["results_root"] = folder
        rows.append(row)
        if row["machine_id"] not in machines:
            machines[row["machine_id"]] = {
                "label": row["machine"], "machine": rec["environment"]["machine"],
                "software": rec["environment"].get("software")}
    return rows, machines, skipped


def _chunk_job(job: tuple[str, list[str]]) -> tuple[list, dict, list]:
    with _gc_paused():
        return _rows_of_paths(*job)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: rows hold no cycles, and with 200,000 rows alive its
    repeated full passes cost ~20% of the load time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _jobs() -> int:
    """Worker processes for reading records: ``LOWBENCH_JOBS``, else the usable CPU count."""
    env = os.environ.get("LOWBENCH_JOBS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Below this many files one process reads them all (forking would cost more than it saves).
PARALLEL_MIN_FILES = 4000
#: Records per chunk of work (one worker task).
CHUNK = 2000


def _read_chunks(jobs_list: list[tuple[str, list[str]]]) -> Iterator[tuple[list, dict, list]]:
    """Results of :func:`_chunk_job` in order; in forked worker processes when it pays off
    (many files, several CPUs, ``fork`` available and no other thread that forking could
    break), else in this process."""
    n_files = sum(len(p) for _, p in jobs_list)
    jobs = min(_jobs(), len(jobs_list))
    if (n_files >= PARALLEL_MIN_FILES and jobs > 1 and threading.active_count() == 1
            and "fork" in multiprocessing.get_all_start_methods()):
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            yield from pool.imap(_chunk_job, jobs_list)
        return
    for job in jobs_list:
        yield _chunk_job(job)


def load_table(folders: Iterable[str | Path]) -> ResultTable:
    """Every row from evaluate records and asv results under ``folders`` (malformed files are
    skipped with a warning), sorted by key and creation time; rows carry ``results_root`` (the
    folder they came from) so gallery paths can be resolved.

    Records are read in chunks, by several processes when there are many (see
    :data:`PARALLEL_MIN_FILES`, ``LOWBENCH_JOBS``); the result does not depend on how.
    """
    table = ResultTable()
    folders = [Path(f) for f in folders]
    rows = table.rows
    chunks = []
    for folder in folders:
        paths = record_files(folder)
        chunks.extend((str(folder), paths[i:i + CHUNK]) for i in range(0, len(paths), CHUNK))
    with _gc_paused():
        for chunk_rows, machines, skipped in _read_chunks(chunks):
            for msg in skipped:
                warnings.warn(msg, RecordWarning, stacklevel=2)
            rows.extend(chunk_rows)
            for mid, desc in machines.items():
                table.machines.setdefault(mid, desc)
    for folder in folders:
        for row, machine in load_asv_rows(folder):
            row["results_root"] = str(folder)
            rows.append(row)
            table.machines.setdefault(row["machine_id"], machine)
    rows.sort(key=_sort_key)
    return table


def _sort_key(r: dict[str, Any]) -> tuple[str, ...]:
    """Rows sort by KEY, then creation time and run id, all as text."""
    return tuple([str(r.get(k)) for k in _SORT_FIELDS])


_SORT_FIELDS = (*KEY, "created_utc", "run_id")


def load_rows(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Just the rows of :func:`load_table`."""
    return load_table(folders).rows
