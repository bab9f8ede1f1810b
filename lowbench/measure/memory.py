"""Peak RSS and swap of a clean worker process.

``run_in_worker("pkg.mod:func", payload)`` starts ``python -m lowbench.measure.memory`` as a fresh
child process, which imports ``func``, calls it with the payload dict and prints one line
``LOWBENCH_WORKER_RESULT {json}`` holding the returned dict and its own peak RSS (``VmHWM``).
The child imports only the standard library plus what the target imports, so the figure belongs
to the measured variant, not to the parent. While the child runs, the parent samples the child's
``VmSwap`` and the system's swap in use on a thread.

All memory figures are MiB (2**20 bytes). A figure that cannot be measured on this platform is
``None`` with a reason in ``reasons``, never 0.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lowbench.measure.memory_limit import LimitedLaunch

MARKER = "LOWBENCH_WORKER_RESULT "
_MIB = float(2**20)
_STDERR_TAIL_LINES = 20


def _read_status_kib(path: str, keys: tuple[str, ...]) -> dict[str, float]:
    """Read ``key: N kB`` fields from a /proc status-like file; values in KiB (missing: absent)."""
    out: dict[str, float] = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in keys:
                    out[name] = float(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _vmstat(keys: tuple[str, ...] = ("pswpin", "pswpout", "pgmajfault")) -> dict[str, int]:
    """System-wide counters from /proc/vmstat (pages swapped in/out, major faults); empty
    without /proc."""
    out: dict[str, int] = {}
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name in keys:
                    out[name] = int(value)
    except (OSError, ValueError):
        pass
    return out


def system_swap_mib() -> tuple[float | None, float | None]:
    """System swap (in use, total) in MiB from /proc/meminfo; (None, None) without /proc."""
    d = _read_status_kib("/proc/meminfo", ("SwapTotal", "SwapFree"))
    if "SwapTotal" not in d or "SwapFree" not in d:
        return None, None
    return (d["SwapTotal"] - d["SwapFree"]) / 1024.0, d["SwapTotal"] / 1024.0


# --------------------------------------------------------------------------- child side


def timed_passes(step: Callable[[], object], runs: int) -> list[float]:
    """Call ``step`` ``runs`` times; each call's wall time in ms (what a worker reports as
    ``forward_ms``: what a memory limit's swapping slows down)."""
    import time

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _own_peak_rss_mib() -> tuple[float | None, str]:
    """This process's peak RSS in MiB and the source it came from."""
    d = _read_status_kib("/proc/self/status", ("VmHWM",))
    if "VmHWM" in d:
        return d["VmHWM"] / 1024.0, "VmHWM from /proc/self/status"
    try:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is bytes on macOS, KiB on Linux and the BSDs.
        scale = 1.0 if sys.platform == "darwin" else 1024.0
        return ru * scale / _MIB, "ru_maxrss from getrusage (no /proc)"
    except (ImportError, OSError):
        return None, "no /proc/self/status and no getrusage on this platform"


def _cuda_peak_mib() -> tuple[float | None, str]:
    """Peak CUDA memory allocated by torch in this process (MiB), or None and a reason."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None, "target did not import torch"
    if not torch.cuda.is_available():
        return None, "torch.cuda is not available"
    if not torch.cuda.is_initialized():
        return None, "target did not use CUDA"
    return torch.cuda.max_memory_allocated() / _MIB, "torch.cuda.max_memory_allocated"


def _to_json(obj: object) -> object:
    """json.dumps fallback for numpy scalars and arrays."""
    for attr in ("item", "tolist"):
        conv = getattr(obj, attr, None)
        if callable(conv):
            try:
                return conv()
            except (TypeError, ValueError):
                continue
    raise TypeError(f"worker result value {obj!r} of type {type(obj).__name__} is not JSON-able")


def _worker_main(argv: list[str]) -> int:
    """Child entry point: ``target payload_json``; prints the marker line; returns exit code."""
    if len(argv) != 2:
        print("usage: python -m lowbench.measure.memory module:function payload_json",
              file=sys.stderr)
        return 2
    import importlib

    target, payload_json = argv
    module_name, _, func_name = target.partition(":")
    fn = getattr(importlib.import_module(module_name), func_name)
    result = fn(json.loads(payload_json))
    if not isinstance(result, dict):
        raise TypeError(f"{target} returned {type(result).__name__}, expected dict")
    peak, peak_src = _own_peak_rss_mib()
    swap = _read_status_kib("/proc/self/status", ("VmSwap",)).get("VmSwap")
    cuda, cuda_src = _cuda_peak_mib()
    try:
        import resource

        major_faults: int | None = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    except (ImportError, OSError):
        major_faults = None
    out = {
        "major_faults": major_faults,
        "result": result,
        "peak_rss_mib": peak,
        "peak_rss_source": peak_src,
        "final_swap_mib": None if swap is None else swap / 1024.0,
        "cuda_peak_allocated_mib": cuda,
        "cuda_source": cuda_src,
    }
    line = MARKER + json.dumps(out, default=_to_json)
    sys.stdout.write("\n" + line + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------- parent side


class WorkerKilled(RuntimeError):
    """The worker was killed by a signal: under a memory limit, the kernel's OOM killer (the
    variant needs more than the limit and there was no swap to spill into)."""

    def __init__(self, target: str, signal: int, limit: dict | None, rss_peak_mib: float | None,
                 swap_peak_mib: float | None, wall_s: float, vmstat: dict | None,
                 stderr: str) -> None:
        import signal as signals

        try:
            name = signals.Signals(signal).name
        except ValueError:
            name = f"signal {signal}"
        if limit is not None:
            by_oom = limit.get("oom_kills")
            cause = (f"killed by the memory limit {limit['label']} ({name}"
                     + (f", {by_oom} OOM kill(s) in its cgroup" if by_oom else "") + ")")
        else:
            cause = f"killed by {name}"
        super().__init__(f"worker {target} was {cause}; last stderr lines:\n{stderr}")
        self.cause = cause
        self.signal = name
        self.limit = limit
        self.rss_peak_mib = rss_peak_mib
        self.swap_peak_mib = swap_peak_mib
        self.wall_s = wall_s
        self.vmstat = vmstat


def _stderr_tail(stderr: str) -> str:
    """Last lines of a child's stderr, for error messages."""
    lines = stderr.strip().splitlines()[-_STDERR_TAIL_LINES:]
    return "\n".join(lines) if lines else "(no stderr output)"


def run_in_worker(
    target: str,
    payload: dict,
    *,
    sample_interval_s: float = 0.02,
    timeout_s: float = 600,
    limit: LimitedLaunch | None = None,
) -> dict:
    """Run ``target`` ("module:function") on ``payload`` in a fresh process; report its memory.

    Returns a dict with (all sizes in MiB):

    * ``peak_rss_mib``: the child's peak RSS (``VmHWM``, read by the child at the end);
    * ``swap_peak_mib``: peak of the child's ``VmSwap``, sampled every ``sample_interval_s``
      seconds (and read by the child at the end);
    * ``system_swap_peak_mib`` / ``system_swap_baseline_mib``: system swap in use
      (SwapTotal - SwapFree) at its sampled peak and just before the start; ``swap_total_mib``;
    * ``cuda_peak_allocated_mib``: ``torch.cuda.max_memory_allocated()`` when the target used
      CUDA, else None;
    * ``reasons``: for every None figure, why; ``peak_rss_source``; ``samples`` (sampler ticks);
      ``sample_interval_s`` (s); ``wall_s`` (child wall time, s);
    * ``result``: the dict the target returned.

    * ``major_faults``: the child's major page faults (its rusage; pages read back from disk
      or swap); ``vmstat``: the system's ``pswpin`` / ``pswpout`` (pages swapped in / out)
      and ``pgmajfault`` over the run (deltas of /proc/vmstat, every process counted);
    * ``limit`` (with ``limit``): the memory limit the child ran under and how
      (:mod:`lowbench.measure.memory_limit`), the OOM kills in its group and the group's
      peak (RSS + page cache, MiB).

    Raises :class:`WorkerKilled` when the child was killed by a signal (under a limit: by the
    OOM killer, which ``oom_kills`` confirms where the kernel counts it), RuntimeError (with
    the child's last stderr lines) when it exits non-zero otherwise, prints no result line, or
    runs longer than ``timeout_s`` seconds.
    """
    import subprocess
    import threading
    import time

    module_name, sep, func_name = target.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"target must be 'module:function', got {target!r}")
    if sample_interval_s <= 0:
        raise ValueError(f"sample_interval_s must be > 0 s, got {sample_interval_s}")
    payload_json = json.dumps(payload)

    sys_base, swap_total = system_swap_mib()
    cmd = [sys.executable, "-m", "lowbench.measure.memory", target, payload_json]
    if limit is not None:
        cmd = [*limit.prefix, *cmd]
    vm_before = _vmstat()
    t_start = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=limit.preexec if limit is not None else None)
    except BaseException:
        if limit is not None:
            limit.close()  # the group must not outlive a worker that never started
        raise

    status_path = f"/proc/{proc.pid}/status"
    peaks: dict[str, float | None] = {"swap": None, "system": sys_base, "rss": None}
    ticks = [0]
    stop = threading.Event()

    def sample() -> None:
        while True:
            status = _read_status_kib(status_path, ("VmSwap", "VmRSS"))
            swap = status.get("VmSwap")
            if swap is not None:
                peaks["swap"] = max(peaks["swap"] or 0.0, swap / 1024.0)
            if status.get("VmRSS") is not None:
                peaks["rss"] = max(peaks["rss"] or 0.0, status["VmRSS"] / 1024.0)
            used, _ = system_swap_mib()
            if used is not None:
                peaks["system"] = max(peaks["system"] or 0.0, used)
            ticks[0] += 1
            if stop.wait(sample_interval_s):
                return

    sampler = threading.Thread(target=sample, name="lowbench-memory-sampler", daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise RuntimeError(
            f"worker {target} timed out after {timeout_s} s; last stderr lines:\n"
            f"{_stderr_tail(stderr)}"
        ) from None
    finally:
        stop.set()
        sampler.join()
        limit_info = limit.finish() if limit is not None else None
    wall_s = time.perf_counter() - t_start
    vm_after = _vmstat()
    vmstat = {k: vm_after[k] - vm_before[k] for k in vm_after if k in vm_before} or None

    if proc.returncode < 0:
        raise WorkerKilled(target, -proc.returncode, limit_info, peaks["rss"], peaks["swap"],
                           wall_s, vmstat, _stderr_tail(stderr))
    if proc.returncode != 0:
        raise RuntimeError(
            f"worker {target} exited with code {proc.returncode}; last stderr lines:\n"
            f"{_stderr_tail(stderr)}"
        )
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    if not lines:
        raise RuntimeError(
            f"worker {target} printed no {MARKER.strip()} line; last stderr lines:\n"
            f"{_stderr_tail(stderr)}"
        )
    child = json.loads(lines[-1][len(MARKER):])

    swap_peak = peaks["swap"]
    if child["final_swap_mib"] is not None:
        swap_peak = max(swap_peak or 0.0, child["final_swap_mib"])

    reasons: dict[str, str] = {}
    no_proc = "no /proc on this platform (not Linux)"
    if child["peak_rss_mib"] is None:
        reasons["peak_rss_mib"] = child["peak_rss_source"]
    if swap_peak is None:
        reasons["swap_peak_mib"] = no_proc if sys_base is None else "no VmSwap in /proc/<pid>"
    if sys_base is None:
        for key in ("system_swap_peak_mib", "system_swap_baseline_mib", "swap_total_mib"):
            reasons[key] = no_proc
    if child["cuda_peak_allocated_mib"] is None:
        reasons["cuda_peak_allocated_mib"] = child["cuda_source"]
    if limit_info is None:
        reasons["limit"] = "no memory limit (--memory-limit not given)"
    if vmstat is None:
        reasons["vmstat"] = "no /proc/vmstat on this platform"
    if child.get("major_faults") is None:
        reasons["major_faults"] = "no getrusage in the worker"

    return {
        "peak_rss_mib": child["peak_rss_mib"],
        "peak_rss_source": child["peak_rss_source"],
        "swap_peak_mib": swap_peak,
        "system_swap_peak_mib": peaks["system"],
        "system_swap_baseline_mib": sys_base,
        "swap_total_mib": swap_total,
        "cuda_peak_allocated_mib": child["cuda_peak_allocated_mib"],
        "reasons": reasons,
        "major_faults": child.get("major_faults"),
        "vmstat": vmstat,
        "limit": limit_info,
        "samples": ticks[0],
        "sample_interval_s": sample_interval_s,
        "wall_s": wall_s,
        "result": child["result"],
    }


# --------------------------------------------------------------------------- self-test targets


def _selftest_allocate(payload: dict) -> dict:
    """Test target: allocate and touch ``payload["mib"]`` MiB with numpy; hold ``hold_s`` s."""
    import time

    import numpy as np

    mib = int(payload["mib"])
    buf = np.ones(mib * 2**20, dtype=np.uint8)  # np.ones writes every page
    time.sleep(float(payload.get("hold_s", 0.0)))
    return {"mib": mib, "checksum": int(buf[::4096].sum(dtype=np.int64))}


def _selftest_fail(payload: dict) -> dict:
    """Test target: raise ValueError carrying ``payload["message"]``."""
    raise ValueError(str(payload.get("message", "selftest failure")))


def _selftest_loaded_modules(payload: dict) -> dict:
    """Test target: report which heavy modules the bare worker has imported (should be none)."""
    heavy = ("numpy", "torch", "scipy", "skimage", "rawpy", "matplotlib")
    return {
        "heavy": sorted(m for m in heavy if m in sys.modules),
        "pid": os.getpid(),
        "executable": sys.executable,
    }


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
