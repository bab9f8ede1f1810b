#!/usr/bin/env python3
"""lowbench device runner: measure the variants of this bundle on this device, write result.tar.

    python3 run.py                  # every variant of manifest.json -> ./result.tar
    python3 run.py --out /tmp/r.tar --tegrastats /usr/bin/tegrastats

Needs Python >= 3.6 and numpy >= 1.19 (JetPack 4.6's), plus the runtime of each variant:
onnxruntime (``onnxruntime`` / ``onnxruntime-gpu``), or torch (TorchScript files). It never
needs the network, lowbench, rawpy, LibRaw or scipy: the bundle holds the packed inputs and the
artifacts, and the statistics the stopping rule needs (the ranks of the median's 95% interval)
are precomputed in manifest.json by lowbench.

It follows lowbench's harness protocol (lowbench/measure/latency.py, memory.py, energy/*):

* quality pass: every input once; the output is clipped to [0, 1] and quantised to 8 bits
  exactly as lowbench's metrics do (``round(clip(x, 0, 1) * 255)``), so PSNR/SSIM scored on the
  host from these files equal the host's own;
* latency: ``warmup`` untimed calls, then individually timed calls on the first input until the
  first of: ``max_runs``; >= ``converge_min_runs`` runs and the median's 95% interval within
  +/- ``target_rel``; >= ``min_runs`` runs and ``budget_s`` s of timed calls. Every sample is
  kept (ns);
* memory: a fresh process (this file with ``--memory-worker``) loads the artifact and runs a
  few passes; its VmHWM is the peak RSS; its VmSwap and the system's swap are sampled;
* energy: tegrastats runs in one window of ``idle_s`` s asleep and one of >= ``energy_budget_s``
  s of inference; its raw lines and their arrival times are kept. lowbench parses and
  integrates them on the host (``lowbench ingest``) with the harness's own parser, so the rules
  for each Jetson generation live in one place.

Raw facts are recorded, interpretation is left to the host: the L4T release line, nvpmodel and
jetson_clocks output, devfreq clocks, /proc/cpuinfo, TensorRT/CUDA versions.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter

RUNNER_VERSION = 1
MANIFEST = "manifest.json"
RESULT_SCHEMA = "lowbench.bundle-result"
WORKER_MARKER = "LOWBENCH_RUNNER_WORKER "


class RunnerError(Exception):
    """A problem with the bundle, the arguments or the device: one line, exit code 2."""


class BundleDamaged(RunnerError):
    """A bundle file that is missing or differs from manifest.json: nothing is measured."""


# ----------------------------------------------------------------------------- small helpers


def sha256_file(path):
    """Hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path, limit=65536):
    """The text of ``path`` (at most ``limit`` characters), or None when it cannot be read."""
    try:
        with open(path, "r", errors="replace") as handle:
            return handle.read(limit)
    except (OSError, ValueError):
        return None


def run_command(argv, timeout=10.0):
    """``{"argv", "returncode", "stdout", "stderr"}`` of an argument-list command, or
    ``{"argv", "error"}`` when it cannot be started."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as err:
        return {"argv": argv, "error": str(err)}
    return {"argv": argv, "returncode": proc.returncode, "stdout": proc.stdout[-8000:],
            "stderr": proc.stderr[-2000:]}


def utc_now():
    """Now as 2026-12-07T20:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_kib(path, keys):
    """``key: N kB`` fields of a /proc status-like file, in KiB (absent keys: missing)."""
    out = {}
    text = read_text(path)
    for line in (text or "").splitlines():
        name, _, rest = line.partition(":")
        if name in keys:
            try:
                out[name] = float(rest.split()[0])
            except (IndexError, ValueError):
                pass
    return out


def system_swap_mib():
    """(swap in use, swap total) in MiB from /proc/meminfo; (None, None) without it."""
    mem = status_kib("/proc/meminfo", ("SwapTotal", "SwapFree"))
    if "SwapTotal" not in mem or "SwapFree" not in mem:
        return None, None
    return (mem["SwapTotal"] - mem["SwapFree"]) / 1024.0, mem["SwapTotal"] / 1024.0


# ------------------------------------------------------------------------------ the runtimes


def default_threads():
    """The CPUs this process may use: the harness's default thread count (torch's), which it
    sets explicitly on ONNX Runtime too, so both measure the same configuration and the
    record names the count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def to_numpy_output(value):
    """A runtime's output as a float32 numpy array."""
    import numpy as np

    return np.asarray(value, dtype=np.float32)


class OnnxRuntimeBackend(object):
    """An ONNX file in an ONNX Runtime session with lowbench's session options (all graph
    optimizations, sequential, one inter-op thread); CUDA EP first where the build has it."""

    name = "onnxruntime"

    def __init__(self, path, input_name, threads=None, providers=None):
        import onnxruntime as ort

        self.ort = ort
        self.path = path
        self.input_name = input_name
        self.threads = threads
        available = ort.get_available_providers()
        if providers:
            missing = [p for p in providers if p not in available]
            if missing:
                raise RunnerError("onnxruntime here has no {} (it has: {}); pick from those "
                                  "with --provider".format(", ".join(missing),
                                                           ", ".join(available)))
            self.providers = list(providers)
        else:  # as bundled (device cpu); a GPU only when asked for (--provider)
            self.providers = ["CPUExecutionProvider"]
        self.sess = ort.InferenceSession(path, self._options(), providers=self.providers)

    def _options(self, profile_prefix=None):
        ort = self.ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
        so.log_severity_level = 3
        if profile_prefix is not None:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        return so

    def run(self, x):
        """float32 (N, 4, H, W) -> float32 (N, 3, 2H, 2W)."""
        return self.sess.run(None, {self.input_name: x})[0]

    def describe(self):
        """Runtime name, version, providers and threads as the session reports them."""
        threads = self.threads or self.sess.get_session_options().intra_op_num_threads or None
        return {"name": self.name, "version": self.ort.__version__,
                "provider": self.sess.get_providers()[0], "providers": self.sess.get_providers(),
                "threads": threads}

    def executed_ops(self, x, folder):
        """Op types of the nodes the session executed on ``x`` and the provider of each (from
        ONNX Runtime's own profile of one run in a second, profiled session)."""
        sess = self.ort.InferenceSession(self.path, self._options(os.path.join(folder, "prof")),
                                         providers=self.providers)
        sess.run(None, {self.input_name: x})
        profile = sess.end_profiling()
        with open(profile) as handle:
            events = json.load(handle)
        ops, providers = Counter(), Counter()
        for event in events:
            args = event.get("args") or {}
            if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
                ops[args.get("op_name", "?")] += 1
                providers[args.get("provider", "?")] += 1
        os.remove(profile)
        return {"ops": dict(ops), "providers": dict(providers),
                "source": "onnxruntime profile of one run (kernel events: op_name, provider)"}


class TorchScriptBackend(object):
    """A TorchScript file in torch (NVIDIA's wheel on a Jetson), CUDA when the variant asks and
    the build has it."""

    name = "torchscript"

    def __init__(self, path, device="cpu", threads=None, engine=None):
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        supported = list(torch.backends.quantized.supported_engines)
        if engine and engine not in supported and engine == "x86" and "fbgemm" in supported:
            engine = "fbgemm"  # torch < 2.0 calls x86's int8 kernels fbgemm
        if engine and engine not in supported:
            raise RunnerError("this torch has no {!r} int8 engine (it has {}); bundle int8 "
                              "for this device with --runtime onnxruntime".format(
                                  engine, ", ".join(supported)))
        if engine:
            torch.backends.quantized.engine = engine
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RunnerError("this variant runs on CUDA but torch.cuda is not available here")
        self.device = device
        self.module = torch.jit.load(path, map_location=device)
        self.module.eval()

    def run(self, x):
        """float32 (N, 4, H, W) -> float32 (N, 3, 2H, 2W)."""
        torch = self.torch
        with torch.no_grad():
            y = self.module(torch.from_numpy(x).to(self.device))
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            return y.float().cpu().numpy()

    def describe(self):
        """torch version, device and threads."""
        torch = self.torch
        return {"name": self.name, "version": torch.__version__, "provider": self.device,
                "providers": [self.device], "threads": torch.get_num_threads(),
                "engine": torch.backends.quantized.engine}

    def executed_ops(self, x, folder):
        """Node kinds of the module's inlined graph (aten:: float, quantized:: int8)."""
        kinds = Counter(node.kind() for node in self.module.inlined_graph.nodes())
        return {"ops": dict(kinds), "providers": {self.device: sum(kinds.values())},
                "source": "TorchScript inlined graph node kinds"}


BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "torchscript": TorchScriptBackend}


def check_artifact(bundle, variant):
    """The path of ``variant``'s artifact; BundleDamaged when it is missing or differs from
    its sha256 in the manifest."""
    artifact = variant["artifact"]
    path = os.path.join(bundle, artifact["file"])
    if not os.path.isfile(path) or sha256_file(path) != artifact["sha256"]:
        raise BundleDamaged("{} is missing or does not match manifest.json (sha256); copy the "
                            "whole bundle folder again".format(artifact["file"]))
    return path


def probe_load(bundle, variant, args):
    """Load ``variant`` once in a child process first: a runtime that aborts the process on a
    file it cannot read (torch 1.10 on a TorchScript file of torch 2.x: an INTERNAL ASSERT,
    SIGABRT) costs that child, not this run. RunnerError with the child's last line."""
    argv = [sys.executable, os.path.abspath(__file__), "--bundle", bundle, "--probe-load",
            variant["id"]]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode == 0:
        return
    lines = [ln.strip() for ln in proc.stderr.splitlines()
             if ln.strip() and not ln.startswith(("frame #", "<omitting"))]
    detail = lines[-1] if lines else "no message"
    for line in lines:  # the runtime's own assertion, where it printed one
        if "what():" in line or "ASSERT" in line:
            detail = line.replace("what():", "").strip()
            break
    how = ("aborted (signal {})".format(-proc.returncode) if proc.returncode < 0
           else "failed (exit code {})".format(proc.returncode))
    raise RunnerError("{} {} loading {}: {}".format(variant["runtime"], how,
                                                     variant["artifact"]["file"], detail[:300]))


def load_backend(bundle, variant, args, probe=True):
    """The backend of ``variant`` (a manifest entry), its artifact checked by sha256 first;
    TorchScript files are loaded in a child process first (:func:`probe_load`)."""
    path = check_artifact(bundle, variant)
    runtime = variant["runtime"]
    if probe and runtime == "torchscript":
        probe_load(bundle, variant, args)
    try:
        if runtime == "onnxruntime":
            return OnnxRuntimeBackend(path, variant["input_name"], args.threads,
                                      args.provider or None)
        if runtime == "torchscript":
            return TorchScriptBackend(path, variant.get("device", "cpu"), args.threads,
                                      variant.get("engine"))
    except ImportError as err:
        raise RunnerError("{} needs {} ({}); install it on this device or run the other "
                          "variants with --only".format(variant["id"], runtime, err)) from None
    except RunnerError:
        raise
    except Exception as err:  # the runtime refuses the file: its reason, in one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RunnerError("{} cannot load {}: {}".format(runtime, variant["artifact"]["file"],
                                                         first[:300])) from None
    raise RunnerError("runtime {!r} is not known to this runner (version {})".format(
        runtime, RUNNER_VERSION))


# ----------------------------------------------------------------------------- measurements


def quantize_8bit(image):
    """float (H, W, 3) -> uint8 levels: round(clip(x, 0, 1) * 255) in float64, as lowbench's
    metrics quantise before PSNR/SSIM (numpy rounds half to even, there as here)."""
    import numpy as np

    x = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    return np.round(x * 255.0).astype(np.uint8)


def measure_latency(fn, protocol, clock=time.perf_counter):
    """Individually timed calls of ``fn`` under the manifest's stopping rule. Returns
    ``{"samples_ns", "warmup", "stop": {...}}``; the statistics are computed on the host."""
    import numpy as np

    warmup = int(protocol["warmup"])
    min_runs = int(protocol["min_runs"])
    max_runs = int(protocol["max_runs"])
    budget_ns = int(float(protocol["budget_s"]) * 1e9)
    target = protocol.get("target_rel")
    ranks = {int(n): (int(lo), int(hi)) for n, (lo, hi) in
             (protocol.get("median_ci_ranks") or {}).items()}
    for _ in range(warmup):
        fn()
    times = [0] * max_runs
    spent, n, reason = 0, 0, "max_runs"
    converge_from = max(int(protocol["converge_min_runs"]), min_runs) if target else max_runs + 1
    next_check = converge_from
    half = None
    while n < max_runs:
        t0 = clock()
        fn()
        t1 = clock()
        d = int(round((t1 - t0) * 1e9))
        times[n] = d
        n += 1
        spent += d
        if n >= next_check:
            next_check = n + max(1, n // 16)
            if n in ranks:
                x = np.sort(np.asarray(times[:n], dtype=np.float64))
                lo, hi = ranks[n]
                median = float(np.median(x))
                half = (x[hi - 1] - x[lo - 1]) / 2.0 / abs(median) if median else None
                if half is not None and half <= float(target):
                    reason = "converged"
                    break
        if n >= min_runs and spent >= budget_ns:
            reason = "budget"
            break
    return {"samples_ns": times[:n], "warmup": warmup,
            "stop": {"reason": reason, "timed_s": spent / 1e9, "runs": n,
                     "clock": "time.perf_counter (Python {}); clock starts before the call and "
                              "stops after it returns".format(platform.python_version())}}


class TegrastatsFeed(object):
    """One tegrastats process for one window: every stdout line with its arrival time
    (``time.monotonic()``, s). No parsing here: lowbench parses the lines on the host."""

    def __init__(self, path, interval_ms=50, first_line_timeout_s=5.0):
        self.path = path
        self.interval_ms = int(interval_ms)
        self.first_line_timeout_s = first_line_timeout_s
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.proc = None
        self.reader = None

    def _read(self, stream):
        for line in stream:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def window(self, body):
        """Run ``body()`` between the first line and a line past its end; returns
        ``({"t0", "t1", "lines"}, body's value)`` (times in s, monotonic clock)."""
        try:
            self.proc = subprocess.Popen([self.path, "--interval", str(self.interval_ms)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, universal_newlines=True)
        except OSError as err:
            raise RunnerError("cannot run tegrastats at {!r}: {}".format(self.path, err)) \
                from None
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout,))
        self.reader.daemon = True
        self.reader.start()
        try:
            with self.cond:
                self.cond.wait_for(lambda: self.lines or self.eof, self.first_line_timeout_s)
                if not self.lines:
                    raise RunnerError("tegrastats at {!r} printed nothing within {} s".format(
                        self.path, self.first_line_timeout_s))
            t0 = time.monotonic()
            value = body()
            t1 = time.monotonic()
            with self.cond:
                self.cond.wait_for(lambda: self.eof or self.lines[-1][0] >= t1,
                                   max(3 * self.interval_ms / 1000.0, 0.5))
                lines = list(self.lines)
                died = self.eof and lines[-1][0] < t1
            if died:
                raise RunnerError("tegrastats at {!r} died during the window".format(self.path))
            return {"t0": t0, "t1": t1, "lines": [[t, s] for t, s in lines]}, value
        finally:
            self.close()

    def close(self):
        """Stop the process (SIGTERM, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=1.0)


def find_tegrastats(args, sysroot):
    """The tegrastats to use: ``--tegrastats``, else on PATH or in /usr/bin; None if none."""
    if args.tegrastats:
        return args.tegrastats
    found = shutil.which("tegrastats")
    if found:
        return found
    candidate = os.path.join(sysroot, "usr/bin/tegrastats")
    return candidate if os.path.isfile(candidate) else None


def measure_energy(run_once, protocol, args, sysroot):
    """Two tegrastats windows (idle, then inference); ``{"reason"}`` when there is no meter."""
    if args.no_energy:
        return {"reason": "energy measurement skipped (--no-energy)"}
    path = find_tegrastats(args, sysroot)
    if path is None:
        return {"reason": "no tegrastats on this device (not a Jetson, or not on PATH: pass "
                          "--tegrastats PATH)"}
    interval = int(protocol.get("tegrastats_interval_ms", 50))
    budget = float(protocol["energy_budget_s"])
    idle_s = float(protocol["idle_s"])

    def workload():
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < budget:
            run_once()
            n += 1
        return n

    try:
        run_once()  # warm
        idle = None
        if idle_s > 0:
            idle = TegrastatsFeed(path, interval).window(lambda: time.sleep(idle_s))[0]
        window, inferences = TegrastatsFeed(path, interval).window(workload)
    except RunnerError as err:
        return {"reason": "tegrastats: {}".format(err)}
    return {"meter": "tegrastats", "path": path, "interval_ms": interval, "idle": idle,
            "workload": window, "inferences": inferences}


def memory_worker(args):
    """``--memory-worker VARIANT``: load the artifact, run a few passes on a zero input, print
    one marker line with VmHWM/VmSwap (KiB) and each pass's time (ms)."""
    import numpy as np

    bundle, manifest = load_manifest(args.bundle)
    variant = variant_by_id(manifest, args.memory_worker)
    backend = load_backend(bundle, variant, args, probe=False)
    x = np.zeros(manifest["pairs"][0]["shape"], dtype=np.float32)
    times = []
    for _ in range(int(manifest["protocol"]["memory_runs"])):
        t0 = time.perf_counter()
        backend.run(x)
        times.append((time.perf_counter() - t0) * 1e3)
    status = status_kib("/proc/self/status", ("VmHWM", "VmSwap"))
    print(WORKER_MARKER + json.dumps({"vmhwm_kib": status.get("VmHWM"),
                                      "vmswap_kib": status.get("VmSwap"),
                                      "forward_ms": times}))
    sys.stdout.flush()
    return 0


def measure_memory(variant, args):
    """Peak RSS (VmHWM) of a fresh process that only loads and runs the artifact, its swap
    and the system's, sampled every 20 ms (MiB); ``{"reason"}`` when it failed."""
    if args.no_memory:
        return {"reason": "memory measurement skipped (--no-memory)"}
    argv = [sys.executable, os.path.abspath(__file__), "--bundle", args.bundle,
            "--memory-worker", variant["id"]]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    for provider in args.provider or []:
        argv += ["--provider", provider]
    base, total = system_swap_mib()
    peaks = {"swap": None, "system": base}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    done = threading.Event()

    def sample():
        ticks = 0
        while not done.is_set():
            swap = status_kib("/proc/{}/status".format(proc.pid), ("VmSwap",)).get("VmSwap")
            if swap is not None:
                peaks["swap"] = max(peaks["swap"] or 0.0, swap / 1024.0)
            used, _ = system_swap_mib()
            if used is not None:
                peaks["system"] = max(peaks["system"] or 0.0, used)
            ticks += 1
            done.wait(0.02)
        peaks["ticks"] = ticks

    sampler = threading.Thread(target=sample)
    sampler.daemon = True
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    line = [ln for ln in out.splitlines() if ln.startswith(WORKER_MARKER)]
    if proc.returncode != 0 or not line:
        tail = " | ".join(err.strip().splitlines()[-3:]) or "no output"
        how = ("killed by signal {}".format(-proc.returncode) if proc.returncode < 0
               else "exit code {}".format(proc.returncode))
        return {"reason": "memory worker failed ({}: {})".format(how, tail)}
    result = json.loads(line[-1][len(WORKER_MARKER):])
    own = result.get("vmswap_kib")
    swap = [v for v in (peaks["swap"], None if own is None else own / 1024.0) if v is not None]
    return {"peak_rss_mib": None if result.get("vmhwm_kib") is None
            else result["vmhwm_kib"] / 1024.0,
            "swap_peak_mib": max(swap) if swap else None,
            "swap_reason": None if swap else "VmSwap unreadable on this device",
            "system_swap_baseline_mib": base, "system_swap_peak_mib": peaks["system"],
            "swap_total_mib": total, "forward_ms": result.get("forward_ms"),
            "samples": peaks.get("ticks"), "sample_interval_s": 0.02, "wall_s": wall,
            "runs": int(len(result.get("forward_ms") or []))}


# ------------------------------------------------------------------------------ device facts


def device_facts(sysroot, backends):
    """Raw facts of this device (the host interprets them): CPU, memory, OS, Python, numpy,
    Jetson release files, nvpmodel / jetson_clocks output, devfreq clocks, CUDA, TensorRT."""
    import numpy as np

    def at(path):
        return os.path.join(sysroot, path.lstrip("/"))

    facts = {
        "arch": platform.machine(), "os": platform.platform(), "cores": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__,
        "hostname_label": os.environ.get("LOWBENCH_MACHINE"),
        "cpuinfo": read_text(at("/proc/cpuinfo"), 200000),
        "meminfo_kib": status_kib(at("/proc/meminfo"), ("MemTotal", "SwapTotal")),
        "nv_tegra_release": read_text(at("/etc/nv_tegra_release")),
        "device_tree_model": read_text(at("/proc/device-tree/model")),
        "nvpmodel": None, "jetson_clocks": None, "jetpack_dpkg": None,
        "cuda_version_file": (read_text(at("/usr/local/cuda/version.json"))
                              or read_text(at("/usr/local/cuda/version.txt"))),
        "devfreq": {}, "emc_rate_hz": None, "runtimes": backends,
    }
    if facts["nv_tegra_release"] is not None:
        facts["nvpmodel"] = run_command(["nvpmodel", "-q"])
        facts["jetson_clocks"] = run_command(["jetson_clocks", "--show"])
        facts["jetpack_dpkg"] = run_command(["dpkg-query", "--showformat=${Version}", "--show",
                                             "nvidia-jetpack"])
    devfreq = at("/sys/class/devfreq")
    for name in sorted(os.listdir(devfreq)) if os.path.isdir(devfreq) else []:
        entry = {}
        for key in ("cur_freq", "min_freq", "max_freq", "governor"):
            text = read_text(os.path.join(devfreq, name, key))
            if text is not None:
                entry[key] = text.strip()
        facts["devfreq"][name] = entry
    for path in ("/sys/kernel/debug/bpmp/debug/clk/emc/rate", "/sys/kernel/debug/clk/emc/clk_rate"):
        text = read_text(at(path))
        if text is not None and text.strip().isdigit():
            facts["emc_rate_hz"] = int(text.strip())
            break
    try:
        import tensorrt

        facts["tensorrt"] = tensorrt.__version__
    except ImportError as err:
        facts["tensorrt"] = None
        facts["tensorrt_reason"] = str(err)
    return facts


# ------------------------------------------------------------------------------ one variant


def variant_by_id(manifest, vid):
    """The manifest's variant ``vid``."""
    for variant in manifest["variants"]:
        if variant["id"] == vid:
            return variant
    raise RunnerError("no variant {!r} in this bundle; it has: {}".format(
        vid, ", ".join(v["id"] for v in manifest["variants"])))


def run_variant(bundle, manifest, variant, inputs, args, work, say):
    """Quality pass, latency, memory and energy of one variant; its result entry."""
    import numpy as np

    protocol = manifest["protocol"]
    entry = {"id": variant["id"], "status": "ok", "reason": None, "pairs": []}
    t0 = time.perf_counter()
    backend = load_backend(bundle, variant, args)
    entry["load_s"] = time.perf_counter() - t0
    entry["runtime"] = backend.describe()
    entry["artifact_sha256"] = variant["artifact"]["sha256"]
    os.makedirs(os.path.join(work, "outputs", variant["id"]), exist_ok=True)
    accuracy_first = None
    say("{}: quality pass over {} inputs".format(variant["id"], len(inputs)))
    for i, pair in enumerate(manifest["pairs"]):
        x = inputs[i]
        t0 = time.perf_counter()
        y = to_numpy_output(backend.run(x))
        forward_ms = (time.perf_counter() - t0) * 1e3
        h, w = pair["valid_hw"]
        y = y[:, :, :2 * h, :2 * w]
        if not np.isfinite(y).all():
            entry["status"] = "failed"
            entry["reason"] = "{} produced NaN or Inf on pair {}".format(variant["id"],
                                                                        pair["pair"])
            entry["failed_pair"] = pair["pair"]
            return entry
        if accuracy_first is None:
            accuracy_first = y
        t0 = time.perf_counter()
        image = np.ascontiguousarray(y[0].transpose(1, 2, 0))
        image = quantize_8bit(image) if manifest["outputs"] == "uint8" else image.astype(
            np.float16)
        post_ms = (time.perf_counter() - t0) * 1e3
        name = "outputs/{}/{}.npy".format(variant["id"], pair["file_stem"])
        np.save(os.path.join(work, name), image)
        entry["pairs"].append({"pair": pair["pair"], "input_sha256": pair["sha256"],
                               "output": name, "output_sha256": sha256_file(
                                   os.path.join(work, name)),
                               "forward_ms": forward_ms, "postprocess_ms": post_ms})
    x0 = inputs[0]
    last = {}

    def once():
        last["y"] = backend.run(x0)

    say("{}: latency".format(variant["id"]))
    entry["latency"] = measure_latency(once, protocol)
    h, w = manifest["pairs"][0]["valid_hw"]
    timed = to_numpy_output(last["y"])[:, :, :2 * h, :2 * w]
    entry["output_check_max_abs_diff"] = float(np.abs(timed - accuracy_first).max())
    entry["executed"] = backend.executed_ops(x0, work)
    say("{}: energy".format(variant["id"]))
    entry["energy"] = measure_energy(once, protocol, args, args.sysroot)
    say("{}: memory (fresh process)".format(variant["id"]))
    backend = last = None  # the worker loads its own copy; free this one first
    entry["memory"] = measure_memory(variant, args)
    return entry


# ------------------------------------------------------------------------------ the bundle


def load_manifest(bundle):
    """(bundle folder, manifest dict) after checking the manifest is one this runner reads."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, MANIFEST)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        manifest = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as err:
        raise RunnerError("cannot read {}: {}; run inside the bundle folder or pass --bundle "
                          "DIR".format(path, err)) from None
    if manifest.get("schema") != "lowbench.bundle" or manifest.get("runner_version") != \
            RUNNER_VERSION:
        raise RunnerError("{} is not a lowbench bundle of runner version {}; make the bundle "
                          "again with this lowbench".format(path, RUNNER_VERSION))
    manifest["_sha256"] = hashlib.sha256(raw).hexdigest()
    return bundle, manifest


class InputFiles(object):
    """The packed inputs, each checked against its sha256 in the manifest now and read from
    disk when used (a full-frame task does not fit a Nano's memory all at once)."""

    def __init__(self, bundle, manifest):
        self.paths = []
        for pair in manifest["pairs"]:
            path = os.path.join(bundle, pair["input"])
            if not os.path.isfile(path) or sha256_file(path) != pair["sha256"]:
                raise BundleDamaged("{} is missing or does not match manifest.json (sha256); "
                                    "copy the whole bundle folder again".format(pair["input"]))
            self.paths.append(path)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        import numpy as np

        return np.ascontiguousarray(np.load(self.paths[i], allow_pickle=False),
                                    dtype=np.float32)


def write_archive(out, work, result):
    """``result.json`` and the outputs as one tar at ``out`` (temp file + rename)."""
    with open(os.path.join(work, "result.json"), "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
    folder = os.path.dirname(os.path.abspath(out)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".result-", suffix=".tar.tmp", dir=folder)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w") as tar:
            tar.add(os.path.join(work, "result.json"), arcname="result.json")
            for entry in result["variants"]:
                for pair in entry.get("pairs", []):
                    tar.add(os.path.join(work, pair["output"]), arcname=pair["output"])
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def check_options(args):
    """``--provider`` names providers this onnxruntime has and ``--tegrastats`` an executable
    file: one line before anything runs, not a surprise per variant."""
    if args.provider:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RunnerError("--provider needs onnxruntime, which is not installed here") \
                from None
        missing = [p for p in args.provider if p not in ort.get_available_providers()]
        if missing:
            raise RunnerError("--provider {}: this onnxruntime has only {}".format(
                ", ".join(missing), ", ".join(ort.get_available_providers())))
    if args.tegrastats and not (os.path.isfile(args.tegrastats)
                                and os.access(args.tegrastats, os.X_OK)):
        raise RunnerError("--tegrastats {}: no executable file there (on a Jetson: "
                          "/usr/bin/tegrastats)".format(args.tegrastats))


def parse_args(argv):
    """The runner's arguments."""
    p = argparse.ArgumentParser(prog="run.py", description="Measure this lowbench bundle's "
                                "variants on this device; write one result archive.")
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--bundle", default=here, help="the bundle folder (default: this file's)")
    p.add_argument("--out", default=None,
                   help="result archive (default: result.tar in the bundle folder)")
    p.add_argument("--only", action="append", default=None, metavar="VARIANT",
                   help="run only this variant id (repeatable; default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads (default: the CPUs this process may use, set "
                        "explicitly, as lowbench evaluate does)")
    p.add_argument("--provider", action="append", default=None,
                   help="ONNX Runtime execution provider, in order (repeatable; default: "
                        "CPUExecutionProvider; on a Jetson's GPU e.g. --provider "
                        "CUDAExecutionProvider --provider CPUExecutionProvider)")
    p.add_argument("--tegrastats", default=None,
                   help="tegrastats executable (default: on PATH or /usr/bin/tegrastats)")
    p.add_argument("--latency-budget", type=float, default=None, metavar="S",
                   help="cap on the seconds of timed calls per variant (default: the "
                        "manifest's)")
    p.add_argument("--no-energy", action="store_true", help="skip tegrastats")
    p.add_argument("--no-memory", action="store_true", help="skip the memory worker")
    p.add_argument("--sysroot", default="/", help=argparse.SUPPRESS)  # tests: a fake device
    p.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe-load", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise RunnerError("--threads must be >= 1, got {}".format(args.threads))
    if args.threads is None:
        args.threads = default_threads()
    if args.latency_budget is not None and args.latency_budget < 0:
        raise RunnerError("--latency-budget must be >= 0 s, got {}".format(args.latency_budget))
    return args


def main(argv=None):
    """Run every (or each --only) variant; write the archive; 0 ok, 2 on a bad bundle or
    argument, 1 when a variant failed (its entry says why; the archive is still written)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.memory_worker:
            return memory_worker(args)
        if args.probe_load:
            bundle, manifest = load_manifest(args.bundle)
            load_backend(bundle, variant_by_id(manifest, args.probe_load), args, probe=False)
            return 0
        bundle, manifest = load_manifest(args.bundle)
        args.bundle = bundle
        out = os.path.abspath(args.out or os.path.join(bundle, "result.tar"))
        if not os.path.isdir(os.path.dirname(out)):
            raise RunnerError("--out {}: the folder {} does not exist".format(
                out, os.path.dirname(out)))
        only = list(dict.fromkeys(args.only or []))  # a repeated --only runs once
        variants = [variant_by_id(manifest, vid) for vid in only] if only \
            else manifest["variants"]
        if args.latency_budget is not None:
            manifest["protocol"]["budget_s"] = args.latency_budget
        for variant in variants:
            check_artifact(bundle, variant)
        inputs = InputFiles(bundle, manifest)
        check_options(args)
    except RunnerError as err:
        print("run.py: error: {}".format(err), file=sys.stderr)
        return 2

    def say(message):
        print("run.py: {}".format(message), file=sys.stderr)
        sys.stderr.flush()

    result = {"schema": RESULT_SCHEMA, "runner_version": RUNNER_VERSION,
              "bundle_id": manifest["bundle_id"], "manifest_sha256": manifest["_sha256"],
              "started_utc": utc_now(), "argv": ["run.py"] + list(sys.argv[1:] if argv is None
                                                                  else argv),
              "protocol_used": manifest["protocol"], "variants": []}
    work = tempfile.mkdtemp(prefix="lowbench-run-")
    failed = False
    try:
        backends = {}
        for variant in variants:
            try:
                entry = run_variant(bundle, manifest, variant, inputs, args, work, say)
            except BundleDamaged:
                raise
            except RunnerError as err:
                entry = {"id": variant["id"], "status": "unsupported", "reason": str(err),
                         "pairs": []}
            except Exception as err:  # the runtime failed mid-run (out of memory, a kernel
                # error): this variant failed, the others still run and the archive is written
                first = (str(err).strip().splitlines() or [""])[0][:300]
                entry = {"id": variant["id"], "status": "failed", "pairs": [],
                         "reason": "{}: {}".format(type(err).__name__, first)}
            failed = failed or entry["status"] != "ok"
            if entry.get("runtime"):
                backends[entry["runtime"]["name"]] = entry["runtime"]["version"]
            result["variants"].append(entry)
            say("{}: {}{}".format(variant["id"], entry["status"],
                                  " ({})".format(entry["reason"]) if entry["reason"] else ""))
        result["device"] = device_facts(args.sysroot, backends)
        result["finished_utc"] = utc_now()
        try:
            write_archive(out, work, result)
        except OSError as err:
            print("run.py: error: cannot write {}: {}".format(out, err), file=sys.stderr)
            return 2
    except BundleDamaged as err:
        print("run.py: error: {}".format(err), file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say("wrote {}; copy it to the host and run: lowbench ingest {}".format(
        out, os.path.basename(out)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
