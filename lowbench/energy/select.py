"""Which energy meter is present: :func:`select_meter` (tegrastats > NVML > RAPL).

Units of the meters it returns: energy in J per window, power in mW, time in s. With no meter
present it returns None and a reason (:data:`NO_METER_REASON` when nothing is there at all),
never a meter that would report 0.
"""

from __future__ import annotations

import os
import shutil

from lowbench.energy.base import EnergyMeter
from lowbench.energy.nvml import NvmlMeter, probe_nvml
from lowbench.energy.rapl import RAPL_ABSENT, RaplMeter, probe_rapl
from lowbench.energy.tegrastats import TegrastatsMeter
from lowbench.errors import LowbenchError

#: The reason :func:`select_meter` gives when no meter at all is on this machine.
NO_METER_REASON = "no tegrastats, RAPL or NVML on this machine"


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
