"""How closely a QAT model's fake-quant graph matches the int8 model it converts to.

    python scripts/qat_fidelity.py --model light [--checkpoint light-qat.safetensors]

Without --checkpoint it uses QAT at step 0: the shipped fp32 weights, prepared for QAT and
calibrated exactly as `lowbench train --qat` does before its first step. Prints the synth PSNR
(dB) of the fake-quant model and of its int8 conversion, both through the evaluation harness,
and their largest and mean absolute output difference (sRGB units, 0-1) on the first pair.
"""

from __future__ import annotations

import argparse
import copy

import torch

from lowbench.checkpoint import load_into, shipped_checkpoint_path
from lowbench.harness import EvalConfig, Session
from lowbench.models import build
from lowbench.models.unet import PaddedModel
from lowbench.quant import _convert, load_qat_checkpoint, prepare_qat_model
from lowbench.train import _calibrate_qat_ranges


def fake_quant_model(model: str, checkpoint: str | None) -> torch.nn.Module:
    """The QAT fake-quant model in eval mode: from ``checkpoint`` or at step 0."""
    float_model = build(model)
    if checkpoint is None:
        load_into(float_model, shipped_checkpoint_path(model), model)
    qat = prepare_qat_model(float_model, model)
    if checkpoint is None:
        _calibrate_qat_ranges(qat, "synth-train", None)
    else:
        qat.load_state_dict(load_qat_checkpoint(checkpoint, model)[0])
    return qat.eval()


def main() -> int:
    """Print fake-quant vs int8 PSNR (dB) and output differences for one QAT model."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="light")
    ap.add_argument("--checkpoint", default=None, help="a QAT checkpoint (default: step 0)")
    args = ap.parse_args()
    fake = fake_quant_model(args.model, args.checkpoint)
    int8 = PaddedModel(_convert(copy.deepcopy(fake.core)), fake.multiple, fake.scale).eval()
    session = Session(EvalConfig(model=args.model, memory=False, energy=False, gallery=False))
    psnr = {}
    for name, module in (("fake-quant", fake), ("int8", int8)):
        session.variant.module = module  # the fp32 session's pipeline, this module's forward
        psnr[name] = session.run_quality()["quality"]["psnr_db"]
    with torch.inference_mode():
        diff = (fake(session.example) - int8(session.example)).abs()
    where = args.checkpoint or "QAT step 0"
    print(f"{args.model} ({where}) on synth: fake-quant {psnr['fake-quant']:.3f} dB, int8 "
          f"{psnr['int8']:.3f} dB; output |difference| on pair 1: max {float(diff.max()):.3f}, "
          f"mean {float(diff.mean()):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
