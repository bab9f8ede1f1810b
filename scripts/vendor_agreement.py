"""Checks lowbench's runtime latency against the vendors' own tools on the SAME deployed file.

    python scripts/vendor_agreement.py [--models sid] [--quants fp32,bf16,static] [--threads 2]
        [--rounds 4] [--seconds 3] [--min-runs 3] [--calibration-crops N] [--no-ort] [--quick]
        [--json FILE]

OpenVINO: each quant is deployed through ``lowbench.runtimes.registry.deploy("openvino", ...)``;
the deployed module's ``worker`` names the IR file, the input shape and the compile config.
lowbench's figure is ``lowbench.measure.latency.measure_latency`` of the module's forward
(float32 torch 1 x 4 x 256 x 256 in, as the harness calls it); the vendor's is OpenVINO's
``benchmark_app -m FILE -d CPU -shape [..] -hint latency -load_config CONFIG -infer_precision
f32|bf16 -t SECONDS -api sync -nireq 1`` on that file (CONFIG: lowbench's compile config,
threads included: benchmark_app refuses ``-nthreads`` unless ``-hint none``); its "Median"
latency is the runtime's own per-request latency, no Python around it. They alternate for
``--rounds`` rounds (lowbench first in even rounds, benchmark_app first in odd ones); the ratio
is the median of the per-round ratios lowbench / benchmark_app, PASS when within 10 %. The
same rounds also time a bare infer request of the same file and config with 0, 1 (infer's
default, what lowbench's ``openvino_runner`` returns) and 2 copies of the output, so a gap is
attributed to lowbench's wrapper (``RuntimeModule`` / ``loaders.openvino_runner``) or to the
run itself; a short cProfile of the module's forward and the compile properties where
benchmark_app's compiled model differs from lowbench's are printed too.

ONNX Runtime (unless ``--no-ort``): static int8 deployed by lowbench vs a plain
``onnxruntime.InferenceSession`` of the same file (default options, ``--threads`` intra-op
threads) timed by the same ``measure_latency``, interleaved. TensorRT: compared only where
``trtexec`` is on PATH (and lowbench's TensorRT runtime builds engines); else said so.
``--quick``: 2 rounds of 1 s, 1 timed run minimum.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.runtime_speed import machine_header  # noqa: E402
from lowbench.measure.latency import measure_latency, set_threads  # noqa: E402
from lowbench.quant.calibrate import DEFAULT_CALIBRATION  # noqa: E402
from lowbench.runtimes.base import DeployRequest, RuntimeUnavailable  # noqa: E402
from lowbench.runtimes.loaders import INPUT, openvino_compile  # noqa: E402
from lowbench.runtimes.registry import deploy, why_not  # noqa: E402

#: Largest |lowbench / vendor - 1| that passes.
AGREEMENT = 0.10
FULL = {"rounds": 4, "seconds": 3.0, "min_runs": 3}
QUICK = {"rounds": 2, "seconds": 1.0, "min_runs": 1}
MEDIAN_RE = re.compile(r"Median:\s+([0-9.]+)\s*ms")
PROPERTY_RE = re.compile(r"^\[ INFO \]\s{3,}([A-Z_]+): (.*)$")


def benchmark_app_command() -> list[str]:
    """How to start OpenVINO's benchmark_app: the console script, else its module."""
    found = shutil.which("benchmark_app")
    return [found] if found else [sys.executable, "-m", "openvino.tools.benchmark.main"]


def run_benchmark_app(worker: dict[str, Any], threads: int, seconds: float
                      ) -> tuple[float, str]:
    """benchmark_app on the deployed IR of ``worker`` with its shape and precision hint:
    (median ms, full output). RuntimeError with the tail of its output when it fails."""
    shape = "[" + ",".join(str(d) for d in worker["shape"]) + "]"
    config = dict(worker["config"])
    config.setdefault("INFERENCE_NUM_THREADS", threads)
    with tempfile.TemporaryDirectory(prefix="lowbench-vendor-") as tmp:
        # benchmark_app refuses -nthreads unless -hint none; the thread count (and the rest
        # of lowbench's compile config) goes in through -load_config instead
        config_file = Path(tmp) / "config.json"
        config_file.write_text(json.dumps({"CPU": {k: str(v) for k, v in config.items()}}))
        cmd = [*benchmark_app_command(), "-m", worker["file"], "-d", "CPU", "-shape", shape,
               "-hint", "latency", "-load_config", str(config_file),
               "-infer_precision", config["INFERENCE_PRECISION_HINT"], "-t", f"{seconds:g}",
               "-api", "sync", "-nireq", "1"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300 + 4 * seconds,
                              check=False)
    out = done.stdout + done.stderr
    found = MEDIAN_RE.search(out)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"benchmark_app failed (rc {done.returncode}): {out[-800:]}")
    return float(found.group(1)), out


def app_properties(output: str) -> dict[str, str]:
    """The compiled model's properties as benchmark_app logs them (step 8, "Model:")."""
    props: dict[str, str] = {}
    inside = False
    for line in output.splitlines():
        if line.startswith("[ INFO ] Model:"):
            inside = True
            continue
        if inside:
            m = PROPERTY_RE.match(line)
            if m is None:
                if line.startswith("[Step") or not line.startswith("[ INFO ]"):
                    break
                continue
            props[m.group(1)] = m.group(2).strip()
    return props


def property_diff(compiled: Any, app: dict[str, str]) -> list[str]:
    """``KEY: lowbench value vs benchmark_app value`` for every property that differs."""
    out = []
    for key, theirs in app.items():
        try:
            ours = str(compiled.get_property(key))
        except Exception:  # noqa: BLE001 - a key the Python API cannot read back
            continue
        if ours != theirs:
            out.append(f"{key}: lowbench {ours} vs benchmark_app {theirs}")
    return out


def profile_forward(module: Any, x: torch.Tensor, calls: int = 3, top: int = 8) -> str:
    """cProfile of ``calls`` forwards of ``module`` on ``x``: the top functions by own time."""
    prof = cProfile.Profile()
    with torch.inference_mode():
        prof.enable()
        for _ in range(calls):
            module(x)
        prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return "\n".join("    " + ln for ln in lines[start:])


def wrapper_cost_us() -> dict[str, float]:
    """Median µs per call of lowbench's RuntimeModule around a runner that returns a ready
    output array (the wrapper alone: shape lookup, pad check, torch <-> numpy, crop), and of
    one copy of a 1 x 3 x 512 x 512 float32 output (what loaders.openvino_runner's ``.copy()``
    added on top of infer's own copy until 5d2fea1, which dropped it)."""
    from lowbench.runtimes.base import RuntimeModule

    out = np.zeros((1, 3, 512, 512), np.float32)
    module = RuntimeModule(lambda _shape: (lambda _x: out))
    x = torch.rand(1, 4, 256, 256)
    module.prepare(tuple(x.shape))

    def forward() -> Any:
        with torch.inference_mode():
            return module(x)

    def us(fn: Any) -> float:
        return measure_latency(fn, warmup=100, min_runs=1000, budget_s=0.3)["median_ms"] * 1e3

    return {"runtime_module_us": us(forward), "output_copy_us": us(out.copy)}


def time_fn(fn: Any, args: argparse.Namespace, budget_s: float | None = None) -> float:
    """Median ms of ``fn`` by the harness's measure_latency (1 warm-up call)."""
    stats = measure_latency(fn, warmup=1, min_runs=args.min_runs,
                            budget_s=args.seconds if budget_s is None else budget_s)
    return float(stats["median_ms"])


def verdict(ratio: float) -> str:
    return "PASS" if abs(ratio - 1.0) <= AGREEMENT else "FAIL"


def openvino_case(model: str, quant: str, args: argparse.Namespace, calibration: Any
                  ) -> dict[str, Any] | str:
    """lowbench vs benchmark_app (and the bare request) on one deployed IR."""
    reason = why_not("openvino", quant)
    if reason:
        return reason
    try:
        variant = deploy("openvino", DeployRequest(model, quant, threads=args.threads,
                                                   input_hw=(256, 256),
                                                   calibration=calibration))
    except RuntimeUnavailable as err:
        return f"refused when deployed: {err}"
    module = variant.module
    worker = module.worker
    rt = variant.info["runtime"]
    x = torch.rand(1, 4, 256, 256, generator=torch.Generator().manual_seed(0))
    x_np = np.ascontiguousarray(x.numpy())
    # the same file, shape and config through the same loader lowbench uses, bare request
    compiled = openvino_compile(worker["file"], tuple(worker["shape"]), worker["config"])
    request = compiled.create_infer_request()

    # lowbench's runner is infer(share_inputs=True)[0].copy(): infer's default
    # share_outputs=False already copies the output into a new array, .copy() copies it again
    def infer_2copies() -> Any:
        return request.infer({0: x_np}, share_inputs=True)[0].copy()

    def infer_1copy() -> Any:
        return request.infer({0: x_np}, share_inputs=True)[0]

    def infer_0copy() -> Any:
        return request.infer({0: x_np}, share_inputs=True, share_outputs=True)[0]

    def lowbench_forward() -> Any:
        with torch.inference_mode():
            return module(x)

    out = infer_1copy()
    copy_ms = time_fn(out.copy, args, 0.2)  # the cost of one copy of the output array
    bare = {"infer_2copies": infer_2copies, "infer_1copy": infer_1copy,
            "infer_0copy": infer_0copy}
    rows: dict[str, list[float]] = {"lowbench": [], "benchmark_app": [],
                                    **{k: [] for k in bare}}
    app_out = ""
    for r in range(args.rounds):
        # ABBA: who goes first alternates, so a position effect (the previous workload's
        # threads still spinning on a 2-core box) hits both sides alike
        for side in (("lowbench", "app") if r % 2 == 0 else ("app", "lowbench")):
            if side == "lowbench":
                rows["lowbench"].append(time_fn(lowbench_forward, args))
            else:
                app_ms, app_out = run_benchmark_app(worker, args.threads, args.seconds)
                rows["benchmark_app"].append(app_ms)
        for key, fn in (bare.items() if r % 2 == 0 else reversed(bare.items())):
            rows[key].append(time_fn(fn, args, args.seconds / 2))
    ratios = [a / b for a, b in zip(rows["lowbench"], rows["benchmark_app"], strict=True)]
    wrapper = [a / b for a, b in zip(rows["lowbench"], rows["infer_0copy"], strict=True)]
    return {"model": model, "quant": quant, "precision": rt["precision"],
            "file": worker["file"], "shape": worker["shape"], "config": worker["config"],
            "ms": {k: statistics.median(v) for k, v in rows.items()}, "rounds_ms": rows,
            "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
            "wrapper_ratio": statistics.median(wrapper), "output_copy_ms": copy_ms,
            "output_mib": out.nbytes / 2**20,
            "property_diff": property_diff(compiled, app_properties(app_out)),
            "profile": profile_forward(module, x) if args.profile else "",
            "verdict": verdict(statistics.median(ratios))}


def ort_case(model: str, args: argparse.Namespace, calibration: Any) -> dict[str, Any] | str:
    """lowbench's ONNX Runtime static int8 vs a plain InferenceSession of the same file."""
    import onnxruntime as ort

    reason = why_not("onnxruntime", "static")
    if reason:
        return reason
    try:
        variant = deploy("onnxruntime", DeployRequest(model, "static", threads=args.threads,
                                                      input_hw=(256, 256),
                                                      calibration=calibration))
    except RuntimeUnavailable as err:
        return f"refused when deployed: {err}"
    module = variant.module
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    plain = ort.InferenceSession(module.worker["file"], so, providers=["CPUExecutionProvider"])
    x = torch.rand(1, 4, 256, 256, generator=torch.Generator().manual_seed(0))
    x_np = np.ascontiguousarray(x.numpy())

    def lowbench_forward() -> Any:
        with torch.inference_mode():
            return module(x)

    rows: dict[str, list[float]] = {"lowbench": [], "plain_session": []}
    def plain_run() -> Any:
        return plain.run(None, {INPUT: x_np})

    for r in range(args.rounds):
        order = [("lowbench", lowbench_forward), ("plain_session", plain_run)]
        for key, fn in (order if r % 2 == 0 else order[::-1]):  # ABBA, as above
            rows[key].append(time_fn(fn, args))
    ratios = [a / b for a, b in zip(rows["lowbench"], rows["plain_session"], strict=True)]
    return {"model": model, "quant": "static", "precision": variant.info["runtime"]["precision"],
            "file": module.worker["file"], "ms": {k: statistics.median(v) for k, v in
                                                  rows.items()},
            "rounds_ms": rows, "ratio": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "verdict": verdict(statistics.median(ratios))}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sid")
    ap.add_argument("--quants", default="fp32,bf16,static")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=None, help=f"default {FULL['rounds']}")
    ap.add_argument("--seconds", type=float, default=None,
                    help=f"timed seconds per side per round (default {FULL['seconds']})")
    ap.add_argument("--min-runs", type=int, default=None,
                    help=f"lowbench timed runs per round at least (default {FULL['min_runs']})")
    ap.add_argument("--calibration-crops", type=int, default=None)
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime comparison")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons and print both figures, the ratio and PASS/FAIL for each."""
    args = parse_args(argv)
    started = time.perf_counter()
    threads = set_threads(args.threads)
    calibration = (DEFAULT_CALIBRATION if args.calibration_crops is None
                   else replace(DEFAULT_CALIBRATION, crops=args.calibration_crops))
    print(machine_header(threads))
    print(f"benchmark_app: {' '.join(benchmark_app_command())}; {args.rounds} rounds, "
          f"{args.seconds:g} s per side per round; agreement goal: lowbench within "
          f"{AGREEMENT:.0%} of the vendor tool (median of per-round ratios)", flush=True)
    results: dict[str, Any] = {"openvino": [], "onnxruntime": [], "skipped": []}
    for model in args.models.split(","):
        for quant in args.quants.split(","):
            got = openvino_case(model, quant, args, calibration)
            if isinstance(got, str):
                results["skipped"].append(f"{model} openvino {quant}: {got}")
                print(f"openvino {model} {quant}: skipped: {got}")
                continue
            results["openvino"].append(got)
            ms = got["ms"]
            print(f"openvino {model} {quant} ({got['precision']}): lowbench "
                  f"{ms['lowbench']:.1f} ms, benchmark_app {ms['benchmark_app']:.1f} ms, "
                  f"ratio {got['ratio']:.3f} (range {got['ratio_range'][0]:.3f}-"
                  f"{got['ratio_range'][1]:.3f}) {got['verdict']}", flush=True)
            print(f"    same file+config, bare infer request: no output copy "
                  f"{ms['infer_0copy']:.1f} ms, 1 copy (infer's default) "
                  f"{ms['infer_1copy']:.1f} ms, 2 copies "
                  f"{ms['infer_2copies']:.1f} ms; lowbench module / no-copy infer "
                  f"{got['wrapper_ratio']:.3f}; one copy of the {got['output_mib']:.1f} MiB "
                  f"output alone: {got['output_copy_ms']:.2f} ms")
            print("    compile properties benchmark_app differs in: "
                  + ("; ".join(got["property_diff"]) or "none"))
            print(f"    file {got['file']} shape {got['shape']} config {got['config']}")
            if got["profile"]:
                print("    cProfile of lowbench's forward (3 calls, by own time):\n"
                      + got["profile"])
        if not args.no_ort:
            got = ort_case(model, args, calibration)
            if isinstance(got, str):
                results["skipped"].append(f"{model} onnxruntime static: {got}")
                print(f"onnxruntime {model} static: skipped: {got}")
            else:
                results["onnxruntime"].append(got)
                ms = got["ms"]
                print(f"onnxruntime {model} static ({got['precision']}): lowbench "
                      f"{ms['lowbench']:.1f} ms, plain InferenceSession "
                      f"{ms['plain_session']:.1f} ms, ratio {got['ratio']:.3f} (range "
                      f"{got['ratio_range'][0]:.3f}-{got['ratio_range'][1]:.3f}) "
                      f"{got['verdict']}", flush=True)
    cost = wrapper_cost_us()
    results["wrapper_cost_us"] = cost
    print(f"lowbench wrapper alone (RuntimeModule around a runner returning a ready array): "
          f"{cost['runtime_module_us']:.1f} us per call; one extra copy of the 3 MiB output "
          f"(what openvino_runner's own .copy() cost until 5d2fea1): "
          f"{cost['output_copy_us']:.1f} us")
    trtexec = shutil.which("trtexec")
    if trtexec is None:
        print("trtexec: not present")
    else:
        print(f"trtexec: present at {trtexec}, but lowbench's tensorrt runtime cannot deploy "
              f"here ({why_not('tensorrt', 'fp32', 'cuda')}): no comparison")
    cases = results["openvino"] + results["onnxruntime"]
    passed = sum(c["verdict"] == "PASS" for c in cases)
    print(f"agreement: {passed}/{len(cases)} comparisons within {AGREEMENT:.0%}; total "
          f"{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_header(threads), **results},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
