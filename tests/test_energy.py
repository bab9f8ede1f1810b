"""Tests for lowbench.energy: tegrastats parsing, integration, meters and selection.

Expected totals below are computed by hand from the fixture lines (never with the parser).
Subprocess tests run tests/fixtures/tegrastats_replay.py through the real tegrastats path.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

import lowbench.energy.rapl as rapl_mod
import lowbench.energy.select as select_mod
from lowbench.energy.base import RESULT_KEYS, MeterError, measure_energy, no_energy
from lowbench.energy.nvml import NvmlMeter
from lowbench.energy.rapl import RaplMeter, find_package_domains, probe_rapl, rapl_delta_uj
from lowbench.energy.select import NO_METER_REASON, select_meter
from lowbench.energy.tegrastats import TegrastatsMeter, integrate_mw, parse_tegrastats
from lowbench.errors import LowbenchError

FIXTURES = Path(__file__).parent / "fixtures"
TEGRA = FIXTURES / "tegrastats"
REPLAY = FIXTURES / "tegrastats_replay.py"

# file -> expected total_mw per sample, by hand from the line (current = first value).
EXPECTED_TOTALS: dict[str, list[float | None]] = {
    # POM_5V_IN 1750/1628 -> the Nano's input rail
    "nano_jp461.txt": [1750],
    # no VDD_IN: VDD_GPU_SOC 3150 + VDD_CPU_CV 14312 + VIN_SYS_5V0 4968 + VDDQ_VDD2_1V8AO 1091
    "orin_agx64_jp5_dla.txt": [23521],
    # 2340 + 390 + 4025 + 301, the two "NC 0mW/0mW" channels skipped
    "orin_agx64_jp5_nc_rails.txt": [7056],
    # VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0: 2412+1607+4707, 2412+1607+4607, 2412+1607+4707
    "orin_agx64_jp6_r36_4_4.txt": [8726, 8626, 8726],
    # JetPack 7 cur/avg/max, first values: 3034 + 1137 + 4939
    "orin_agx64_jp7_b.txt": [9110],
    # 5139 + 3268 + 5500
    "orin_agx64_jp7_r39_2.txt": [13907],
    # VDD_IN 3913mW/3922mW (3 physical lines joined into one sample; '598mW/598' is not total)
    "orin_nano8_jp6_a.txt": [3913],
    "orin_nano8_jp6_b.txt": [5704],  # VDD_IN 5704mW/5704mW
    "orin_nano8_jp6_c.txt": [4744],  # VDD_IN 4744mW/6179mW (current, not average)
    "orin_nano8_jp7.txt": [4548],  # VDD_IN 4548mW/4548mW/4548mW
    "orin_nx16_jp6_2.txt": [4304],  # VDD_IN 4304mW/4304mW
    "orin_nx16_jp7.txt": [7280],  # VDD_IN 7280mW/7280mW/7280mW
    # no VIN: VDD_GPU + VDD_CPU_SOC_MSS + VIN_SYS_5V0: 0+4165+4126, 0+4923+4327, 0+4544+4428
    "thor_jp7_r38_4.txt": [8291, 9250, 8972],
    # VIN 19780mW/19780mW is the whole-board input (not 1962+5887+5635+19780)
    "thor_jp7_r38_4_b.txt": [19780],
    # L4T R28.1 TX1: no power rails at all
    "tx1_l4t28_1.txt": [None, None],
    "tx1_l4t_unknown.txt": [2532],  # VDD_IN 2532/2698
    "tx2_4gb_or_tx2nx_jp4.txt": [2930],  # VDD_IN 2930/3405 (not the first rail on the line)
    # VDD_IN current value of each of the 12 lines
    "tx2_jp4.txt": [1840, 1610, 1572, 1610, 1495, 4061, 5056, 4673, 4634, 4826, 7842, 8986],
    "tx2_l4t28_likely.txt": [2003],  # VDD_IN 2003/2658
    # AGX Xavier, sum of all six: GPU 0 + CPU 216 + SOC 864 + CV 0 + VDDRQ 144 + SYS5V 1889
    "xavier_agx_jp4.txt": [3113],
    # line starts at '[0%@1190,...': 467 + 467 + 1245 + 0 + 311 + 2768
    "xavier_agx_jp5_partial.txt": [5258],
    "xavier_nx_jp4.txt": [6140],  # VDD_IN 6140/5510
    "xavier_nx_jp5_1_2.txt": [2763],  # VDD_IN 2763mW/2846mW
}

# Files whose source wraps one sample over several physical lines.
JOINED = {"orin_nano8_jp6_a.txt"}


def _samples(name: str) -> list[str]:
    """Sample lines of a fixture file: '#' lines dropped, wrapped files joined into one."""
    lines = [
        ln.rstrip("\n")
        for ln in (TEGRA / name).read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    return [" ".join(lines)] if name in JOINED else lines


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.name for p in TEGRA.glob("*.txt")) == sorted(EXPECTED_TOTALS)
    for path in TEGRA.glob("*.txt"):
        assert path.read_text(encoding="utf-8").startswith("# source:"), path.name


@pytest.mark.parametrize("name", sorted(EXPECTED_TOTALS))
def test_fixture_totals(name: str) -> None:
    samples = _samples(name)
    expected = EXPECTED_TOTALS[name]
    assert len(samples) == len(expected)
    for line, total in zip(samples, expected, strict=True):
        parsed = parse_tegrastats(line)
        assert set(parsed) == {"rails", "total_mw"}
        if total is None:
            assert parsed == {"rails": {}, "total_mw": None}
        else:
            assert parsed["total_mw"] == pytest.approx(total)


@pytest.mark.parametrize(
    ("name", "rails"),
    [
        ("nano_jp461.txt", {"POM_5V_IN": 1750, "POM_5V_GPU": 0, "POM_5V_CPU": 366}),
        (
            "xavier_agx_jp4.txt",
            {"GPU": 0, "CPU": 216, "SOC": 864, "CV": 0, "VDDRQ": 144, "SYS5V": 1889},
        ),
        (
            "orin_agx64_jp5_nc_rails.txt",
            {"VDD_GPU_SOC": 2340, "VDD_CPU_CV": 390, "VIN_SYS_5V0": 4025, "VDDQ_VDD2_1V8AO": 301},
        ),
        (
            "orin_agx64_jp7_r39_2.txt",
            {"VDD_GPU_SOC": 5139, "VDD_CPU_CV": 3268, "VIN_SYS_5V0": 5500},
        ),
        (
            "thor_jp7_r38_4_b.txt",
            {"VDD_GPU": 1962, "VDD_CPU_SOC_MSS": 5887, "VIN_SYS_5V0": 5635, "VIN": 19780},
        ),
        # the malformed '598mW/598' keeps its parseable current value
        ("orin_nano8_jp6_a.txt", {"VDD_IN": 3913, "VDD_CPU_GPU_CV": 598, "VDD_SOC": 1238}),
    ],
)
def test_rails_exactly(name: str, rails: dict[str, float]) -> None:
    """Only rails are picked up: no temperatures, frequencies, RAM/SWAP or NC channels."""
    assert parse_tegrastats(_samples(name)[0])["rails"] == rails


def test_wrapped_sample_lines_parse_separately() -> None:
    """Each physical line of the wrapped sample parses alone; only line 3 carries rails."""
    first, second, third = [
        ln for ln in (TEGRA / "orin_nano8_jp6_a.txt").read_text().splitlines()[1:] if ln
    ]
    assert parse_tegrastats(first)["total_mw"] is None
    assert parse_tegrastats(second)["total_mw"] is None  # cpu@62.843C etc. are not rails
    assert parse_tegrastats(third)["total_mw"] == 3913


def test_garbage_rail_values_are_skipped() -> None:
    line = "VDD_IN 5000mW/4000mW VDD_X 598mW/abc VDD_Y 12x4mW/5mW VDD_Z 7mW"
    assert parse_tegrastats(line) == {"rails": {"VDD_IN": 5000.0}, "total_mw": 5000.0}


def test_sum_without_input_rail_and_all_nc() -> None:
    assert parse_tegrastats("GPU 100mW/1mW CPU 250mW/1mW NC 9mW/9mW")["total_mw"] == 350
    assert parse_tegrastats("NC 0mW/0mW NC 0mW/0mW") == {"rails": {}, "total_mw": None}


def test_temperatures_and_frequencies_are_not_rails() -> None:
    line = (
        "12-23-2024 22:54:11 GR3D_FREQ 0%@[0,0] EMC_FREQ 3%@2133 cpu@52.5C cpu@47.9C/48.3C "
        "CV0@-256C RAM 1923/3964MB SWAP 0/3810MB (cached 0MB) IRAM 0/252kB(lfb 252kB) APE 25"
    )
    assert parse_tegrastats(line) == {"rails": {}, "total_mw": None}


def test_integrate_mw_trapezoid_by_hand() -> None:
    samples = [(0.0, 1000.0), (1.0, 3000.0), (2.0, 1000.0)]
    # window [0.5, 1.5]: p(0.5)=2000, p(1)=3000, p(1.5)=2000 -> 0.5*2500 + 0.5*2500 = 2500 mJ
    assert integrate_mw(samples, 0.5, 1.5) == pytest.approx(2500.0)
    # whole range: 1*2000 + 1*2000 = 4000 mJ
    assert integrate_mw(samples, 0.0, 2.0) == pytest.approx(4000.0)
    # beyond the samples the edge values are held: 1000 mW for 1 s before + 4000 + 1000 after
    assert integrate_mw(samples, -1.0, 3.0) == pytest.approx(6000.0)
    # one sample only: held, 1000 mW x 1 s = 1000 mJ
    assert integrate_mw([(0.0, 1000.0)], 0.2, 1.2) == pytest.approx(1000.0)
    with pytest.raises(ValueError):
        integrate_mw([], 0.0, 1.0)


# ---------------------------------------------------------------- tegrastats via a subprocess


@pytest.fixture
def constant_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    feed = tmp_path / "constant.txt"
    feed.write_text("# source: synthetic constant 5 W\nVDD_IN 5000mW/5000mW\n")
    monkeypatch.setenv("LOWBENCH_REPLAY_FILE", str(feed))
    monkeypatch.delenv("LOWBENCH_REPLAY_EXIT_AFTER", raising=False)
    return feed


def test_replay_script_is_executable() -> None:
    assert REPLAY.read_text().startswith("#!/usr/bin/env python3\n")
    assert REPLAY.stat().st_mode & 0o111


def test_tegrastats_meter_integrates_constant_power(constant_feed: Path) -> None:
    meter = TegrastatsMeter(str(REPLAY), interval_ms=20)
    meter.start()
    time.sleep(1.0)
    window = meter.stop()
    assert window.duration_s == pytest.approx(1.0, rel=0.05)
    assert window.energy_j == pytest.approx(5.0, rel=0.05)
    assert window.mean_power_mw == pytest.approx(5000.0, rel=1e-6)
    assert window.samples >= 20  # ~50 expected at 20 ms
    assert window.source == "tegrastats:VDD_IN"


def _schedule_energy_mj(powers: list[float], period_s: float, duration_s: float,
                        rule: str) -> float:
    """Energy (mJ) over [0, duration_s] of the replay's schedule - line k (cyclic) at
    k * period_s, the window opening at line 0 - by ``rule``, computed here with numpy:
    "trapezoid" (linear between samples), "hold" (each sample's power until the next) or
    "next" (the next sample's power since the previous one)."""
    import numpy as np

    n = int(np.ceil(duration_s / period_s)) + 1
    t = np.arange(n + 1) * period_s
    p = np.array([powers[k % len(powers)] for k in range(n + 1)], dtype=float)
    if rule == "trapezoid":
        grid = np.append(t[t < duration_s], duration_s)
        return float(np.trapezoid(np.interp(grid, t, p), grid))
    widths = np.diff(np.minimum(t, duration_s))
    return float(np.sum(widths * (p[:-1] if rule == "hold" else p[1:])))


def test_tegrastats_meter_integrates_a_varying_feed_by_the_trapezoid_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TX2 under changing load (tx2_jp4.txt: VDD_IN 1840 ... 8986 mW, 12 lines) replayed one
    line per 200 ms: the window's energy is the trapezoid of the schedule (the rule
    integrate_mw documents), and the fixture tells that rule from holding each sample's power
    (either way) by more than twice the tolerance."""
    powers = EXPECTED_TOTALS["tx2_jp4.txt"]
    monkeypatch.setenv("LOWBENCH_REPLAY_FILE", str(TEGRA / "tx2_jp4.txt"))
    monkeypatch.delenv("LOWBENCH_REPLAY_EXIT_AFTER", raising=False)
    meter = TegrastatsMeter(str(REPLAY), interval_ms=200)
    meter.start()
    time.sleep(2.0)
    window = meter.stop()
    d = window.duration_s
    assert d == pytest.approx(2.0, abs=0.2)
    expected = _schedule_energy_mj(powers, 0.2, d, "trapezoid")
    for wrong in ("hold", "next"):
        assert abs(_schedule_energy_mj(powers, 0.2, d, wrong) / expected - 1) > 0.06
    assert window.energy_j * 1000 == pytest.approx(expected, rel=0.03)
    assert window.mean_power_mw == pytest.approx(window.energy_j * 1000 / d, rel=1e-9)
    assert window.source == "tegrastats:VDD_IN"


def ramp_feed(path: Path, start_mw: float, step_mw: float, lines: int = 200) -> Path:
    """A replay feed whose power rises by ``step_mw`` (mW) each line, ``lines`` lines long."""
    body = "".join(f"VDD_IN {start_mw + step_mw * k:.0f}mW/{start_mw:.0f}mW\n"
                   for k in range(lines))
    path.write_text("# source: synthetic rising ramp\n" + body)
    return path


def test_measure_energy_with_a_rising_feed(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Each window restarts the replay, so power rises 1000 + 5000 t mW (t s into the window):
    idle (0.5 s) averages 2250 mW; a window of d s holds 1000 d + 2500 d^2 mJ; net per
    inference subtracts idle power x d (not the idle window's energy, not the workload's own
    mean). Two inferences."""
    feed = ramp_feed(tmp_path / "ramp.txt", 1000, 100)  # +100 mW per 20 ms line
    monkeypatch.setenv("LOWBENCH_REPLAY_FILE", str(feed))
    monkeypatch.delenv("LOWBENCH_REPLAY_EXIT_AFTER", raising=False)

    def workload() -> int:
        time.sleep(1.0)
        return 2

    meter = TegrastatsMeter(str(REPLAY), interval_ms=20)
    result = measure_energy(meter, workload, idle_s=0.5)
    assert set(result) == set(RESULT_KEYS)
    assert result["reason"] is None
    assert result["meter"] == "tegrastats:VDD_IN"
    assert result["inferences"] == 2
    d = result["window_s"]
    assert d == pytest.approx(1.0, rel=0.1)
    assert result["idle_power_mw"] == pytest.approx(2250.0, rel=0.05)
    energy_mj = 1000 * d + 2500 * d * d
    assert result["mean_power_mw"] == pytest.approx(energy_mj / d, rel=0.03)
    assert result["energy_per_inference_gross_mj"] == pytest.approx(energy_mj / 2, rel=0.03)
    assert result["energy_per_inference_net_mj"] == pytest.approx(
        (energy_mj - 2250.0 * d) / 2, rel=0.15)
    assert result["samples"] >= 25  # ~50 at 20 ms


def test_tegrastats_dying_mid_window_is_an_error(
    constant_feed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOWBENCH_REPLAY_EXIT_AFTER", "3")
    meter = TegrastatsMeter(str(REPLAY), interval_ms=20)
    meter.start()
    time.sleep(0.4)
    with pytest.raises(MeterError, match="died during the measurement window.*exit code 3"):
        meter.stop()
    result = measure_energy(meter, lambda: 1, idle_s=0.3)
    assert result["reason"].startswith("tegrastats: ")
    assert all(result[k] is None for k in RESULT_KEYS if k != "reason")


def test_tegrastats_without_rails_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWBENCH_REPLAY_FILE", str(TEGRA / "tx1_l4t28_1.txt"))
    meter = TegrastatsMeter(str(REPLAY), interval_ms=20, first_sample_timeout_s=0.5)
    with pytest.raises(MeterError, match="no power rails"):
        meter.start()


def test_tegrastats_exiting_at_once_fails_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOWBENCH_REPLAY_FILE", str(tmp_path / "missing.txt"))
    meter = TegrastatsMeter(str(REPLAY), interval_ms=20)
    with pytest.raises(MeterError, match="exited before printing.*exit code 2.*cannot read"):
        meter.start()


def test_measure_energy_rejects_zero_inferences(constant_feed: Path) -> None:
    meter = TegrastatsMeter(str(REPLAY), interval_ms=20)
    with pytest.raises(ValueError, match="number of inferences"):
        measure_energy(meter, lambda: 0, idle_s=0)


# ---------------------------------------------------------------- selection


@pytest.fixture
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tegrastats on PATH, no RAPL, no pynvml."""
    monkeypatch.setattr(select_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(rapl_mod, "RAPL_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError


def test_select_meter_nothing_present(bare_machine: None) -> None:
    assert select_meter() == (None, NO_METER_REASON)
    assert NO_METER_REASON == "no tegrastats, RAPL or NVML on this machine"


def test_select_meter_cuda_without_pynvml(bare_machine: None) -> None:
    meter, reason = select_meter(device="cuda")
    assert meter is None
    assert "pynvml is not installed" in reason


@pytest.mark.skipif(
    Path("/sys/class/powercap").exists() or bool(select_mod.shutil.which("tegrastats")),
    reason="this machine has tegrastats or powercap",
)
def test_select_meter_on_this_machine() -> None:
    assert select_meter() == (None, "no tegrastats, RAPL or NVML on this machine")


def test_select_meter_explicit_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "tegrastats"
    with pytest.raises(LowbenchError, match=f"tegrastats not found at '{missing}'.*/usr/bin"):
        select_meter(tegrastats_path=str(missing))


def test_select_meter_explicit_path_wins(bare_machine: None) -> None:
    meter, why = select_meter(tegrastats_path=str(REPLAY), device="cuda")
    assert isinstance(meter, TegrastatsMeter)
    assert str(REPLAY) in why


def test_no_energy_shape() -> None:
    result = no_energy("why")
    assert set(result) == set(RESULT_KEYS)
    assert result["reason"] == "why"
    assert all(result[k] is None for k in RESULT_KEYS if k != "reason")


# ---------------------------------------------------------------- RAPL on a fake sysfs

MAX_RANGE_UJ = 262143328850


def _zone(root: Path, zone: str, name: str, energy_uj: int) -> Path:
    path = root / zone
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{MAX_RANGE_UJ}\n")
    return path


@pytest.fixture
def fake_powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0", MAX_RANGE_UJ - 1_000_000)  # 1 J before the wrap
    _zone(root, "intel-rapl:0:0", "core", 5)  # subzone: inside package-0
    _zone(root, "intel-rapl:1", "package-1", 10_000_000)
    _zone(root, "intel-rapl:2", "psys", 7)  # platform: contains the packages
    _zone(root, "intel-rapl-mmio:0", "package-0", 9)  # MMIO duplicate of package-0
    return root


def test_rapl_delta_wraps() -> None:
    assert rapl_delta_uj(100, 350, MAX_RANGE_UJ) == 250
    # 1 000 000 uJ up to the wrap point, then 2 000 000 more after it
    assert rapl_delta_uj(MAX_RANGE_UJ - 1_000_000, 2_000_000, MAX_RANGE_UJ) == 3_000_000


def test_rapl_packages_only(fake_powercap: Path) -> None:
    assert [d.name for d in find_package_domains(fake_powercap)] == ["package-0", "package-1"]
    assert probe_rapl(fake_powercap) is None
    assert probe_rapl(fake_powercap / "missing") is not None


def test_rapl_meter_wraparound(fake_powercap: Path) -> None:
    meter = RaplMeter(root=fake_powercap, poll_s=60.0)
    meter.start()
    (fake_powercap / "intel-rapl:0" / "energy_uj").write_text("2000000\n")  # wrapped: +3 J
    (fake_powercap / "intel-rapl:1" / "energy_uj").write_text("11500000\n")  # +1.5 J
    (fake_powercap / "intel-rapl:0:0" / "energy_uj").write_text("999999999\n")  # ignored
    window = meter.stop()
    assert window.energy_j == pytest.approx(4.5)
    assert window.samples == 2
    assert window.source == "rapl:package-0+package-1"


def test_select_meter_picks_rapl(
    bare_machine: None, fake_powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rapl_mod, "RAPL_ROOT", str(fake_powercap))
    meter, _why = select_meter()
    assert isinstance(meter, RaplMeter)


def test_select_meter_unreadable_rapl(
    bare_machine: None, fake_powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake_powercap / "intel-rapl:1" / "energy_uj").unlink()
    (fake_powercap / "intel-rapl:1" / "energy_uj").mkdir()  # exists but cannot be read
    monkeypatch.setattr(rapl_mod, "RAPL_ROOT", str(fake_powercap))
    meter, reason = select_meter()
    assert meter is None
    assert reason.startswith("no usable energy meter: RAPL ") and "not readable" in reason


# ---------------------------------------------------------------- NVML with a fake pynvml


def _fake_pynvml(energies_mj: list[int], supported: bool = True) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    reads = iter(energies_mj)

    def total_energy(handle: object) -> int:
        if not supported:
            raise NVMLError("Not Supported")
        return next(reads)

    nvml.NVMLError = NVMLError
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 1
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    nvml.nvmlDeviceGetName = lambda handle: "Fake GPU"
    nvml.nvmlDeviceGetTotalEnergyConsumption = total_energy
    return nvml


def test_nvml_meter_counter_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([1_000_000, 1_002_500]))
    meter = NvmlMeter(0)
    meter.start()
    window = meter.stop()
    assert window.energy_j == pytest.approx(2.5)  # 2500 mJ
    assert window.source.startswith("nvml:GPU0")


def test_select_meter_nvml_priority_and_unsupported(
    bare_machine: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([1]))
    assert isinstance(select_meter(device="cuda")[0], NvmlMeter)
    assert select_meter(device="cpu") == (None, NO_METER_REASON)  # NVML only for CUDA devices
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([], supported=False))
    meter, reason = select_meter(device="cuda:0")
    assert meter is None
    assert "does not report total energy" in reason
