"""How closely a QAT model's fake-quant graph matches the int8 model it converts to.

    python scripts/qat_fidelity.py --model light [--checkpoint light-qat.safetensors]

    python scripts/qat_fidelity.py --model sid --ablate

Without --checkpoint it uses QAT at step 0: the shipped fp32 weights, prepared for QAT and
calibrated exactly as `lowbench train --qat` does before its first step. Prints the synth PSNR
(dB) of the fake-quant model and of its int8 conversion, both through the evaluation harness,
and their largest and mean absolute output difference (sRGB units, 0-1) on the first pair.
With --ablate it instead prints how close (PSNR in dB against the fp32 model's output, synth)
the int8 conversion is (at step 0 that is static int8, bit for bit), and the fake-quant model
with all its fake-quants on, with only the weights' and with only the activations': which
rounding int8's error comes from.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses

import torch

from lowbench.checkpoint import load_into, load_qat_checkpoint, shipped_checkpoint_path
from lowbench.harness.session import EvalConfig, Session
from lowbench.metrics import mean_psnr
from lowbench.models import build
from lowbench.models.unet import PaddedModel
from lowbench.quant.fx import convert
from lowbench.quant.qat import (
    activation_fake_quants,
    calibrate_qat_ranges,
    prepare_qat_model,
)


def fake_quant_model(model: str, checkpoint: str | None) -> torch.nn.Module:
    """The QAT fake-quant model in eval mode: from ``checkpoint`` or at step 0."""
    float_model = build(model)
    if checkpoint is None:
        load_into(float_model, shipped_checkpoint_path(model), model)
    qat = prepare_qat_model(float_model, model)
    if checkpoint is None:
        calibrate_qat_ranges(qat, "synth-train", None)
    else:
        qat.load_state_dict(load_qat_checkpoint(checkpoint, model)[0])
    return qat.eval()


def with_module(session: Session, module: torch.nn.Module) -> Session:
    """``session``'s pipeline (config, pairs, decode, packing, metrics) with ``module``'s
    forward: a Session of the same variant whose module is ``module``."""
    return Session(session.cfg, dataclasses.replace(session.variant, module=module),
                   pairs=session.pairs)


def ablate(model: str, fake: torch.nn.Module) -> None:
    """Print PSNR (dB) against the fp32 output on synth of the int8 conversion and of the
    fake-quant model with all / only weight / only activation fake-quants on."""
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase

    session = Session(EvalConfig(model=model, memory=False, energy=False, gallery=False))
    reference = [session.process_pair(p) for p in session.pairs]

    def closeness(module: torch.nn.Module) -> float:
        s = with_module(session, module)
        return mean_psnr([s.process_pair(p) for p in s.pairs], reference)

    int8 = PaddedModel(convert(copy.deepcopy(fake.core)), fake.multiple, fake.scale).eval()
    print(f"{model}: int8 conversion: {closeness(int8):.2f} dB from the fp32 output (synth mean)")
    acts = {id(m) for m in activation_fake_quants(fake)}
    quantizers = [m for m in fake.modules() if isinstance(m, FakeQuantizeBase)]
    for label, keep in (("all fake-quant", lambda m: True),
                        ("weights only", lambda m: id(m) not in acts),
                        ("activations only", lambda m: id(m) in acts)):
        for m in quantizers:
            m.fake_quant_enabled[0] = 1 if keep(m) else 0
        print(f"{model}: {label}: {closeness(fake):.2f} dB from the fp32 output (synth mean)")


def main() -> int:
    """Print fake-quant vs int8 PSNR (dB) and output differences for one QAT model."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="light")
    ap.add_argument("--checkpoint", default=None, help="a QAT checkpoint (default: step 0)")
    ap.add_argument("--ablate", action="store_true",
                    help="closeness to fp32 with weight or activation fake-quant alone")
    args = ap.parse_args()
    fake = fake_quant_model(args.model, args.checkpoint)
    if args.ablate:
        ablate(args.model, fake)
        return 0
    int8 = PaddedModel(convert(copy.deepcopy(fake.core)), fake.multiple, fake.scale).eval()
    session = Session(EvalConfig(model=args.model, memory=False, energy=False, gallery=False))
    psnr = {}
    for name, module in (("fake-quant", fake), ("int8", int8)):
        psnr[name] = with_module(session, module).run_quality()["quality"]["psnr_db"]
    with torch.inference_mode():
        diff = (fake(session.example) - int8(session.example)).abs()
    where = args.checkpoint or "QAT step 0"
    print(f"{args.model} ({where}) on synth: fake-quant {psnr['fake-quant']:.3f} dB, int8 "
          f"{psnr['int8']:.3f} dB; output |difference| on pair 1: max {float(diff.max()):.3f}, "
          f"mean {float(diff.mean()):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
