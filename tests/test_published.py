"""What the repository publishes: shipped checkpoints beat the LibRaw baseline, and site/ is
exactly the build of results/."""

from __future__ import annotations

import copy
import filecmp
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from lowbench.checkpoint import shipped_checkpoint_path
from lowbench.harness.session import EvalConfig, Session
from lowbench.models.registry import LEARNED_MODELS

REPO = Path(__file__).resolve().parents[1]
#: issue "Model zoo": every shipped model beats LibRaw by at least this on synth (dB)
MARGIN_DB = 3.0


@pytest.fixture(scope="module")
def libraw_psnr() -> float:
    return Session(EvalConfig(model="libraw")).run_quality()["quality"]["psnr_db"]


@pytest.fixture(scope="module")
def lighter_fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, dict]]:
    """lighter's synth PSNR (dB) and variant info per quant (fp32, static, qat) from the shipped
    checkpoints, each measured once for the module, from an empty data cache as a fresh clone
    runs it (the synth pairs ship with the package; the static observer state too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOWBENCH_DATA", str(tmp_path_factory.mktemp("fresh-clone-cache")))
        out = {}
        for q in ("fp32", "static", "qat"):
            session = Session(EvalConfig(model="lighter", quant=q))
            out[q] = (session.run_quality()["quality"]["psnr_db"], session.variant.info)
    return out


@pytest.mark.parametrize("model", LEARNED_MODELS)
def test_shipped_checkpoint_beats_libraw(model: str, libraw_psnr: float, lighter_fresh) -> None:
    shipped_checkpoint_path(model)  # a clear error if the package ships none
    if model == "lighter":  # measured once for the module, shared with the quant tests
        psnr = lighter_fresh["fp32"][0]
    else:
        psnr = Session(EvalConfig(model=model)).run_quality()["quality"]["psnr_db"]
    assert psnr >= libraw_psnr + MARGIN_DB, (model, psnr, libraw_psnr)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def committed_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the git-tracked results/ only: the README's main command (`lowbench
    evaluate`) writes a new record into results/ too, which must not count as published."""
    listed = subprocess.run(["git", "ls-files", "-z", "results"], cwd=REPO, capture_output=True)
    tracked = [f for f in listed.stdout.decode().split("\0") if f]
    if listed.returncode != 0 or not tracked:
        pytest.skip("no committed results/ in this checkout")
    root = tmp_path_factory.mktemp("published")
    for rel in tracked:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, root / rel)
    return root / "results"


def test_site_is_the_build_of_results(committed_results: Path, tmp_path: Path) -> None:
    from lowbench.site.build import build_site

    out = tmp_path / "site"
    build_site([committed_results], out)
    published = REPO / "site"
    assert _tree(out) == _tree(published), "site/ is stale: run `lowbench site build --publish`"
    mismatch = filecmp.cmpfiles(out, published, _tree(out), shallow=False)[1]
    assert not mismatch, f"site/ differs from a rebuild of results/: {mismatch[:5]}"


# -- the code, not only the data: the published results recomputed independently ------------
#: The test's own statement of which way is better (not read from lowbench): +1 higher, -1 lower.
BETTER = {"psnr_db": +1, "ssim": +1, "latency_median_ms": -1, "latency_p90_ms": -1,
          "end_to_end_ms": -1, "peak_rss_mib": -1, "energy_per_inference_net_mj": -1,
          "size_bytes": -1, "params": -1}


def _raw_records(folder: Path) -> dict[str, dict]:
    """run_id -> record, read with plain json (no lowbench code)."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(rec, dict) and rec.get("schema") == "lowbench.record":
            out[rec["run_id"]] = rec
    return out


@pytest.fixture(scope="module")
def evaluate_rows(committed_results: Path) -> list[dict]:
    from lowbench.results.table import load_table

    return [r for r in load_table([committed_results]).rows if r["source"] == "evaluate"]


def _identity(rec: dict) -> tuple:
    """What a run measured, from the raw record: commit, the machine's hardware, the task, the
    variant, the weights and the pairs scored (two runs with the same identity are repeats)."""
    m = rec["environment"]["machine"]
    jet = m.get("jetson") or {}
    task, ckpt = rec["task"], rec["variant"].get("checkpoint") or {}
    shipped = ckpt.get("reference", ckpt.get("source") in ("shipped", None))
    return (rec["environment"]["commit"].get("sha"), m.get("cpu"), m.get("arch"), m.get("cores"),
            m.get("ram_mib"), m.get("accelerator"), jet.get("model"), jet.get("l4t_release"),
            jet.get("nvpmodel"), m.get("hostname_label"), tuple(sorted(m.get("isa") or ())),
            task["name"], task["version"],
            task.get("manifest_sha256"), task.get("crop"), rec["variant"]["model"],
            rec["variant"]["quant"], (rec["variant"].get("runtime") or {}).get("name", "torch"),
            None if shipped else ckpt.get("sha256"),
            task["pairs_evaluated"], task.get("pairs_total"))


def test_rows_hold_the_record_figures_and_the_key_groups_repeat_runs(
        committed_results: Path, evaluate_rows: list[dict]) -> None:
    """Each row is its record's figures (read here by their documented paths), and the row key
    puts two runs together exactly when they measured the same thing."""
    from lowbench.results.table import KEY, row_from_record

    raw = _raw_records(committed_results)
    assert sorted(r["run_id"] for r in evaluate_rows) == sorted(raw)
    paths = {"psnr_db": ("quality", "psnr_db"), "ssim": ("quality", "ssim"),
             "latency_median_ms": ("latency", "median_ms"),
             "end_to_end_ms": ("end_to_end", "total_ms"),
             "peak_rss_mib": ("memory", "peak_rss_mib"),
             "energy_per_inference_net_mj": ("energy", "energy_per_inference_net_mj"),
             "params": ("size", "params"), "size_bytes": ("size", "size_bytes")}
    for row in evaluate_rows:
        rec = raw[row["run_id"]]
        for column, (section, field) in paths.items():
            assert row[column] == (rec.get(section) or {}).get(field), (column, row["run_id"])
    by_key: dict[tuple, set] = {}
    by_identity: dict[tuple, set] = {}
    for row in evaluate_rows:
        by_key.setdefault(tuple(row[k] for k in KEY), set()).add(row["run_id"])
        by_identity.setdefault(_identity(raw[row["run_id"]]), set()).add(row["run_id"])
    assert sorted(map(sorted, by_key.values())) == sorted(map(sorted, by_identity.values()))
    # the published runs are all distinct: a repeat of one (other run id, time and figures)
    # must share its key, and the same run of another variant must not
    rec = raw[evaluate_rows[0]["run_id"]]
    again = copy.deepcopy(rec)
    again.update(run_id="f" * 32, created_utc="2027-01-01T00:00:00Z")
    again["quality"]["psnr_db"] += 0.5
    other = copy.deepcopy(rec)
    other["variant"]["quant"] = "other"

    def key(r: dict) -> tuple:
        return tuple(row_from_record(r)[k] for k in KEY)

    assert key(again) == key(rec) != key(other)


def _dominated(p: tuple[float, float], q: tuple[float, float]) -> bool:
    """q at least as good as p on both (already signed: larger is better), better on one."""
    return q[0] >= p[0] and q[1] >= p[1] and q != p


def test_pareto_marks_are_recomputed_independently(evaluate_rows: list[dict]) -> None:
    """Every published table's Pareto marks, recomputed by brute force with the test's own
    directions (PSNR compared at the 0.01 dB the leaderboard shows)."""
    from lowbench.site.model import group_tables, latest
    from lowbench.site.pareto import COSTS, QUALITY, row_marks

    def ok(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    seen = {True: 0, False: 0}
    for lt in map(latest, group_tables(evaluate_rows)):
        marks = row_marks(lt.rows)
        for name, metric in COSTS:
            pts = {}
            for i, r in enumerate(lt.rows):
                if (r["status"] == "ok" and r["checkpoint"] == "reference"
                        and r["pairs"] == r["pairs_total"] and ok(r.get(metric))
                        and ok(r.get(QUALITY))):
                    pts[i] = (BETTER[metric] * r[metric], BETTER[QUALITY] * round(r[QUALITY], 2))
            for i in range(len(lt.rows)):
                want = None if i not in pts else not any(
                    _dominated(pts[i], q) for j, q in pts.items() if j != i)
                assert marks[i][name] is want, (lt.table.title, name, lt.rows[i]["model"],
                                                lt.rows[i]["quant"])
                if want is not None:
                    seen[want] += 1
    assert seen[True] and seen[False], seen


def test_history_flags_follow_the_better_direction(evaluate_rows: list[dict]) -> None:
    """Every flagged change of the published history is a regression exactly when the value
    moved the worse way (the test's own directions), by at least the minimum effect it reports,
    net of the common session shift it reports."""
    from lowbench.site.history import build_history, table_floors
    from lowbench.site.model import group_tables

    checked = 0
    for table in group_tables(evaluate_rows):
        history = build_history(table)
        # `results compare` reads the floors alone: the same as the history applies
        assert table_floors(table) == history.floors
        for c in history.changes:
            if c.metric not in BETTER:
                continue
            net = c.after / c.shift
            worse = BETTER[c.metric] * (net - c.before) < 0
            assert c.kind == ("regression" if worse else "improvement"), (c.metric, c)
            assert abs(net - c.before) >= c.threshold
            checked += 1
    assert checked >= 3, checked  # few by design: timing without samples is untested


# -- the quantization targets (issue "Quantization variants") ---------------------------------
#: static int8 may lose at most this much PSNR against fp32 on synth (dB)
STATIC_BUDGET_DB = 0.5


def test_lighter_static_and_qat_meet_the_quality_targets_live(lighter_fresh) -> None:
    """Recomputed here from the shipped checkpoints (lighter is the model closest to the
    budget): static loses <= 0.5 dB against fp32 and QAT loses no more than static."""
    psnr = {q: psnr for q, (psnr, _) in lighter_fresh.items()}
    assert psnr["static"] >= psnr["fp32"] - STATIC_BUDGET_DB, psnr
    assert psnr["qat"] >= psnr["static"], psnr


@pytest.fixture(scope="module")
def published(committed_results: Path) -> dict[tuple[str, str], dict]:
    """(model, quant) -> row of the README's table: the latest synth evaluate run of the
    reference machine measured last, from the committed records (eager torch: the runtime
    rows have their own table)."""
    from lowbench.results.table import load_table
    from lowbench.site.model import group_tables, latest, recency

    rows = [r for r in load_table([committed_results]).rows if r["source"] == "evaluate"]
    tables = [lt for lt in map(latest, group_tables(rows)) if lt.table.task == "synth"]
    assert tables, "results/ holds no synth evaluate records"
    newest = max(tables, key=lambda lt: max(recency(r) for r in lt.rows))  # the README's table
    return {(r["model"], r["quant"]): r for r in newest.rows if r.get("runtime") == "torch"}



@pytest.mark.parametrize("model", LEARNED_MODELS)
def test_published_fp32_beats_libraw_and_static_is_within_budget(model: str, published) -> None:
    """The figures the README prints (latest synth run of the latest reference machine)."""
    by = published
    fp32, static = by[model, "fp32"], by[model, "static"]
    assert fp32["psnr_db"] >= by["libraw", "fp32"]["psnr_db"] + MARGIN_DB
    assert static["psnr_db"] >= fp32["psnr_db"] - STATIC_BUDGET_DB
    for int8 in (static, by[model, "qat"]):
        assert int8["peak_rss_mib"] < fp32["peak_rss_mib"], int8["quant"]
    assert by[model, "dynamic"]["quantized_nothing"] is True


@pytest.mark.parametrize("model", [pytest.param("sid", marks=pytest.mark.xfail(
    strict=True, reason="sid's distilled QAT is 0.01 dB below static (standard error 0.01 dB "
    "over the 21 pairs): it is closer to fp32, but static's rounding darkens the output and "
    "offsets part of fp32's red cast on the test photos (docs/quantization.md; "
    "scripts/int8_error_decomposition.py)")), "light", "lighter", "fire"])
def test_published_qat_loses_no_more_than_static(model: str, published) -> None:
    by = published
    assert by[model, "qat"]["psnr_db"] >= by[model, "static"]["psnr_db"]


def test_published_sid_static_is_about_4x_smaller(published) -> None:
    by = published
    assert by["sid", "fp32"]["size_bytes"] / by["sid", "static"]["size_bytes"] > 3.7


# -- reproducible int8 (issue 16 §6) ------------------------------------------------------------
#: A fresh clone reproduces a published quality figure to within this (dB). The shipped observer
#: state fixes the int8 ranges, but the fp32 parts of the forward round differently on each
#: CPU's kernels, and a few int8 roundings flip: lighter/static measured 22.97205 dB on an AMD
#: EPYC with AVX-512, 22.97286 dB on an AMD EPYC without it (2026-12-07) and 22.98080 dB on
#: the Intel Xeon that published it. The records do not yet name the ISA, so the bound covers
#: the spread across CPUs.
REPRODUCE_DB = 0.01


def test_fresh_clone_reproduces_published_lighter_static(published, lighter_fresh):
    """lighter/static from an empty data cache (``lighter_fresh``), as a fresh clone runs it,
    scores the newest published record's synth PSNR. The observer state ships with the
    package: calibrated afresh, the fp32 forward rounds differently on another CPU and the
    histogram observers turn that into other ranges (22.97205 dB on an AMD EPYC, 22.98080 on
    the Intel Xeon that published it)."""
    fresh, info = lighter_fresh["static"]
    assert fresh == pytest.approx(published["lighter", "static"]["psnr_db"], abs=REPRODUCE_DB)
    assert info["calibration"]["source"] == "shipped"
