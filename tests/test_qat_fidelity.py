"""QAT trains on the numerics it ships: the fake-quant model rounds and clamps like its int8
conversion (weights' grid, activations' clamp, max-pool qparams)."""

from __future__ import annotations

import copy

import pytest
import torch
from quant_fixtures import TINY_CALIBRATION as TINY
from torch.ao.quantization.fake_quantize import FakeQuantize
from torch.ao.quantization.observer import HistogramObserver

from lowbench.models import LEARNED_MODELS, build
from lowbench.quant import calibrate, fx, observers
from lowbench.quant.qat import (
    StorageRangeFakeQuantize,
    activation_fake_quants,
    calibrate_qat,
    prepare_qat_model,
)


@pytest.fixture(scope="module")
def crops() -> list[torch.Tensor]:
    return calibrate.calibration_crops("synth", None, TINY)[0]


def _calibrated_qat(name: str, crops: list[torch.Tensor]) -> torch.nn.Module:
    """A seeded QAT model, one Adam step away from init, with calibrated frozen ranges."""
    torch.manual_seed(0)
    model = prepare_qat_model(build(name), name)
    calibrate_qat(model, crops, TINY.batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = model(torch.rand(1, 4, 32, 32))
    out.mean().backward()
    opt.step()
    return model


@pytest.fixture(scope="module")
def calibrated_qat(crops: list[torch.Tensor]):
    """``calibrated_qat(name)``: a fresh copy of :func:`_calibrated_qat`'s model of ``name``,
    built once per module (the weights and pool tests of every model, and the records test,
    read the same seeded model; each gets its own copy to put in eval mode or convert)."""
    built: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in built:
            built[name] = _calibrated_qat(name, crops)
        return copy.deepcopy(built[name])

    return get


@pytest.mark.parametrize("name", LEARNED_MODELS)
def test_weights_train_on_the_grid_int8_ships(name, calibrated_qat):
    """Every int8 layer's dequantized weight is exactly what its weight fake-quant produced in
    training. PyTorch's default fused fake-quant divides by 128 or 127 where convert divides by
    127.5, which fails this on nearly every channel."""
    qat = calibrated_qat(name).eval()
    acts = activation_fake_quants(qat)
    assert acts and all(isinstance(fq, StorageRangeFakeQuantize) for fq in acts)
    trained = {}
    for layer_name, mod in qat.core.named_modules():
        if hasattr(mod, "weight_fake_quant"):
            with torch.no_grad():
                trained[layer_name] = mod.weight_fake_quant(mod.weight)
    converted = fx.convert(copy.deepcopy(qat.core))
    deployed = dict(converted.named_modules())
    compared = 0
    for layer_name, w in trained.items():
        mod = deployed[layer_name]
        if callable(getattr(mod, "weight", None)):  # quantized conv: weight() is a qtensor
            assert torch.equal(mod.weight().dequantize(), w), layer_name
            compared += 1
    assert compared == len(trained) > 5  # every fake-quantized layer shipped as int8


def test_activation_fake_quant_clamps_like_quantize_per_tensor():
    """7-bit scales, 8-bit storage: values above the calibrated range survive int8 (up to 255
    steps); the fake-quant must let them through the same way, and plain FakeQuantize does not."""
    kwargs = {"observer": HistogramObserver, "dtype": torch.quint8, "quant_min": 0,
              "quant_max": 127}
    ours, plain = StorageRangeFakeQuantize(**kwargs), FakeQuantize(**kwargs)
    calib = torch.linspace(-1.0, 2.0, 4096)
    for fq in (ours, plain):
        fq(calib)
        fq.disable_observer()
    scale, zero_point = float(ours.scale), int(ours.zero_point)
    x = torch.linspace(-3.0, 8.0, 9001)  # far beyond both ends of the calibrated range
    deployed = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8).dequantize()
    assert torch.equal(ours(x), deployed)
    assert float(deployed.max()) > 2.0 * 1.5  # the headroom is real...
    assert not torch.equal(plain(x), deployed)  # ...and the stock fake-quant clips it


def test_storage_range_fake_quant_is_per_tensor_only():
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    with pytest.raises(ValueError, match="per-tensor"):
        StorageRangeFakeQuantize(observer=PerChannelMinMaxObserver, dtype=torch.qint8,
                                 qscheme=torch.per_channel_symmetric, quant_min=-128,
                                 quant_max=127)


@pytest.mark.parametrize("name", LEARNED_MODELS)
def test_pool_outputs_keep_their_input_qparams(name, calibrated_qat):
    """int8 max pools pass their input's scale/zero point through; after calibration the QAT
    graph's pool-output fake-quants carry the same values, so fake-quantizing a pooled tensor
    is the identity, as in int8."""
    qat = calibrated_qat(name).eval()
    gm = qat.core
    mods = dict(gm.named_modules(remove_duplicate=False))
    pools = 0
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods[node.target], torch.nn.MaxPool2d):
            continue
        (after,) = node.users
        before = mods[node.args[0].target]
        fq_after = mods[after.target]
        assert float(fq_after.scale) == float(before.scale)
        assert int(fq_after.zero_point) == int(before.zero_point)
        grid = before(torch.linspace(-2, 6, 1001))  # values already on the input's grid
        assert torch.equal(fq_after(grid), grid)
        pools += 1
    assert pools == 4  # every U-Net here has four encoder pools


def test_static_int8_is_unchanged_by_the_pool_ties(crops):
    """Static int8 never used the pool-output observer: tying it changes no output bit."""
    from lowbench.models.unet import PaddedModel
    from lowbench.quant.ties import tie_pool_qparams

    torch.manual_seed(0)
    model = build("lighter")
    prepared = fx.prepare_static(copy.deepcopy(model.core), fx.use_engine())
    observers.observe(prepared, crops, TINY.batch)
    untied = copy.deepcopy(prepared)
    assert tie_pool_qparams(prepared) == 4
    x = torch.rand(1, 4, 32, 32)
    with torch.inference_mode():
        a = PaddedModel(fx.convert(prepared), model.multiple, model.scale)(x)
        b = PaddedModel(fx.convert(untied), model.multiple, model.scale)(x)
    assert torch.equal(a, b)


def test_records_say_which_qat_numerics_a_checkpoint_trained_with(calibrated_qat,
                                                                  tmp_path):
    """A QAT checkpoint written by `lowbench train --qat` says it trained on the int8-matched
    numerics; one without the marker or a distill field predates them and says to retrain."""
    import json

    from lowbench.checkpoint import save_checkpoint
    from lowbench.quant.qat import QAT_NUMERICS

    qat = calibrated_qat("lighter")
    old = save_checkpoint(tmp_path / "old.safetensors", "lighter", qat.state_dict(),
                          {"task": "test", "recipe": json.dumps({"steps": 1})},
                          check_architecture=False)
    new = save_checkpoint(tmp_path / "new.safetensors", "lighter", qat.state_dict(),
                          {"task": "test", "qat_numerics": QAT_NUMERICS},
                          check_architecture=False)
    from lowbench.variants import build_variant

    assert build_variant("lighter", "qat", checkpoint=new).info["calibration"][
        "qat_numerics"] == QAT_NUMERICS
    assert "retrain" in build_variant("lighter", "qat", checkpoint=old).info["calibration"][
        "qat_numerics"]
    newer = save_checkpoint(tmp_path / "newer.safetensors", "lighter", qat.state_dict(),
                            {"task": "test", "qat_numerics": str(int(QAT_NUMERICS) + 1)},
                            check_architecture=False)
    from lowbench.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"newer.safetensors: trained with QAT numerics"):
        build_variant("lighter", "qat", checkpoint=newer)
