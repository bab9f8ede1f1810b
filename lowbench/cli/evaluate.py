"""`lowbench evaluate`: run the harness on one variant, print a table, write one record."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lowbench.cli.argtypes import (
    add_grid_arguments,
    grid_from_args,
    memory_size,
    nonnegative_float,
    nonnegative_int,
    positive_int,
)
from lowbench.errors import LowbenchError
from lowbench.measure.latency import (
    CONVERGE_MIN_RUNS,
    DEFAULT_BUDGET_S,
    DEFAULT_MIN_RUNS,
    DEFAULT_TARGET_REL,
)
from lowbench.models.registry import parse_model, parse_quant
from lowbench.runtimes.registry import parse_runtime


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add every `lowbench evaluate` option to ``p``."""
    p.add_argument("--model", required=True, type=parse_model,
                   help="model name (see `lowbench list models`)")
    p.add_argument("--quant", default="fp32", type=parse_quant,
                   help="variant (see `lowbench list quants`; int8 = static)")
    p.add_argument("--runtime", default="torch", type=parse_runtime,
                   help="where the variant runs (see `lowbench list runtimes`; default: eager "
                        "torch)")
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
    p.add_argument("--latency-budget", type=nonnegative_float, default=DEFAULT_BUDGET_S,
                   help=f"cap on the seconds of timed forward passes (default "
                        f"{DEFAULT_BUDGET_S}; the loop stops earlier once --latency-target is "
                        "met)")
    p.add_argument("--latency-min-runs", type=positive_int, default=DEFAULT_MIN_RUNS,
                   help="fewest timed forward passes, whatever the budget")
    p.add_argument("--latency-target", type=nonnegative_float, default=DEFAULT_TARGET_REL,
                   metavar="FRACTION",
                   help="stop timing once the median's 95%% interval is within +/- FRACTION "
                        f"of it, after >= {CONVERGE_MIN_RUNS} runs (default "
                        f"{DEFAULT_TARGET_REL}; 0: always run the whole budget)")
    p.add_argument("--tile", type=positive_int, default=None, metavar="N",
                   help="run the network tile by tile: tiles of N x N packed pixels (a multiple "
                        "of 16; packed = half the raw size), blended across --overlap "
                        "(default: the whole frame at once)")
    p.add_argument("--overlap", type=nonnegative_int, default=None, metavar="M",
                   help="packed pixels two neighbouring tiles share, blended by linear ramps "
                        "(a multiple of 16, smaller than --tile; default 32 with --tile)")
    p.add_argument("--memory-limit", type=memory_size, default=None, metavar="SIZE",
                   help="run the memory worker under this much RAM, e.g. 2GiB (a cgroup; swap "
                        "stays on): what the variant does on a small board")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the isolated worker that measures peak RSS and swap")
    p.add_argument("--no-energy", action="store_true", help="skip the energy measurement")
    add_grid_arguments(p)


def config_from_args(args: argparse.Namespace):  # -> EvalConfig (import kept lazy)
    """The harness configuration of parsed `lowbench evaluate` arguments (the grid's intensity
    included: :func:`lowbench.cli.argtypes.grid_from_args`)."""
    from lowbench.harness.session import EvalConfig

    # ranges of --threads, --limit and the latency options are checked by the parser
    if args.tegrastats is not None:
        from lowbench.energy.select import check_tegrastats_path

        check_tegrastats_path(args.tegrastats)
    overlap = frame_options(args)
    return EvalConfig(
        tile=args.tile, overlap=overlap, memory_limit=args.memory_limit,
        grid=grid_from_args(args),
        model=args.model, quant=args.quant, runtime=args.runtime, task=args.task,
        data_root=args.data_root, checkpoint=args.checkpoint, device=args.device,
        threads=args.threads, limit=args.limit,
        tegrastats=args.tegrastats, latency_budget_s=args.latency_budget,
        latency_min_runs=args.latency_min_runs,
        latency_target_rel=args.latency_target or None, memory=not args.no_memory,
        energy=not args.no_energy, command=["lowbench", *sys.argv[1:]])


def frame_options(args: argparse.Namespace) -> int:
    """Check ``--tile``, ``--overlap`` and ``--memory-limit`` together (no torch imported:
    a bad value answers at once); the overlap to use (packed px: 0 untiled, default 32)."""
    if args.overlap is not None and args.tile is None:
        raise LowbenchError(f"--overlap {args.overlap} needs --tile N (the tile side, packed "
                            "pixels)")
    if args.memory_limit is not None and args.no_memory:
        raise LowbenchError("--memory-limit limits the memory worker, which --no-memory skips; "
                            "drop one of them")
    if args.tile is None:
        return 0
    if args.model == "libraw":
        raise LowbenchError("the LibRaw baseline is not a network: it is not tiled; drop "
                            "--tile or pick a learned model")
    from lowbench.tiling import check_tiling

    overlap = min(32, args.tile - 16) if args.overlap is None else args.overlap
    check_tiling(args.tile, overlap)
    return overlap


def check_sources(args: argparse.Namespace) -> None:
    """Check ``--tegrastats``, ``--task`` and ``--data-root`` in the order the harness does,
    before torch is imported: a missing file or folder answers in a second, not after the
    import (the harness checks them again, with the same messages)."""
    from lowbench.tasks import get_task

    if args.tegrastats is not None:
        from lowbench.energy.select import check_tegrastats_path

        check_tegrastats_path(args.tegrastats)
    get_task(args.task).resolve_root(args.data_root)


def out_folder(args: argparse.Namespace) -> Path:
    """Where the record and gallery PNGs go: ``--out``, the checkout's ``results/`` with
    ``--publish``, else the user results store (:func:`lowbench.paths.results_store`)."""
    from lowbench.paths import published_results_dir, results_store

    if args.publish and args.out is not None:
        raise LowbenchError("--publish and --out both choose where the record goes; pass one")
    if args.out is not None:
        return Path(args.out)
    return published_results_dir() if args.publish else results_store()


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the record atomically into :func:`out_folder` (the user results store
    unless ``--out`` or ``--publish``), print a table (or ``--json``).

    Exit code 0 for status ok/unsupported, 2 when the variant failed (NaN/Inf output)."""
    if args.model == "libraw" and args.checkpoint is not None:
        raise LowbenchError(f"libraw has no weights, so --checkpoint {args.checkpoint} would be "
                            "ignored; drop --checkpoint or pick a learned model")
    frame_options(args)  # before torch is imported, like --publish: bad values answer at once
    grid_from_args(args)  # --grid-intensity / --grid-region: the same
    check_sources(args)
    from lowbench.fsutil import check_output_folder

    out = check_output_folder(out_folder(args))  # a folder it cannot write: before torch too
    from tabulate import tabulate

    from lowbench.harness.evaluate import evaluate, summary_rows
    from lowbench.progress import Progress
    from lowbench.results.records import write_record

    cfg = config_from_args(args)
    t0 = time.perf_counter()

    # on stderr, terminal or not (CI logs, nohup): a tqdm bar on a TTY, else a line every few s
    label = f"{cfg.model}/{cfg.quant}" + (f"/{cfg.runtime}" if cfg.runtime != "torch" else "")
    reporter = Progress(f"evaluate {label}")

    def progress(pairs):
        return reporter.iterate(pairs, "pairs")

    def status(msg: str) -> None:
        reporter.stage(msg)

    with reporter:
        record = evaluate(cfg, results_dir=out, progress=progress, status=status)
    path = write_record(record, out)
    if args.json:
        sys.stdout.write(json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
    else:
        title = (f"{label.replace('/', ' / ')} on {record['task']['name']} "
                 f"({record['task']['pairs_evaluated']} pairs, "
                 f"{record['environment']['machine_label']})")
        print(title)
        print(tabulate(summary_rows(record), headers=["metric", "value", "unit"]))
        print(f"\nrecord: {path}  ({time.perf_counter() - t0:.0f} s)")
    if record["status"] == "failed":
        print(f"lowbench: error: {record['failure']['reason']}; the variant is marked failed in "
              f"{path}", file=sys.stderr)
        return 2
    if record["status"] == "unsupported":
        print(f"lowbench: warning: {label} is unsupported here: "
              f"{record['failure']['reason']} (recorded in {path})", file=sys.stderr)
    return 0
