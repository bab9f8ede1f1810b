"""The energy and CO2 of a training run (issue 20): `lowbench train` meters its training loop
with the meter present (here a fake tegrastats replaying a constant 5 W, and a fake RAPL
powercap tree), writes the figures into the checkpoint's metadata and a training record, and
with no meter records null + the reason, never 0."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import lowbench.energy.rapl as rapl_mod
import lowbench.energy.select as select_mod
from lowbench.checkpoint import load_checkpoint
from lowbench.cli.main import main
from lowbench.energy.carbon import NO_INTENSITY_REASON, GridIntensity
from lowbench.energy.rapl import RaplMeter
from lowbench.energy.run_meter import RunMeter
from lowbench.energy.select import NO_METER_REASON
from lowbench.energy.tegrastats import TegrastatsMeter
from lowbench.results.training import load_training_records, validate_training

REPLAY = Path(__file__).parent / "fixtures" / "tegrastats_replay.py"
TINY = ["--model", "lighter", "--task", "synth-train", "--batch-size", "1", "--patch", "64",
        "--lr", "1e-3", "--seed", "0", "--scenes", "3", "--val-scenes", "1", "--threads", "1",
        "--val-every", "1000", "--no-progress", "--steps", "2"]


@pytest.fixture(autouse=True)
def keep_threads() -> Iterator[None]:
    """`lowbench train --threads 1` sets torch's process-wide thread count: restore it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def five_watts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    feed = tmp_path / "feed.txt"
    feed.write_text("# source: synthetic constant 5 W\nVDD_IN 5000mW/5000mW\n")
    monkeypatch.setenv("LOWBENCH_REPLAY_FILE", str(feed))
    monkeypatch.delenv("LOWBENCH_REPLAY_EXIT_AFTER", raising=False)
    return feed


def test_train_meters_its_loop_into_checkpoint_and_record(
        tmp_path: Path, five_watts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 2-step run under a constant 5 W board: energy = 5 W x the loop's duration, mean
    power 5 W, gCO2e = J / 3.6e6 x 475, the same figures in the checkpoint and the record."""
    out, records = tmp_path / "lighter.safetensors", tmp_path / "results"
    code = main(["train", *TINY, "--out", str(out), "--tegrastats", str(REPLAY),
                 "--grid-intensity", "475", "--record-dir", str(records)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    energy, carbon = summary["cost"]["energy"], summary["cost"]["carbon"]
    assert energy["meter"] == "tegrastats:VDD_IN" and energy["reason"] is None
    assert energy["mean_power_w"] == pytest.approx(5.0, rel=1e-6)
    assert energy["energy_j"] == pytest.approx(5.0 * energy["duration_s"], rel=1e-6)
    assert energy["duration_s"] > 0.1 and energy["samples"] >= 2
    assert carbon["gco2e"] == pytest.approx(energy["energy_j"] / 3.6e6 * 475, rel=1e-12)
    assert carbon["grid_intensity_g_per_kwh"] == 475.0 and carbon["source"] == "--grid-intensity"
    # the checkpoint carries its own cost
    _, meta = load_checkpoint(out, "lighter")
    stored = json.loads(meta["training_cost"])
    assert stored["energy"] == energy and stored["carbon"] == carbon
    assert stored["steps_metered"] == 2
    # the training record, by name and digest (never a path), under --record-dir/training/
    (record,) = load_training_records([records])
    assert Path(summary["record"]).parent == records / "training"
    assert record["energy"] == energy and record["carbon"] == carbon
    assert record["checkpoint"]["name"] == "lighter.safetensors"
    assert record["model"] == "lighter" and record["steps"] == 2 and record["world_size"] == 1
    assert str(tmp_path) not in record["environment"]["command"]
    validate_training(record)


def test_no_meter_is_null_with_the_reason_never_zero(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(rapl_mod, "RAPL_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    meter = RunMeter.select(intensity=GridIntensity(475.0, "--grid-intensity"))
    meter.start()
    cost = meter.stop()
    assert cost["energy"]["energy_j"] is None and cost["energy"]["mean_power_w"] is None
    assert cost["energy"]["reason"] == NO_METER_REASON
    assert cost["energy"]["duration_s"] >= 0  # the duration is measured all the same
    assert cost["carbon"]["gco2e"] is None
    assert cost["carbon"]["reason"] == f"no energy figure: {NO_METER_REASON}"
    assert cost["carbon"]["grid_intensity_g_per_kwh"] == 475.0
    bare = RunMeter(None, "energy measurement skipped (--no-energy)")
    bare.start()
    assert bare.stop()["carbon"]["reason"] == NO_INTENSITY_REASON


def _zone(root: Path, zone: str, name: str, energy_uj: int) -> None:
    path = root / zone
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text("262143328850\n")


def test_rapl_counters_give_the_runs_joules(tmp_path: Path) -> None:
    """Two packages whose counters advance 40 J and 2.5 J during the run: 42.5 J, at
    FRA-like 56 g/kWh 42.5 / 3.6e6 x 56 = 0.000661 g."""
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0", 1_000_000)
    _zone(root, "intel-rapl:1", "package-1", 7_000_000)
    meter = RunMeter(RaplMeter(root=root, poll_s=60.0), "RAPL",
                     GridIntensity(56.0, "--grid-intensity"))
    meter.start()
    (root / "intel-rapl:0" / "energy_uj").write_text("41000000\n")
    (root / "intel-rapl:1" / "energy_uj").write_text("9500000\n")
    cost = meter.stop()
    meter.close()
    assert cost["energy"]["energy_j"] == pytest.approx(42.5)
    assert cost["energy"]["mean_power_w"] == pytest.approx(42.5 / cost["energy"]["duration_s"])
    assert cost["carbon"]["gco2e"] == pytest.approx(42.5 / 3.6e6 * 56.0)


def test_a_meter_dying_mid_run_is_null_with_why(five_watts: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWBENCH_REPLAY_EXIT_AFTER", "2")
    meter = RunMeter(TegrastatsMeter(str(REPLAY), interval_ms=20), "tegrastats")
    meter.start()
    import time

    time.sleep(0.3)
    cost = meter.stop()
    meter.close()
    assert cost["energy"]["energy_j"] is None
    assert cost["energy"]["reason"].startswith("tegrastats: ")
    assert "died" in cost["energy"]["reason"]
