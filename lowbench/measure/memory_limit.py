"""Run the clean worker under a memory limit (``--memory-limit 2GiB``), swap left on.

The original study's Nano spilled into swap: what a variant costs on a small board is what it
does when RAM runs out. A limit on the worker's memory cgroup reproduces that on any Linux
machine. :func:`limiter` picks the first way this system allows, in order:

1. **cgroup v2, directly**: the worker's own cgroup delegates the memory controller
   (``memory`` in its ``cgroup.subtree_control``): a child group with ``memory.max``.
2. **cgroup v2, through systemd**: ``systemd-run [--user] --scope -p MemoryMax=N`` (a
   transient scope; the usual way on a desktop or a Jetson with systemd).
3. **cgroup v1**: a child of the process's memory cgroup with ``memory.limit_in_bytes``
   (containers that mount the v1 hierarchy writable).

Each limits RAM only (``memory.swap.max`` / ``memsw`` untouched): pages beyond the limit go to
swap where there is swap, and the kernel's OOM killer ends the worker where there is none.
When none of them works, :class:`MemoryLimitUnavailable` says why ("cannot limit memory here:
..."): a limit is never silently ignored. Sizes are bytes unless a name says MiB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lowbench.errors import LowbenchError

_MIB = 2**20


class MemoryLimitUnavailable(LowbenchError):
    """This system offers no way to limit a process's memory; the message says why."""


def parse_size(text: str) -> int:
    """Bytes of a size such as ``2GiB``, ``512MiB``, ``1.5G`` or ``2147483648``: K/M/G/T and
    KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000; a LowbenchError naming the
    value otherwise."""
    units = {"": 1, "b": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30,
             "gib": 2**30, "t": 2**40, "tib": 2**40, "kb": 10**3, "mb": 10**6, "gb": 10**9,
             "tb": 10**12}
    s = text.strip().lower().replace(" ", "")
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in units or not value > 0 or value * units[unit] < _MIB:
        raise LowbenchError(f"memory size {text!r} is not a size of at least 1 MiB; write e.g. "
                            "2GiB, 512MiB or 1.5GiB")
    return int(value * units[unit])


def format_size(n_bytes: int) -> str:
    """``2GiB``, ``1536MiB``: the shortest exact binary spelling of ``n_bytes``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes % size == 0:
            return f"{n_bytes // size}{unit}"
    return f"{n_bytes}B"


@dataclass
class LimitedLaunch:
    """How to start one worker under a memory limit: a command prefix and/or a hook that moves
    the child into its cgroup before it runs anything, and the group to read back and remove."""

    limit_bytes: int
    method: str
    prefix: list[str] = field(default_factory=list)
    group: Path | None = None
    version: int = 2

    @property
    def preexec(self) -> Callable[[], None] | None:
        """Runs in the child between fork and exec: joins the cgroup (direct methods)."""
        if self.group is None:
            return None
        procs = str(self.group / "cgroup.procs")

        def join() -> None:
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))
        return join

    def oom_kills(self) -> int | None:
        """How many processes the kernel's OOM killer ended in the group (None: unknown)."""
        if self.group is None:
            return None
        name, key = (("memory.events", "oom_kill") if self.version == 2
                     else ("memory.oom_control", "oom_kill"))
        try:
            for line in (self.group / name).read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
        except (OSError, ValueError):
            return None
        return None

    def group_peak_mib(self) -> float | None:
        """Peak memory charged to the group (MiB; v1 ``memory.max_usage_in_bytes`` / v2
        ``memory.peak``: RSS plus page cache), None where the kernel does not keep it."""
        if self.group is None:
            return None
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.group / name).read_text().split()[0]) / _MIB
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        """Remove the group (it is empty once the worker has exited)."""
        if self.group is not None:
            try:
                self.group.rmdir()
            except OSError:
                pass

    def finish(self) -> dict[str, object]:
        """Once the worker has exited: :meth:`describe` plus the OOM kills and the group's
        peak (MiB), read before the group is removed (:meth:`close`)."""
        info = {**self.describe(), "oom_kills": self.oom_kills(),
                "group_peak_mib": self.group_peak_mib()}
        self.close()
        return info

    def describe(self) -> dict[str, object]:
        """The record's ``memory.limit``: bytes, MiB, the method, swap policy."""
        return {"bytes": self.limit_bytes, "mib": self.limit_bytes / _MIB,
                "label": format_size(self.limit_bytes), "method": self.method,
                "swap": "not limited (pages beyond the limit may go to swap)"}


def _own_cgroups() -> dict[str, str]:
    """``{controller or "" (v2): path}`` of this process, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of every mount, from /proc/self/mountinfo."""
    out = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fstype, _source, opts = (right.split(" ") + ["", "", ""])[:3]
            out.append((left.split(" ")[4], fstype, opts))
    except (OSError, IndexError):
        pass
    return out


def _new_group(parent: Path, limit_file: str, limit_bytes: int) -> Path:
    group = parent / f"lowbench-worker-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    try:
        (group / limit_file).write_text(str(limit_bytes))
    except OSError:
        group.rmdir()
        raise
    return group


def _try_v2_direct(limit_bytes: int, own: dict[str, str], mounts: list) -> LimitedLaunch | str:
    v2 = [m for m, fstype, _ in mounts if fstype == "cgroup2"]
    if "" not in own or not v2:
        return "no cgroup v2 hierarchy"
    parent = Path(v2[0]) / own[""].lstrip("/")
    try:
        delegated = "memory" in (parent / "cgroup.subtree_control").read_text().split()
    except OSError as err:
        return f"cgroup v2 {parent}: {err.strerror}"
    if not delegated:
        return f"cgroup v2 group {parent} does not delegate the memory controller"
    try:
        group = _new_group(parent, "memory.max", limit_bytes)
    except OSError as err:
        return f"cannot create a cgroup v2 group under {parent}: {err.strerror}"
    return LimitedLaunch(limit_bytes, "cgroup v2 memory.max", group=group,
                         version=2)


def _try_systemd(limit_bytes: int) -> LimitedLaunch | str:
    exe = shutil.which("systemd-run")
    if exe is None:
        return "no systemd-run"
    user = [] if os.geteuid() == 0 else ["--user"]
    prefix = [exe, *user, "--scope", "--quiet", "--collect", "-p", f"MemoryMax={limit_bytes}",
              "--"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"systemd-run failed: {err}"
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[0]
        return f"systemd-run --scope: {why}"
    return LimitedLaunch(limit_bytes, "systemd-run --scope MemoryMax (cgroup v2)", prefix=prefix)


def _try_v1(limit_bytes: int, own: dict[str, str], mounts: list) -> LimitedLaunch | str:
    points = [m for m, fstype, opts in mounts
              if fstype == "cgroup" and "memory" in opts.split(",")]
    if "memory" not in own or not points:
        return "no cgroup v1 memory hierarchy"
    parent = Path(points[0]) / own["memory"].lstrip("/")
    try:
        group = _new_group(parent, "memory.limit_in_bytes", limit_bytes)
    except OSError as err:
        return f"cannot create a cgroup v1 memory group under {parent}: {err.strerror}"
    return LimitedLaunch(limit_bytes, "cgroup v1 memory.limit_in_bytes",
                         group=group, version=1)


def limiter(limit_bytes: int) -> LimitedLaunch:
    """A way to start one worker under ``limit_bytes`` of RAM (see the module docstring), or
    :class:`MemoryLimitUnavailable` saying why none works here."""
    if not Path("/proc/self/cgroup").is_file():
        raise MemoryLimitUnavailable("cannot limit memory here: no Linux cgroups on this "
                                     "platform")
    own, mounts = _own_cgroups(), _mounts()
    reasons = []
    for attempt in (lambda: _try_v2_direct(limit_bytes, own, mounts),
                    lambda: _try_systemd(limit_bytes),
                    lambda: _try_v1(limit_bytes, own, mounts)):
        got = attempt()
        if isinstance(got, LimitedLaunch):
            return got
        reasons.append(got)
    raise MemoryLimitUnavailable("cannot limit memory here: " + "; ".join(reasons))
