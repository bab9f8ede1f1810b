"""A row says what was measured: the leaderboard key holds the checkpoint, the pairs scored out of
the task's total, the crop and the task's version and digest; published records hold no paths of
the machine that made them."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lowbench.results.records import read_record, record_paths, write_record
from lowbench.results.records import validate as validate_record
from lowbench.results.table import KEY, load_table, row_from_record
from lowbench.site.ablation import build_ablation
from lowbench.site.build import build_site
from lowbench.site.model import group_tables, latest, variant_of
from lowbench.site.pareto import row_marks

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
#: The newest published batch: every variant of the synth task at one commit.
BATCH = "20261201T22"
#: An absolute path of a machine: /x/y, C:\\x, \\\\host\\share (the kernel's /proc, /sys and /dev,
#: named in measurement definitions, are the same on every Linux machine).
ABSOLUTE = re.compile(
    r"(?:^|[\s=:'\"(])(?:/(?!proc/|sys/|dev/)[^/\s]+/|[A-Za-z]:[\\/]|\\\\[^\\\s]+\\)")


def _published(model: str, quant: str) -> dict:
    path = next(RESULTS.glob(f"synth__{model}__{quant}__{BATCH}*.json"))
    return json.loads(path.read_text())


def _as_old_record(rec: dict) -> dict:
    """The record as the harness wrote it before the key fields existed (absolute path, no
    pairs_total, crop or reference)."""
    rec = copy.deepcopy(rec)
    rec["gallery"] = []  # its PNGs stay in results/
    rec["task"].pop("pairs_total", None)
    rec["task"].pop("crop", None)
    ck = rec["variant"]["checkpoint"]
    if ck.get("sha256"):
        name = str(ck.get("name") or ck.get("path")).rsplit("/", 1)[-1]
        rec["variant"]["checkpoint"] = {"path": f"/work/main/lowbench/checkpoints/{name}",
                                        "sha256": ck["sha256"], "source": ck["source"]}
    return rec


def _later(rec: dict, run_id: str) -> dict:
    rec["run_id"] = run_id
    rec["created_utc"] = "2026-12-01T23:59:00Z"
    return rec


def _limited(rec: dict, limit: int) -> dict:
    rec["task"]["limit"] = limit
    rec["task"]["pairs_evaluated"] = limit
    rec["quality"]["per_pair"] = rec["quality"]["per_pair"][:limit]
    return rec


def custom_lighter_limit3() -> dict:
    """The issue's case: `--limit 3` with a user checkpoint, 5.93 dB, written by today's harness
    (absolute checkpoint path, source "user")."""
    rec = _later(_limited(_as_old_record(_published("lighter", "fp32")), 3), "c0ffee01" + "0" * 24)
    rec["variant"]["checkpoint"] = {"path": "/home/someone/runs/lighter-step200.safetensors",
                                    "sha256": "1a2b3c4d5e6f" + "0" * 52, "source": "user"}
    rec["quality"]["psnr_db"] = 5.93
    return rec


def reference_sid_limit2() -> dict:
    """The issue's other case: `--limit 2` of the shipped sid checkpoint, a high PSNR on its two
    pairs (it would top the Pareto front)."""
    rec = _later(_limited(_as_old_record(_published("sid", "fp32")), 2), "c0ffee02" + "0" * 24)
    rec["quality"]["psnr_db"] = 40.0
    rec["latency"]["median_ms"] = 1.0
    return rec


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The newest published batch (as old-format records) plus the two runs of the issue."""
    folder = tmp_path_factory.mktemp("rowkey") / "results"
    for path in sorted(RESULTS.glob(f"synth__*__{BATCH}*.json")):
        write_record(_as_old_record(json.loads(path.read_text())), folder)
    write_record(custom_lighter_limit3(), folder)
    write_record(reference_sid_limit2(), folder)
    return folder


def test_key_separates_checkpoint_and_pairs_and_old_records_derive_them() -> None:
    full = row_from_record(_as_old_record(_published("lighter", "fp32")))
    custom = row_from_record(custom_lighter_limit3())
    partial = row_from_record(reference_sid_limit2())
    assert full["pairs_total"] == 21 and full["pairs"] == 21
    assert full["checkpoint"] == "reference" and full["crop"] is None
    assert full["task_digest"] == _published("lighter", "fp32")["task"]["manifest_sha256"]
    assert custom["checkpoint"] == "1a2b3c4d5e6f" and custom["pairs"] == 3
    assert custom["pairs_total"] == 21
    assert {k: full[k] for k in KEY} != {k: custom[k] for k in KEY}
    assert variant_of(custom).label == "lighter / fp32 / checkpoint 1a2b3c4d / 3/21 pairs"
    assert variant_of(partial).label == "sid / fp32 / 2/21 pairs"
    assert variant_of(full).label == "lighter / fp32" and variant_of(full).is_reference


def test_user_copy_of_the_shipped_weights_is_the_reference() -> None:
    rec = _as_old_record(_published("light", "fp32"))
    rec["variant"]["checkpoint"]["source"] = "user"  # same digest as the shipped file
    assert row_from_record(rec)["checkpoint"] == "reference"
    rec["variant"]["checkpoint"]["sha256"] = "f" * 64
    assert row_from_record(rec)["checkpoint"] == "f" * 12


def test_partial_and_custom_runs_never_take_the_reference_cell(store: Path) -> None:
    table = load_table([store])
    (tbl,) = group_tables(table.rows)
    lt = latest(tbl)
    by_label = {variant_of(r).label: r for r in lt.rows}
    assert by_label["lighter / fp32"]["psnr_db"] == pytest.approx(
        _published("lighter", "fp32")["quality"]["psnr_db"])
    assert by_label["sid / fp32"]["psnr_db"] == pytest.approx(
        _published("sid", "fp32")["quality"]["psnr_db"])
    assert by_label["lighter / fp32 / checkpoint 1a2b3c4d / 3/21 pairs"]["psnr_db"] == 5.93
    assert by_label["sid / fp32 / 2/21 pairs"]["psnr_db"] == 40.0
    marks = dict(zip((variant_of(r).label for r in lt.rows), row_marks(lt.rows), strict=True))
    for label in ("lighter / fp32 / checkpoint 1a2b3c4d / 3/21 pairs", "sid / fp32 / 2/21 pairs"):
        assert set(marks[label].values()) == {None}, label
    ablation = build_ablation(lt)
    psnr = next(g for g in ablation.grids if g.metric == "psnr_db")
    assert psnr.cells[("sid", "fp32")].value == f"{by_label['sid / fp32']['psnr_db']:.2f}"
    assert psnr.cells[("lighter", "fp32")].value == (
        f"{by_label['lighter / fp32']['psnr_db']:.2f}")
    arch = next(t for t in ablation.tricks if t.label == "sid -> lighter")
    expected = by_label["lighter / fp32"]["psnr_db"] - by_label["sid / fp32"]["psnr_db"]
    assert arch.effects[ablation.metrics.index("psnr_db")].value == pytest.approx(expected)


def test_a_partial_run_at_a_newer_commit_does_not_hide_the_reference_rows(tmp_path: Path
                                                                          ) -> None:
    rec = reference_sid_limit2()
    rec["environment"]["commit"] = {**rec["environment"]["commit"], "sha": "f" * 40,
                                    "position": rec["environment"]["commit"]["position"] + 1}
    folder = tmp_path / "results"
    for path in sorted(RESULTS.glob(f"synth__*__{BATCH}*.json")):
        write_record(_as_old_record(json.loads(path.read_text())), folder)
    write_record(rec, folder)
    (tbl,) = group_tables(load_table([folder]).rows)
    lt = latest(tbl)
    assert lt.commit != "f" * 40
    assert len(lt.rows) == 21 and all(variant_of(r).is_reference for r in lt.rows)
    assert [v.label for v in lt.older] == ["sid / fp32 / 2/21 pairs"]


def test_published_table_marks_the_rows(store: Path, tmp_path: Path) -> None:
    build_site([store], tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    rows = body.split("<tr")[1:]
    marked = [r for r in rows if "3/21 pairs" in r]
    assert len(marked) == 1 and "checkpoint 1a2b3c4d" in marked[0] and "5.93" in marked[0]
    assert "&#9733;" not in marked[0]  # never starred
    partial = [r for r in rows if "2/21 pairs" in r]
    assert len(partial) == 1 and "40.00" in partial[0] and "&#9733;" not in partial[0]
    unmarked = [r for r in rows if "pairs</span>" not in r]
    assert len(unmarked) == 21 and not any("5.93" in r or "40.00" in r for r in unmarked)


def test_records_hold_pairs_total_crop_and_a_portable_checkpoint(tmp_path: Path) -> None:
    """A real run: `--limit 2` of the shipped lighter weights, and of a copy of them at an
    absolute path (the same digest: still the reference); no absolute path anywhere."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    copy_path = tmp_path / "mine" / "my-lighter.safetensors"
    copy_path.parent.mkdir()
    shutil.copyfile(REPO / "lowbench" / "checkpoints" / "lighter.safetensors", copy_path)
    out = tmp_path / "res"
    fast = ["--limit", "2", "--no-memory", "--no-energy", "--latency-budget", "0.1",
            "--latency-min-runs", "2", "--threads", "1", "--out", str(out)]
    for extra in ([], ["--checkpoint", str(copy_path)]):
        proc = subprocess.run([sys.executable, "-m", "lowbench", "evaluate", "--model", "lighter",
                               *fast, *extra], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stderr
    records = sorted((read_record(p) for p in record_paths(out)),
                     key=lambda r: r["variant"]["checkpoint"]["source"])
    shipped, user = records
    for rec in records:
        assert rec["task"]["pairs_total"] == 21 and rec["task"]["pairs_evaluated"] == 2
        assert rec["task"]["crop"] is None
        assert rec["variant"]["checkpoint"]["reference"] is True
        assert "path" not in rec["variant"]["checkpoint"]
        assert not _absolute_strings(rec), _absolute_strings(rec)
        validate_record(rec)
    assert shipped["variant"]["checkpoint"]["name"] == "lowbench/checkpoints/lighter.safetensors"
    assert user["variant"]["checkpoint"]["name"] == "my-lighter.safetensors"
    assert shipped["variant"]["checkpoint"]["sha256"] == user["variant"]["checkpoint"]["sha256"]
    assert variant_of(row_from_record(user)).label == "lighter / fp32 / 2/21 pairs"


def _absolute_strings(obj: object) -> list[str]:
    """Every string in ``obj`` (keys too) that holds an absolute path."""
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _absolute_strings(k) + _absolute_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _absolute_strings(v)]
    return [obj] if isinstance(obj, str) and ABSOLUTE.search(obj) else []


def test_published_records_hold_no_absolute_path() -> None:
    paths = sorted(RESULTS.glob("*.json"))
    assert len(paths) >= 84  # every published evaluate record (results/ also holds asv/, gallery/)
    bad = {p.name: _absolute_strings(json.loads(p.read_text())) for p in paths}
    assert not {k: v for k, v in bad.items() if v}


def test_published_records_carry_the_key_fields() -> None:
    for path in sorted(RESULTS.glob("*.json")):
        rec = json.loads(path.read_text())
        validate_record(rec)
        assert rec["task"]["pairs_total"] == 21 and rec["task"]["crop"] is None, path.name
        ck = rec["variant"]["checkpoint"]
        assert ck["reference"] is True, path.name
        if ck["sha256"] is not None:
            assert re.fullmatch(r"lowbench/checkpoints/[a-z]+(-qat)?\.safetensors",
                                ck["name"]), path.name


def test_migration_is_idempotent_and_keeps_the_figures(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    old = _as_old_record(_published("sid", "static"))
    old["variant"]["calibration"]["cache_file"] = "/root/.cache/lowbench/calibration/s.safetensors"
    old["environment"]["command"] = "lowbench evaluate --model sid --out /tmp/x/results"
    user = custom_lighter_limit3()
    for i, rec in enumerate((old, user)):
        (folder / f"r{i}.json").write_text(json.dumps(rec, indent=1))
    script = [sys.executable, str(REPO / "scripts" / "migrate_records.py"), str(folder)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(script, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    after = {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))}
    second = subprocess.run(script, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))} == after
    assert "0 of 2" in second.stdout
    new_old, new_user = (json.loads(after[n]) for n in ("r0.json", "r1.json"))
    assert not _absolute_strings(new_old) and not _absolute_strings(new_user)
    assert new_old["variant"]["checkpoint"] == {
        "name": "lowbench/checkpoints/sid.safetensors", "reference": True, "source": "shipped",
        "sha256": old["variant"]["checkpoint"]["sha256"]}
    assert new_old["variant"]["calibration"]["cache_file"] == "s.safetensors"
    assert new_old["environment"]["command"] == "lowbench evaluate --model sid --out results"
    assert new_old["quality"] == old["quality"] and new_old["latency"] == old["latency"]
    assert new_old["task"]["pairs_total"] == 21 and new_old["task"]["crop"] is None
    assert new_user["variant"]["checkpoint"]["name"] == "lighter-step200.safetensors"
    assert new_user["variant"]["checkpoint"]["reference"] is False
    assert new_user["task"]["pairs_total"] == 21


def test_a_task_of_another_digest_is_another_table() -> None:
    """Two task files named alike (another digest) never share a table; a row that cannot say
    its digest (asv) joins the newest table of its task name and version."""
    base = _as_old_record(_published("light", "fp32"))
    other = copy.deepcopy(base)
    other["task"]["manifest_sha256"] = "9" * 64
    other["run_id"] = "0ther" + "0" * 27
    other["created_utc"] = "2026-12-02T00:00:00Z"
    rows = [row_from_record(base), row_from_record(other)]
    asv_like = {**rows[0], "task_digest": None, "run_id": "asv", "source": "asv"}
    tables = group_tables([*rows, asv_like])
    assert len(tables) == 2 and len({t.slug for t in tables}) == 2
    titles = sorted(t.title for t in tables)
    assert titles[0].startswith("synth (v1, task 66a03433)") and "task 99999999" in titles[1]
    newest = next(t for t in tables if t.task_digest == "9" * 64)
    assert [r["run_id"] for r in newest.rows] == [other["run_id"], "asv"]
    assert row_from_record(other)["pairs_total"] is None  # not the installed task: unknown


def test_results_table_marks_the_rows_like_the_site(store: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lowbench", "results", "table", "--results",
                           str(store)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    custom = [ln for ln in lines if "5.93" in ln]
    assert len(custom) == 1 and "checkpoint 1a2b3c4d, 3/21 pairs" in custom[0], custom
    partial = [ln for ln in lines if "2/21 pairs" in ln]
    assert len(partial) == 1 and "40.00" in partial[0], partial
    assert sum("pairs" in ln for ln in lines) == 2  # the 21 reference rows carry no mark
