"""Arguments of `lowbench train` (kept apart so `--help` stays fast to import)."""

from __future__ import annotations

import argparse


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Add every `lowbench train` option to ``p``."""
    from lowbench.argtypes import nonnegative_int, positive_float, positive_int
    from lowbench.models.registry import parse_learned_model

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
