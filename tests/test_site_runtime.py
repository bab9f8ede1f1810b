"""The runtime axis (issue 18) from records to the site: a run by a deployment runtime is a row
and a variant of its own, records from before it read as eager torch exactly as before, and the
leaderboard, Pareto marks, ablation, variant pages, downloads, asv ingestion and `results table`
show it. Expected values are computed here from the raw fixture figures, not read from lowbench.
"""

from __future__ import annotations

import argparse
import copy
import csv
import itertools
import json
import shutil
from pathlib import Path

import pytest
from site_fixtures import (
    RUNTIME_ROWS,
    make_record,
    runtime_record,
    runtime_section,
    write_runtime_store,
)
from test_site import leaderboards

from lowbench.results.table import KEY, load_table, row_from_record
from lowbench.site.ablation import build_ablation
from lowbench.site.build import build_site
from lowbench.site.model import Variant, group_tables, latest, variant_of, variant_slug

REPO = Path(__file__).resolve().parents[1]
MACHINE_A = "Intel Core i5-1135G7, 8 cores"
MACHINE_B = "Raspberry Pi 5"
MACHINE_C = "Raspberry Pi 4"
#: The test's own statement of the ablation's metrics: (record path, +1 higher / -1 lower is
#: better, "ratio" or "difference").
ABLATION = {
    "latency_median_ms": (("latency", "median_ms"), -1, "ratio"),
    "end_to_end_ms": (("end_to_end", "total_ms"), -1, "ratio"),
    "peak_rss_mib": (("memory", "peak_rss_mib"), -1, "ratio"),
    "swap_peak_mib": (("memory", "swap_peak_mib"), -1, "ratio"),
    "energy_per_inference_net_mj": (("energy", "energy_per_inference_net_mj"), -1, "ratio"),
    "size_bytes": (("size", "size_bytes"), -1, "ratio"),
    "psnr_db": (("quality", "psnr_db"), +1, "difference"),
    "ssim": (("quality", "ssim"), +1, "difference"),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("runtime") / "results"
    return folder, write_runtime_store(folder)


@pytest.fixture(scope="module")
def site(store: tuple[Path, list[dict]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runtime-site") / "site"
    build_site([store[0]], out)
    return out


def _table(site: Path, machine: str) -> list[dict[str, dict]]:
    """The leaderboard rows of ``machine`` (its table found by its heading)."""
    html = (site / "index.html").read_text(encoding="utf-8")
    (slug,) = [h.split('"')[1] for h in html.split("<h2 id=")[1:]
               if f">{machine}</a></h2>" in h.split("\n")[0]]
    return leaderboards(site)[f"lb-{slug}"]


def _label(cells: dict[str, dict]) -> str:
    """'model / quant[ / runtime]' of a leaderboard row, from its cells."""
    runtime = cells["Runtime"]["text"].split()[0] if "Runtime" in cells else "torch"
    quant = cells["Quant"]["text"].split()[0]
    text = f"{cells['Model']['text'].strip()} / {quant}"
    return text if runtime == "torch" else f"{text} / {runtime}"


# -- rows ------------------------------------------------------------------------------------
def test_two_rows_differing_only_in_runtime_are_two_rows_and_two_variants(
        store: tuple[Path, list[dict]]) -> None:
    eager = runtime_record("sid / static")
    onnx = copy.deepcopy(eager)
    onnx["variant"]["runtime"] = runtime_section("onnxruntime")
    onnx["run_id"] = "0nnx" + "0" * 12
    a, b = row_from_record(eager), row_from_record(onnx)
    assert KEY.index("runtime") == KEY.index("quant") + 1
    assert [k for k in KEY if a[k] != b[k]] == ["runtime"]
    assert (a["runtime"], b["runtime"]) == ("torch", "onnxruntime")
    assert variant_of(a) != variant_of(b)
    (table,) = [t for t in group_tables(load_table([store[0]]).rows)
                if t.machine == MACHINE_A]
    labels = [variant_of(r).label for r in latest(table).rows]
    assert len(labels) == len(set(labels)) == len(RUNTIME_ROWS)
    assert sorted(labels) == sorted(RUNTIME_ROWS)


def test_records_without_a_runtime_section_read_as_eager_torch_exactly_as_before() -> None:
    for status in ("ok", "unsupported"):
        rec = make_record("sid", "fp16", status=status)
        assert "runtime" not in rec["variant"]
        row = row_from_record(rec)
        assert row["runtime"] == "torch" and variant_of(row).runtime is None
        for key in ("runtime_version", "runtime_provider", "runtime_device", "runtime_threads",
                    "requested_precision", "precision", "artifact", "build_s"):
            assert row[key] is None, key
        # no new reason: a download of an old record is what it was
        assert "build_s" not in row["reasons"] and "precision" not in row["reasons"]
    published = sorted((REPO / "results").glob("synth__*.json"))[0]
    row = row_from_record(json.loads(published.read_text()))
    assert row["runtime"] == "torch" and "build_s" not in row["reasons"]


def test_runtime_fields_of_a_row() -> None:
    onnx = row_from_record(runtime_record("sid / static / onnxruntime"))
    assert (onnx["runtime"], onnx["runtime_version"], onnx["runtime_provider"]) == (
        "onnxruntime", "1.32.0", "CPUExecutionProvider")
    assert (onnx["precision"], onnx["requested_precision"], onnx["runtime_threads"]) == (
        "int8", "int8", 2)
    assert onnx["build_s"] == 3.21 and onnx["artifact"]["bytes"] == 123_456
    eager = row_from_record(runtime_record("sid / static"))
    assert eager["runtime"] == "torch" and eager["runtime_version"] == "2.5.1"
    assert eager["build_s"] is None and eager["reasons"]["build_s"].startswith("eager torch")
    unread = row_from_record(runtime_record("sid / fp32 / onnxruntime"))
    assert unread["precision"] is None
    assert unread["reasons"]["precision"] == ("onnxruntime does not report the precision its "
                                              "kernels ran")
    failed = row_from_record(make_record("sid", "static", status="failed",
                                         runtime=runtime_section(build_s=None)))
    assert failed["build_s"] is None and failed["reasons"]["build_s"].startswith("failed")


def test_labels_slugs_and_order() -> None:
    eager = Variant("sid", "static")
    ov = Variant("sid", "static", runtime="openvino")
    assert ov.label == "sid / static / openvino" and eager.label == "sid / static"
    assert eager.slug_parts == ("sid", "static", "")  # the published page names
    partial = Variant("sid", "static", None, None, "3/21", "onnxruntime")
    assert partial.label == "sid / static / onnxruntime / 3/21 pairs"
    names = ["zeta-rt", "tensorrt", "openvino", "abc-rt", "onnxruntime", "torch-compile", None]
    ordered = sorted((Variant("sid", "static", runtime=n) for n in names),
                     key=Variant.sort_key)
    assert [v.runtime_name for v in ordered] == [
        "torch", "torch-compile", "onnxruntime", "openvino", "tensorrt", "abc-rt", "zeta-rt"]
    # the quant still comes first: every runtime of sid/fp32 before sid/static
    assert Variant("sid", "fp32", runtime="zeta-rt").sort_key() < eager.sort_key()
    rows = [{"task": "synth", "machine_id": "m", "machine": "m", "task_digest": "d",
             "model": "sid", "quant": "static", "runtime": rt, "commit": "c",
             "created_utc": "", "run_id": rt} for rt in ("torch", "onnxruntime", "openvino")]
    (table,) = group_tables(rows)
    slugs = {variant_slug(table, variant_of(r)) for r in rows}
    assert len(slugs) == 3


# -- leaderboard -----------------------------------------------------------------------------
def test_runtime_column_and_filter_only_where_they_say_something(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    a, b, c = (_table(site, m) for m in (MACHINE_A, MACHINE_B, MACHINE_C))
    assert all("Runtime" in r for r in a) and all("Runtime" in r for r in c)
    assert not any("Runtime" in r for r in b)  # eager torch only: the table as before
    assert sorted(_label(r) for r in a) == sorted(RUNTIME_ROWS)
    # one filter (table A: three runtimes); none for B (eager torch) nor C (one runtime)
    assert html.count('class="runtime-filter') == 1
    block = html[html.index('class="runtime-filter'):]
    block = block[:block.index("</p>")]
    assert [x.split('"')[0] for x in block.split('value="')[1:]] == [
        "torch", "onnxruntime", "openvino"]
    assert html.count("data-runtime=") == len(RUNTIME_ROWS) + 1  # A's rows and C's row
    mismatch = next(r for r in a if _label(r) == "light / static / openvino")
    assert "executed fp32, asked int8" in mismatch["Runtime"]["text"]
    onnx = next(r for r in a if _label(r) == "sid / static / onnxruntime")
    assert "1.32.0" in onnx["Runtime"]["attrs"]["title"]
    assert "executed int8" in onnx["Runtime"]["attrs"]["title"]


def _front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Labels of the points no other point matches or beats on both (lower latency, higher
    PSNR) and beats on one: the test's own Pareto front."""
    return {k for k, (lat, q) in points.items()
            if not any(lat2 <= lat and q2 >= q and (lat2 < lat or q2 > q)
                       for k2, (lat2, q2) in points.items() if k2 != k)}


def test_pareto_front_spans_the_runtimes(site: Path) -> None:
    rows = _table(site, MACHINE_A)
    starred = {_label(r) for r in rows if "title" in r["Pareto latency"]["attrs"]
               and r["Pareto latency"]["attrs"]["title"] == "Pareto-optimal"}
    expected = _front({label: (v[3], v[4]) for label, v in RUNTIME_ROWS.items()})
    assert "sid / static / onnxruntime" in expected  # the fastest row of all
    assert "sid / static" not in expected  # beaten by OpenVINO on both
    assert starred == expected


# -- ablation ----------------------------------------------------------------------------------
def _value(rec: dict, path: tuple[str, ...]) -> float:
    for key in path:
        rec = rec[key]
    return rec


def test_ablation_runtime_trick_is_eager_torch_against_the_best_other_runtime(
        store: tuple[Path, list[dict]]) -> None:
    (table,) = [t for t in group_tables(load_table([store[0]]).rows)
                if t.machine == MACHINE_A]
    study = build_ablation(latest(table))
    assert study.runtime_measured
    assert set(study.metrics) == set(ABLATION)
    tricks = {t.context: t for t in study.tricks if t.group == "runtime"}
    assert list(tricks) == ["sid / fp32", "sid / static", "light / fp32", "light / static"]
    records = {label: runtime_record(label) for label in RUNTIME_ROWS}
    cases = {"sid / fp32": ["sid / fp32 / onnxruntime"],
             "sid / static": ["sid / static / onnxruntime", "sid / static / openvino"],
             "light / static": ["light / static / openvino"]}
    best_of = {}
    for context, others in cases.items():
        trick = tricks[context]
        assert not trick.note
        for metric, (path, sign, kind) in ABLATION.items():
            before = _value(records[context], path)
            best = max(others, key=lambda lb, p=path, s=sign: s * _value(records[lb], p))
            after = _value(records[best], path)
            eff = trick.effects[study.metrics.index(metric)]
            if kind == "difference":
                assert eff.value == pytest.approx(after - before), (context, metric)
            elif before == 0:
                assert eff.value is None, (context, metric)
            else:
                assert eff.value == pytest.approx(after / before), (context, metric)
            if eff.value is not None:
                assert eff.title.startswith(best.rsplit(" / ", 1)[1] + ": "), eff.title
            best_of[(context, metric)] = best
    # the best row differs by metric: ONNX Runtime is faster, OpenVINO more accurate
    assert best_of[("sid / static", "latency_median_ms")] == "sid / static / onnxruntime"
    assert best_of[("sid / static", "psnr_db")] == "sid / static / openvino"
    assert tricks["sid / static"].label == "torch -> best of onnxruntime, openvino"
    assert tricks["sid / fp32"].label == "torch -> onnxruntime"
    light = tricks["light / fp32"]
    assert light.note.startswith("not measured") and all(e.value is None for e in light.effects)
    # the other tricks and the grids stay eager torch
    psnr = next(g for g in study.grids if g.metric == "psnr_db")
    assert psnr.cells[("sid", "static")].value == "28.55"
    quant = next(t for t in study.tricks if t.label == "fp32 -> static")
    assert quant.effects[study.metrics.index("psnr_db")].value == pytest.approx(28.55 - 28.90)


def test_ablation_page_shows_the_runtime_trick_only_with_runtimes(site: Path) -> None:
    html = (site / "ablation.html").read_text(encoding="utf-8")
    sections = html.split("<h2 ")[1:]
    with_rt = [s for s in sections if MACHINE_A in s.split("</h2>")[0]]
    without = [s for s in sections if MACHINE_B in s.split("</h2>")[0]]
    assert "torch -&gt; best of onnxruntime, openvino" in with_rt[0]
    assert "not measured: no runtime other than eager torch ran light / fp32" in with_rt[0]
    assert ">runtime<" in with_rt[0] and ">runtime<" not in without[0]


# -- variant pages, downloads, history -----------------------------------------------------------
def _variant_page(site: Path, title: str) -> str:
    for path in sorted((site / "variant").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        if f"<h1>{title}: synth on {MACHINE_A}</h1>" in text:
            return text
    raise AssertionError(f"no variant page {title}")


def test_variant_page_shows_the_runtime(site: Path) -> None:
    onnx = _variant_page(site, "sid / static / onnxruntime")
    for text in ("runtime <strong>onnxruntime</strong> 1.32.0", "provider CPUExecutionProvider",
                 "executed precision int8", "build 3.21 s", "artifact onnx, 0.12 MiB",
                 "input 1x4x256x256", "<td class=\"text\">Build (s)</td><td>3.21</td>"):
        assert text in onnx, text
    unread = _variant_page(site, "sid / fp32 / onnxruntime")
    assert "onnxruntime does not report the precision its kernels ran" in unread
    eager = _variant_page(site, "sid / static")
    assert "runtime <strong>torch</strong> 2.5.1" in eager and "artifact none" in eager
    assert "eager torch: nothing is exported" in eager  # build n/a with its reason
    old = _variant_page(site, "sid / fp32")  # a record without a runtime section
    assert "runtime <strong>" not in old
    mismatch = _variant_page(site, "light / static / openvino")
    assert "executed fp32, asked int8" in mismatch


def test_downloads_carry_the_runtime_only_where_it_was_recorded(site: Path) -> None:
    with (site / "data" / "rows.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[header.index("quant") + 1:header.index("quant") + 9] == [
        "runtime", "runtime_version", "runtime_provider", "runtime_device", "runtime_threads",
        "requested_precision", "precision", "artifact"]
    assert header.index("build_s") == header.index("size_bytes") + 1
    onnx = [r for r in rows if r["runtime"] == "onnxruntime" and r["quant"] == "static"]
    assert {r["build_s"] for r in onnx} == {"3.21"}
    assert json.loads(onnx[0]["artifact"])["bytes"] == 123_456
    leaderboard_b = next(p for p in (site / "data").glob("leaderboard-*raspberry-pi-5*.csv"))
    first = leaderboard_b.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "runtime" not in first and "build_s" not in first
    changes = list(csv.DictReader((site / "data" / "changes.csv").open(encoding="utf-8")))
    flagged = [c for c in changes if c["metric"] == "latency_median_ms"]
    assert [(c["runtime"], c["model"], c["quant"], c["kind"]) for c in flagged] == [
        ("onnxruntime", "sid", "static", "regression")]


# -- asv and `results table` ---------------------------------------------------------------------
def test_asv_results_with_a_runtime_parameter(tmp_path: Path) -> None:
    """The published asv results (two parameters: eager torch) and the same file with a third
    parameter, runtime, in one benchmark: the torch rows are the same and onnxruntime rows
    appear with their own values."""
    from lowbench.results.asv import load_asv_rows

    src = REPO / "results" / "asv"
    machine = sorted(p for p in src.iterdir() if p.is_dir())[0]
    result = sorted(p for p in machine.glob("*.json") if p.name != "machine.json")[0]
    two = tmp_path / "two"
    (two / "asv" / machine.name).mkdir(parents=True)
    shutil.copy(machine / "machine.json", two / "asv" / machine.name)
    shutil.copy(result, two / "asv" / machine.name)
    three = tmp_path / "three"
    shutil.copytree(two, three)
    data = json.loads(result.read_text())
    key = next(k for k in data["results"] if k.endswith("Speed.time_forward"))
    entry = data["results"][key]
    models, quants = entry[1]
    values = entry[0]
    runtimes = ["'torch'", "'onnxruntime'"]
    entry[1] = [models, quants, runtimes]
    entry[0] = [v if rt == "'torch'" else (None if v is None else v / 4)
                for v in values for rt in runtimes]
    for i in range(2, len(entry)):  # stats columns: one value per combination
        if isinstance(entry[i], list) and len(entry[i]) == len(values):
            entry[i] = [x for x in entry[i] for _ in runtimes]
    (three / "asv" / machine.name / result.name).write_text(json.dumps(data))

    def rows(folder: Path) -> dict[tuple, dict]:
        return {(r["model"], r["quant"], r["runtime"]): r for r, _ in load_asv_rows(folder)}

    before, after = rows(two), rows(three)
    assert {k[2] for k in before} == {"torch"}
    assert {k: v for k, v in after.items() if k[2] == "torch"} == before
    onnx = {k: v for k, v in after.items() if k[2] == "onnxruntime"}
    assert onnx
    for (model, quant, _), row in onnx.items():
        eager = before[(model, quant, "torch")]["latency_median_ms"]
        if eager is None:
            assert row["latency_median_ms"] is None
        else:
            assert row["latency_median_ms"] == pytest.approx(eager / 4)
        assert row["psnr_db"] is None  # measured by another benchmark, eager torch only
    grid = list(itertools.product(models, quants))
    assert len(entry[0]) == 2 * len(grid)


def test_results_table_shows_the_runtime(store: tuple[Path, list[dict]], capsys) -> None:
    from lowbench.cli import results as results_cmd

    assert results_cmd.run(argparse.Namespace(results=[str(store[0])], json=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    head = lines[0].split()
    assert head[head.index("quant") + 1] == "runtime" and head[-1] == "build_s"
    onnx = [ln for ln in lines if " onnxruntime " in ln and " static " in ln]
    assert len(onnx) == 2 and all(ln.split()[-1] == "3.21" for ln in onnx)
    assert any(" openvino " in ln and ln.split()[-1] == "12.50" for ln in lines)


def test_runtime_text_from_a_record_is_escaped(tmp_path: Path) -> None:
    evil = '<img src=x onerror=alert(1)>"rt'
    folder = tmp_path / "results"
    from lowbench.results.records import write_record

    write_record(make_record("sid", "fp32"), folder)
    write_record(make_record("sid", "fp32", runtime=runtime_section(
        evil, version="<b>1</b>", provider="<i>p</i>", precision=None, reason="<u>why</u>")),
        folder)
    build_site([folder], tmp_path / "site")
    for path in (tmp_path / "site").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for raw in (evil, "<b>1</b>", "<i>p</i>", "<u>why</u>"):
            assert raw not in text, (path.name, raw)
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;&#34;rt" in index
