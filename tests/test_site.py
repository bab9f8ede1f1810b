"""The static site: leaderboard contents, Pareto marks, history flags, escaping, determinism,
relative links, downloads and tolerance of broken input (no browser; see test_site_browser.py)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from site_fixtures import PAIRS, machine_spec, make_record, write_store

from lowbench.errors import LowbenchError
from lowbench.results.columns import number
from lowbench.results.records import RecordWarning, write_record
from lowbench.results.table import load_table
from lowbench.site import build as site_build
from lowbench.site.ablation import build_ablation
from lowbench.site.build import build_site
from lowbench.site.history import build_history
from lowbench.site.model import Variant, group_tables, latest
from lowbench.site.pareto import front, pareto_mask
from lowbench.site.svg import line_chart


# -- HTML helpers ----------------------------------------------------------------------------
class Page(HTMLParser):
    """Links, ids and the cells of every table of one HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.tables: dict[str, list[list[dict]]] = {}
        self._table: list[list[dict]] | None = None
        self._cell: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if key in a and tag in ("a", "img", "link", "script"):
                self.links.append(a[key])
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or f"t{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = {"attrs": a, "text": ""}
            self._table[-1].append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def page(site: Path, rel: str) -> Page:
    return Page((site / rel).read_text(encoding="utf-8"))


def leaderboards(site: Path) -> dict[str, list[dict[str, dict]]]:
    """Leaderboard tables of index.html: id -> list of {header text: cell}."""
    out = {}
    for tid, rows in page(site, "index.html").tables.items():
        if not tid.startswith("lb-"):
            continue
        headers = [c["text"].strip() for c in rows[0]]
        out[tid] = [dict(zip(headers, r, strict=True)) for r in rows[1:]]
    return out


def only_table(site: Path) -> list[dict[str, dict]]:
    tables = leaderboards(site)
    assert len(tables) == 1
    return next(iter(tables.values()))


def _store(tmp: Path, records: list[dict]) -> Path:
    folder = tmp / "results"
    for rec in records:
        write_record(rec, folder)
    return folder


# -- a shared small store ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """3 machines (Orin, Nano, Pi 5: no energy meter, no GPU) x 20 variants x 5 commits, a 30%
    latency regression of light/static and a PSNR gain of sid/qat from commit index 3."""
    tmp = tmp_path_factory.mktemp("site")
    res = tmp / "results"
    events = [{"from_commit": 3, "model": "light", "quant": "static", "scale": {"latency": 1.3}},
              {"from_commit": 3, "model": "sid", "quant": "qat", "scale": {"psnr": 1.01}}]
    write_store(res, n_commits=5, n_machines=3, events=events, gallery_pairs=PAIRS[:2])
    summary = build_site([res], tmp / "site")
    return res, tmp / "site", summary


def test_summary_counts(small: tuple) -> None:
    _, site, summary = small
    assert summary["rows"] == 5 * 3 * 20
    assert summary["tables"] == 3
    assert summary["skipped"] == 0
    assert summary["pages"] == len(list(site.rglob("*.html")))
    assert (site / "index.html").is_file() and (site / ".lowbench-site").is_file()


def test_leaderboard_shows_latest_commit_values(small: tuple) -> None:
    res, site, _ = small
    table = load_table([res])
    tables = leaderboards(site)
    assert len(tables) == 3
    for rows in tables.values():
        assert len(rows) == 20  # every variant, once
    # the Jetson Nano's sid/fp32 row holds the commit-position-5 value, unrounded in data-v
    nano = next(r for r in table.rows if r["machine"] == "Jetson Nano"
                and r["model"] == "sid" and r["quant"] == "fp32" and r["commit_position"] == 5)
    html = (site / "index.html").read_text()
    assert f'data-v="{nano["latency_median_ms"]!r}"' in html
    assert "commit " + nano["commit"][:10] + " #5" in html
    for pos in (1, 2, 3, 4):
        old = next(r for r in table.rows if r["machine"] == "Jetson Nano" and r["model"] == "sid"
                   and r["quant"] == "fp32" and r["commit_position"] == pos)
        assert f'data-v="{old["latency_median_ms"]!r}"' not in html


def test_values_show_their_interval(small: tuple) -> None:
    """A latency with a 95% interval [0.98 m, 1.04 m] reads 'm ±0.03 m', the interval itself
    on hover; a PSNR without one reads as the bare value."""
    _, site, _ = small
    checked = 0
    for table in leaderboards(site).values():
        for cells in table:
            cell = cells["Latency median (ms)"]
            if cell["text"] == "n/a":  # an unsupported variant: no value, no interval
                continue
            checked += 1
            value, _, half = cell["text"].partition(" ±")
            median = float(cell["attrs"]["data-v"])
            assert value == number(median, "latency_median_ms")
            assert half == number(0.03 * median, "latency_median_ms"), cell
            lo, hi = (number(f * median, "latency_median_ms") for f in (0.98, 1.04))
            assert cell["attrs"]["title"] == (f"95% interval [{lo}, {hi}] (distribution-free, "
                                              "of the timed runs)")
            assert "±" not in cells["PSNR (dB)"]["text"]
    assert checked >= 50, checked  # 3 tables x 20 variants, less the unsupported


def test_latest_commit_rules(tmp_path: Path) -> None:
    """Highest position wins over a newer run without a position; at one commit the latest run
    of a variant wins."""
    recs = [make_record("sid", "fp32", position=p, latency__median_ms=float(10 * p))
            for p in (1, 2, 3)]
    recs.append(make_record("sid", "fp32", position=None, sha="f" * 40,
                            created_utc="2031-01-01T00:00:00Z", latency__median_ms=999.0))
    recs.append(make_record("sid", "fp32", position=3, created_utc="2030-01-01T00:00:00Z",
                            run_id="rerun-of-commit-3", latency__median_ms=31.0))
    recs.append(make_record("light", "fp32", position=2, latency__median_ms=5.0))
    lt = latest(group_tables(load_table([_store(tmp_path, recs)]).rows)[0])
    assert lt.position == 3
    assert [r["latency_median_ms"] for r in lt.rows] == [31.0]
    assert lt.older == [Variant("light", "fp32")]
    build_site([tmp_path / "results"], tmp_path / "site")
    rows = only_table(tmp_path / "site")
    # the value, then ± half the width of the interval the record holds for its median
    assert [r["Latency median (ms)"]["text"].split(" ±")[0] for r in rows] == ["31.00"]
    assert "Not measured at this commit" in (tmp_path / "site" / "index.html").read_text()


def test_pareto_marks_hand_made_front(tmp_path: Path) -> None:
    # (model, latency ms, PSNR dB, energy mJ, RSS MiB); the latency front: a, b, d (tie with a)
    case = [("a", 10.0, 28.0, 50.0, 300.0), ("b", 20.0, 29.0, 40.0, 300.0),
            ("c", 20.0, 27.0, 10.0, 300.0), ("d", 10.0, 28.0, 50.0, 200.0),
            ("e", 30.0, 29.0, 60.0, 100.0)]
    recs = [make_record(m, "fp32", machine=0, latency__median_ms=lat, quality__psnr_db=q,
                        energy__energy_per_inference_net_mj=e, memory__peak_rss_mib=mem)
            for m, lat, q, e, mem in case]
    build_site([_store(tmp_path, recs)], tmp_path / "site")
    rows = {r["Model"]["text"].strip(): r for r in only_table(tmp_path / "site")}
    marks = {m: tuple(rows[m][f"Pareto {k}"]["attrs"]["data-v"] == "1"
                      for k in ("latency", "energy", "memory")) for m in rows}
    assert marks == {
        # latency: a and d optimal (a tie dominates neither), b optimal; c dominated by a (10 ms,
        # 28 dB), e by b (same PSNR, faster). energy: c (cheapest) and b (best PSNR at 40 mJ).
        # memory: e has the least memory and the best PSNR: it dominates everything else.
        "a": (True, False, False), "b": (True, True, False), "c": (False, True, False),
        "d": (True, False, False), "e": (False, False, True)}


def test_pareto_unit() -> None:
    lat = [10.0, 20.0, 20.0, None, 5.0]
    psnr = [28.0, 29.0, 27.0, 30.0, float("nan")]
    assert pareto_mask(lat, psnr, "latency_median_ms", "psnr_db") == [True, True, False, None,
                                                                      None]
    pts = [(10.0, 28.0), (20.0, 29.0), (5.0, 20.0), (30.0, 25.0)]
    assert front(pts, "latency_median_ms", "psnr_db") == [(5.0, 20.0), (10.0, 28.0),
                                                          (20.0, 29.0)]


def test_pareto_ties_at_the_shown_precision() -> None:
    """A 0.0001 dB PSNR edge (fp16 vs fp32 on one machine) is a tie, not a win: the slower of
    two variants equal to 0.01 dB is dominated; 0.01 dB apart, both are optimal."""
    assert pareto_mask([140.0, 120.0], [24.10795, 24.10790], "latency_median_ms",
                       "psnr_db") == [False, True]
    assert pareto_mask([140.0, 120.0], [24.12, 24.11], "latency_median_ms",
                       "psnr_db") == [True, True]


def test_na_with_reason_dynamic_flag_and_failed_rows(small: tuple) -> None:
    _, site, _ = small
    tables = leaderboards(site)
    pi = next(rows for rows in tables.values() if len(
        [r for r in rows if r["Status"]["text"].startswith("unsupported")]) == 4)
    energy = pi[0]["Energy/image net (mJ)"]
    assert energy["text"] == "n/a" and "no energy meter" in energy["attrs"]["title"]
    assert energy["attrs"]["data-v"] == ""
    fp16 = [r for r in pi if r["Quant"]["text"].strip() == "fp16"]
    assert fp16 and all("unsupported" in r["Status"]["text"] and "CUDA" in r["Status"]["text"]
                        for r in fp16)
    assert all(r["PSNR (dB)"]["text"] == "n/a" and "unsupported" in r["PSNR (dB)"]["attrs"][
        "title"] for r in fp16)
    for rows in tables.values():
        for r in rows:
            flagged = "quantized nothing" in r["Quant"]["text"]
            assert flagged == (r["Quant"]["text"].split()[0] == "dynamic")


def test_escaping_of_record_text(tmp_path: Path) -> None:
    spec = machine_spec(0)
    spec = {**spec, "label": "<script>alert(2)</script>"}
    recs = [make_record("<script>alert(1)</script>", "fp32", machine=spec,
                        gallery=[{"pair": "<b>p</b>", "output": "nope.png"}]),
            make_record("sid", "fp32", machine=spec)]
    with pytest.warns(UserWarning, match="gallery image unreadable"):
        build_site([_store(tmp_path, recs)], tmp_path / "site")
    site = tmp_path / "site"
    pages = list(site.rglob("*.html"))
    for p in pages:
        text = p.read_text()
        assert "<script>alert" not in text, p
        assert "<b>p</b>" not in text, p
    index = (site / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in index
    assert all(re.fullmatch(r"[a-z0-9.-]+", p.name) for p in pages)


def test_history_flags_regressions_in_the_right_direction(small: tuple) -> None:
    res, site, _ = small
    tables = group_tables(load_table([res]).rows)
    for t in tables:
        h = build_history(t)
        assert [c.position for c in h.commits] == [1, 2, 3, 4, 5]
        flagged = {(c.variant, c.metric): c for c in h.changes}
        lat = flagged[(Variant("light", "static"), "latency_median_ms")]
        assert lat.kind == "regression" and lat.after_index == 3 and lat.before_index == 2
        assert lat.relative == pytest.approx(0.3, abs=0.02)
        psnr = flagged[(Variant("sid", "qat"), "psnr_db")]
        assert psnr.kind == "improvement" and not psnr.bad
        # nothing else moved beyond its noise band
        assert {v for v, _ in flagged} == {Variant("light", "static"), Variant("sid", "qat")}
        assert all(c.after_index == 3 for c in h.changes)
        assert {c.kind for c in h.changes if c.variant.model == "light"} == {"regression"}
    overview = page(site, "history.html")
    cells = [[c["text"] for c in row] for row in next(iter(overview.tables.values()))[1:]]
    assert all(row[3] != "0" for row in cells)  # every table has regressions
    with open(site / "data" / "changes.csv", newline="") as fh:
        changes = list(csv.DictReader(fh))
    kinds = {(c["model"], c["quant"], c["metric"]): c["kind"] for c in changes}
    assert kinds[("light", "static", "latency_median_ms")] == "regression"
    assert kinds[("sid", "qat", "psnr_db")] == "improvement"
    text = (site / "history.html").read_text()
    assert "Mann-Whitney U on the two runs&#39; timed samples" in text  # the rule is printed
    assert "session shift" in text


def test_history_marks_breakage(tmp_path: Path) -> None:
    recs = [make_record("sid", "fp32", position=1), make_record("sid", "fp32", position=2,
                                                                status="failed"),
            make_record("sid", "fp32", position=3)]
    h = build_history(group_tables(load_table([_store(tmp_path, recs)]).rows)[0])
    assert [(c.kind, c.after_index) for c in h.changes] == [("broke", 1), ("fixed", 2)]


def test_determinism_byte_identical(small: tuple, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    res, _, _ = small
    build_site([res], tmp_path / "a")
    # the second build writes rows.csv/json in a child process: same bytes either way
    monkeypatch.setattr(site_build, "PARALLEL_ROWS", 0)
    build_site([res], tmp_path / "b")

    def files(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert a == b
    assert any(k.startswith("charts/") and k.endswith(".png") for k in a)
    assert any(k.startswith("img/") for k in a)
    for text in (tmp_path / "a" / "index.html", tmp_path / "a" / "data" / "rows.json"):
        assert str(res) not in text.read_text()  # no local paths leak into the site


def test_links_relative_and_resolvable(small: tuple) -> None:
    _, site, _ = small
    pages = {p: page(site, p.relative_to(site).as_posix()) for p in site.rglob("*.html")}
    assert len(pages) > 60
    ids = {p.resolve(): pg.ids for p, pg in pages.items()}
    checked = 0
    for path, pg in pages.items():
        assert any(link.endswith("index.html") for link in pg.links), path  # back to the index
        for link in pg.links:
            if link.startswith("data:"):
                continue
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, (path, link)
            assert not parts.path.startswith("/"), (path, link)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file(), (path, link)
            assert target.is_relative_to(site.resolve()), (path, link)
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in ids[target], (path, link)
            checked += 1
    assert checked > 1000


def test_gallery_copies_pngs_byte_for_byte(small: tuple) -> None:
    res, site, _ = small
    srcs = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (res / "gallery").rglob("*.png")}
    copies = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (site / "img").glob("*.png")}
    assert copies == srcs
    gallery = page(site, "gallery.html")
    imgs = [link for link in gallery.links if link.startswith("img/")]
    assert len(imgs) >= 2 * (2 + 3 * 19)  # 2 crops x (input, truth, outputs of 3 machines)


def test_downloads_parse(small: tuple) -> None:
    res, site, summary = small
    data = site / "data"
    csvs = sorted(data.glob("*.csv"))
    assert len(csvs) == 3 + 2  # three leaderboards, rows, changes
    for path in csvs:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        doc = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        assert rows[0] == doc["columns"]
        assert len(rows) - 1 == len(doc["rows"])
        assert all(len(r) == len(rows[0]) for r in rows)
    doc = json.loads((data / "rows.json").read_text())
    assert len(doc["rows"]) == summary["rows"]
    assert "results_root" not in doc["columns"]
    rows = [dict(zip(doc["columns"], r, strict=True)) for r in doc["rows"]]
    i = next(k for k, r in enumerate(rows) if r["status"] == "ok")
    assert isinstance(rows[i]["reasons"], dict) and rows[i]["psnr_db"] is not None
    with open(data / "rows.csv", newline="") as fh:
        from_csv = list(csv.DictReader(fh))
    assert float(from_csv[i]["psnr_db"]) == rows[i]["psnr_db"]
    assert from_csv[i]["run_id"] == rows[i]["run_id"]
    failed = next(k for k, r in enumerate(rows) if r["status"] != "ok")
    assert rows[failed]["psnr_db"] is None and from_csv[failed]["psnr_db"] == ""


def test_broken_and_foreign_files_are_skipped(tmp_path: Path) -> None:
    res = _store(tmp_path, [make_record("sid", "fp32"), make_record("light", "fp32")])
    (res / "broken.json").write_text('{"schema": "lowbench.record", "run_id": ')
    (res / "foreign.json").write_text(json.dumps({"name": "package", "version": "1.0"}))
    (res / "notes.txt").write_text("not json at all")
    with pytest.warns(RecordWarning) as caught:
        summary = build_site([res], tmp_path / "site")
    assert summary["skipped"] == 2 and summary["rows"] == 2
    assert {Path(str(w.message).split()[1].rstrip(":")).name for w in caught
            if issubclass(w.category, RecordWarning)} == {"broken.json", "foreign.json"}
    assert "2 result file(s) were skipped" in (tmp_path / "site" / "index.html").read_text()


def test_out_folder_safety_and_rebuild(tmp_path: Path) -> None:
    res = _store(tmp_path, [make_record("sid", "fp32")])
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "keep.txt").write_text("x")
    with pytest.raises(LowbenchError, match="refusing"):
        build_site([res], precious)
    assert (precious / "keep.txt").read_text() == "x"
    with pytest.raises(LowbenchError, match="no results folder"):
        build_site([tmp_path / "missing"], tmp_path / "site")
    build_site([res], tmp_path / "site")
    (tmp_path / "site" / "stale.html").write_text("old")
    build_site([res], tmp_path / "site")  # a previous site is replaced as a whole
    assert not (tmp_path / "site" / "stale.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "results", "site"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lowbench.cli.main import main

    res = _store(tmp_path, [make_record("sid", "fp32")])
    assert main(["site", "build", "--results", str(res), "--out", str(tmp_path / "s")]) == 0
    assert "1 rows" in capsys.readouterr().out
    assert main(["site", "build", "--results", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "s")]) == 2


def test_ablation_interaction_and_preprocessing_hook(small: tuple) -> None:
    res, site, _ = small
    t = group_tables(load_table([res]).rows)[0]
    lt = latest(t)
    study = build_ablation(lt)
    grid = next(g for g in study.grids if g.metric == "latency_median_ms")
    # fixture: static int8 gives x0.45 on sid but only x0.70 on lighter
    assert grid.cells[("lighter", "static")].interaction.value == pytest.approx(0.7 / 0.45,
                                                                                rel=0.03)
    assert grid.cells[("light", "dynamic")].interaction.value == pytest.approx(1.0, abs=0.03)
    dyn = next(tr for tr in study.tricks if tr.label == "fp32 -> dynamic")
    assert "quantized nothing" in dyn.note
    assert not study.preprocess_measured
    assert "not measured" in (site / "ablation.html").read_text()
    fast = {**lt.rows[0], "preprocess": "fast", "end_to_end_ms": lt.rows[0]["end_to_end_ms"] / 2}
    lt.rows.append(fast)
    study = build_ablation(lt)
    assert study.preprocess_measured
    pre = next(tr for tr in study.tricks if tr.group == "preprocessing")
    e2e = study.metrics.index("end_to_end_ms")
    assert pre.effects[e2e].value == pytest.approx(0.5) and pre.effects[e2e].cls == "better"


def test_parallel_loading_matches_serial(small: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    from lowbench.results import table as results

    res, _, _ = small
    monkeypatch.setenv("LOWBENCH_JOBS", "1")
    serial = load_table([res])
    monkeypatch.setenv("LOWBENCH_JOBS", "2")
    monkeypatch.setattr(results, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(results, "CHUNK", 7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel = load_table([res])
    assert not [w for w in caught if issubclass(w.category, RecordWarning)]
    assert parallel.rows == serial.rows
    assert list(parallel.machines) == list(serial.machines)


def test_sparkline_svg() -> None:
    svg = line_chart(np.array([1.0, 2.0, np.nan, 3.0]), marks=[(3, "regression", "<x>")])
    assert svg.count("M") == 2 and "&lt;x&gt;" in svg and "#c62828" in svg
    long = line_chart(np.random.default_rng(0).normal(size=5000), width=100)
    assert len(long) < 6000  # min/max per pixel column, not 5000 points
    assert "<path" not in line_chart(np.full(3, np.nan))


def test_empty_store_and_all_failed_table(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = build_site([tmp_path / "empty"], tmp_path / "site0")
    assert summary["rows"] == 0 and summary["tables"] == 0
    assert "No results found" in (tmp_path / "site0" / "index.html").read_text()
    recs = [make_record("sid", q, status="failed", position=p, sha=None)
            for q in ("fp32", "static") for p in (None, None)]
    recs[1]["run_id"] = recs[3]["run_id"] = "another-run-0001"
    recs[1]["created_utc"] = recs[3]["created_utc"] = "2026-01-01T00:00:00Z"
    summary = build_site([_store(tmp_path, recs)], tmp_path / "site1")
    assert summary["tables"] == 1
    rows = only_table(tmp_path / "site1")
    assert [r["Status"]["text"].split(":")[0] for r in rows] == ["failed", "failed"]
    assert "out of memory" in rows[0]["Status"]["text"]
    assert "No variant with a PSNR" in (tmp_path / "site1" / "pareto.html").read_text()
