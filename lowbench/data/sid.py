"""SID's official split lists: parsing, the exposure-ratio rule, bursts and exclusions.

List line format: ``<short path> <long path> ISO<n> F<n>``, e.g.
``./Sony/short/10003_00_0.04s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9``.
File names encode ``<scene id>_<burst index>_<exposure seconds>s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lowbench.errors import DataError

_NAME = re.compile(r"^(?P<scene>\d+)_(?P<burst>\d+)_(?P<exposure>\d+(?:\.\d+)?)s\.\w+$")

#: SID caps the amplification ratio at 300.
RATIO_CAP = 300.0


@dataclass(frozen=True)
class ListedPair:
    """One line of a SID list: paths relative to the data root, plus parsed fields."""

    short: str
    long: str
    scene_id: int
    burst: int
    short_exposure_s: float
    long_exposure_s: float
    iso: str = ""
    aperture: str = ""


def parse_name(name: str) -> tuple[int, int, float]:
    """(scene id, burst index, exposure in s) from a SID-style file name like 10003_00_0.04s.ARW."""
    m = _NAME.match(Path(name).name)
    if not m:
        raise DataError(f"cannot parse SID file name {name!r}; expected <scene>_<burst>_<t>s.<ext>")
    return int(m["scene"]), int(m["burst"]), float(m["exposure"])


def exposure_ratio(short_exposure_s: float, long_exposure_s: float,
                   cap: float = RATIO_CAP) -> float:
    """SID's rule: ratio = min(long exposure / short exposure, cap)."""
    return min(long_exposure_s / short_exposure_s, cap)


def parse_line(line: str) -> ListedPair:
    """Parse one list line; paths are made relative (the leading ``./`` is dropped)."""
    parts = line.split()
    if len(parts) < 2:
        raise DataError(f"malformed SID list line {line!r}")
    short, long = (p.removeprefix("./") for p in parts[:2])
    scene, burst, t_short = parse_name(short)
    _, _, t_long = parse_name(long)
    return ListedPair(short, long, scene, burst, t_short, t_long,
                      parts[2] if len(parts) > 2 else "", parts[3] if len(parts) > 3 else "")


def parse_list(path: str | Path) -> list[ListedPair]:
    """All pairs of a SID list file, in file order."""
    text = Path(path).read_text(encoding="utf-8")
    return [parse_line(ln) for ln in text.splitlines() if ln.strip()]


def select(pairs: list[ListedPair], bursts: list[int] | None, exclude_scenes: list[int]
           ) -> list[ListedPair]:
    """Keep the given burst indices (None = all) and drop excluded scene ids."""
    excluded = set(exclude_scenes)
    return [p for p in pairs
            if (bursts is None or p.burst in bursts) and p.scene_id not in excluded]
