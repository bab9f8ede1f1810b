"""QAT checkpoints store fake-quantized weights as int8 codes (lowbench.qat_storage): the int8
and fake-quant models built from a packed file are bit-identical to those of the float file."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lowbench import qat_storage
from lowbench.checkpoint import load_checkpoint, load_qat_checkpoint, save_checkpoint
from lowbench.errors import CheckpointError
from lowbench.models import build
from lowbench.quant.qat import calibrate_qat, prepare_qat_model
from lowbench.quant.recipes import build_qat
from lowbench.tensorfile import read_tensors, write_tensors

MODEL = "lighter"  # the smallest QAT model
CHECKPOINTS = Path(__file__).resolve().parents[1] / "lowbench" / "checkpoints"

pytestmark = pytest.mark.usefixtures("one_thread")


def test_reconstruction_keeps_the_codes_and_the_exact_extremes() -> None:
    """Against an independent reference (round(w / scale), amin/amax): the rebuilt weight
    rounds to the same codes and keeps each channel's exact min and max, which codes * scale
    alone does not (so convert would derive another scale from it)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 2, 3, 3, generator=g) * torch.tensor([0.5, 2.0, 0.01]).view(3, 1, 1, 1)
    w[1, 0, 0, 0] = -3.7  # channel 1: the minimum sets the scale
    lo, hi = w.flatten(1).amin(1), w.flatten(1).amax(1)
    scale = torch.maximum(-lo, hi) / 127.5
    codes = torch.round(w / scale.view(3, 1, 1, 1)).clamp(-128, 127).to(torch.int8)
    back = qat_storage.reconstruct(codes, scale, lo, hi)
    assert back.dtype == torch.float32 and back.shape == w.shape
    assert torch.equal(torch.round(back / scale.view(3, 1, 1, 1)).clamp(-128, 127)
                       .to(torch.int8), codes)
    assert torch.equal(back.flatten(1).amin(1), lo) and torch.equal(back.flatten(1).amax(1), hi)
    assert not torch.equal(back, w)  # the latent values between grid points are gone
    naive = codes.float() * scale.view(3, 1, 1, 1)
    assert not (torch.equal(naive.flatten(1).amin(1), lo)
                and torch.equal(naive.flatten(1).amax(1), hi))


@pytest.fixture(scope="module")
def float_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A QAT checkpoint as `lowbench train --qat` writes it: activation ranges calibrated and
    frozen, weights observed on one batch, then one optimizer step, so the stored weight
    observer state lags the weights as in a real run."""
    torch.manual_seed(5)
    model = prepare_qat_model(build(MODEL), MODEL)
    calibrate_qat(model, [torch.rand(4, 32, 32) for _ in range(2)], batch=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model(torch.rand(2, 4, 32, 32)).abs().mean().backward()
    opt.step()
    path = tmp_path_factory.mktemp("qat") / f"{MODEL}-qat.safetensors"
    return save_checkpoint(path, MODEL, model.state_dict(), {"recipe": {"qat": True}})


@pytest.fixture(scope="module")
def packed_file(float_file: Path) -> Path:
    state, meta = load_qat_checkpoint(float_file, MODEL)
    prepared = prepare_qat_model(build(MODEL), MODEL)
    prepared.load_state_dict(state)
    tensors, packed_meta = qat_storage.encode(state, meta,
                                              qat_storage.weight_quantizers(prepared))
    return write_tensors(float_file.with_name("packed.safetensors"), tensors, packed_meta)


def test_round_trip_gives_bit_identical_int8_and_fake_quant_models(float_file: Path,
                                                                   packed_file: Path) -> None:
    old_state, old_meta = load_qat_checkpoint(float_file, MODEL)
    new_state, new_meta = load_qat_checkpoint(packed_file, MODEL)
    stored, _ = read_tensors(packed_file)
    n_codes = sum(k.endswith(":codes") for k in stored)
    assert n_codes == len([k for k in old_state if k + ":codes" in stored]) > 30
    assert all(stored[k].dtype == torch.int8 for k in stored if k.endswith(":codes"))
    assert packed_file.stat().st_size < 0.7 * float_file.stat().st_size
    assert new_state.keys() == old_state.keys()
    assert any(not torch.equal(old_state[k], new_state[k]) for k in old_state)  # lossy latents
    # the float loader (a QAT file with --quant fp32) reads the same rebuilt weights
    checked, _ = load_checkpoint(packed_file, expected_model=MODEL)
    assert all(torch.equal(checked[k], new_state[k]) for k in new_state)
    x = torch.rand(1, 4, 40, 24, generator=torch.Generator().manual_seed(1))
    a, _ = build_qat(MODEL, old_state, metadata=old_meta)
    b, _ = build_qat(MODEL, new_state, metadata=new_meta)
    for (ka, va), (kb, vb) in zip(a.named_modules(), b.named_modules(), strict=True):
        if callable(getattr(va, "weight", None)):  # quantized convs: int8 codes and scales
            wa, wb = va.weight(), vb.weight()
            assert ka == kb and torch.equal(wa.int_repr(), wb.int_repr()), ka
            assert torch.equal(wa.q_per_channel_scales(), wb.q_per_channel_scales()), ka
    fakes = []
    for state in (old_state, new_state):
        fake = prepare_qat_model(build(MODEL), MODEL)
        fake.load_state_dict(copy.deepcopy(state))  # HistogramObserver keeps loaded tensors
        fakes.append(fake.eval())
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))
        assert torch.equal(fakes[0](x), fakes[1](x))


def test_old_format_file_loads_unchanged(float_file: Path) -> None:
    stored, meta = read_tensors(float_file)
    assert not qat_storage.is_packed(meta)
    state, _ = load_qat_checkpoint(float_file, MODEL)
    assert state.keys() == stored.keys()
    assert all(torch.equal(state[k], stored[k]) for k in stored)


def test_unknown_or_corrupt_storage_is_refused_in_one_line(packed_file: Path,
                                                           tmp_path: Path) -> None:
    tensors, meta = read_tensors(packed_file)
    with pytest.raises(ValueError, match="already packed"):
        qat_storage.encode(tensors, meta, {})
    unknown = write_tensors(tmp_path / "unknown.safetensors", tensors,
                            {**meta, "qat_storage": "int8-codes-99"})
    with pytest.raises(CheckpointError, match=r"unknown QAT storage format 'int8-codes-99'"
                       ) as err:
        load_qat_checkpoint(unknown, MODEL)
    assert str(unknown) in str(err.value) and "\n" not in str(err.value)
    key = next(k for k in tensors if k.endswith(":scale"))
    broken = write_tensors(tmp_path / "broken.safetensors",
                           {k: v for k, v in tensors.items() if k != key}, meta)
    for load in (lambda: load_qat_checkpoint(broken, MODEL),
                 lambda: load_checkpoint(broken, expected_model=MODEL)):
        with pytest.raises(CheckpointError, match="is corrupt") as err:
            load()
        assert key.rpartition(":")[0] in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("model", ["sid", "light", "lighter", "fire"])
def test_shipped_qat_checkpoints_are_packed(model: str) -> None:
    """The package ships int8 codes (scripts/pack_qat_checkpoints.py), not float32 latents."""
    with safe_open(str(CHECKPOINTS / f"{model}-qat.safetensors"), framework="pt") as f:
        assert (f.metadata() or {}).get("qat_storage") == qat_storage.FORMAT
        keys = set(f.keys())
    packed = {k.removesuffix(":codes") for k in keys if k.endswith(":codes")}
    fake_quantized = {k.removesuffix("_fake_quant.scale") for k in keys
                      if k.endswith(".weight_fake_quant.scale")}
    assert packed == fake_quantized and not packed & keys
