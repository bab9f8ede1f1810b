"""NVIDIA GPU board energy from NVML's total-energy counter (mJ -> J), via optional ``pynvml``.

``nvmlDeviceGetTotalEnergyConsumption`` (Volta and newer) counts mJ since the driver loaded; it
covers the GPU board only, not host CPU or DRAM. ``pynvml`` (package ``nvidia-ml-py``) is an
optional dependency and is imported only when NVML is probed or used.
"""

from __future__ import annotations

import importlib
import os
import time
from types import ModuleType
from typing import Any

from lowbench.energy.base import EnergyMeter, EnergyWindow, MeterError

PYNVML_MISSING = "NVML: pynvml is not installed (pip install nvidia-ml-py)"


def _import_pynvml() -> ModuleType | None:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def _nvml_handle(nvml: ModuleType, cuda_index: int) -> Any:
    """NVML handle of CUDA device ``cuda_index``, honouring CUDA_VISIBLE_DEVICES.

    NVML numbers GPUs in PCI bus order, CUDA by default fastest first; with several different
    GPUs the two orders can differ, so that case needs CUDA_DEVICE_ORDER=PCI_BUS_ID.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if cuda_index >= len(entries):
            raise MeterError(f"CUDA device {cuda_index} is not in CUDA_VISIBLE_DEVICES={visible}")
        entry = entries[cuda_index]
        if not entry.isdigit():
            return nvml.nvmlDeviceGetHandleByUUID(entry)
        nvml_index = int(entry)
    else:
        nvml_index = cuda_index
    count = nvml.nvmlDeviceGetCount()
    if nvml_index >= count:
        raise MeterError(f"NVML sees {count} GPU(s); there is no GPU {nvml_index}")
    if count > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        names = {nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)}
        if len(names) > 1:
            raise MeterError(
                "several GPU models: CUDA and NVML may number them differently; "
                "set CUDA_DEVICE_ORDER=PCI_BUS_ID"
            )
    return nvml.nvmlDeviceGetHandleByIndex(nvml_index)


def probe_nvml(cuda_index: int = 0) -> str | None:
    """None if CUDA device ``cuda_index`` reports total energy (mJ) through NVML, else why not."""
    nvml = _import_pynvml()
    if nvml is None:
        return PYNVML_MISSING
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        return f"NVML: nvmlInit failed ({err}); is the NVIDIA driver loaded?"
    try:
        try:
            handle = _nvml_handle(nvml, cuda_index)
        except (MeterError, nvml.NVMLError) as err:
            return f"NVML: no handle for CUDA device {cuda_index} ({err})"
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except nvml.NVMLError as err:
        return (
            f"NVML: CUDA device {cuda_index} does not report total energy ({err}); "
            "nvmlDeviceGetTotalEnergyConsumption needs a Volta or newer GPU"
        )
    finally:
        nvml.nvmlShutdown()
    return None


class NvmlMeter(EnergyMeter):
    """GPU board energy (J) of one CUDA device from two reads of NVML's mJ counter."""

    name = "nvml"

    def __init__(self, cuda_index: int = 0) -> None:
        self.cuda_index = cuda_index
        self._nvml: ModuleType | None = None
        self._handle: Any = None
        self._e0_mj = 0
        self._t0: float | None = None

    def _read_mj(self) -> int:
        assert self._nvml is not None
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except self._nvml.NVMLError as err:
            self.close()
            raise MeterError(f"NVML energy read failed: {err}") from err

    def start(self) -> None:
        """Initialise NVML and read the GPU's total-energy counter (mJ)."""
        if self._t0 is not None:
            raise RuntimeError("NvmlMeter.start() called twice without stop()")
        nvml = _import_pynvml()
        if nvml is None:
            raise MeterError(PYNVML_MISSING)
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            raise MeterError(f"NVML: nvmlInit failed ({err})") from err
        self._nvml = nvml
        try:
            self._handle = _nvml_handle(nvml, self.cuda_index)
        except (MeterError, nvml.NVMLError) as err:
            self.close()
            raise MeterError(f"NVML: {err}") from err
        self._e0_mj = self._read_mj()
        self._t0 = time.monotonic()

    def stop(self) -> EnergyWindow:
        """Close the window: GPU board energy in J, duration in s, mean power in mW."""
        if self._t0 is None:
            raise RuntimeError("NvmlMeter.stop() called without start()")
        e1_mj = self._read_mj()
        t0, t1 = self._t0, time.monotonic()
        self.close()
        energy_j = (e1_mj - self._e0_mj) / 1000.0
        duration_s = t1 - t0
        return EnergyWindow(
            energy_j=energy_j,
            duration_s=duration_s,
            mean_power_mw=energy_j * 1000.0 / duration_s if duration_s > 0 else 0.0,
            samples=2,
            source=f"nvml:GPU{self.cuda_index} total energy (GPU board only)",
        )

    def close(self) -> None:
        """Shut NVML down; safe to call twice."""
        nvml, self._nvml, self._handle, self._t0 = self._nvml, None, None, None
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass
