"""How much one network's latency drifts against the others between rounds on this machine: the
noise a comparison of two separately measured runs must absorb (docs/statistics.md).

    python benchmarks/drift_probe.py [--size 32] [--slices 8] [--runs 8] [--rounds 10]

Four real lowbench networks (random weights; 1x4xSIZExSIZE, one thread) are timed in rounds; in
each round every network gets ``--slices`` interleaved slices of ``--runs`` timed calls (the
harness's loop). Printed per network: its mean median (ms), the sd of the round-to-round log
ratio of its median (raw, and net of the common shift: the median over the networks), and the
largest net step, in %. Figures are this machine's, this run's.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from lowbench.environment import machine_info, machine_label
from lowbench.measure.latency import measure_latency
from lowbench.models.registry import build


def main() -> int:
    """Print the drift of each network's median between rounds (exit 0)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.rand(1, 4, args.size, args.size)
    names = ("sid", "light", "lighter", "fire")
    nets = {n: build(n).eval() for n in names}

    def forward(net: torch.nn.Module):
        def call() -> None:
            with torch.inference_mode():
                net(x)
        return call

    calls = {n: forward(m) for n, m in nets.items()}
    t0 = time.perf_counter()
    medians = {n: [] for n in names}
    for _ in range(args.rounds):
        samples: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.slices):
            for n, call in calls.items():
                samples[n] += measure_latency(call, warmup=1, min_runs=args.runs, budget_s=0.0,
                                              target_rel=None)["samples_ms"]
        for n in names:
            medians[n].append(float(np.median(samples[n])))
    m = np.array([medians[n] for n in names])
    steps = np.log(m[:, 1:] / m[:, :-1])
    net = steps - np.median(steps, axis=0)
    print(f"# {machine_label(machine_info())}; {args.rounds} rounds of {args.slices} x "
          f"{args.runs} calls per network, {time.perf_counter() - t0:.0f} s")
    for i, n in enumerate(names):
        print(f"{n:8s} median {m[i].mean():7.2f} ms  round-to-round sd raw "
              f"{steps[i].std() * 100:4.1f}%  net of the shift {net[i].std() * 100:4.1f}%  "
              f"largest net step {np.abs(net[i]).max() * 100:4.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
