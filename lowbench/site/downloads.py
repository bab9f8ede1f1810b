"""CSV and JSON downloads: every leaderboard table and all rows.

CSV: one header line of column names (units in the names), values unformatted, nested values
(reasons, gallery, artifact) as JSON text, empty for null. JSON:
``{"columns": [...], "rows": [[...], ...]}`` (values in column order, nested values as objects,
non-finite numbers as null): 2.5x smaller than an array of objects, which matters at 200,000
rows. ``results_root`` (a local path of the build machine) is left out.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from lowbench.results.columns import metric_names, shown
from lowbench.results.runtime_fields import RUNTIME_FIELDS, has_runtime

_LEFT_OUT = frozenset(("results_root",))
#: Columns written as JSON text in a CSV.
NESTED = ("reasons", "gallery", "artifact")


def base_columns(rows: Sequence[dict[str, Any]] | None = None) -> tuple[str, ...]:
    """Columns of a download, in order: identity, the catalogue's metrics, run details (other
    columns, e.g. per-ratio PSNRs, follow sorted: :func:`columns_of`).

    With ``rows``: the runtime columns (:data:`lowbench.results.runtime_fields.RUNTIME_FIELDS`)
    only when some row says its runtime, and the optional metrics only when some row holds
    one (:func:`lowbench.results.columns.shown`), so a download of results from before the
    runtime axis is what it was; without: every column."""
    runtime: tuple[str, ...] = RUNTIME_FIELDS
    metrics = metric_names()
    if rows is not None:
        runtime = runtime if any(map(has_runtime, rows)) else ()
        metrics = shown(metrics, rows)
    return ("task", "task_version", "task_digest", "crop", "machine", "machine_id", "commit",
            "commit_position", "commit_dirty", "model", "quant", *runtime, "checkpoint",
            "checkpoint_name", "status", "engine", "quantized_layers", "quantized_nothing",
            "pairs", "pairs_total", "limit", *metrics, "latency_std_ms", "latency_n",
            "created_utc", "run_id", "source", "reasons", "gallery")


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """:func:`base_columns` of ``rows`` then any other column of ``rows`` (sorted), less
    results_root and the columns :func:`base_columns` left out for them."""
    shapes = set(map(tuple, rows))  # rows share a handful of key orders: cheap to scan
    extra = set().union(*shapes) - set(base_columns()) - _LEFT_OUT
    return [*base_columns(rows), *sorted(extra)]


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _values(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[list[Any]]:
    """One list of values per row, in column order (None for a missing column)."""
    get = itemgetter(*columns)
    out = []
    for row in rows:
        try:
            vals = get(row)
        except KeyError:
            vals = tuple(row.get(c) for c in columns)
        out.append(list(vals) if len(columns) > 1 else [vals])
    return out


_JSON = json.JSONEncoder(allow_nan=False, sort_keys=True)


def _json(v: Any) -> str:
    try:
        return _JSON.encode(v)
    except ValueError:  # NaN or infinity somewhere
        return _JSON.encode(_clean(v))


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str],
             table: list[list[Any]] | None = None) -> str:
    """The CSV text of ``rows`` (``table``: their :func:`_values`, which this modifies)."""
    table = _values(rows, columns) if table is None else table
    nested = [i for i, c in enumerate(columns) if c in NESTED]
    empty = {dict: "{}", list: "[]"}
    for vals in table:
        for i in nested:
            v = vals[i]
            if v is not None:
                vals[i] = (empty[type(v)] if not v and type(v) in empty else _json(v))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(table)  # None is written as an empty field
    return buf.getvalue()


def json_text(rows: Sequence[dict[str, Any]], columns: Sequence[str],
              table: list[list[Any]] | None = None) -> str:
    """The JSON text of ``rows``: ``{"columns": [...], "rows": [[...], ...]}`` with one row per
    line (e.g. ``pandas.DataFrame(d["rows"], columns=d["columns"])``)."""
    table = _values(rows, columns) if table is None else table
    enc = json.JSONEncoder(allow_nan=False, sort_keys=True).encode
    try:
        lines = list(map(enc, table))
    except ValueError:  # NaN or infinity somewhere
        lines = [enc(_clean(v)) for v in table]
    body = "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"
    return '{"columns": ' + enc(list(columns)) + ',\n"rows": ' + body + "}\n"


def write_csv(folder: Path, stem: str, rows: Sequence[dict[str, Any]],
              columns: Sequence[str]) -> str:
    """Write ``<stem>.csv`` into ``folder``; its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.csv").write_text(csv_text(rows, columns), encoding="utf-8")
    return f"{stem}.csv"


def write_json(folder: Path, stem: str, rows: Sequence[dict[str, Any]],
               columns: Sequence[str]) -> str:
    """Write ``<stem>.json`` into ``folder``; its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json_text(rows, columns), encoding="utf-8")
    return f"{stem}.json"


def write_table(folder: Path, stem: str, rows: Sequence[dict[str, Any]],
                columns: Sequence[str] | None = None) -> tuple[str, str]:
    """Write ``<stem>.csv`` and ``<stem>.json`` into ``folder``; their file names."""
    cols = list(columns) if columns is not None else columns_of(rows)
    folder.mkdir(parents=True, exist_ok=True)
    table = _values(rows, cols)
    (folder / f"{stem}.json").write_text(json_text(rows, cols, table), encoding="utf-8")
    (folder / f"{stem}.csv").write_text(csv_text(rows, cols, table), encoding="utf-8")
    return f"{stem}.csv", f"{stem}.json"
