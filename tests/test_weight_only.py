"""Weight-only int8 transposed convs (lowbench.quant.weight_only), QAT's frozen static ranges."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch
from quant_fixtures import TINY_CALIBRATION as TINY
from torch import nn

from lowbench.checkpoint import save_checkpoint
from lowbench.export import example_input, to_torchscript
from lowbench.models import build
from lowbench.quant import calibrate
from lowbench.quant.qat import calibrate_qat, prepare_qat_model
from lowbench.quant.recipes import build_qat
from lowbench.quant.weight_only import (
    QMAX,
    Int8WeightConvTranspose2d,
    count_weight_only_int8,
    int8_transposed_weights,
)
from lowbench.variants import build_variant


def test_int8_weights_are_per_channel_symmetric_and_close() -> None:
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(16, 8, 2, stride=2)
    with torch.no_grad():
        conv.weight[:, 3] *= 50  # one output channel with a much larger range
    q = Int8WeightConvTranspose2d(conv)
    assert q.weight_int8.dtype == torch.int8
    # every output channel uses its full range (a per-tensor scale would not for channel != 3)
    assert q.weight_int8.abs().amax(dim=(0, 2, 3)).tolist() == [QMAX] * 8
    err = (q.dequantized_weight() - conv.weight).abs()
    assert (err <= q.weight_scale / 2 + 1e-7).all()  # round-to-nearest: half a step at most
    x = torch.rand(2, 16, 5, 7)
    with torch.no_grad():
        ref, out = conv(x), q(x)
    assert out.shape == ref.shape == (2, 8, 10, 14)
    assert float((out - ref).abs().max()) < 1e-2 * float(ref.abs().max())


def test_replacement_covers_every_transposed_conv_and_nothing_else() -> None:
    model = build("sid").core
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert int8_transposed_weights(model) == 4
    assert count_weight_only_int8(model) == 4
    assert not any(type(m) is nn.ConvTranspose2d for m in model.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convs


@pytest.fixture(scope="module")
def sid_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("wo") / "sid.safetensors", "sid",
                           build("sid").state_dict(), {"task": "test"})


def _torchscript_bytes(module: nn.Module) -> tuple[int, torch.jit.ScriptModule]:
    ts, _ = to_torchscript(module, example_input(module, 32))
    buf = io.BytesIO()
    torch.jit.save(ts, buf)
    buf.seek(0)
    return len(buf.getvalue()), torch.jit.load(buf)


def test_static_sid_file_is_about_4x_smaller_and_keeps_int8_weights(sid_ckpt: Path) -> None:
    fp32 = build_variant("sid", "fp32", checkpoint=sid_ckpt)
    int8 = build_variant("sid", "static", checkpoint=sid_ckpt, calibration=TINY)
    assert int8.info["weight_only_int8_layers"] == 4
    assert "int8 weights" in int8.info["note"]
    fp32_bytes, _ = _torchscript_bytes(fp32.module)
    int8_bytes, loaded = _torchscript_bytes(int8.module)
    # 7.76 M params: fp32 31.1 MB; all-int8 weights would be 7.8 MB; the fp32 transposed
    # weights (0.70 M) alone held it at 3.1x
    assert fp32_bytes / int8_bytes > 3.7
    x = example_input(int8.module, 48)
    with torch.inference_mode():
        assert torch.equal(loaded(x), int8.module(x))


@pytest.fixture(scope="module")
def lighter_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("wo") / "lighter.safetensors", "lighter",
                           build("lighter").state_dict(), {"task": "test"})


def test_qat_starts_exactly_at_static_int8(lighter_ckpt: Path) -> None:
    """calibrate_qat freezes the static calibration's ranges: converting the QAT model before
    any training step gives the static int8 model, bit for bit."""
    static = build_variant("lighter", "static", checkpoint=lighter_ckpt, calibration=TINY)
    fp32 = build_variant("lighter", "fp32", checkpoint=lighter_ckpt)
    qat = prepare_qat_model(copy.deepcopy(fp32.module), "lighter")
    crops, _ = calibrate.calibration_crops("synth", None, TINY)
    assert calibrate_qat(qat, crops, TINY.batch) > 0
    frozen = {k: v.clone() for k, v in qat.state_dict().items() if k.endswith(".scale")}
    int8, _ = build_qat("lighter", qat.state_dict())
    x = example_input(static.module, 40)
    with torch.inference_mode():
        assert torch.equal(int8(x), static.module(x))
    # training steps move the weights but never the frozen activation ranges
    opt = torch.optim.Adam(qat.parameters(), lr=1e-3)
    for _ in range(2):
        loss = (qat(torch.rand(1, 4, 32, 32)) - torch.rand(1, 3, 64, 64)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = qat.state_dict()
    acts = [k for k in frozen if "weight_fake_quant" not in k]
    assert acts and all(torch.equal(after[k], frozen[k]) for k in acts)

