"""The energy and CO2 of a whole run (``lowbench train``): one meter window around it.

:class:`RunMeter` wraps the meter :func:`~lowbench.energy.select.select_meter` picks (tegrastats
> NVML > RAPL) in one window: :meth:`RunMeter.start` before the training loop,
:meth:`RunMeter.stop` after its last step, returning the ``energy`` and ``carbon`` sections of a
training record. No meter, or a meter that fails, gives null figures with the reason, never 0;
the duration is measured either way.

Units: energy in J, power in W, duration in s, intensity in g/kWh, CO2 in g.
"""

from __future__ import annotations

import time
from typing import Any

from lowbench.energy.base import EnergyMeter, MeterError
from lowbench.energy.carbon import NO_INTENSITY_REASON, GridIntensity, gco2e_of_joules

#: Why a run's figures cover what they cover (stored as ``energy.scope``).
SCOPE = ("the whole training loop (every step, validation and checkpoint save after the data "
         "is loaded, up to the last step), gross: idle power included; the meter's domain only "
         "(tegrastats: the board; RAPL: CPU packages; NVML: one GPU board)")


def energy_section(energy_j: float | None, duration_s: float | None, meter: str | None,
                   samples: int | None, reason: str | None) -> dict[str, Any]:
    """A run's ``energy`` section: ``energy_j`` (J), ``mean_power_w`` (W, energy / duration),
    ``duration_s`` (s), ``meter`` (e.g. ``tegrastats:VDD_IN``), ``samples``, ``scope`` and
    ``reason`` (why the energy is null; None when measured)."""
    power = (energy_j / duration_s if energy_j is not None and duration_s else None)
    return {"energy_j": energy_j, "mean_power_w": power, "duration_s": duration_s,
            "meter": meter, "samples": samples, "scope": SCOPE, "reason": reason}


def run_carbon_section(energy_j: float | None, energy_reason: str | None,
                       intensity: GridIntensity | None) -> dict[str, Any]:
    """A run's ``carbon`` section: the intensity and its source, ``gco2e`` (g) and ``reason``
    when it is null (no intensity given, no energy measured)."""
    section: dict[str, Any] = {"grid_intensity_g_per_kwh": None, "source": None, "region": None,
                               "country": None, "year": None, "gco2e": None, "reason": None}
    if intensity is None:
        section["reason"] = NO_INTENSITY_REASON
        return section
    section.update(intensity.as_record())
    if energy_j is None:
        section["reason"] = f"no energy figure: {energy_reason}"
    else:
        section["gco2e"] = gco2e_of_joules(energy_j, intensity.g_per_kwh)
    return section


class RunMeter:
    """One energy window over a run. ``meter`` None: no meter here, ``reason`` says why."""

    def __init__(self, meter: EnergyMeter | None, reason: str,
                 intensity: GridIntensity | None = None) -> None:
        self.meter, self.reason, self.intensity = meter, reason, intensity
        self._t0: float | None = None
        self._failure: str | None = None

    @classmethod
    def select(cls, tegrastats: str | None = None, device: str = "cpu",
               intensity: GridIntensity | None = None) -> RunMeter:
        """A RunMeter on the meter present here (:func:`~lowbench.energy.select.select_meter`);
        an explicit ``tegrastats`` path that does not exist raises LowbenchError."""
        from lowbench.energy.select import select_meter

        meter, why = select_meter(tegrastats, device)
        return cls(meter, why, intensity)

    def start(self) -> None:
        """Open the window (a meter that cannot start: the run goes on, the energy is null)."""
        if self.meter is not None:
            try:
                self.meter.start()
            except MeterError as err:
                self._failure = f"{self.meter.name}: {err}"
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        """Close the window: ``{"energy": ..., "carbon": ...}`` (see :func:`energy_section`,
        :func:`run_carbon_section`)."""
        if self._t0 is None:
            raise RuntimeError("RunMeter.stop() called without start()")
        duration_s = time.monotonic() - self._t0
        self._t0 = None
        energy_j = source = samples = None
        reason = self.reason if self.meter is None else self._failure
        if self.meter is not None and self._failure is None:
            try:
                window = self.meter.stop()
            except MeterError as err:
                reason = f"{self.meter.name}: {err}"
            else:
                energy_j, source, samples = window.energy_j, window.source, window.samples
                duration_s = window.duration_s
        energy = energy_section(energy_j, duration_s, source, samples, reason)
        return {"energy": energy, "carbon": run_carbon_section(energy_j, reason,
                                                               self.intensity)}

    def close(self) -> None:
        """Release the meter of an aborted run (safe to call twice, or after :meth:`stop`)."""
        self._t0 = None
        if self.meter is not None:
            self.meter.close()
