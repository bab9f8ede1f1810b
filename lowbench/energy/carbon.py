"""Grid carbon intensity and the CO2 of measured energy.

The intensity (gCO2e per kWh of electricity) comes from the user: a number
(``--grid-intensity G``) or a country (``--grid-region ISO3``) looked up OFFLINE in
codecarbon's bundled data file ``codecarbon/data/private_infra/global_energy_mix.json``
(field ``carbon_intensity`` and its ``year``). codecarbon is never imported (its import is
heavy and may reach the network): the file is located with ``importlib.util.find_spec``.
With no intensity given nothing is invented: the CO2 figures are null with
:data:`NO_INTENSITY_REASON`.

Units live in names: energy in mJ (per inference) or J (a run), intensity in g/kWh
(``g_per_kwh``), CO2 in g (``gco2e``, ``gco2e_per_1k``: grams per 1,000 inferences).
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lowbench.errors import LowbenchError

#: mJ in one kWh (1 kWh = 3.6e6 J).
MJ_PER_KWH = 3.6e9
#: J in one kWh.
J_PER_KWH = 3.6e6
#: Highest intensity accepted (g/kWh): the dirtiest national grids are ~1,300 g/kWh, so a
#: larger number is a unit slip (mg? g/MWh?).
MAX_G_PER_KWH = 2000.0
#: codecarbon's bundled country energy mix, relative to its package folder.
CODECARBON_MIX = Path("data") / "private_infra" / "global_energy_mix.json"
NO_INTENSITY_REASON = "no grid intensity given: pass --grid-intensity g/kWh or --grid-region ISO3"
GRID_OPTIONS_HELP = ("--grid-intensity G (gCO2e per kWh, e.g. 56 for France) or --grid-region "
                     "ISO3 (e.g. FRA, USA: read offline from codecarbon's data, pip install "
                     "'lowbench[carbon]')")


@dataclass(frozen=True)
class GridIntensity:
    """A grid's carbon intensity ``g_per_kwh`` (gCO2e/kWh) and where it came from.

    ``source`` is ``"--grid-intensity"`` or ``"codecarbon <version> global_energy_mix.json"``;
    ``region`` (ISO-3166 alpha-3), ``country`` and ``year`` are set for a codecarbon lookup.
    """

    g_per_kwh: float
    source: str
    region: str | None = None
    country: str | None = None
    year: int | None = None

    def describe(self) -> str:
        """One line: '56.04 gCO2e/kWh (France 2023, codecarbon 3.3.2 global_energy_mix.json)'."""
        where = " ".join(str(x) for x in (self.country, self.year) if x is not None)
        return f"{self.g_per_kwh:g} gCO2e/kWh ({where + ', ' if where else ''}{self.source})"

    def as_record(self) -> dict[str, Any]:
        """The fields a record stores (``grid_intensity_g_per_kwh``, ``source``, ``region``,
        ``country``, ``year``)."""
        fields = asdict(self)
        return {"grid_intensity_g_per_kwh": fields.pop("g_per_kwh"), **fields}


def parse_g_per_kwh(text: str) -> float:
    """``--grid-intensity`` as a number of g/kWh: finite, 0 to :data:`MAX_G_PER_KWH`; else
    LowbenchError naming the value and the fix."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise LowbenchError(f"--grid-intensity {text!r} is not a number; pass gCO2e per kWh, "
                            "e.g. --grid-intensity 475 (or --grid-region ISO3)") from None
    if not math.isfinite(value) or value < 0:
        raise LowbenchError(f"--grid-intensity {text!r} must be a finite number >= 0 gCO2e/kWh, "
                            "e.g. --grid-intensity 475")
    if value > MAX_G_PER_KWH:
        raise LowbenchError(f"--grid-intensity {text!r} is above {MAX_G_PER_KWH:g} gCO2e/kWh, "
                            "more than any national grid (the dirtiest are ~1300); give it in "
                            "g per kWh, e.g. 475")
    return value


def codecarbon_folder() -> Path | None:
    """codecarbon's package folder, found without importing it (None: not installed)."""
    try:
        spec = importlib.util.find_spec("codecarbon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _codecarbon_version() -> str | None:
    """The installed codecarbon's version from its distribution metadata (no import)."""
    from importlib import metadata

    try:
        return metadata.version("codecarbon")
    except metadata.PackageNotFoundError:
        return None


def load_energy_mix(path: Path | None = None) -> tuple[dict[str, Any], str]:
    """codecarbon's country table (ISO3 -> entry) and a source label; LowbenchError if
    codecarbon is not installed or its file is unreadable."""
    if path is None:
        folder = codecarbon_folder()
        if folder is None:
            raise LowbenchError("--grid-region reads codecarbon's bundled grid data, and "
                                "codecarbon is not installed: pip install 'lowbench[carbon]' "
                                "(or codecarbon), or pass --grid-intensity g/kWh")
        path = folder / CODECARBON_MIX
        version = _codecarbon_version()
        source = f"codecarbon {version} {path.name}" if version else f"codecarbon {path.name}"
    else:
        source = path.name
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LowbenchError(f"cannot read codecarbon's grid data {path}: {err}; reinstall "
                            "codecarbon or pass --grid-intensity g/kWh") from None
    if not isinstance(table, dict):
        raise LowbenchError(f"codecarbon's grid data {path} is not a table of countries; "
                            "reinstall codecarbon or pass --grid-intensity g/kWh")
    return table, source


def region_intensity(code: str, path: Path | None = None) -> GridIntensity:
    """The intensity of country ``code`` (ISO-3166 alpha-3, any case) from codecarbon's data
    (or the file ``path``); LowbenchError for an unknown code or a missing codecarbon."""
    table, source = load_energy_mix(path)
    key = code.strip().upper()
    entry = table.get(key)
    value = entry.get("carbon_intensity") if isinstance(entry, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise LowbenchError(f"--grid-region {code!r} is not one of the {len(table)} countries "
                            f"of {source}: pass a three-letter ISO-3166 code (FRA, USA, DEU, "
                            "...) or --grid-intensity g/kWh")
    year = entry.get("year")
    return GridIntensity(float(value), source, key, entry.get("country_name"),
                         int(year) if isinstance(year, (int, float)) else None)


def grid_intensity(g_per_kwh: str | float | None = None,
                   region: str | None = None) -> GridIntensity | None:
    """The intensity of ``--grid-intensity`` or ``--grid-region`` (None: neither given);
    LowbenchError for both, a bad number or an unknown region."""
    if g_per_kwh is not None and region is not None:
        raise LowbenchError(f"--grid-intensity {g_per_kwh} and --grid-region {region} both give "
                            "the grid's intensity; pass one")
    if g_per_kwh is not None:
        return GridIntensity(parse_g_per_kwh(str(g_per_kwh)), "--grid-intensity")
    if region is not None:
        return region_intensity(region)
    return None


def gco2e_per_1k(energy_per_inference_mj: float, g_per_kwh: float) -> float:
    """gCO2e of 1,000 inferences at ``energy_per_inference_mj`` mJ each on a grid of
    ``g_per_kwh``: mJ x 1000 / 3.6e9 mJ/kWh x g/kWh."""
    return energy_per_inference_mj * 1000.0 / MJ_PER_KWH * g_per_kwh


def gco2e_of_joules(energy_j: float, g_per_kwh: float) -> float:
    """gCO2e of ``energy_j`` J on a grid of ``g_per_kwh``: J / 3.6e6 J/kWh x g/kWh."""
    return energy_j / J_PER_KWH * g_per_kwh


def _no_energy_reason(energy: dict[str, Any] | None) -> str:
    why = (energy or {}).get("reason")
    return f"no energy figure: {why}" if why else "no energy figure"


def carbon_section(energy: dict[str, Any] | None,
                   intensity: GridIntensity | None) -> dict[str, Any]:
    """The record's ``carbon`` section for an ``energy`` section (mJ per inference):
    the intensity and its source, ``gco2e_per_1k_gross``/``_net`` (g per 1,000 inferences),
    and ``reason`` when a figure is null (no intensity given, no energy measured)."""
    section: dict[str, Any] = {"grid_intensity_g_per_kwh": None, "source": None, "region": None,
                               "country": None, "year": None, "gco2e_per_1k_gross": None,
                               "gco2e_per_1k_net": None, "reason": None}
    if intensity is None:
        section["reason"] = NO_INTENSITY_REASON
        return section
    section.update(intensity.as_record())
    energy = energy or {}
    for kind in ("gross", "net"):
        mj = energy.get(f"energy_per_inference_{kind}_mj")
        if mj is not None:
            section[f"gco2e_per_1k_{kind}"] = gco2e_per_1k(mj, intensity.g_per_kwh)
    if section["gco2e_per_1k_gross"] is None:
        section["reason"] = _no_energy_reason(energy)
    elif section["gco2e_per_1k_net"] is None:
        section["reason"] = "net: no idle baseline was measured"
    return section
