"""Records and asv results that are well-formed JSON but would break a reader fail the schema,
and every reader (`results table`, `site build`, asv ingestion) skips them with one warning
naming the file and the field."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lowbench.results.asv import load_asv_rows
from lowbench.results.records import (
    RecordWarning,
    ValidationError,
    read_record,
    record_paths,
    validate,
)

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "results"


def _set(*path: str | int, value: Any) -> Callable[[dict], None]:
    def mutate(record: dict) -> None:
        for key in path[:-1]:
            record = record[key]
        record[path[-1]] = value
    return mutate


#: (file stem, mutation, the field the warning must name)
BROKEN = [
    ("per-ratio-string", _set("quality", "per_ratio", "x100", value="23.1"),
     "quality.per_ratio.x100"),
    ("position-string", _set("environment", "commit", "position", value="12"),
     "environment.commit.position"),
    ("median-list", _set("latency", "median_ms", value=[1.0, 2.0]), "latency.median_ms"),
    ("reason-number", _set("memory", "reasons", "peak_rss_mib", value=3), "memory.reasons"),
    ("size-string", _set("size", "size_bytes", value="6 MB"), "size.size_bytes"),
    ("cores-string", _set("environment", "machine", "cores", value="2"),
     "environment.machine.cores"),
    ("stage-string", _set("end_to_end", "total_ms", value="fast"), "end_to_end.total_ms"),
]


@pytest.fixture(scope="module")
def good_record() -> dict:
    """A published record of a learned model with every section filled."""
    for path in sorted(record_paths(PUBLISHED)):
        record = read_record(path)
        if (record["status"] == "ok" and record["quality"].get("per_ratio")
                and record.get("latency") and record.get("memory")
                and record.get("end_to_end") and record.get("size")):
            return record
    raise AssertionError("no complete published record")


def test_schema_rejects_what_readers_cannot_use_and_passes_every_published_record(
        good_record: dict) -> None:
    accepted = []
    for stem, mutate, _field in BROKEN:
        record = copy.deepcopy(good_record)
        mutate(record)
        try:
            validate(record)
        except ValidationError:
            continue
        accepted.append(stem)
    assert not accepted, f"the schema accepts records that break readers: {accepted}"
    paths = record_paths(PUBLISHED)
    assert len(paths) >= 80
    for path in paths:
        read_record(path)  # raises for a published record the tightened schema rejects


@pytest.fixture(scope="module")
def broken_results(tmp_path_factory: pytest.TempPathFactory, good_record: dict) -> Path:
    """One good record, each BROKEN record, and the published asv results with one value of
    one file turned into a string."""
    folder = tmp_path_factory.mktemp("broken") / "results"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps(good_record))
    for stem, mutate, _field in BROKEN:
        record = copy.deepcopy(good_record)
        mutate(record)
        record["run_id"] = f"{stem}-0000000000"
        (folder / f"{stem}.json").write_text(json.dumps(record))
    shutil.copytree(PUBLISHED / "asv", folder / "asv")
    machine = sorted(p for p in (folder / "asv").iterdir() if p.is_dir())[0]
    result_file = sorted(p for p in machine.glob("*.json") if p.name != "machine.json")[0]
    data = json.loads(result_file.read_text())
    key = next(k for k in data["results"] if k.endswith("Measures.track_psnr"))
    data["results"][key][0][0] = "23.1 dB"  # result column, first (model, quant) cell
    result_file.write_text(json.dumps(data))
    return folder


def _asv_broken_file(folder: Path) -> Path:
    machine = sorted(p for p in (folder / "asv").iterdir() if p.is_dir())[0]
    return sorted(p for p in machine.glob("*.json") if p.name != "machine.json")[0]


def _assert_one_warning_each(stderr: str, folder: Path) -> None:
    lines = stderr.strip().splitlines()
    for stem, _mutate, field in BROKEN:
        mine = [line for line in lines if f"{stem}.json" in line]
        assert len(mine) == 1, stderr
        assert mine[0].startswith("lowbench: warning:") and field in mine[0], mine[0]
    asv = [line for line in lines if _asv_broken_file(folder).name in line]
    assert len(asv) == 1 and "Measures.track_psnr" in asv[0], stderr
    assert "Traceback" not in stderr


def test_asv_ingestion_skips_a_bad_file_with_one_warning(broken_results: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = [row for row, _machine in load_asv_rows(broken_results)]
    bad = _asv_broken_file(broken_results)
    mine = [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]
    assert len(mine) == 1 and str(bad) in mine[0] and "track_psnr" in mine[0], mine
    assert rows and all(r["run_id"] != f"asv:{bad.name}" for r in rows)
    published = [row for row, _m in load_asv_rows(PUBLISHED)]
    assert len(rows) < len(published)


def test_results_table_skips_each_bad_record_with_one_warning(broken_results: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lowbench", "results", "table", "--json",
                           "--results", str(broken_results)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _assert_one_warning_each(proc.stderr, broken_results)
    rows = json.loads(proc.stdout)
    assert [r["run_id"] for r in rows if r["source"] == "evaluate"] == [
        json.loads((broken_results / "good.json").read_text())["run_id"]]


def test_site_build_skips_each_bad_record_with_one_warning(broken_results: Path,
                                                           tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lowbench", "site", "build", "--results",
                           str(broken_results), "--out", str(tmp_path / "site")],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    _assert_one_warning_each(proc.stderr, broken_results)
    assert f"({len(BROKEN) + 1} files skipped)" in proc.stdout
    assert (tmp_path / "site" / "index.html").is_file()


# -- the metric catalogue (lowbench/results/columns.py) ----------------------------------------

def _schema_has(schema: dict, path: tuple[str, ...]) -> bool:
    """Whether the record schema declares ``path`` (a per-ratio label matches any key)."""
    node = schema
    for key in path:
        props = node.get("properties") or {}
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def test_every_catalogue_entry_names_a_schema_field_and_an_existing_asv_benchmark() -> None:
    """The catalogue against two independent sources: the record schema and the asv suite."""
    import ast

    from lowbench.results.columns import COLUMNS, metric_names
    from lowbench.results.records import schema

    for col in COLUMNS:
        if col.record is not None:
            assert _schema_has(schema(), col.record), col.name
    suite = ast.parse((REPO / "benchmarks" / "bench_variants.py").read_text())
    benches = {f"{c.name}.{f.name}" for c in suite.body if isinstance(c, ast.ClassDef)
               for f in c.body if isinstance(f, ast.FunctionDef)}
    ingested = {c.asv for c in COLUMNS if c.asv}
    assert ingested <= benches, ingested - benches
    # every measuring method of the suite is read into some column
    measuring = {b for b in benches if b.split(".")[1].startswith(("time_", "track_", "peakmem_"))}
    assert measuring <= ingested, measuring - ingested
    assert len(set(metric_names())) == len(metric_names())


def test_catalogue_directions_follow_the_units() -> None:
    """Quality (dB, SSIM) is better higher; every time, memory, energy and size is a cost."""
    from lowbench.results.columns import COLUMNS, direction

    for col in COLUMNS:
        if col.name in ("psnr_db", "ssim"):
            assert col.direction == "higher", col.name
        else:
            # gCO2e columns carry their unit (g) in front: gco2e_per_1k_net
            assert (col.name.endswith(("_ms", "_s", "_mib", "_mj", "_bytes"))
                    or col.name.startswith("gco2e_") or col.integer), col.name
            assert col.direction == "lower", col.name
    assert direction("psnr_x100_db") == "higher" and direction("run_id") is None


def test_a_new_catalogue_entry_flows_everywhere(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path, capsys) -> None:
    """Adding a column is one entry: appended to the catalogue, a metric appears in the row
    read from a record, in `lowbench results table`, the downloads and the site's pages."""
    import argparse

    from site_fixtures import make_record

    from lowbench.cli import results as results_cmd
    from lowbench.results import columns
    from lowbench.results.columns import Column
    from lowbench.results.records import write_record
    from lowbench.results.table import row_from_record
    from lowbench.site.build import build_site

    decode = Column("decode_ms", "Decode stage", "ms", "lower",
                    ("end_to_end", "stages_ms", "decode"), leaderboard=65, history=True,
                    recent=True, results_table="decode_ms")
    monkeypatch.setattr(columns, "COLUMNS", (*columns.COLUMNS, decode))
    rec = make_record("light", "fp32", end_to_end__stages_ms__decode=987.6)
    assert row_from_record(rec)["decode_ms"] == 987.6
    failed = row_from_record(make_record("light", "fp32", status="failed"))
    assert failed["decode_ms"] is None and failed["reasons"]["decode_ms"].startswith("failed")

    folder = tmp_path / "results"
    write_record(rec, folder)
    assert results_cmd.run(argparse.Namespace(results=[str(folder)], json=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["size_mib", "decode_ms"]  # catalogue order
    assert lines[2].split()[-1] == "987.60"

    build_site([folder], tmp_path / "site")
    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    assert "Decode stage (ms)" in index and ">987.6<" in index
    # on the leaderboard between End-to-end (60) and Peak RSS (70)
    assert index.index("End-to-end (ms)") < index.index("Decode stage (ms)") < index.index(
        "Peak RSS (MiB)")
    variant = next((site / "variant").glob("*.html")).read_text()
    assert "Decode stage (ms)" in variant
    history = next((site / "history").glob("*.html")).read_text()
    assert "Decode stage (ms)" in history
    header = (site / "data" / "rows.csv").read_text().splitlines()[0].split(",")
    assert header.index("decode_ms") == header.index("size_bytes") + 1
