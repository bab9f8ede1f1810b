"""What a result depends on: commit, machine, software versions (recorded in every record)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from lowbench.paths import PACKAGE_DIR


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 5.0) -> str | None:
    """stdout of an argument-list command, or None if it is absent or fails."""
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> dict[str, Any]:
    """{'sha', 'dirty', 'position', 'subject', 'source'} of the lowbench checkout.

    ``position`` is the number of commits up to HEAD (``git rev-list --count``): the site orders
    history by it, not by dates. ``LOWBENCH_COMMIT`` (a sha) overrides, e.g. under asv.
    """
    env = os.environ.get("LOWBENCH_COMMIT")
    if env:
        return {"sha": env, "dirty": None, "position": None, "subject": None,
                "source": "LOWBENCH_COMMIT"}
    root = PACKAGE_DIR.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        return {"sha": None, "dirty": None, "position": None, "subject": None,
                "source": "not a git checkout"}
    sha = _run(["git", "rev-parse", "HEAD"], cwd=root)
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return {"sha": sha, "dirty": bool(status) if status is not None else None,
            "position": commit_position("HEAD"),
            "subject": _run(["git", "log", "-1", "--format=%s"], cwd=root), "source": "git"}


def commit_position(rev: str) -> int | None:
    """Number of commits up to ``rev`` in the lowbench checkout (``git rev-list --count``), or
    None outside a git checkout or for an unknown revision."""
    out = _run(["git", "rev-list", "--count", rev], cwd=PACKAGE_DIR.parent)
    return int(out) if out and out.isdigit() else None


def meminfo_mib() -> dict[str, float]:
    """``MemTotal`` and ``SwapTotal`` from /proc/meminfo in MiB (1 decimal); empty where there
    is no /proc/meminfo (not Linux)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "SwapTotal"):
                out[key] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def cpu_model_from_cpuinfo(text: str) -> str | None:
    """The CPU model string of a /proc/cpuinfo ``text`` (its first 'model name' or 'Hardware'
    line), or None when it has neither."""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return None


def cpu_model() -> str:
    """The CPU model string (/proc/cpuinfo 'model name', or platform.processor())."""
    try:
        found = cpu_model_from_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        found = None
    return found or platform.processor() or platform.machine()


#: The ISA features that decide which kernels these models get (int8 dot products, bf16, AMX,
#: SVE), as /proc/cpuinfo names them: ``flags`` on x86, ``Features`` on aarch64. Two VMs with the
#: same CPU string (a generic "AMD EPYC") differ here, and so do their int8 and bf16 timings.
ISA_FEATURES: dict[str, frozenset[str]] = {
    "x86": frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
                      "amx_bf16", "amx_int8"}),
    "aarch64": frozenset({"asimd", "asimddp", "i8mm", "bf16", "sve"}),
}
#: Other spellings of a feature (older kernels and other tools) -> the name recorded.
ISA_ALIASES = {"avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16", "avxvnni": "avx_vnni"}
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
_ARM64 = ("aarch64", "arm64")


def isa_from_cpuinfo(text: str, arch: str) -> list[str]:
    """The :data:`ISA_FEATURES` of ``arch`` that every processor of a /proc/cpuinfo ``text``
    lists (x86: ``flags``, aarch64: ``Features``), sorted; [] when none or for another arch."""
    family = "x86" if arch.lower() in _X86 else "aarch64" if arch.lower() in _ARM64 else None
    if family is None:
        return []
    wanted = ISA_FEATURES[family]
    key = "flags" if family == "x86" else "features"
    common: set[str] | None = None
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep or name.strip().lower() != key:
            continue
        have = {ISA_ALIASES.get(f, f) for f in value.split()} & wanted
        common = have if common is None else common & have
    return sorted(common or ())


def cpu_isa(cpuinfo: Path = Path("/proc/cpuinfo"), system: str | None = None,
            arch: str | None = None) -> tuple[list[str], str | None]:
    """(ISA features of note, why the list is empty or None): :func:`isa_from_cpuinfo` of this
    machine's /proc/cpuinfo on Linux; an empty list and the reason elsewhere."""
    system = system or platform.system()
    arch = arch or platform.machine()
    if system != "Linux":
        return [], f"ISA features are read from /proc/cpuinfo, which {system} does not have"
    family = "x86" if arch.lower() in _X86 else "aarch64" if arch.lower() in _ARM64 else None
    if family is None:
        return [], f"no ISA features are checked on {arch} (x86 and aarch64 only)"
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError as err:
        return [], f"{cpuinfo} unreadable: {err.strerror or err}"
    isa = isa_from_cpuinfo(text, arch)
    if isa:
        return isa, None
    return [], f"{cpuinfo} lists none of {', '.join(sorted(ISA_FEATURES[family]))}"


def jetson_info() -> dict[str, Any] | None:
    """Model, L4T/JetPack release, nvpmodel mode and clock lock of a Jetson; None elsewhere."""
    release = Path("/etc/nv_tegra_release")
    model_file = Path("/proc/device-tree/model")
    if not release.is_file():
        return None
    return jetson_facts(release.read_text(errors="replace"),
                        model_file.read_text(errors="replace") if model_file.is_file() else None,
                        _run(["nvpmodel", "-q"]), _run(["jetson_clocks", "--show"]))


def jetson_facts(release: str, model: str | None, nvpmodel: str | None,
                 clocks: str | None) -> dict[str, Any]:
    """The record's ``machine.jetson`` from the texts a Jetson gives: /etc/nv_tegra_release,
    /proc/device-tree/model, ``nvpmodel -q`` and ``jetson_clocks --show`` output (None: could not
    be run). ``clocks_locked``: a clock line shows MinFreq equal to MaxFreq, as
    ``jetson_clocks`` pins CPU and GPU clocks (EMC is pinned by FreqOverride instead); None:
    unknown."""
    info: dict[str, Any] = {"l4t_release": (release.splitlines() or [""])[0]}
    if model is not None:
        info["model"] = model.strip("\x00\n ")
    info["nvpmodel"] = nvpmodel.splitlines()[0] if nvpmodel else None
    info["clocks_locked"] = None if clocks is None else bool(
        re.search(r"MinFreq=(\d+)\b.*MaxFreq=\1\b", clocks))
    return info


def machine_info() -> dict[str, Any]:
    """CPU, cores, RAM, swap, OS, accelerator and Jetson details of this machine."""
    import torch

    mem = meminfo_mib()
    isa, isa_reason = cpu_isa()
    accel = None
    if torch.cuda.is_available():
        accel = torch.cuda.get_device_name(0)
    info: dict[str, Any] = {
        # a user-chosen name only: hostnames of containers change per run and may be private
        "hostname_label": os.environ.get("LOWBENCH_MACHINE"),
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "ram_mib": mem.get("MemTotal"),
        "swap_mib": mem.get("SwapTotal"),
        "os": platform.platform(),
        "accelerator": accel,
        "jetson": jetson_info(),
        # sorted feature names (ISA_FEATURES); part of the machine id when not empty
        "isa": isa,
    }
    if isa_reason:
        info["isa_reason"] = isa_reason
    return info


def machine_label(info: dict[str, Any]) -> str:
    """A short human label: Jetson model or 'CPU model, N cores' (+ accelerator), + the ISA
    features where the description lists some (e.g. 'AMD EPYC, 2 cores, avx2 avx512f'); a
    description without them (every record before ISA features were recorded) reads as before."""
    if info.get("jetson") and info["jetson"].get("model"):
        return str(info["jetson"]["model"])
    label = f"{info.get('cpu')}, {info.get('cores')} cores"
    if info.get("accelerator"):
        label += f", {info['accelerator']}"
    isa = info.get("isa")
    if isinstance(isa, list) and isa:
        label += ", " + " ".join(map(str, isa))
    return label


def software_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries a measurement depends on."""
    import numpy
    import rawpy
    import torch

    from lowbench import __version__

    try:
        import skimage

        skv = skimage.__version__
    except ImportError:  # pragma: no cover
        skv = None
    return {"lowbench": __version__, "python": sys.version.split()[0],
            "torch": torch.__version__, "numpy": numpy.__version__,
            "rawpy": rawpy.__version__, "libraw": ".".join(map(str, rawpy.libraw_version)),
            "scikit-image": skv}
