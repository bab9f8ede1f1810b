"""Why can an int8 model closer to fp32 score a lower PSNR? Splits int8's error on synth.

    python scripts/int8_error_decomposition.py [--models sid] [--quants static qat] [--limit N]

    python scripts/int8_error_decomposition.py --task synth-train --held-out 8

The second form scores the validation scenes `lowbench train` holds out of a train split
(``--val-scenes``, default 8), the content the QAT recipe is distilled on but not these scenes.

For each pair of the task (default synth), with r = fp32 output - ground truth and
e = int8 output - fp32 output, both 8-bit quantised as the SID protocol scores them:

    mse(int8, gt) = mse(fp32, gt) + cross + mse(int8, fp32),   cross = 2 mean(r * e)

(`lowbench.metrics.mse_decomposition`). ``mse(int8, fp32)`` is how far rounding moved the
output; ``cross`` is whether that move happened to point against fp32's own error (negative:
it raised PSNR) or along it. The table gives the means over pairs (squared 8-bit levels), the
part of ``cross`` due to per-channel mean shifts alone, the mean shift itself (8-bit levels,
R G B), the PSNR (dB) and the PSNR the variant would have with the cross term removed (dB):
what rounding costs when it is not correlated with the model's error. Outputs come from the
evaluation harness (`lowbench.harness.session.Session.process_pair`), so they are the ones `lowbench
evaluate` scores.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from tabulate import tabulate

from lowbench.harness.session import EvalConfig, Session
from lowbench.metrics import mean_psnr, mse_decomposition, quantize_8bit
from lowbench.models.registry import LEARNED_MODELS, MODEL_NAMES
from lowbench.pairs import Pair, load_truth
from lowbench.tasks import get_task
from lowbench.train import held_out_scenes


def _session(model: str, quant: str, task: str, pairs: list[Pair] | None) -> Session:
    """A quality-only harness session for one variant (on ``pairs``: default the task's)."""
    return Session(EvalConfig(model=model, quant=quant, task=task, memory=False, energy=False,
                              gallery=False), pairs=pairs)


def task_pairs(task: str, limit: int | None, held_out: int | None) -> list[Pair]:
    """The task's pairs (the first ``limit``), or those of its ``held_out`` validation scenes."""
    t = get_task(task)
    if held_out is None:
        return t.pairs(None, limit=limit)
    if t.split != "train":
        raise SystemExit(f"--held-out needs a train split; {task} is a {t.split} split")
    scenes = held_out_scenes(list(dict.fromkeys(p.scene_id for p in t.listed())), held_out)
    return [p for p in t.pairs(None) if p.scene_id in scenes][:limit]


def rows(model: str, quants: list[str], task: str, pairs: list[Pair]) -> list[list[object]]:
    """One table row per variant of ``model`` (fp32 first): the mean decomposition over pairs."""
    session = _session(model, "fp32", task, pairs)
    truths = [load_truth(p) for p in pairs]
    reference = [session.process_pair(p) for p in pairs]
    errors = [quantize_8bit(r) - quantize_8bit(g) for r, g in zip(reference, truths, strict=True)]

    def mean_error(at: list[int]) -> str:  # fp32 - gt per channel (8-bit levels)
        return " ".join(f"{v:+.2f}" for v in np.mean([errors[i].mean(axis=(0, 1)) for i in at],
                                                     axis=0))

    table: list[list[object]] = [[
        model, "fp32", mean_psnr(reference, truths), None,
        np.mean([np.mean(e ** 2) for e in errors]), None, None, None,
        mean_error(list(range(len(pairs)))) + " (fp32 - gt)"]]
    for ratio in sorted({p.ratio for p in pairs}):
        at = [i for i, p in enumerate(pairs) if p.ratio == ratio]
        table.append([model, f"fp32 {pairs[at[0]].ratio_label}", None, None, None, None, None,
                      None, mean_error(at) + f" (fp32 - gt, {len(at)} pairs)"])
    for quant in quants if model in LEARNED_MODELS else []:
        variant = _session(model, quant, task, pairs)
        outs = [variant.process_pair(p) for p in pairs]
        parts = [mse_decomposition(o, r, g) for o, r, g in zip(outs, reference, truths,
                                                                strict=True)]
        uncorrelated = [10 * math.log10(255.0 ** 2 / (d["mse_reference"] + d["mse_to_reference"]))
                        for d in parts]
        shift = np.mean([d["mean_shift_rgb"] for d in parts], axis=0)
        table.append([model, quant,
                      mean_psnr(outs, truths),
                      np.mean(uncorrelated), np.mean([d["mse"] for d in parts]),
                      np.mean([d["cross"] for d in parts]),
                      np.mean([d["cross_mean_shift"] for d in parts]),
                      np.mean([d["mse_to_reference"] for d in parts]),
                      " ".join(f"{v:+.2f}" for v in shift)])
    return table


def main() -> int:
    """Print the decomposition table (dB and squared 8-bit levels) for each model."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["sid"], choices=MODEL_NAMES,
                    help="libraw: its fp32 residual only (it has no int8 variant)")
    ap.add_argument("--quants", nargs="+", default=["static", "qat"], choices=["static", "qat"])
    ap.add_argument("--task", default="synth")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs only")
    ap.add_argument("--held-out", type=int, default=None, metavar="N",
                    help="score the last N scenes of a train split (lowbench train's validation)")
    args = ap.parse_args()
    pairs = task_pairs(args.task, args.limit, args.held_out)
    table: list[list[object]] = []
    for model in args.models:
        table += rows(model, args.quants, args.task, pairs)
    print(tabulate(table, floatfmt=".3f", missingval="-", headers=[
        "model", "quant", "PSNR dB", "PSNR without cross dB", "mse", "cross",
        "cross from mean shift", "mse to fp32", "mean shift R G B"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
