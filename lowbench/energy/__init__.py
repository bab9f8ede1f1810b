"""Energy measurement: tegrastats (Jetson), NVML (NVIDIA GPUs) and RAPL (x86 CPUs).

* :mod:`lowbench.energy.base` - the meter interface (:class:`EnergyMeter`, :class:`EnergyWindow`,
  :class:`MeterError`), :func:`measure_energy` and :func:`no_energy`;
* :mod:`lowbench.energy.tegrastats`, :mod:`lowbench.energy.nvml`, :mod:`lowbench.energy.rapl` -
  one module per meter, each importing only ``base``;
* :mod:`lowbench.energy.select` - :func:`select_meter`: which meter is present.

Units: energy in J per window and mJ per inference, power in mW, time in s. A meter that is
not present gives None plus a reason, never 0.
"""
