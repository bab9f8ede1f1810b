"""Energy meters: the common interface, meter selection and per-inference energy accounting.

Units: energy in J (windows) or mJ (per inference), power in mW, time in s.
A meter that is not present is reported as ``None`` plus a reason, never as 0.
"""

from __future__ import annotations

import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from lowbench.errors import LowbenchError

NO_METER_REASON = "no tegrastats, RAPL or NVML on this machine"

RESULT_KEYS = (
    "meter",
    "energy_per_inference_gross_mj",
    "energy_per_inference_net_mj",
    "idle_power_mw",
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


def _cuda_index(device: str) -> int | None:
    """CUDA device index of a torch-style device string (``"cuda"`` -> 0), else None."""
    if device == "cuda":
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    return None


def check_tegrastats_path(path: str) -> str:
    """Return ``path`` if it is an executable file; raise LowbenchError naming it and the fix."""
    if not os.path.isfile(path):
        raise LowbenchError(
            f"tegrastats not found at {path!r}; pass the path of the tegrastats binary "
            "(usually /usr/bin/tegrastats on a Jetson) or leave it unset to auto-detect"
        )
    if not os.access(path, os.X_OK):
        raise LowbenchError(
            f"tegrastats at {path!r} is not executable; run 'chmod +x {path}' or pass "
            "the real tegrastats binary (usually /usr/bin/tegrastats)"
        )
    return path


def select_meter(
    tegrastats_path: str | None = None, device: str = "cpu"
) -> tuple[EnergyMeter | None, str]:
    """Pick the best energy meter present: tegrastats > NVML (CUDA devices only) > RAPL.

    Returns ``(meter, why_chosen)`` or ``(None, reason)``; with nothing present the reason is
    exactly :data:`NO_METER_REASON`. An explicit ``tegrastats_path`` that does not exist raises
    LowbenchError. Meters report energy in J, power in mW, time in s.
    """
    # Imported here: those modules import EnergyMeter/EnergyWindow from this one.
    from lowbench.energy.nvml import NvmlMeter, probe_nvml
    from lowbench.energy.rapl import RAPL_ABSENT, RaplMeter, probe_rapl
    from lowbench.energy.tegrastats import TegrastatsMeter

    if tegrastats_path is not None:
        path = check_tegrastats_path(tegrastats_path)
        return TegrastatsMeter(path), f"tegrastats at {path}"
    found = shutil.which("tegrastats")
    if found is not None:
        return TegrastatsMeter(found), f"tegrastats found on PATH at {found}"

    problems: list[str] = []
    cuda_index = _cuda_index(device)
    if cuda_index is not None:
        nvml_problem = probe_nvml(cuda_index)
        if nvml_problem is None:
            return NvmlMeter(cuda_index), f"NVML energy counter of CUDA device {cuda_index}"
        problems.append(nvml_problem)
    rapl_problem = probe_rapl()
    if rapl_problem is None:
        return RaplMeter(), "RAPL package energy counters"
    if rapl_problem != RAPL_ABSENT:
        problems.append(rapl_problem)
    if not problems:
        return None, NO_METER_REASON
    return None, "no usable energy meter: " + "; ".join(problems)


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
        "mean_power_mw": window.mean_power_mw,
        "window_s": window.duration_s,
        "inferences": inferences,
        "samples": window.samples,
        "reason": None,
    }
