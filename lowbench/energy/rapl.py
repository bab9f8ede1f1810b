"""CPU package energy from Intel/AMD RAPL counters in Linux powercap sysfs (uJ -> J).

Only package domains are summed: ``<root>/intel-rapl:N`` whose ``name`` is ``package-N``.
Subzones (``intel-rapl:N:M``: core, uncore, dram) lie inside their package and would be double
counted; ``psys`` (platform, on some laptops) contains the packages; ``intel-rapl-mmio:N``
duplicates package N through MMIO. Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is usually
readable by root only.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lowbench.energy.base import EnergyMeter, EnergyWindow, MeterError

RAPL_ROOT = "/sys/class/powercap"
RAPL_ABSENT = "no RAPL package domain under /sys/class/powercap"
_PACKAGE_ZONE = re.compile(r"intel-rapl:\d+")


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL package domain: its name, ``energy_uj`` path and wrap range in uJ."""

    name: str
    energy_path: Path
    max_range_uj: int


def _root(root: str | os.PathLike[str] | None) -> Path:
    return Path(RAPL_ROOT if root is None else root)


def find_package_domains(root: str | os.PathLike[str] | None = None) -> list[RaplDomain]:
    """Package domains under the powercap ``root`` (default :data:`RAPL_ROOT`), sorted by zone.

    Domains whose ``max_energy_range_uj`` cannot be read are left out (no wrap handling possible).
    """
    base = _root(root)
    if not base.is_dir():
        return []
    domains = []
    zones = sorted(
        (p for p in base.iterdir() if _PACKAGE_ZONE.fullmatch(p.name)),
        key=lambda p: int(p.name.split(":")[1]),
    )
    for zone in zones:
        try:
            name = (zone / "name").read_text().strip()
            max_range_uj = int((zone / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            continue
        if name.startswith("package") and (zone / "energy_uj").exists():
            domains.append(RaplDomain(name, zone / "energy_uj", max_range_uj))
    return domains


def read_energy_uj(domain: RaplDomain) -> int:
    """Current cumulative energy counter of one domain, in uJ."""
    return int(domain.energy_path.read_text().strip())


def rapl_delta_uj(before_uj: int, after_uj: int, max_range_uj: int) -> int:
    """Energy in uJ between two counter reads, assuming at most one wrap-around in between.

    The counter runs from 0 to ``max_energy_range_uj`` and restarts at 0, so a smaller second
    read means it wrapped once: ``(max_range - before) + after``.
    """
    if after_uj >= before_uj:
        return after_uj - before_uj
    return max_range_uj - before_uj + after_uj


def probe_rapl(root: str | os.PathLike[str] | None = None) -> str | None:
    """None if RAPL package counters are readable, else why not (:data:`RAPL_ABSENT` if none)."""
    domains = find_package_domains(root)
    if not domains:
        return RAPL_ABSENT if root is None else f"no RAPL package domain under {root}"
    for domain in domains:
        try:
            read_energy_uj(domain)
        except (OSError, ValueError) as err:
            return (
                f"RAPL {domain.energy_path} is not readable ({err.__class__.__name__}); it is "
                "root-only since Linux 5.10: run as root or grant read access to energy_uj"
            )
    return None


class RaplMeter(EnergyMeter):
    """Energy (J) of all CPU packages from RAPL, with a poller every ``poll_s`` s for wraps.

    Counters wrap every ``max_energy_range_uj`` (~262 kJ, i.e. ~45 min at 100 W); polling
    every ``poll_s`` seconds keeps at most one wrap between two reads, so windows of any
    length are exact.
    """

    name = "rapl"

    def __init__(self, root: str | os.PathLike[str] | None = None, poll_s: float = 1.0) -> None:
        self.root = root
        self.poll_s = poll_s
        self._domains: list[RaplDomain] = []
        self._last: list[int] = []
        self._total_uj = 0
        self._reads = 0
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._t0: float | None = None

    def _read_all(self) -> list[int]:
        return [read_energy_uj(domain) for domain in self._domains]

    def _accumulate(self) -> None:
        with self._lock:  # read and update together: two interleaved reads would fake a wrap
            now = self._read_all()
            for domain, before, after in zip(self._domains, self._last, now, strict=True):
                self._total_uj += rapl_delta_uj(before, after, domain.max_range_uj)
            self._last = now
            self._reads += 1

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._accumulate()
            except (OSError, ValueError) as err:
                self._error = err
                return

    def start(self) -> None:
        """Read every package counter (uJ) and start the wrap poller."""
        if self._t0 is not None:
            raise RuntimeError("RaplMeter.start() called twice without stop()")
        self._domains = find_package_domains(self.root)
        if not self._domains:
            raise MeterError(f"no RAPL package domain under {_root(self.root)}")
        try:
            self._last = self._read_all()
        except (OSError, ValueError) as err:
            raise MeterError(f"cannot read RAPL energy_uj: {err}") from err
        self._total_uj, self._reads, self._error = 0, 1, None
        self._stop.clear()
        self._t0 = time.monotonic()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def stop(self) -> EnergyWindow:
        """Close the window: package energy in J, duration in s, mean power in mW."""
        if self._t0 is None:
            raise RuntimeError("RaplMeter.stop() called without start()")
        t0 = self._t0
        self.close()
        try:
            self._accumulate()
        except (OSError, ValueError) as err:
            self._error = err
        t1 = time.monotonic()
        if self._error is not None:
            raise MeterError(f"RAPL read failed during the window: {self._error}")
        energy_j = self._total_uj / 1e6
        duration_s = t1 - t0
        return EnergyWindow(
            energy_j=energy_j,
            duration_s=duration_s,
            mean_power_mw=energy_j * 1000.0 / duration_s if duration_s > 0 else 0.0,
            samples=self._reads,
            source="rapl:" + "+".join(domain.name for domain in self._domains),
        )

    def close(self) -> None:
        """Stop the poller; safe to call twice."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=self.poll_s + 1.0)
        self._poller, self._t0 = None, None
