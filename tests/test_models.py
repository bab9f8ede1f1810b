"""Model registry, architectures, padding wrapper, export paths and complexity counters."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from lowbench.errors import LowbenchError, VariantError
from lowbench.models.complexity import (
    count_macs,
    count_params,
    fp32_size_mib,
    serialized_size_bytes,
)
from lowbench.models.fire import Fire
from lowbench.models.registry import LEARNED_MODELS, MODEL_NAMES, build, build_core, describe
from lowbench.models.unet import PaddedModel, SeparableConv2d, UNet, pad_to_multiple

EXPECTED_PARAMS = {"sid": 7_760_748, "light": 4_285_676, "lighter": 1_513_812}
SEEINDARK_KEYS = {
    f"{layer}.{kind}"
    for layer in (
        [f"conv{s}_{i}" for s in range(1, 10) for i in (1, 2)]
        + [f"upv{s}" for s in range(6, 10)]
        + ["conv10_1"]
    )
    for kind in ("weight", "bias")
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build(name).eval() for name in LEARNED_MODELS}


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# --- registry -------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert MODEL_NAMES == ("sid", "light", "lighter", "fire", "libraw")
    assert LEARNED_MODELS == ("sid", "light", "lighter", "fire")


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(LowbenchError, match="unknown model 'unet'.*sid, light, lighter, fire"):
        build("unet")
    with pytest.raises(LowbenchError, match="libraw"):
        describe("nope")


def test_libraw_is_described_but_not_buildable() -> None:
    info = describe("libraw")
    assert info["params"] == 0
    assert "LibRaw" in info["description"] and "ground-truth" in info["description"]
    with pytest.raises(VariantError, match="not a neural network"):
        build("libraw")


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_exact_parameter_counts(models: dict[str, nn.Module], name: str) -> None:
    assert count_params(models[name]) == EXPECTED_PARAMS[name]
    info = describe(name)
    assert info["name"] == name and info["params"] == EXPECTED_PARAMS[name]
    assert info["description"]


def test_fire_is_cheaper_than_light(models: dict[str, nn.Module]) -> None:
    fire, light = models["fire"], models["light"]
    assert count_params(fire) < count_params(light)
    assert count_macs(fire) < count_macs(light)
    assert describe("fire")["params"] == count_params(fire)


def test_sid_uses_seeindark_names_and_shapes(models: dict[str, nn.Module]) -> None:
    state = models["sid"].core.state_dict()
    assert set(state) == SEEINDARK_KEYS
    assert state["conv1_1.weight"].shape == (32, 4, 3, 3)
    assert state["conv5_2.weight"].shape == (512, 512, 3, 3)
    assert state["upv6.weight"].shape == (512, 256, 2, 2)  # ConvTranspose2d(512, 256, 2, 2)
    assert state["conv6_1.weight"].shape == (256, 512, 3, 3)  # after the skip concatenation
    assert state["conv10_1.weight"].shape == (12, 32, 1, 1)
    assert set(models["sid"].state_dict()) == {f"core.{k}" for k in SEEINDARK_KEYS}


def test_separable_positions(models: dict[str, nn.Module]) -> None:
    for stage in range(1, 10):
        sid, light, lighter = (models[n].core for n in ("sid", "light", "lighter"))
        assert type(getattr(sid, f"conv{stage}_1")) is nn.Conv2d
        assert type(getattr(sid, f"conv{stage}_2")) is nn.Conv2d
        assert type(getattr(light, f"conv{stage}_1")) is nn.Conv2d
        assert isinstance(getattr(light, f"conv{stage}_2"), SeparableConv2d)
        assert isinstance(getattr(lighter, f"conv{stage}_1"), SeparableConv2d)
        assert isinstance(getattr(lighter, f"conv{stage}_2"), SeparableConv2d)
        assert isinstance(getattr(models["fire"].core, f"conv{stage}_1"), Fire)
    depthwise = models["lighter"].core.conv1_1.depthwise
    assert depthwise.groups == 4 and depthwise.bias is not None


@pytest.mark.parametrize("name", LEARNED_MODELS)
def test_activations_are_leaky_relu_modules(models: dict[str, nn.Module], name: str) -> None:
    core = models[name].core
    lrelus = [m for m in core.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(lrelus) >= 18 and all(m.negative_slope == 0.2 for m in lrelus)
    assert isinstance(core.depth_to_space, nn.PixelShuffle)
    assert core.depth_to_space.upscale_factor == 2
    assert isinstance(core.upv9, nn.ConvTranspose2d) and core.upv9.bias is not None


# --- shapes and padding ---------------------------------------------------------------------


@pytest.mark.parametrize("name", LEARNED_MODELS)
@pytest.mark.parametrize("shape", [(4, 4, 37, 53), (1, 4, 16, 16), (1, 4, 1, 3), (2, 4, 5, 20)])
def test_output_shapes(models: dict[str, nn.Module], name: str, shape: tuple) -> None:
    n, _, h, w = shape
    with torch.no_grad():
        y = models[name](torch.rand(shape))
    assert y.shape == (n, 3, 2 * h, 2 * w)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_padding_is_reflect_then_crop(models: dict[str, nn.Module]) -> None:
    model = models["lighter"]
    x = torch.rand(1, 4, 13, 21)
    with torch.no_grad():
        expected = model.core(F.pad(x, [0, 11, 0, 3], mode="reflect"))[:, :, :26, :42]
        _close(model(x), expected)
        aligned = torch.rand(1, 4, 16, 32)
        assert torch.equal(model(aligned), model.core(aligned))  # no padding when aligned


def test_pad_to_multiple_modes() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert pad_to_multiple(x, 4).shape == (1, 1, 4, 4)
    # 2 rows of padding on a 2-row input cannot reflect: replicate the last row instead
    assert torch.equal(pad_to_multiple(x, 4)[0, 0, 3, :3], x[0, 0, 1])
    y = torch.arange(25.0).reshape(1, 1, 5, 5)
    assert torch.equal(pad_to_multiple(y, 8)[0, 0, 5:, 0], torch.tensor([15.0, 10.0, 5.0]))
    assert pad_to_multiple(y, 5) is y


def test_core_requires_aligned_input_wrapper_does_not(models: dict[str, nn.Module]) -> None:
    assert isinstance(models["sid"], PaddedModel) and isinstance(models["sid"].core, UNet)
    assert isinstance(build_core("fire"), UNet)
    with pytest.raises(RuntimeError):
        models["lighter"].core(torch.rand(1, 4, 13, 21))


# --- export paths ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 4, 13, 21)


@pytest.mark.parametrize("name", LEARNED_MODELS)
def test_torchscript_script_and_trace(
    models: dict[str, nn.Module], example: torch.Tensor, name: str
) -> None:
    model = models[name]
    other = torch.rand(2, 4, 9, 30)
    with torch.no_grad():
        scripted = torch.jit.script(model)
        _close(scripted(example), model(example))
        _close(scripted(other), model(other))  # scripting keeps the shape logic
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, example)
        _close(traced(example), model(example))


@pytest.mark.parametrize("name", LEARNED_MODELS)
def test_fx_symbolic_trace(models: dict[str, nn.Module], example: torch.Tensor, name: str) -> None:
    model = models[name]
    aligned = torch.rand(1, 4, 16, 32)
    with torch.no_grad():
        core_graph = torch.fx.symbolic_trace(model.core)
        _close(core_graph(aligned), model.core(aligned))
        wrapper_graph = torch.fx.symbolic_trace(model)
        _close(wrapper_graph(example), model(example))
        other = torch.rand(1, 4, 7, 40)  # the traced wrapper stays shape-generic
        _close(wrapper_graph(other), model(other))
    targets = {n.target for n in core_graph.graph.nodes if n.op == "call_module"}
    assert "lrelu1_1" in targets and "depth_to_space" in targets


def test_jit_save_load_round_trip(models: dict[str, nn.Module], example: torch.Tensor) -> None:
    model = models["fire"]
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with torch.no_grad():
        _close(loaded(example), model(example))


@pytest.mark.parametrize("name", ["sid", "fire"])
def test_onnx_export_matches_eager(
    models: dict[str, nn.Module], example: torch.Tensor, name: str
) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = models[name]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, input_names=["raw"], output_names=["rgb"]
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"raw": example.numpy()})
    with torch.no_grad():
        _close(torch.from_numpy(out), model(example))


def test_fx_quantized_core_rewraps(models: dict[str, nn.Module]) -> None:
    quantize_fx = pytest.importorskip("torch.ao.quantization.quantize_fx")
    from torch.ao.quantization import get_default_qconfig_mapping

    model = models["lighter"]
    x = torch.rand(1, 4, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = quantize_fx.prepare_fx(
            copy.deepcopy(model.core), get_default_qconfig_mapping(), (x,)
        )
        with torch.no_grad():
            prepared(x)
        quantized = PaddedModel(quantize_fx.convert_fx(prepared))
        with torch.no_grad():
            y = quantized(torch.rand(1, 4, 13, 21))
        size, method = serialized_size_bytes(quantized)
    assert y.shape == (1, 3, 26, 42)
    fp32_size, _ = serialized_size_bytes(model)
    assert method == "torchscript" and size < 0.4 * fp32_size


# --- complexity -----------------------------------------------------------------------------


def test_sid_macs_match_the_paper_count(models: dict[str, nn.Module]) -> None:
    assert abs(count_macs(models["sid"], (256, 256)) / 1e9 - 12.11) < 0.01
    assert abs(count_macs(models["sid"], (512, 512)) / 1e9 - 48.45) < 0.01


def test_transposed_conv_macs_per_input_pixel() -> None:
    up = nn.ConvTranspose2d(512, 256, 2, stride=2)
    assert count_macs(nn.Sequential(nn.Conv2d(4, 512, 1, bias=False), up), (16, 16)) == (
        4 * 512 * 16 * 16 + 512 * 256 * 4 * 16 * 16
    )


def test_macs_of_variants(models: dict[str, nn.Module]) -> None:
    macs = {name: count_macs(models[name]) for name in LEARNED_MODELS}
    assert macs["sid"] > macs["light"] > macs["fire"] > macs["lighter"]
    assert macs["light"] == 7_353_270_272 and macs["lighter"] == 1_999_437_824
    assert count_macs(models["lighter"], (128, 128)) * 4 == macs["lighter"]


def test_sizes(models: dict[str, nn.Module]) -> None:
    sid = models["sid"]
    assert fp32_size_mib(sid) == pytest.approx(7_760_748 * 4 / 2**20)
    size, method = serialized_size_bytes(sid)
    assert method == "torchscript"
    assert 7_760_748 * 4 < size < 7_760_748 * 4 * 1.05
    assert fp32_size_mib(copy.deepcopy(sid).half()) == fp32_size_mib(sid)  # counted as fp32


def test_serialized_size_falls_back_to_safetensors() -> None:
    class Untraceable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 8, 3)

        def forward(self, x: torch.Tensor) -> str:
            return "not a tensor"

    size, method = serialized_size_bytes(Untraceable())
    assert method == "safetensors"
    assert (8 * 4 * 9 + 8) * 4 < size < (8 * 4 * 9 + 8) * 4 + 1024


def test_list_models_cli_json_is_the_registry() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "lowbench", "list", "models", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows) == ["sid", "light", "lighter", "fire", "libraw"]
    assert rows["sid"]["params"] == 7_760_748 and rows["light"]["params"] == 4_285_676
    assert rows["lighter"]["params"] == 1_513_812
    assert abs(rows["sid"]["macs"] / 1e9 - 12.11) < 0.01
    assert rows["fire"]["macs"] < rows["light"]["macs"] and rows["libraw"]["params"] == 0


# --- the one registry -------------------------------------------------------------------------


def test_registry_imports_no_torch() -> None:
    """The command line and the asv suite read names from the registry before torch loads."""
    import subprocess
    import sys

    code = ("import sys, lowbench.models, lowbench.models.registry as r; "
            "r.parse_model('fire'); r.check_combination('libraw', 'fp32'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_registry_metadata_matches_the_package() -> None:
    from pathlib import Path

    import lowbench
    from lowbench.models import fire as fire_module
    from lowbench.models.registry import FIRE_SQUEEZE_RATIO, get_model
    from lowbench.site.model import MODEL_ORDER, QUANT_ORDER

    shipped = Path(lowbench.__file__).resolve().parent / "checkpoints"
    for name in LEARNED_MODELS:
        spec = get_model(name)
        assert spec.learned and (shipped / spec.checkpoint).is_file()
        assert (shipped / spec.qat_checkpoint).is_file()
    libraw = get_model("libraw")
    assert not libraw.learned and libraw.checkpoint is None and libraw.family == "baseline"
    assert [get_model(n).original_architecture for n in LEARNED_MODELS] == [
        "SeeInDark", "Light_SeeInDark", "Lighter_SeeInDark", None]
    assert {get_model(n).family for n in ("sid", "light", "lighter")} == {"sid-unet"}
    assert FIRE_SQUEEZE_RATIO == fire_module.SQUEEZE_RATIO
    assert f"squeeze ratio {FIRE_SQUEEZE_RATIO}" in describe("fire")["description"]
    assert MODEL_ORDER == MODEL_NAMES
    assert QUANT_ORDER == ("fp32", "fp16", "bf16", "dynamic", "static", "qat")


def test_check_combination_names_the_problem() -> None:
    from lowbench.models.registry import check_combination, is_valid_combination

    assert check_combination("light", "qat").name == "light"
    assert check_combination("libraw", "fp32").name == "libraw"
    with pytest.raises(VariantError, match="'libraw' cannot take quant 'static'"):
        check_combination("libraw", "static")
    with pytest.raises(LowbenchError, match="unknown quant 'int4'"):
        check_combination("sid", "int4")
    with pytest.raises(LowbenchError, match="unknown model 'unet'"):
        check_combination("unet", "int4")  # the model is judged first
    assert not is_valid_combination("libraw", "qat")
    assert is_valid_combination("fire", "qat") and is_valid_combination("nope", "qat")


def test_parameter_shapes_and_fits_tell_models_apart() -> None:
    from lowbench.models.registry import fits, parameter_shapes

    light, lighter = parameter_shapes("light"), parameter_shapes("lighter")
    assert light["core.conv1_2.depthwise.weight"] == (32, 1, 3, 3)
    assert light["core.conv1_1.weight"] == (32, 4, 3, 3)  # convK_1 stays plain in light
    assert "core.conv1_1.depthwise.weight" in lighter
    state = {k: torch.zeros(s) for k, s in light.items()}
    assert fits(state, "light") and not fits(state, "lighter") and not fits(state, "sid")
    extra = {**state, "core.activation_post_process_0.scale": torch.ones(1)}
    assert not fits(extra, "light") and fits(extra, "light", extra=True)
    state["core.conv1_1.weight"] = torch.zeros(32, 4, 1, 1)  # right key, wrong shape
    assert not fits(state, "light", extra=True)
