"""Accuracy of lowbench's latency harness (run: ``python benchmarks/harness_accuracy.py``).

Two checks, measured in one run on this machine:

(a) agreement with ``torch.utils.benchmark.Timer.blocked_autorange``: ratio of our median (ms) to
    torch's median (ms) for the same small conv net on the same 1x4x128x128 input, with a fixed
    thread count. The two measurements alternate over several rounds (the order flips every
    round) and the median of the per-round ratios is reported. Target: ratio in [0.95, 1.05].
(b) harness overhead: our median (ms) for a calibrated 10 ms perf_counter busy-wait, compared with
    the known 10 ms and with a tight raw perf_counter_ns loop around the same spin. Target: the
    overhead is under 1 % of 10 ms.

Prints the ratios and PASS/FAIL per target; exits 0 unless ``--strict`` and a target failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from torch import nn
from torch.utils.benchmark import Timer

from lowbench.measure.latency import measure_latency, set_threads, summarize_ns

SPIN_S = 0.010


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_line() -> str:
    """One line describing the machine and software."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return (
        f"machine: {cpu_model()} | processor={platform.processor() or '?'} | "
        f"cores: {os.cpu_count()} logical, {usable} usable | {platform.platform()} | "
        f"python {platform.python_version()} | torch {torch.__version__}"
    )


def small_convnet() -> nn.Module:
    """A small SID-like conv stack: 4 -> 32 -> 32 -> 32 -> 12 channels, 3x3 convs."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(4, 32, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 32, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 32, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 12, 1),
    ).eval()


def spin(seconds: float = SPIN_S) -> None:
    """Busy-wait for ``seconds`` (s) on time.perf_counter."""
    clock = time.perf_counter
    end = clock() + seconds
    while clock() < end:
        pass


def raw_loop_median_ms(fn, n: int) -> float:
    """Median (ms) of ``n`` calls, timed by the tightest possible perf_counter_ns loop."""
    clock = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return summarize_ns(out)["median_ms"]


def check_vs_torch(rounds: int, budget_s: float, threads: int) -> tuple[float, list[float], dict]:
    """Median over rounds of (our median / torch Timer median) for the conv net; plus details."""
    net = small_convnet()
    x = torch.randn(1, 4, 128, 128)

    def forward() -> None:
        net(x)

    timer = Timer(stmt="net(x)", globals={"net": net, "x": x}, num_threads=threads)
    ratios: list[float] = []
    ours_ms: list[float] = []
    theirs_ms: list[float] = []
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            if side == 0:
                ours_ms.append(measure_latency(forward, warmup=3, budget_s=budget_s)["median_ms"])
            else:
                theirs_ms.append(timer.blocked_autorange(min_run_time=budget_s).median * 1e3)
        ratios.append(ours_ms[-1] / theirs_ms[-1])
    detail = {"ours_ms": ours_ms, "torch_ms": theirs_ms}
    return statistics.median(ratios), ratios, detail


def check_overhead(rounds: int, n: int) -> tuple[float, float, float]:
    """(our median ms, raw-loop median ms, empty-call overhead us) for the 10 ms spin."""
    ours: list[float] = []
    raw: list[float] = []
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            if side == 0:
                ours.append(
                    measure_latency(spin, warmup=1, min_runs=n, budget_s=0.0, max_runs=n)[
                        "median_ms"
                    ]
                )
            else:
                raw.append(raw_loop_median_ms(spin, n))
    empty = measure_latency(lambda: None, warmup=100, min_runs=20000, budget_s=0.0,
                            max_runs=20000)
    return statistics.median(ours), statistics.median(raw), empty["median_ms"] * 1e3


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    """Run both checks, print ratios and PASS/FAIL; return the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    ap.add_argument("--budget-s", type=float, default=0.5,
                    help="seconds per measurement per round (default 0.5 s)")
    ap.add_argument("--spin-runs", type=int, default=30, help="10 ms spins per side per round")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target fails")
    args = ap.parse_args(argv)

    threads = set_threads(args.threads)
    torch.set_grad_enabled(False)
    print(machine_line())
    print(f"torch threads: {threads}; rounds: {args.rounds}; budget per side per round: "
          f"{args.budget_s} s")

    ratio, ratios, detail = check_vs_torch(args.rounds, args.budget_s, threads)
    ok_a = 0.95 <= ratio <= 1.05
    print("\n(a) conv net 1x4x128x128, ours / torch.utils.benchmark.Timer.blocked_autorange")
    print(f"    our medians   (ms): {', '.join(f'{v:.3f}' for v in detail['ours_ms'])}")
    print(f"    torch medians (ms): {', '.join(f'{v:.3f}' for v in detail['torch_ms'])}")
    print(f"    per-round ratios: {', '.join(f'{v:.4f}' for v in ratios)}")
    print(f"    median ratio: {ratio:.4f}  (target [0.95, 1.05])  {verdict(ok_a)}")

    ours_ms, raw_ms, empty_us = check_overhead(args.rounds, args.spin_runs)
    over_nominal = (ours_ms - SPIN_S * 1e3) / (SPIN_S * 1e3)
    over_raw = (ours_ms - raw_ms) / (SPIN_S * 1e3)
    ok_b = abs(over_nominal) < 0.01 and abs(over_raw) < 0.01
    print(f"\n(b) harness overhead on a {SPIN_S * 1e3:.0f} ms perf_counter busy-wait")
    print(f"    our median: {ours_ms:.4f} ms; raw loop median: {raw_ms:.4f} ms")
    print(f"    ours / 10 ms = {ours_ms / (SPIN_S * 1e3):.5f} (overhead {over_nominal:+.4%}); "
          f"ours / raw = {ours_ms / raw_ms:.5f} (overhead {over_raw:+.4%})")
    print(f"    empty-call median: {empty_us:.3f} us per timed call")
    print(f"    target |overhead| < 1 % of 10 ms  {verdict(ok_b)}")

    failed = not (ok_a and ok_b)
    print(f"\noverall: {'FAIL' if failed else 'PASS'}")
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
