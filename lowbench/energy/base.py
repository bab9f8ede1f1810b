"""The energy meter interface and per-inference energy accounting.

:class:`EnergyMeter` (one window at a time: ``start()``, ``stop()`` -> :class:`EnergyWindow`),
:class:`MeterError`, :func:`measure_energy` (idle baseline + workload window -> mJ per
inference) and :func:`no_energy` (the same result, every value None, with the reason). The meters
(:mod:`~lowbench.energy.tegrastats`, :mod:`~lowbench.energy.rapl`, :mod:`~lowbench.energy.nvml`)
import only this module; :mod:`~lowbench.energy.select` picks the one present.

Units: energy in J (windows) or mJ (per inference), power in mW, time in s.
A meter that is not present is reported as ``None`` plus a reason, never as 0.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from lowbench.errors import LowbenchError

RESULT_KEYS = (
    "meter",
    "energy_per_inference_gross_mj",
    "energy_per_inference_net_mj",
    "idle_power_mw",
    "idle_window_s",
    "mean_power_mw",
    "window_s",
    "inferences",
    "samples",
    "reason",
)


class MeterError(LowbenchError):
    """A selected meter that failed while measuring (process died, counter unreadable)."""


@dataclass(frozen=True)
class EnergyWindow:
    """Energy measured over one window.

    ``energy_j`` in J, ``duration_s`` in s, ``mean_power_mw`` in mW (energy / duration),
    ``samples`` is the number of power samples or counter reads inside the window, and
    ``source`` is ``"<meter>:<what was measured>"``, e.g. ``"tegrastats:VDD_IN"``.
    """

    energy_j: float
    duration_s: float
    mean_power_mw: float
    samples: int
    source: str


class EnergyMeter(ABC):
    """A power/energy meter measuring one window at a time: ``start()`` then ``stop()``."""

    name: str = "meter"

    @abstractmethod
    def start(self) -> None:
        """Open a measurement window (time base: ``time.monotonic()``, s)."""

    @abstractmethod
    def stop(self) -> EnergyWindow:
        """Close the window and return its energy (J), duration (s) and mean power (mW)."""

    @abstractmethod
    def close(self) -> None:
        """Release resources of an aborted window (no energy is returned); safe to call twice."""


def no_energy(reason: str) -> dict:
    """A measure_energy-shaped result with every value None and ``reason`` saying why."""
    result: dict = dict.fromkeys(RESULT_KEYS)
    result["reason"] = reason
    return result


def _measure_window(meter: EnergyMeter, body: Callable[[], object]) -> tuple[EnergyWindow, object]:
    """Run ``body`` inside one meter window; close the meter if ``body`` raises."""
    meter.start()
    try:
        value = body()
    except BaseException:
        meter.close()
        raise
    return meter.stop(), value


def measure_energy(meter: EnergyMeter, workload: Callable[[], int], idle_s: float) -> dict:
    """Measure energy per inference (mJ) of ``workload`` with an idle baseline.

    First an idle window of ``idle_s`` s (sleeping) gives the idle power (mW); then ``workload``
    (returning how many inferences it ran, >= 1) runs inside a second window. Gross energy per
    inference is window energy / inferences (mJ); net subtracts idle power x window duration
    (mW x s = mJ) first, so it can come out slightly negative on a noisy meter - it is reported
    as measured. ``meter`` in the result is the window's source, e.g. ``"tegrastats:VDD_IN"``
    (which rail or rule gave the total). ``idle_s == 0`` skips the baseline (idle and net are
    then None). If the meter fails, returns :func:`no_energy` with the meter's error as reason
    (if the failure is in the idle window or at the start of the workload window, the workload
    is not run).
    """
    if idle_s < 0:
        raise ValueError(f"idle_s must be >= 0 s, got {idle_s}")
    try:
        idle = _measure_window(meter, lambda: time.sleep(idle_s))[0] if idle_s > 0 else None
        window, inferences = _measure_window(meter, workload)
    except MeterError as err:
        return no_energy(f"{meter.name}: {err}")
    return energy_result(idle, window, inferences)


def energy_result(idle: EnergyWindow | None, window: EnergyWindow, inferences: int) -> dict:
    """The energy section (mJ per inference, gross and net of ``idle``'s mean power over the
    workload window; mW; s) from an idle window (None: no baseline, net is None) and the
    workload ``window`` that ran ``inferences`` (>= 1) inferences. The one place the figures are
    computed: :func:`measure_energy` here, a device bundle's tegrastats lines on the host."""
    if isinstance(inferences, bool) or not isinstance(inferences, int) or inferences < 1:
        raise ValueError(
            f"workload must return the number of inferences (>= 1), got {inferences!r}"
        )
    gross_mj = window.energy_j * 1000.0
    net_mj = None if idle is None else gross_mj - idle.mean_power_mw * window.duration_s
    return {
        "meter": window.source,
        "energy_per_inference_gross_mj": gross_mj / inferences,
        "energy_per_inference_net_mj": None if net_mj is None else net_mj / inferences,
        "idle_power_mw": None if idle is None else idle.mean_power_mw,
        "idle_window_s": None if idle is None else idle.duration_s,
        "mean_power_mw": window.mean_power_mw,
        "window_s": window.duration_s,
        "inferences": inferences,
        "samples": window.samples,
        "reason": None,
    }
