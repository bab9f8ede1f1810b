"""The site's Costs page (issue 20): cost to train from training records, cost per 1,000
images, the break-even computed by hand, the plain statement when no training record has
energy, and the leaderboard's CO2 columns with the footnote naming their intensity and source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from site_fixtures import make_record

from lowbench.energy.carbon import GridIntensity, carbon_section
from lowbench.results.records import write_record
from lowbench.results.training import write_training_record
from lowbench.site.build import build_site
from lowbench.site.costs import break_even


def test_break_even_on_the_original_studys_training_co2() -> None:
    """The study (Jetson Nano): training 4.14 / 3.62 / 3.91 kg CO2, 776.9 / 561.1 / 469.3 J per
    image (baseline / light / lighter); per image at 475 g/kWh: J / 3.6e6 x 475 g."""
    g = {name: j / 3.6e6 * 475 for name, j in
         (("baseline", 776.9), ("light", 561.1), ("lighter", 469.3))}
    # light is cheaper to train (3.62 < 4.14 kg) and to run than the baseline: ahead at once
    n, why = break_even(4140.0, g["baseline"], 3620.0, g["light"])
    assert n == 0.0 and why.startswith("from the first image")
    # lighter costs 290 g more to train than light and 91.8 J = 0.0121125 g less per image:
    # 290 / 0.0121125 = 23,942.2 images
    n, why = break_even(3620.0, g["light"], 3910.0, g["lighter"])
    assert n == pytest.approx(23942.21, rel=1e-6)
    assert why.startswith("after 23,942 images")
    # B not cheaper per image than A: never, whatever the training costs
    assert break_even(1.0, 10.0, 0.5, 10.0) == (
        None, "never: it costs no less per image, so its training cost is never repaid")
    assert break_even(1.0, 10.0, 5.0, 12.0)[0] is None


def _user_weights(digit: str, model: str) -> dict[str, Any]:
    return {"name": f"{model}-mine.safetensors", "sha256": digit * 64, "source": "user",
            "reference": False}


def _training(model: str, sha: str, energy_j: float | None, created: str) -> dict[str, Any]:
    reason = None if energy_j is not None else "no tegrastats, RAPL or NVML on this machine"
    return {
        "schema": "lowbench.training", "schema_version": 1, "run_id": f"{model}{sha[:4]}" * 2,
        "created_utc": created, "model": model, "task": "synth-train", "steps": 2000,
        "start_step": 0, "steps_metered": 2000, "world_size": 1, "recipe": {},
        "val_psnr_db": 30.0, "checkpoint": {"name": f"{model}-mine.safetensors", "sha256": sha},
        "energy": {"energy_j": energy_j, "mean_power_w": None if energy_j is None else 10.0,
                   "duration_s": 100.0, "meter": None if energy_j is None else "rapl:package",
                   "samples": 2, "scope": "loop", "reason": reason},
        "carbon": {"grid_intensity_g_per_kwh": None, "source": None, "gco2e": None,
                   "reason": "no grid intensity given"},
        "environment": {"machine_label": "Trainer box", "machine": {}, "commit": {},
                        "command": "lowbench train"},
    }


def _store(folder: Path, *, carbon: GridIntensity | None = None) -> None:
    """light and lighter fp32 (user weights 1... and 2...) on the Orin Nano, with the study's
    gross energy per image: 561.1 J and 469.3 J."""
    for model, digit, mj in (("light", "1", 561_100.0), ("lighter", "2", 469_300.0)):
        rec = make_record(model, "fp32", machine=0,
                          variant__checkpoint=_user_weights(digit, model),
                          energy__energy_per_inference_gross_mj=mj)
        if carbon is not None:
            rec["carbon"] = carbon_section(rec["energy"], carbon)
        write_record(rec, folder)


def _page(out: Path, name: str) -> str:
    return (out / name).read_text(encoding="utf-8")


def test_costs_page_break_even_from_matching_training_records(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _store(results)
    # lighter's weights cost 1000 + 91.8 x 5000 J to train, light's 1000 J: break-even at
    # (460,000 - 1,000) / (561.1 - 469.3) = 5,000 images
    write_training_record(_training("light", "1" * 64, 1000.0, "2026-01-01T00:00:00Z"), results)
    write_training_record(_training("lighter", "2" * 64, 460_000.0, "2026-01-01T00:00:00Z"),
                          results)
    # another lighter checkpoint (not the weights measured): never used
    write_training_record(_training("lighter", "3" * 64, 1.0, "2026-02-01T00:00:00Z"), results)
    build_site([results], tmp_path / "site")
    page = _page(tmp_path / "site", "costs.html")
    assert "5,000</td>" in page
    assert "after 5,000 images" in page
    assert "561,100</td>" in page and "469,300</td>" in page  # J per 1,000 images, gross
    assert "460,000</td>" in page  # lighter's training, in the training table
    assert "No training record with a measured energy" not in page
    assert 'href="costs.html"' in _page(tmp_path / "site", "index.html")  # in the navigation


def test_costs_page_says_plainly_when_no_training_energy(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _store(results)
    write_training_record(_training("light", "1" * 64, None, "2026-01-01T00:00:00Z"), results)
    build_site([results], tmp_path / "site")
    page = _page(tmp_path / "site", "costs.html")
    assert "No training record with a measured energy is in these results" in page
    assert "(1 training record(s), none with a meter)" in page
    assert "no tegrastats, RAPL or NVML on this machine" in page  # the n/a's reason
    assert "Break-even (images)" not in page


def test_leaderboard_shows_co2_only_where_held_with_its_source(tmp_path: Path) -> None:
    plain, with_co2 = tmp_path / "plain", tmp_path / "co2"
    _store(plain)
    _store(with_co2, carbon=GridIntensity(56.039, "codecarbon 3.3.2 global_energy_mix.json",
                                          "FRA", "France", 2023))
    build_site([plain], tmp_path / "site-plain")
    build_site([with_co2], tmp_path / "site-co2")
    assert "CO2e/1k images" not in _page(tmp_path / "site-plain", "index.html")
    index = _page(tmp_path / "site-co2", "index.html")
    assert "CO2e/1k images net (g)" in index and "CO2e/1k images gross (g)" in index
    assert ("56.039 gCO2e/kWh from France 2023 (codecarbon 3.3.2 global_energy_mix.json)"
            in index)
    # 561.1 J per image x 1000 / 3.6e6 x 56.039 = 8.734 g per 1,000 images, gross
    data = json.loads((tmp_path / "site-co2" / "data" / "rows.json").read_text())
    rows = [dict(zip(data["columns"], r, strict=True)) for r in data["rows"]]
    light = next(r for r in rows if r["model"] == "light")
    assert light["gco2e_per_1k_gross"] == pytest.approx(561.1 * 1000 / 3.6e6 * 56.039)
    assert light["grid_intensity_g_per_kwh"] == 56.039
