"""Machines side by side (issue 20): the comparison on machines.html, checked against ratios
computed here from the records' own figures (not through lowbench.site.machines), on an
asymmetric store (tests/site_fixtures.py, :func:`write_machines_store`); the JSON for the page's
script is safe against a label that closes the script; the machine pages list ISA features."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from site_fixtures import (
    MACHINE_A,
    MACHINE_B,
    MACHINE_ROWS,
    machine_spec,
    write_machines_store,
)
from test_site import page

from lowbench.results.provenance import machine_id
from lowbench.results.table import load_table
from lowbench.site.build import build_site
from lowbench.site.machines import compare, ratio, ratio_text, verdict

EVIL = "Evil </script><script>alert(1)</script> & 'x' <!--"


def _id(index: int) -> str:
    return machine_id(machine_spec(index)["machine"])


A, B = _id(MACHINE_A), _id(MACHINE_B)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("machines")
    records = write_machines_store(tmp / "results", evil_label=EVIL)
    build_site([tmp / "results"], tmp / "site")
    return tmp, records


def _cells(site: Path, task: str = "synth") -> dict[tuple[str, str, str], dict]:
    """(variant label, metric header, machine id) -> cell of the comparison table of ``task``."""
    p = page(site, "machines.html")
    (tid,) = [t for t in p.tables if t.startswith("cmp-compare-" + task)]
    head1, head2, *body = p.tables[tid]
    metrics = []
    for th in head1[1:]:
        metrics += [th["text"].split("lower is better")[0].split("higher is better")[0].strip()
                    ] * int(th["attrs"]["colspan"])
    machines = [th["attrs"]["title"] for th in head2]
    out = {}
    for tr in body:
        label = tr[0]["text"].strip()
        for metric, mid, td in zip(metrics, machines, tr[1:], strict=True):
            out[(label, metric, mid)] = td
    return out


def _shown(value: float) -> str:
    """The catalogue's precision by magnitude for these figures (all >= 1)."""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}" if value >= 100 else (
        f"{value:.2f}")


def test_cells_are_the_latest_values_and_their_ratios_to_the_default(store) -> None:
    """A has the most rows, so it is the default reference; every cell is computed here from
    MACHINE_ROWS: B is 2x slower on sid / fp32 and 0.5x on sid / static (and the other metrics
    follow: end-to-end = latency + 30 ms, RSS = 10x latency)."""
    tmp, _ = store
    cells = _cells(tmp / "site")
    html = (tmp / "site" / "machines.html").read_text()
    assert re.search(r'<option value="' + A + '" selected>', html)
    for (model, quant), per in MACHINE_ROWS.items():
        label = f"{model} / {quant}"
        for mi, (lat, _psnr) in per.items():
            mid = _id(mi)
            ref = per.get(MACHINE_A)
            for metric, value, ref_value, unit in (
                    ("Latency median (ms)", lat, ref and ref[0], "ms"),
                    ("End-to-end (ms)", lat + 30, ref and ref[0] + 30, "ms"),
                    ("Peak RSS (MiB)", 10 * lat, ref and 10 * ref[0], "MiB")):
                td = cells[(label, metric, mid)]
                text = td["text"]
                assert text.startswith(f"{_shown(value)} {unit}"), (label, metric, mid, text)
                if ref is None:
                    assert "×" not in text, text  # no reference value: no ratio
                else:
                    assert text.endswith(f" · {value / ref_value:.2f}×"), (label, metric, text)
                assert float(td["attrs"]["data-v"]) == value
    assert cells[("sid / fp32", "Latency median (ms)", B)]["text"] == "200.0 ms · 2.00×"
    assert cells[("sid / static", "Latency median (ms)", B)]["text"] == "20.00 ms · 0.50×"
    assert "worse" in cells[("sid / fp32", "Latency median (ms)", B)]["attrs"]["class"]
    assert "better" in cells[("sid / static", "Latency median (ms)", B)]["attrs"]["class"]
    assert "same" in cells[("sid / fp32", "Latency median (ms)", A)]["attrs"]["class"]
    # a variant run on one machine only: "—" on the other
    assert cells[("light / fp32", "Latency median (ms)", B)]["text"] == "—"
    assert cells[("lighter / fp32", "Latency median (ms)", A)]["text"] == "—"
    # energy: A has a meter (a ratio to itself), B none (n/a with the reason)
    assert cells[("sid / fp32", "Energy/image net (mJ)", A)]["text"] == "100.0 mJ · 1.00×"
    na = cells[("sid / fp32", "Energy/image net (mJ)", B)]
    assert na["text"] == "n/a" and "no energy meter" in na["attrs"]["title"]


def test_only_reference_variants_of_the_same_task(store) -> None:
    """The user checkpoint and the --limit run on B are no rows; the task only B ran is a table
    of its own, where the default reference (A) is absent: no ratios, and a note says so."""
    tmp, _ = store
    cells = _cells(tmp / "site")
    labels = {k[0] for k in cells}
    assert labels == {f"{m} / {q}" for m, q in MACHINE_ROWS}
    other = _cells(tmp / "site", "other")
    assert {k[2] for k in other} == {B}
    assert other[("sid / fp32", "Latency median (ms)", B)]["text"] == "77.00 ms"
    html = (tmp / "site" / "machines.html").read_text()
    notes = re.findall(r'<p class="note cmp-noref" data-table="([^"]+)"( hidden)?>', html)
    assert [(t.split("-")[1], h) for t, h in notes] == [("other", ""), ("synth", " hidden")]


def test_ratio_maths_and_direction() -> None:
    assert ratio(200.0, 100.0) == 2.0 and ratio(20.0, 40.0) == 0.5
    for bad in ((None, 1.0), (1.0, None), (1.0, 0.0), (-3.0, 2.0), (float("nan"), 1.0)):
        assert ratio(*bad) is None
    # halves round up, as JavaScript's toFixed (0.125 and 1.005 are not halves in binary)
    assert [ratio_text(x) for x in (0.125, 1.375, 2.0, 1.005, 0.5)] == [
        "0.13×", "1.38×", "2.00×", "1.00×", "0.50×"]
    assert ratio_text(None) == ""
    assert (verdict(2.0, "lower"), verdict(2.0, "higher")) == ("worse", "better")
    assert (verdict(0.5, "lower"), verdict(0.5, "higher")) == ("better", "worse")
    assert verdict(1.004, "lower") == "same" and verdict(None, "lower") == ""
    assert verdict(2.0, None) == ""


def test_higher_is_better_flips_the_verdict(store) -> None:
    """PSNR (higher is better): B's 28.70 dB on sid / static is 1.01x A's 28.40 dB and the
    better one, while its latency ratio 0.50x is better for the opposite reason."""
    tmp, _ = store
    table = load_table([tmp / "results"])
    cmp = compare(table.rows, table.machines, metrics=("psnr_db", "latency_median_ms"))
    assert cmp.default == A
    (synth,) = [t for t in cmp.tasks if t.title == "synth"]
    from lowbench.site.model import Variant

    v = Variant("sid", "static")
    psnr_b, psnr_a = synth.value(v, B, "psnr_db"), synth.value(v, A, "psnr_db")
    assert (psnr_a, psnr_b) == (28.40, 28.70)
    r = ratio(psnr_b, psnr_a)
    assert r == 28.70 / 28.40 and verdict(r, "higher") == "better"
    assert verdict(ratio(synth.value(v, B, "latency_median_ms"),
                         synth.value(v, A, "latency_median_ms")), "lower") == "better"
    assert verdict(ratio(psnr_a, psnr_b), "higher") == "worse"
    # the latest run, not an older one (A's sid / fp32 at position 1 took 500 and 510 ms)
    assert synth.value(Variant("sid", "fp32"), A, "latency_median_ms") == 100.0


def _json_block(html: str) -> str:
    m = re.search(r'<script type="application/json" id="cmp-data">(.*?)</script>', html, re.S)
    assert m
    return m.group(1)


def test_json_block_is_safe_against_a_label_that_closes_the_script(store) -> None:
    tmp, _ = store
    html = (tmp / "site" / "machines.html").read_text()
    block = _json_block(html)
    for unsafe in ("<", ">", "&"):
        assert unsafe not in block
    data = json.loads(block)
    evil = machine_id(machine_spec(3)["machine"])
    assert data["machines"][evil] == EVIL
    assert data["default"] == A
    # the values the script recomputes from are the records' figures
    (synth,) = [t for t in data["tables"] if t["id"].startswith("compare-synth")]
    i = [A, B, evil].index
    order = sorted([A, B, evil], key=lambda m: (data["machines"][m], m))
    assert synth["machines"] == order
    assert synth["values"][0][0] == [[100.0, 200.0, 150.0][i(m)] for m in order]
    assert synth["directions"] == ["lower"] * 4
    # and the label is escaped everywhere else on the page: one script element opens per block
    assert html.count("<script") == 3  # the data, the comparison's script, the sort script
    assert "alert(1)</script>" not in html.replace(_json_block(html), "")


def test_machine_pages_name_the_isa(tmp_path: Path) -> None:
    """A machine that records its ISA features shows them (list, label, its page); one whose
    records predate them says so; two machines that differ only there are two machines."""
    from site_fixtures import make_record

    from lowbench.results.records import write_record

    for isa in (["avx2"], ["avx2", "avx512_vnni", "avx512f"], None):
        rec = make_record(machine=4)
        if isa is not None:
            rec["environment"]["machine"]["isa"] = isa
            rec["environment"]["machine_label"] += ", " + " ".join(isa)
        rec["run_id"] = f"isa-run-{len(isa or ())}"
        write_record(rec, tmp_path / "results")
    build_site([tmp_path / "results"], tmp_path / "site")
    rows = page(tmp_path / "site", "machines.html").tables["machine-list"][1:]
    isa = sorted(r[3]["text"] for r in rows)
    assert isa == ["avx2", "avx2 avx512_vnni avx512f", "not recorded"]
    pages = sorted((tmp_path / "site" / "machine").glob("*.html"))
    assert len(pages) == 3
    texts = [p.read_text() for p in pages]
    assert sum("ISA features: <strong>avx2 avx512_vnni avx512f</strong>" in t for t in texts) == 1
    assert sum("ISA features: <strong>not recorded</strong>" in t for t in texts) == 1
