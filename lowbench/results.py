"""One table of every result: evaluate records and asv results, keyed by :data:`KEY`: commit,
machine, task (name, version, digest, crop), model, quant, checkpoint (``"reference"`` for the
shipped weights, else the first 12 hex of the user file's sha256) and pairs scored out of the
task's total.

Rows are flat dicts; metric names carry their units and their direction lives in
``lowbench.metrics.METRIC_DIRECTIONS`` (asv's ``track_`` results have no direction, asv #1617).
Two machines never share a row: ``machine_id`` is a digest of the machine description.
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
from functools import lru_cache
from pathlib import Path
from typing import Any

from lowbench.digest import json_digest
from lowbench.metrics import METRIC_DIRECTIONS
from lowbench.record import RecordWarning, read_record, record_files

#: Metric columns of a row, in display order.
METRICS = (
    "psnr_db", "ssim", "latency_median_ms", "latency_p90_ms", "latency_p99_ms",
    "end_to_end_ms", "peak_rss_mib", "swap_peak_mib", "energy_per_inference_net_mj",
    "energy_per_inference_gross_mj", "params", "macs", "size_bytes",
)
#: Identity columns of a row: two rows that differ in any of them measured different things.
KEY = ("commit", "machine_id", "task", "task_version", "task_digest", "crop", "model", "quant",
       "checkpoint", "pairs", "pairs_total")
#: The ``checkpoint`` column of a row measured with the shipped weights (or no weights: LibRaw).
REFERENCE = "reference"


def machine_id(machine: dict[str, Any]) -> str:
    """A short stable digest of the fields that identify a machine (not its hostname)."""
    jet = machine.get("jetson")
    if not isinstance(jet, dict):
        jet = {}
    fields = (*(machine.get(k) for k in ("cpu", "arch", "cores", "ram_mib", "accelerator")),
              *(jet.get(k) for k in ("model", "l4t_release", "nvpmodel")),
              machine.get("hostname_label"))
    try:
        return _machine_digest(fields)  # memoized: 200,000 records come from a few machines
    except TypeError:  # an unhashable field (a list or dict): compute it afresh
        return _machine_digest.__wrapped__(fields)


@lru_cache(maxsize=1024)
def _machine_digest(fields: tuple) -> str:
    cpu, arch, cores, ram_mib, accelerator, model, l4t_release, nvpmodel, label = fields
    ident = {"cpu": cpu, "arch": arch, "cores": cores, "ram_mib": ram_mib,
             "accelerator": accelerator,
             "jetson": {"model": model, "l4t_release": l4t_release, "nvpmodel": nvpmodel},
             "label": label}
    return json_digest(ident, 12)


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def checkpoint_is_reference(ckpt: dict[str, Any] | None) -> bool:
    """Whether a record's ``variant.checkpoint`` is the shipped (reference) weights: its own
    ``reference`` flag; for records written before it existed, ``source == "shipped"`` or a digest
    equal to a checkpoint this install ships. No checkpoint at all (LibRaw) is the reference."""
    if not isinstance(ckpt, dict) or not ckpt.get("sha256"):
        return True
    if isinstance(ckpt.get("reference"), bool):
        return ckpt["reference"]
    if ckpt.get("source") == "shipped":
        return True
    from lowbench.provenance import shipped_digests

    return ckpt["sha256"] in shipped_digests()


@lru_cache(maxsize=256)
def _task_total(name: str, version: int | None, manifest_sha256: str | None) -> int | None:
    """Pair count of an installed task with this name, version and manifest digest (None when
    this install has no such task: the count is then unknown)."""
    from lowbench.tasks import get_task

    try:
        task = get_task(name)
    except Exception:  # noqa: BLE001 - unknown task, unreadable manifest: the count is unknown
        return None
    if task.version != version or task.fingerprint()["manifest_sha256"] != manifest_sha256:
        return None
    return len(task.listed())


def pairs_total_of(task: dict[str, Any]) -> int | None:
    """The task's total pair count of a record's ``task`` section: ``pairs_total`` if recorded,
    else derived from the installed task of the same name, version and digest (None: unknown)."""
    total = task.get("pairs_total")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    name, digest = task.get("name"), task.get("manifest_sha256")
    if not isinstance(name, str) or not isinstance(digest, (str, type(None))):
        return None
    version = task.get("version")
    return _task_total(name, version if isinstance(version, int) else None, digest)


def row_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """Flatten one evaluate record into a table row (see METRICS and KEY)."""
    env = record["environment"]
    commit = env.get("commit") or {}
    lat = record.get("latency") or {}
    mem = record.get("memory") or {}
    energy = record.get("energy") or {}
    size = record.get("size") or {}
    quality = record.get("quality") or {}
    variant = record["variant"]
    reasons: dict[str, str] = {}
    if energy.get("reason"):
        reasons["energy_per_inference_net_mj"] = energy["reason"]
        reasons["energy_per_inference_gross_mj"] = energy["reason"]
    for k, v in (mem.get("reasons") or {}).items():
        reasons[k] = v
    for k, v in (lat.get("reasons") or {}).items():
        reasons[k] = v
    for k, v in (size.get("reasons") or {}).items():
        reasons[k] = v
    if record["status"] != "ok":
        why = (record.get("failure") or {}).get("reason") or variant.get("reason") or "failed"
        for m in METRICS:
            reasons.setdefault(m, f"{record['status']}: {why}")
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
        "checkpoint": REFERENCE if reference else str(ckpt["sha256"])[:12],
        "checkpoint_name": ckpt.get("name") or _basename(ckpt.get("path")),
        "status": record["status"],
        "engine": variant.get("engine"),
        "quantized_layers": variant.get("quantized_layers"),
        "quantized_nothing": variant.get("quantized_nothing"),
        "pairs": task["pairs_evaluated"],
        "pairs_total": pairs_total_of(task),
        "limit": task.get("limit"),
        "psnr_db": quality.get("psnr_db"),
        "ssim": quality.get("ssim"),
        "latency_median_ms": lat.get("median_ms"),
        "latency_p90_ms": lat.get("p90_ms"),
        "latency_p99_ms": lat.get("p99_ms"),
        "latency_std_ms": lat.get("std_ms"),
        "latency_n": lat.get("n"),
        "end_to_end_ms": _get(record, "end_to_end", "total_ms"),
        "peak_rss_mib": mem.get("peak_rss_mib"),
        "swap_peak_mib": mem.get("swap_peak_mib"),
        "energy_per_inference_net_mj": energy.get("energy_per_inference_net_mj"),
        "energy_per_inference_gross_mj": energy.get("energy_per_inference_gross_mj"),
        "params": size.get("params"),
        "macs": size.get("macs"),
        "size_bytes": size.get("size_bytes"),
        "reasons": reasons,
        "gallery": record.get("gallery") or [],
    }
    for label, stats in sorted((quality.get("per_ratio") or {}).items()):
        row[f"psnr_{label}_db"] = stats.get("psnr_db")
    return row


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
_CHUNK = 2000


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
        chunks.extend((str(folder), paths[i:i + _CHUNK]) for i in range(0, len(paths), _CHUNK))
    with _gc_paused():
        for chunk_rows, machines, skipped in _read_chunks(chunks):
            for msg in skipped:
                warnings.warn(msg, RecordWarning, stacklevel=2)
            rows.extend(chunk_rows)
            for mid, desc in machines.items():
                table.machines.setdefault(mid, desc)
    try:
        from lowbench.asv_results import load_asv_rows
    except ImportError:  # pragma: no cover - asv reader not present
        load_asv_rows = None
    if load_asv_rows is not None:
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


def direction(metric: str) -> str | None:
    """'higher' or 'lower' is better, for a metric column (None for non-metrics)."""
    if metric.startswith("psnr_"):
        return "higher"
    return METRIC_DIRECTIONS.get(metric)
