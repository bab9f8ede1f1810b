"""Arguments of `lowbench evaluate` (kept apart so `--help` stays fast to import)."""

from __future__ import annotations

import argparse


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    """Add every `lowbench evaluate` option to ``p``."""
    from lowbench.argtypes import nonnegative_float, positive_int
    from lowbench.models.registry import parse_model, parse_quant

    p.add_argument("--model", required=True, type=parse_model,
                   help="model name (see `lowbench list models`)")
    p.add_argument("--quant", default="fp32", type=parse_quant,
                   help="variant (see `lowbench list quants`)")
    p.add_argument("--task", default="synth",
                   help="task name (see `lowbench list tasks`) or a task file, my_task.yaml "
                        "(docs/tasks.md)")
    p.add_argument("--data-root", default=None, help="folder holding the task's raw files")
    p.add_argument("--checkpoint", default=None,
                   help="safetensors checkpoint (default: the shipped reference weights)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the network runs")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="evaluate only the first N pairs (default: all)")
    p.add_argument("--out", default=None,
                   help="folder for the result record and its gallery PNGs (default: the user "
                        "results store, $LOWBENCH_RESULTS or ~/.local/share/lowbench/results)")
    p.add_argument("--publish", action="store_true",
                   help="write into the checkout's tracked results/ (the published records) "
                        "instead of the user results store")
    p.add_argument("--json", action="store_true", help="print the record as the only stdout")
    p.add_argument("--tegrastats", default=None,
                   help="tegrastats executable (Jetson energy; default: none)")
    p.add_argument("--latency-budget", type=nonnegative_float, default=2.0,
                   help="seconds of timed forward passes (at least --latency-min-runs)")
    p.add_argument("--latency-min-runs", type=positive_int, default=10,
                   help="fewest timed forward passes, whatever the budget")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the isolated worker that measures peak RSS and swap")
    p.add_argument("--no-energy", action="store_true", help="skip the energy measurement")
