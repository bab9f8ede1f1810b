"""gCO2e of measured energy (issue 20): the arithmetic by hand, the region lookup against
codecarbon's real bundled file (read here with plain json), the record's ``carbon`` section
(n/a with the reason when energy is null), old records without it, the catalogue's CO2 columns,
a real evaluate run with a fake tegrastats, and bad values answered in one line before torch is
imported."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO, assert_one_line_error, lowbench
from site_fixtures import make_record

from lowbench.energy.carbon import (
    NO_INTENSITY_REASON,
    GridIntensity,
    carbon_section,
    gco2e_of_joules,
    gco2e_per_1k,
    grid_intensity,
    region_intensity,
)
from lowbench.errors import LowbenchError
from lowbench.results.columns import shown
from lowbench.results.records import validate
from lowbench.results.table import row_from_record

REPLAY = Path(__file__).parent / "fixtures" / "tegrastats_replay.py"


def _codecarbon_mix() -> Path | None:
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / "data" / "private_infra" / "global_energy_mix.json"


needs_codecarbon = pytest.mark.skipif(_codecarbon_mix() is None,
                                      reason="codecarbon not installed (pip install -e .[test])")


# ------------------------------------------------------------------ arithmetic, by hand

@pytest.mark.parametrize(("joules_per_image", "grams"), [
    # the original study's Jetson Nano figures (baseline / light / lighter) at 475 g/kWh:
    # 776.9 J x 1000 images = 776,900 J = 0.215805556 kWh; x 475 = 102.5076389 g
    (776.9, 102.5076389),
    (561.1, 74.0340278),   # 561,100 J = 0.155861111 kWh -> 74.0340278 g
    (469.3, 61.9215278),   # 469,300 J = 0.130361111 kWh -> 61.9215278 g
])
def test_gco2e_per_1k_images_by_hand(joules_per_image: float, grams: float) -> None:
    assert gco2e_per_1k(joules_per_image * 1000.0, 475.0) == pytest.approx(grams, rel=1e-8)


def test_gco2e_of_a_run_by_hand() -> None:
    # the study's baseline training, 4.14 kg at 475 g/kWh, is 8.715789 kWh = 31,376,842 J
    assert gco2e_of_joules(31_376_842.1, 475.0) == pytest.approx(4140.0, rel=1e-8)
    assert gco2e_of_joules(3.6e6, 56.039) == pytest.approx(56.039)  # 1 kWh


def test_carbon_section_gross_net_and_reasons() -> None:
    g = GridIntensity(475.0, "--grid-intensity")
    section = carbon_section({"energy_per_inference_gross_mj": 2000.0,
                              "energy_per_inference_net_mj": 500.0, "reason": None}, g)
    # 2 J x 1000 = 2000 J = 1/1800 kWh x 475 = 0.263888... g; net 500 J -> 0.0659722 g
    assert section["gco2e_per_1k_gross"] == pytest.approx(0.2638889, rel=1e-6)
    assert section["gco2e_per_1k_net"] == pytest.approx(0.0659722, rel=1e-5)
    assert section["grid_intensity_g_per_kwh"] == 475.0
    assert section["source"] == "--grid-intensity" and section["reason"] is None
    # no energy figure: n/a with the meter's reason, the intensity still recorded
    none = carbon_section({"energy_per_inference_gross_mj": None,
                           "energy_per_inference_net_mj": None,
                           "reason": "no tegrastats, RAPL or NVML on this machine"}, g)
    assert none["gco2e_per_1k_gross"] is None and none["gco2e_per_1k_net"] is None
    assert none["reason"] == "no energy figure: no tegrastats, RAPL or NVML on this machine"
    assert none["grid_intensity_g_per_kwh"] == 475.0
    # no intensity given: nothing invented
    bare = carbon_section({"energy_per_inference_gross_mj": 2000.0,
                           "energy_per_inference_net_mj": 500.0}, None)
    assert bare["gco2e_per_1k_gross"] is None and bare["reason"] == NO_INTENSITY_REASON
    # gross without an idle baseline: the net figure alone is n/a
    gross_only = carbon_section({"energy_per_inference_gross_mj": 2000.0,
                                 "energy_per_inference_net_mj": None}, g)
    assert gross_only["gco2e_per_1k_net"] is None and "idle baseline" in gross_only["reason"]


# ------------------------------------------------------------------ codecarbon's real file

@needs_codecarbon
def test_region_lookup_matches_codecarbons_file() -> None:
    raw = json.loads(_codecarbon_mix().read_text(encoding="utf-8"))
    fra, usa = region_intensity("FRA"), region_intensity("usa")
    assert fra.g_per_kwh == raw["FRA"]["carbon_intensity"]
    assert usa.g_per_kwh == raw["USA"]["carbon_intensity"]
    assert 0 < fra.g_per_kwh < usa.g_per_kwh  # nuclear France below the United States
    assert (fra.country, fra.year, fra.region) == ("France", raw["FRA"]["year"], "FRA")
    assert fra.source.startswith("codecarbon ") and fra.source.endswith("global_energy_mix.json")
    assert "France" in fra.describe() and str(raw["FRA"]["year"]) in fra.describe()


@needs_codecarbon
@pytest.mark.parametrize("code", ["FR", "XXX", "", "World"])
def test_unknown_region(code: str) -> None:
    with pytest.raises(LowbenchError, match="three-letter ISO-3166 code"):
        region_intensity(code)


@pytest.mark.parametrize(("value", "message"), [
    ("-5", "finite number >= 0"), ("abc", "is not a number"), ("nan", "finite number >= 0"),
    ("inf", "finite number >= 0"), ("475000", "above 2000")])
def test_bad_intensity_values(value: str, message: str) -> None:
    with pytest.raises(LowbenchError, match=message):
        grid_intensity(value)


def test_intensity_from_a_number_and_both_options() -> None:
    assert grid_intensity("475") == GridIntensity(475.0, "--grid-intensity")
    assert grid_intensity("0").g_per_kwh == 0.0  # codecarbon itself lists 0 g/kWh grids
    assert grid_intensity() is None
    with pytest.raises(LowbenchError, match="pass one"):
        grid_intensity("475", "FRA")


# ------------------------------------------------------------------ record, schema, catalogue

def test_old_records_without_carbon_still_load_and_show_no_co2_column() -> None:
    old = make_record("light", "fp32")
    assert "carbon" not in old
    validate(old)
    row = row_from_record(old)
    assert row["gco2e_per_1k_net"] is None and "gco2e_per_1k_net" not in row["reasons"]
    assert "grid_source" not in row  # an old row has the columns it always had
    assert shown(["psnr_db", "gco2e_per_1k_net", "gco2e_per_1k_gross"], [row]) == ("psnr_db",)


def test_a_record_with_carbon_gives_the_co2_columns_and_their_source() -> None:
    rec = make_record("light", "fp32")
    rec["carbon"] = carbon_section(rec["energy"], GridIntensity(
        56.039, "codecarbon 3.3.2 global_energy_mix.json", "FRA", "France", 2023))
    validate(rec)
    row = row_from_record(rec)
    expected = rec["energy"]["energy_per_inference_net_mj"] * 1000 / 3.6e9 * 56.039
    assert row["gco2e_per_1k_net"] == pytest.approx(expected)
    assert row["grid_intensity_g_per_kwh"] == 56.039
    assert row["grid_source"] == "France 2023 (codecarbon 3.3.2 global_energy_mix.json)"
    assert shown(["gco2e_per_1k_net", "gco2e_per_1k_gross"], [row]) == (
        "gco2e_per_1k_net", "gco2e_per_1k_gross")
    # energy null: n/a, with the reason on the row
    rec2 = make_record("light", "fp32", machine=2)  # a machine with no meter
    rec2["carbon"] = carbon_section(rec2["energy"], GridIntensity(475.0, "--grid-intensity"))
    row2 = row_from_record(rec2)
    assert row2["gco2e_per_1k_net"] is None
    assert row2["reasons"]["gco2e_per_1k_net"].startswith("no energy figure: ")
    bad = make_record("light", "fp32")
    bad["carbon"] = {**rec["carbon"], "grid_intensity_g_per_kwh": -1}
    with pytest.raises(ValueError):
        validate(bad)


def test_evaluate_records_co2_from_its_own_energy(tmp_path: Path) -> None:
    """A real `lowbench evaluate` (LibRaw, 1 pair) with a fake tegrastats at 5 W and
    --grid-intensity 475: the record's gCO2e is its own energy x 1000 / 3.6e9 x 475."""
    feed = tmp_path / "feed.txt"
    feed.write_text("# source: synthetic constant 5 W\nVDD_IN 5000mW/5000mW\n")
    proc = lowbench("evaluate", "--model", "libraw", "--limit", "1", "--no-memory",
                    "--tegrastats", str(REPLAY), "--grid-intensity", "475", "--out",
                    str(tmp_path / "out"), "--json", "--latency-budget", "0",
                    "--latency-min-runs", "3", env={"LOWBENCH_REPLAY_FILE": str(feed)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout)
    energy, carbon = record["energy"], record["carbon"]
    assert energy["meter"] == "tegrastats:VDD_IN" and energy["energy_per_inference_gross_mj"] > 0
    assert carbon["grid_intensity_g_per_kwh"] == 475.0 and carbon["source"] == "--grid-intensity"
    assert carbon["gco2e_per_1k_gross"] == pytest.approx(
        energy["energy_per_inference_gross_mj"] * 1000 / 3.6e9 * 475, rel=1e-12)
    assert carbon["gco2e_per_1k_net"] == pytest.approx(
        energy["energy_per_inference_net_mj"] * 1000 / 3.6e9 * 475, rel=1e-12)
    validate(record)


# ------------------------------------------------------------------ bad input: one line, exit 2

@pytest.mark.parametrize(("args", "needles"), [
    (["--grid-intensity", "-5"], ["--grid-intensity '-5'", ">= 0"]),
    (["--grid-intensity", "lots"], ["--grid-intensity 'lots'", "not a number"]),
    (["--grid-region", "XYZ"], ["--grid-region 'XYZ'", "ISO-3166"]),
    (["--grid-intensity", "475", "--grid-region", "FRA"], ["pass one"]),
])
@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_bad_grid_values_exit_2_in_one_line(command: str, args: list[str],
                                            needles: list[str], tmp_path: Path) -> None:
    if "XYZ" in args and _codecarbon_mix() is None:
        pytest.skip("codecarbon not installed")
    what = (["--model", "light"] if command == "evaluate" else
            ["--model", "light", "--out", str(tmp_path / "x.safetensors")])
    proc = lowbench(command, *what, *args, timeout=120)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "x.safetensors").exists()


_NO_TORCH = """
import sys
sys.modules["codecarbon"] = None  # as if codecarbon were not installed
from lowbench.cli.main import main
code = main(sys.argv[1:])
print("torch imported" if "torch" in sys.modules else "torch not imported")
sys.exit(code)
"""


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_grid_region_without_codecarbon_exits_2_before_torch(command: str,
                                                             tmp_path: Path) -> None:
    extra = [] if command == "evaluate" else ["--out", str(tmp_path / "x.safetensors")]
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, command, "--model", "light",
                           "--grid-region", "FRA", *extra], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.stdout.strip() == "torch not imported"
    assert_one_line_error(proc, "codecarbon is not installed", "lowbench[carbon]",
                          "--grid-intensity")


def test_python_api_checks_the_intensity_before_running(tmp_path: Path) -> None:
    import lowbench

    with pytest.raises(LowbenchError, match="finite number >= 0"):
        lowbench.evaluate(model="light", grid_intensity_g_per_kwh=-1.0, out=tmp_path)
    assert not any(tmp_path.iterdir())
