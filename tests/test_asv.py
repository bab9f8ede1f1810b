"""The asv suite through real asv: `asv check`, a quick real run of a subset, and lowbench
reading asv's results into its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowbench.results.asv import load_asv_rows
from lowbench.results.columns import direction

REPO = Path(__file__).resolve().parents[1]
ASV = [sys.executable, "-m", "asv"]


@pytest.fixture(scope="module")
def asv_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A private HOME (asv's machine file) and an asv config writing results to a temp dir."""
    from asv.util import load_json

    tmp = tmp_path_factory.mktemp("asv")
    conf = load_json(str(REPO / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(REPO), benchmark_dir=str(REPO / "benchmarks"),
                results_dir=str(tmp / "results" / "asv"), html_dir=str(tmp / "html"),
                env_dir=str(tmp / "env"))
    (tmp / "asv.conf.json").write_text(json.dumps(conf))
    env = {**os.environ, "HOME": str(tmp), "LOWBENCH_ASV_MODELS": "lighter,libraw",
           "LOWBENCH_ASV_QUANTS": "fp32,dynamic", "LOWBENCH_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "lowbench", "asv-machine", "--name", "ci-machine"],
                   env=env, check=True, capture_output=True, cwd=tmp)
    return tmp, tmp / "asv.conf.json", env


def test_asv_check_passes_for_the_repo_config() -> None:
    proc = subprocess.run([*ASV, "check", "--python=same"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout


@pytest.fixture(scope="module")
def asv_run(asv_home) -> Path:
    tmp, conf, env = asv_home
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                         text=True).stdout.strip() or "0" * 40
    # only the variant benchmarks, whose rows are read below (not the packing micro-benchmarks)
    proc = subprocess.run([*ASV, "run", "--config", str(conf), "--python=same", "--quick",
                           "--machine", "ci-machine", "--set-commit-hash", sha,
                           "--bench", "bench_variants", "--show-stderr"], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "results"


def test_real_asv_run_is_read_into_lowbench_rows(asv_run: Path) -> None:
    rows = {(r["model"], r["quant"]): r for r, _ in load_asv_rows(asv_run)}
    assert {k for k, r in rows.items() if r["status"] == "ok"} == {
        ("lighter", "fp32"), ("lighter", "dynamic"), ("libraw", "fp32")}
    # libraw x dynamic cannot run: skipped by asv (the run's exit code was 0), and it is no
    # variant at all, so lowbench shows no row for it
    assert ("libraw", "dynamic") not in rows
    fp32 = rows[("lighter", "fp32")]
    from lowbench.environment import machine_info
    from lowbench.results.provenance import machine_id

    desc = json.loads(next((asv_run / "asv").glob("*/machine.json")).read_text())
    assert fp32["source"] == "asv" and fp32["machine"].startswith(desc["cpu"])
    # the same hardware as this process's evaluate records: one machine, one id
    assert fp32["machine_id"] == machine_id(machine_info())
    assert fp32["latency_median_ms"] > 0 and fp32["end_to_end_ms"] > 0
    assert fp32["params"] == 1_513_812
    assert fp32["peak_rss_mib"] > 50
    # no energy meter here: skipped by asv, so None with a reason, never 0
    if fp32["energy_per_inference_net_mj"] is None:
        assert fp32["reasons"]["energy_per_inference_net_mj"]
    assert direction("psnr_db") == "higher" and direction("latency_median_ms") == "lower"


def test_asv_quality_is_the_harness_quality(asv_run: Path) -> None:
    """asv's PSNR/SSIM are the harness's to the last bit. The harness runs in a fresh process,
    as asv's benchmark does: oneDNN's first convolutions in a process round differently from
    later ones (lighter fp32 on synth: 23.284246338782243 dB first, 23.28424609932489 dB after
    another run in the same process; with mkldnn off both are equal), so an in-process
    reference would depend on which tests ran before."""
    rows = {(r["model"], r["quant"]): r for r, _ in load_asv_rows(asv_run)}
    code = ("import json; from lowbench.harness.session import EvalConfig, Session; "
            "q = Session(EvalConfig(model='lighter', quant='fp32', threads=1)).run_quality(); "
            "print(json.dumps(q['quality']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    q = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rows[("lighter", "fp32")]["psnr_db"] == pytest.approx(q["psnr_db"], abs=1e-9)
    assert rows[("lighter", "fp32")]["ssim"] == pytest.approx(q["ssim"], abs=1e-9)


def test_asv_publish_builds_outside_site(asv_home, asv_run: Path) -> None:
    tmp, conf, env = asv_home
    proc = subprocess.run([*ASV, "publish", "--config", str(conf)], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp / "html" / "index.html").is_file()
    from asv.util import load_json

    repo_conf = load_json(str(REPO / "asv.conf.json"), js_comments=True)
    assert not repo_conf["html_dir"].rstrip("/").endswith("site")
