"""`lowbench train`: the options of a training run (:func:`lowbench.train.train` does the
work; torchrun starts one process per rank for DDP)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from lowbench.cli.argtypes import (
    add_grid_arguments,
    grid_from_args,
    nonnegative_int,
    positive_float,
    positive_int,
)
from lowbench.errors import LowbenchError
from lowbench.models.registry import parse_learned_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add every `lowbench train` option to ``p``."""
    p.add_argument("--model", required=True, type=parse_learned_model,
                   help="learned model to train (see `lowbench list models`)")
    p.add_argument("--task", default="synth-train", help="synth-train or sid-sony-train")
    p.add_argument("--data-root", default=None, help="folder holding the task's raw files")
    p.add_argument("--steps", type=positive_int, default=4000, help="optimizer steps (all ranks)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="crops per step per rank")
    p.add_argument("--patch", type=int, default=512,
                   help="random crop side in raw pixels (SID: 512, i.e. 256 packed)")
    p.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate (SID: 1e-4)")
    p.add_argument("--lr-drop", type=float, default=0.8,
                   help="fraction of the steps after which lr drops 10x (SID: 1e-4 -> 1e-5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (weight init, crops, flips)")
    p.add_argument("--val-every", type=positive_int, default=250, help="steps between validations")
    p.add_argument("--val-scenes", type=nonnegative_int, default=8,
                   help="scenes held out from the end of the split for validation PSNR")
    p.add_argument("--scenes", type=positive_int, default=None,
                   help="use only the first N scenes (default: all)")
    p.add_argument("--out", required=True, help="checkpoint file (.safetensors) to write")
    p.add_argument("--resume", action="store_true",
                   help="continue from --out and its .state.safetensors if present")
    p.add_argument("--init", default=None,
                   help="start from these weights (fine-tuning; default: random init)")
    p.add_argument("--qat", action="store_true",
                   help="quantization-aware fine-tuning from --init or the shipped fp32: "
                        "activation ranges frozen at the static int8 calibration, weights "
                        "fine-tuned with fake-quant")
    p.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="weight (0-1) of an L1 loss to the output of the float starting "
                        "weights (--init or the shipped fp32, frozen); 1-W stays on the ground "
                        "truth. Needs --init or --qat")
    p.add_argument("--half", action="store_true", help="store the weights as fp16")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch intra-op threads per rank (default: torch's choice)")
    p.add_argument("--save-every", type=positive_int, default=250, help="steps between checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tegrastats", default=None,
                   help="tegrastats executable (Jetson energy; default: the meter present, "
                        "tegrastats > NVML > RAPL)")
    p.add_argument("--no-energy", action="store_true",
                   help="do not meter the training loop (its energy is then null, with why)")
    add_grid_arguments(p)
    p.add_argument("--record-dir", default=None, metavar="DIR",
                   help="results folder whose training/ receives the run's training record "
                        "(default: the user results store, $LOWBENCH_RESULTS)")


def run(args: argparse.Namespace) -> int:
    """Train as the options say, write the checkpoint to ``--out`` and (rank 0) the training
    record (energy J, mean power W, duration s, gCO2e: :mod:`lowbench.results.training`) into
    ``--record-dir`` or the results store; rank 0 prints the summary as one JSON line.
    Exit code 0."""
    from lowbench.energy.run_meter import RunMeter
    from lowbench.fsutil import check_output_file, check_output_folder
    from lowbench.paths import results_store

    grid = grid_from_args(args)  # bad values answer before torch is imported
    if args.no_energy and args.tegrastats is not None:
        raise LowbenchError(f"--tegrastats {args.tegrastats} picks the meter that --no-energy "
                            "skips; drop one of them")
    if args.no_energy:
        meter = RunMeter(None, "energy measurement skipped (--no-energy)", grid)
    else:
        meter = RunMeter.select(args.tegrastats, intensity=grid)
    record_dir = check_output_folder(args.record_dir or results_store(), "--record-dir")
    from lowbench.train import Recipe, dist_env, train

    rank, world = dist_env()
    recipe = Recipe(model=args.model, task=args.task, steps=args.steps,
                    batch_size=args.batch_size, patch_raw=args.patch, lr=args.lr,
                    lr_drop=args.lr_drop, seed=args.seed, val_scenes=args.val_scenes,
                    qat=args.qat, world_size=world, distill=args.distill)
    if args.patch % 32:
        raise LowbenchError(f"--patch {args.patch} must be a multiple of 32 raw pixels")
    if not args.out.endswith(".safetensors"):
        raise LowbenchError(f"--out {args.out}: checkpoints are written as .safetensors; "
                            "end the name with .safetensors")
    check_output_file(args.out)
    try:
        summary = train(recipe, Path(args.out), data_root=args.data_root, init=args.init,
                        resume=args.resume, scenes=args.scenes, val_every=args.val_every,
                        save_every=args.save_every, threads=args.threads, half=args.half,
                        progress=not args.no_progress, meter=meter)
    finally:
        meter.close()
    if rank == 0:
        from lowbench.results.provenance import portable_command
        from lowbench.results.training import training_record, write_training_record

        command = shlex.join(portable_command(["lowbench", *sys.argv[1:]]))
        record = training_record(summary, asdict(recipe), Path(args.out), command)
        path = write_training_record(record, record_dir)
        summary = {**{k: v for k, v in summary.items() if k != "weights_sha"},
                   "record": str(path), "weights_sha": summary["weights_sha"]}  # digest last
    if rank == 0 or os.environ.get("LOWBENCH_PRINT_ALL_RANKS"):
        # one write per summary: print() writes the text and the newline separately, so two
        # ranks sharing an unbuffered stdout could interleave their lines
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
