"""Store the shipped QAT checkpoints' fake-quantized weights as int8 codes (lowbench.qat_storage).

    python scripts/pack_qat_checkpoints.py                      # pack every unpacked *-qat file
    python scripts/pack_qat_checkpoints.py --verify-against OLD  # compare with OLD/<m>-qat files

Packing a file writes it only after checking, on the synth test inputs, that the int8 model
built from the packed file (``--quant qat``) is bit-identical to the one built from the file
as it was: every int8 weight code, per-channel scale, bias and activation scale/zero point of
the converted model (torch.equal), the int8 outputs of all 21 synth pairs, and the fake-quant
(QAT) model's output on the first pair. ``--verify-against DIR`` runs the same comparison
between DIR's files (e.g. the unpacked ones from git history) and the current ones. Prints the
file sizes (bytes) before and after. Exit status 1 if any model differs (nothing is written
for it).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch

from lowbench import qat_storage
from lowbench.checkpoint import load_qat_checkpoint
from lowbench.models import build
from lowbench.models.registry import LEARNED_MODELS
from lowbench.quant.qat import prepare_qat_model
from lowbench.quant.recipes import build_qat
from lowbench.tensorfile import read_tensors, write_tensors

CHECKPOINTS = Path(__file__).resolve().parents[1] / "lowbench" / "checkpoints"


def _comparable(value: object) -> list[torch.Tensor]:
    """The tensors that define one entry of a converted model's state dict (int8 codes and
    per-channel scales/zero points of quantized tensors, plain tensors as they are)."""
    if isinstance(value, torch.Tensor):
        if not value.is_quantized:
            return [value]
        if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            return [value.int_repr(), value.q_per_channel_scales(),
                    value.q_per_channel_zero_points()]
        return [value.int_repr(), torch.tensor(value.q_scale()),
                torch.tensor(value.q_zero_point())]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _comparable(v)]
    return [torch.tensor(float(value))] if isinstance(value, (int, float)) else []


def _int8_state(module: torch.nn.Module) -> dict[str, list[torch.Tensor]]:
    state = module.state_dict()
    for name, sub in module.named_modules():  # packed conv params hide weight and bias
        if hasattr(sub, "weight") and callable(sub.weight) and hasattr(sub, "bias"):
            state[f"{name}.packed.weight"] = sub.weight()
            state[f"{name}.packed.bias"] = sub.bias()
        if hasattr(sub, "scale") and hasattr(sub, "zero_point"):
            state[f"{name}.out_qparams"] = (sub.scale, sub.zero_point)
    return {k: _comparable(v) for k, v in state.items()}


def differences(model: str, old: tuple[dict, dict], new: tuple[dict, dict],
                inputs: list[torch.Tensor]) -> list[str]:
    """What differs between the int8 (and fake-quant) models of two QAT states (empty: none)."""
    (old_state, old_meta), (new_state, new_meta) = old, new
    a, _ = build_qat(model, old_state, metadata=old_meta)
    b, _ = build_qat(model, new_state, metadata=new_meta)
    sa, sb = _int8_state(a), _int8_state(b)
    found = [] if sa.keys() == sb.keys() else [f"int8 keys: {sorted(sa.keys() ^ sb.keys())[:3]}"]
    found += [f"int8 {k}" for k in sorted(sa.keys() & sb.keys())
              if len(sa[k]) != len(sb[k]) or not all(map(torch.equal, sa[k], sb[k]))]
    with torch.inference_mode():
        found += [f"int8 output of synth pair {i}" for i, x in enumerate(inputs)
                  if not torch.equal(a(x), b(x))]
    fakes = []
    for state in (old_state, new_state):
        fake = prepare_qat_model(build(model), model)
        fake.load_state_dict(copy.deepcopy(state))
        fakes.append(fake.eval())
    with torch.inference_mode():
        if not torch.equal(fakes[0](inputs[0]), fakes[1](inputs[0])):
            found.append("fake-quant output of synth pair 0")
    return found


def pack(model: str, state: dict[str, torch.Tensor], meta: dict[str, str]
         ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata to store for a QAT checkpoint of ``model`` (its state and
    metadata as :func:`lowbench.checkpoint.load_qat_checkpoint` returns them)."""
    prepared = prepare_qat_model(build(model), model)
    prepared.load_state_dict(state)
    tensors, packed_meta = qat_storage.encode(state, meta,
                                              qat_storage.weight_quantizers(prepared))
    kept = [k for k in qat_storage.weight_quantizers(prepared) if k in tensors]
    if kept:
        print(f"{model}: {len(kept)} weights stay float32 (reconstruction not exact): {kept}")
    return tensors, packed_meta


def synth_inputs() -> list[torch.Tensor]:
    """The packed inputs (1, 4, h, w) of the synth test pairs."""
    from lowbench.pairs import load_input
    from lowbench.tasks import get_task

    return [torch.from_numpy(load_input(p))[None] for p in get_task("synth").pairs()]


def main() -> int:
    """Pack (or verify) the shipped QAT checkpoints; prints sizes and differences."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(LEARNED_MODELS))
    ap.add_argument("--dir", type=Path, default=CHECKPOINTS, help="where the *-qat files are")
    ap.add_argument("--verify-against", type=Path, default=None, metavar="DIR",
                    help="compare DIR/<model>-qat.safetensors with --dir's, write nothing")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    inputs = synth_inputs()
    status = 0
    for model in args.models:
        path = args.dir / f"{model}-qat.safetensors"
        if args.verify_against is not None:
            old_path = args.verify_against / path.name
            old = load_qat_checkpoint(old_path, model)
            new = load_qat_checkpoint(path, model)
            diff = differences(model, old, new, inputs)
            print(f"{model}: {old_path.stat().st_size} -> {path.stat().st_size} bytes; "
                  f"int8 and fake-quant models "
                  f"{'IDENTICAL' if not diff else 'DIFFER: ' + ', '.join(diff[:5])}"
                  f" ({len(inputs)} synth pairs)")
            status |= bool(diff)
            continue
        if qat_storage.is_packed(read_tensors(path)[1]):
            print(f"{model}: {path} is already packed ({path.stat().st_size} bytes)")
            continue
        before = path.stat().st_size
        old_state, old_meta = load_qat_checkpoint(path, model)
        tensors, meta = pack(model, old_state, old_meta)
        with tempfile.TemporaryDirectory() as tmp:  # checked through the loader, then written
            trial = write_tensors(Path(tmp) / path.name, tensors, meta)
            diff = differences(model, (old_state, old_meta),
                               load_qat_checkpoint(trial, model), inputs)
            if diff:
                print(f"{model}: NOT written, the int8 model would differ: {', '.join(diff[:5])}")
                status = 1
                continue
        write_tensors(path, tensors, meta)  # the same bytes as the checked trial file
        print(f"{model}: {before} -> {path.stat().st_size} bytes; int8 model identical on "
              f"{len(inputs)} synth pairs (weights, qparams, outputs; fake-quant output too)")
    return status


if __name__ == "__main__":
    sys.exit(main())
