"""Read asv results (``<folder>/asv/<machine>/<commit>-<env>.json``) into lowbench table rows.

Uses asv's own result API (``asv.results.Results.load``). Which benchmark fills which column, and
the factor from asv's unit, is the catalogue's (``Column.asv``, ``Column.asv_factor`` in
:mod:`lowbench.results.columns`), as is each column's direction: asv's ``track_`` results carry
none (asv issue #1617).
asv's machine description is mapped onto lowbench's, so the same hardware gets the same
``machine_id`` from asv results and from evaluate records, and two machines never share a row.

The suite's parameters are (model, quant) in results written before issue 18 and (model, quant,
runtime) since; a result with two is eager torch (runtime ``"torch"``).
"""

from __future__ import annotations

import ast
import itertools
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lowbench.environment import commit_position, machine_label
from lowbench.models.registry import is_valid_combination
from lowbench.results.columns import Column, asv_benchmarks, metric_names
from lowbench.results.provenance import machine_id
from lowbench.results.records import RecordWarning
from lowbench.results.runtime_fields import EAGER, RUNTIME_FIELDS


def machine_from_asv(desc: dict[str, Any]) -> dict[str, Any]:
    """lowbench's machine fields from an asv ``machine.json`` entry (ram in bytes -> MiB; the
    ISA features where ``lowbench asv-machine`` wrote them, space-separated)."""
    try:
        ram_mib = round(int(desc.get("ram")) / 2**20, 1)
    except (TypeError, ValueError):
        ram_mib = None
    try:
        cores = int(desc.get("num_cpu"))
    except (TypeError, ValueError):
        cores = None
    machine = {"hostname_label": None, "cpu": desc.get("cpu"), "arch": desc.get("arch"),
               "cores": cores, "ram_mib": ram_mib, "swap_mib": None, "os": desc.get("os"),
               "accelerator": None, "jetson": None, "asv_machine": desc.get("machine")}
    isa = desc.get("isa")
    if isinstance(isa, str) and isa.split():  # written by `lowbench asv-machine`
        machine["isa"] = sorted(isa.split())
    return machine


def _param_value(text: str) -> str:
    try:
        return str(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return text


def _bench_column(name: str, benchmarks: dict[str, Column]) -> Column | None:
    """The column of an asv result key (``<module>.<Class>.<method>``), None if none reads it."""
    for suffix, col in benchmarks.items():
        if name.endswith("." + suffix) or name == suffix:
            return col
    return None


def load_asv_rows(folder: str | Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(row, machine entry) for every (commit, machine, model, quant, runtime) in
    ``folder/asv``.

    One row per results file and variant, with every metric found; a metric asv skipped or
    failed is None with the reason "asv: skipped or failed". The grid cells that pair LibRaw
    with an int8/fp16 variant are not variants at all and give no row. Malformed files ->
    RecordWarning.
    """
    from asv.results import Results  # asv is heavy: only when a folder holds asv results

    root = Path(folder) / "asv"
    if not root.is_dir():
        return
    positions: dict[str, int | None] = {}
    benchmarks = asv_benchmarks()
    metrics = metric_names()
    for machine_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            desc = json.loads((machine_dir / "machine.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipping {machine_dir}: no readable machine.json ({exc})",
                          RecordWarning, stacklevel=2)
            continue
        machine = machine_from_asv(desc)
        mid = machine_id(machine)
        label = machine_label(machine)
        entry = {"label": label, "machine": machine, "software": None}
        for path in sorted(machine_dir.glob("*.json")):
            if path.name == "machine.json":
                continue
            try:
                res = Results.load(str(path), machine_dir.name)
            except Exception as exc:  # noqa: BLE001 - asv raises many types for bad files
                warnings.warn(f"skipping {path}: {str(exc).splitlines()[0][:200]}",
                              RecordWarning, stacklevel=2)
                continue
            sha = res.commit_hash
            if not isinstance(sha, str):
                warnings.warn(f"skipping {path}: field commit_hash must be a string (found "
                              f"{sha!r:.60})", RecordWarning, stacklevel=2)
                continue
            if sha not in positions:
                positions[sha] = commit_position(sha)
            try:
                rows = _rows_of_result(res, sha, positions[sha], mid, label, path, metrics,
                                       benchmarks)
            except _InvalidResult as exc:
                warnings.warn(f"skipping {path}: {exc}", RecordWarning, stacklevel=2)
                continue
            for _variant, row in sorted(rows.items()):
                for col in benchmarks.values():
                    if row.get(col.name) is None:
                        row["reasons"].setdefault(col.name, "not measured by asv here (skipped, "
                                                          "e.g. no meter, or failed)")
                row["status"] = ("ok" if row.get("psnr_db") is not None
                                 or row.get("latency_median_ms") is not None else "unsupported")
                yield row, entry


class _InvalidResult(ValueError):
    """An asv results file whose content lowbench cannot use; the message names the field."""


def _number_or_none(value: Any, field: str) -> float | None:
    """``value`` if it is a number (NaN included) or None; else _InvalidResult naming ``field``."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise _InvalidResult(f"field {field} must be a number or null (found {value!r:.60})")


def _rows_of_result(res: Any, sha: str, position: int | None, mid: str, label: str,
                    path: Path, metrics: tuple[str, ...], benchmarks: dict[str, Column]
                    ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(model, quant, runtime) -> row of one asv results file (runtime :data:`EAGER` when the
    suite had no runtime parameter); _InvalidResult for a malformed one.
    ``benchmarks``: :func:`lowbench.results.columns.asv_benchmarks`."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key in sorted(res.get_all_result_keys()):
        col = _bench_column(key, benchmarks)
        if col is None:
            continue
        metric = col.name
        try:
            params = res.get_result_params(key)
            values = res.get_result_value(key, params)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise _InvalidResult(f"field results.{key} is malformed ({exc})") from None
        if not isinstance(params, list) or len(params) not in (2, 3):
            continue
        if not isinstance(values, list) or not all(isinstance(p, list) for p in params):
            raise _InvalidResult(f"field results.{key} must hold lists of params and "
                                 f"results (found {values!r:.60})")
        for combo, value in zip(itertools.product(*params), values, strict=False):
            model, quant, runtime = (*map(_param_value, combo), EAGER)[:3]
            if not is_valid_combination(model, quant):
                continue  # LibRaw x int8/fp16: a grid cell no machine can run
            where = ", ".join(map(_param_value, combo))
            value = _number_or_none(value, f"results.{key}[{where}]")
            row = rows.get((model, quant, runtime))
            if row is None:
                row = rows[(model, quant, runtime)] = _empty_row(
                    sha, position, mid, label, (model, quant, runtime), path, res, metrics)
            if value is None or value != value:  # skipped, failed or NaN
                row["reasons"].setdefault(metric, "asv: skipped or failed here")
                continue
            v = value * col.asv_factor
            row[metric] = int(round(v)) if col.integer else float(v)
    return rows


def _empty_row(sha: str, position: int | None, mid: str, label: str,
               variant: tuple[str, str, str], path: Path, res: Any, metrics: tuple[str, ...]
               ) -> dict[str, Any]:
    """A row of one (model, quant, runtime) of one asv results file, every metric None."""
    model, quant, runtime = variant
    started = None
    if getattr(res, "date", None):
        from datetime import datetime, timezone

        started = datetime.fromtimestamp(res.date / 1000, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    row: dict[str, Any] = {
        "source": "asv", "run_id": f"asv:{path.name}", "created_utc": started or "",
        "commit": sha, "commit_dirty": None, "commit_position": position,
        "machine_id": mid, "machine": label, "task": "synth", "task_version": 1,
        "model": model, "quant": quant, **dict.fromkeys(RUNTIME_FIELDS), "runtime": runtime,
        "tiling": None, "frame": None, "memory_limit": None, "memory_outcome": None,
        "status": "ok", "engine": None,
        "quantized_layers": None, "quantized_nothing": None,
        "pairs": None, "latency_p90_ms": None, "latency_p99_ms": None, "latency_std_ms": None,
        "latency_n": None, "reasons": {}, "gallery": [],
    }
    for m in metrics:
        row.setdefault(m, None)
    return row
