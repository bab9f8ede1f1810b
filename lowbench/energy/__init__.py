"""Energy measurement: tegrastats (Jetson), NVML (NVIDIA GPUs) and RAPL (x86 CPUs).

Units: energy in J per window and mJ per inference, power in mW, time in s. A meter that is
not present gives None plus a reason, never 0.
"""

from lowbench.energy.meter import (
    NO_METER_REASON,
    EnergyMeter,
    EnergyWindow,
    MeterError,
    measure_energy,
    no_energy,
    select_meter,
)
from lowbench.energy.nvml import NvmlMeter
from lowbench.energy.rapl import RaplMeter
from lowbench.energy.tegrastats import TegrastatsMeter, parse_tegrastats

__all__ = [
    "NO_METER_REASON",
    "EnergyMeter",
    "EnergyWindow",
    "MeterError",
    "NvmlMeter",
    "RaplMeter",
    "TegrastatsMeter",
    "measure_energy",
    "no_energy",
    "parse_tegrastats",
    "select_meter",
]
