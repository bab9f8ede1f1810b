"""A device's raw facts (what ``run.py`` read on it) -> the record's ``environment.machine``.

The runner records texts, not conclusions (the L4T release line, ``nvpmodel -q`` and
``jetson_clocks --show`` output, devfreq clocks, /proc/cpuinfo, CUDA's version file); this
module reads them by the rules the host's own description uses (:mod:`lowbench.environment`),
so a device's machine id is made like every other. Frequencies in Hz.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: L4T major.minor -> JetPack, for devices where ``dpkg-query nvidia-jetpack`` says nothing
#: (NVIDIA's Jetson archive: R32.4.3 4.4, R32.5 4.5, R32.6.1 4.6, R32.7 4.6.x, R35 5.x,
#: R36 6.x).
L4T_TO_JETPACK = {"32.4": "4.4", "32.5": "4.5", "32.6": "4.6", "32.7": "4.6.x",
                  "35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2",
                  "35.5": "5.1.3", "35.6": "5.1.4", "36.2": "6.0 DP", "36.3": "6.0",
                  "36.4": "6.1/6.2"}



def _devfreq(facts: dict[str, Any], *needles: str) -> dict[str, Any] | None:
    """The devfreq entry whose name contains one of ``needles`` (current/min/max Hz)."""
    for name, entry in sorted((facts.get("devfreq") or {}).items()):
        if any(n in name.lower() for n in needles):
            out: dict[str, Any] = {"name": name}
            for key in ("cur_freq", "min_freq", "max_freq"):
                value = str(entry.get(key, "")).strip()
                out[key.replace("_freq", "_hz")] = int(value) if value.isdigit() else None
            out["governor"] = entry.get("governor")
            return out
    return None


def l4t_version(release_line: str) -> str | None:
    """'32.7.1' from '# R32 (release), REVISION: 7.1, GCID: ...', or None."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release_line or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _command_out(run: Any) -> str | None:
    return run.get("stdout") if isinstance(run, dict) and run.get("returncode") == 0 else None


def _cuda_version(text: str | None) -> str | None:
    """CUDA's version from /usr/local/cuda/version.json or version.txt."""
    if not text:
        return None
    try:
        return str(json.loads(text)["cuda"]["version"])
    except (ValueError, KeyError, TypeError):
        m = re.search(r"CUDA Version\s+([\d.]+)", text)
        return m.group(1) if m else None


def machine_from_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """The record's ``environment.machine`` from a device's raw facts, by the rules the host's
    own description uses (:mod:`lowbench.environment`), plus a Jetson's JetPack, power mode,
    clocks, GPU/EMC frequencies, CUDA and TensorRT versions."""
    from lowbench.environment import cpu_model_from_cpuinfo, isa_from_cpuinfo, jetson_facts

    cpuinfo = facts.get("cpuinfo") or ""
    arch = str(facts.get("arch") or "")
    mem = facts.get("meminfo_kib") or {}
    machine: dict[str, Any] = {
        "hostname_label": facts.get("hostname_label"),
        "cpu": cpu_model_from_cpuinfo(cpuinfo) or arch or None,
        "arch": arch or None, "cores": facts.get("cores"),
        "ram_mib": round(mem["MemTotal"] / 1024, 1) if "MemTotal" in mem else None,
        "swap_mib": round(mem["SwapTotal"] / 1024, 1) if "SwapTotal" in mem else None,
        "os": facts.get("os"), "accelerator": None, "jetson": None,
        "isa": isa_from_cpuinfo(cpuinfo, arch),
    }
    if not machine["isa"]:
        machine["isa_reason"] = ("the device's /proc/cpuinfo was not readable" if not cpuinfo
                                 else "the device's /proc/cpuinfo lists none of the ISA "
                                      "features lowbench records")
    release = facts.get("nv_tegra_release")
    if release:
        jetson = jetson_facts(release, facts.get("device_tree_model"),
                              _command_out(facts.get("nvpmodel")),
                              _command_out(facts.get("jetson_clocks")))
        l4t = l4t_version(jetson["l4t_release"])
        dpkg = (_command_out(facts.get("jetpack_dpkg")) or "").strip()
        jetson.update({
            "l4t": l4t,
            "jetpack": dpkg.split("-")[0].split("+")[0] or (
                L4T_TO_JETPACK.get(".".join(l4t.split(".")[:2])) if l4t else None),
            "jetpack_source": "dpkg nvidia-jetpack" if dpkg else "L4T release table",
            "gpu": _devfreq(facts, "gpu", "ga10b", "gv11b", "gp10b", "gb20b"),
            "emc_rate_hz": facts.get("emc_rate_hz"),
            "cuda": _cuda_version(facts.get("cuda_version_file")),
            "tensorrt": facts.get("tensorrt"),
        })
        if facts.get("emc_rate_hz") is None:
            jetson["emc_reason"] = "EMC rate unreadable (debugfs needs root)"
        machine["jetson"] = jetson
        machine["accelerator"] = jetson.get("model")
    return machine
