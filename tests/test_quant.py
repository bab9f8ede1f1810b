"""Quantization variants: every learned model x fp32/dynamic/static/qat, fp16, QAT, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from quant_fixtures import TINY_CALIBRATION as TINY

from lowbench.checkpoint import save_checkpoint
from lowbench.errors import CheckpointError, DataError, LowbenchError, VariantError
from lowbench.models import LEARNED_MODELS, build
from lowbench.models.registry import QUANT_NAMES
from lowbench.quant import calibrate, fx, observers, recipes, report
from lowbench.quant.qat import prepare_qat_model
from lowbench.variants import build_variant

#: int8 vs fp32 agreement floor, PSNR over the fp32 output's range. Random-init weights and
#: this tiny calibration give 49-53 dB on these models; a broken int8 kernel or a missing
#: calibration gives < 20 dB (the buggy int8 transposed conv measured 17 dB).
INT8_PSNR_DB = 35.0
#: int8 model vs the fake-quant model it was converted from (measured 47-52 dB).
QAT_PSNR_DB = 35.0


def psnr_db(pred: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR (dB) of ``pred`` against ``ref`` with the peak taken as ``ref``'s range."""
    peak = float(ref.max() - ref.min())
    mse = float(((pred - ref) ** 2).mean())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak**2 / mse)).item()


def sample_input() -> torch.Tensor:
    """A 1x4x24x40 packed crop of a real synth test pair (odd size: exercises the padding)."""
    from lowbench.pairs import load_input
    from lowbench.tasks import get_task

    image = torch.from_numpy(load_input(get_task("synth").pairs()[0]))
    return image[None, :, 100:124, 60:100].contiguous()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return sample_input()


@pytest.fixture(scope="module")
def float_ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A freshly initialised (seeded) checkpoint per learned model."""
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name in LEARNED_MODELS:
        torch.manual_seed(0)
        out[name] = save_checkpoint(root / f"{name}.safetensors", name, build(name).state_dict(),
                                    {"task": "test"})
    return out


def qat_train(name: str, steps: int = 2) -> torch.nn.Module:
    """prepare_qat_model + a few Adam steps on random data; returns the fake-quant model."""
    torch.manual_seed(0)
    model = prepare_qat_model(build(name), name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    for _ in range(steps):
        loss = F.l1_loss(model(torch.rand(1, 4, 32, 32)), torch.rand(1, 3, 64, 64))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def qat_ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, torch.nn.Module]]:
    """Per model: a QAT checkpoint written like `lowbench train --qat` does, and its model."""
    root = tmp_path_factory.mktemp("qat")
    out = {}
    for name in LEARNED_MODELS:
        model = qat_train(name)
        path = save_checkpoint(root / f"{name}-qat.safetensors", name, model.state_dict(),
                               {"task": "test"}, check_architecture=False)
        out[name] = (path, model)
    return out


def _build(name: str, q: str, float_ckpts, qat_ckpts, **kw):
    ckpt = qat_ckpts[name][0] if q == "qat" else float_ckpts[name]
    return build_variant(name, q, checkpoint=ckpt, calibration=TINY, **kw)


@pytest.fixture(scope="module")
def built(float_ckpts, qat_ckpts):
    """Memoized ``_build(name, q)`` for the default engine (builds are the slow part)."""
    cache: dict[tuple[str, str], object] = {}

    def get(name: str, q: str):
        if (name, q) not in cache:
            cache[name, q] = _build(name, q, float_ckpts, qat_ckpts)
        return cache[name, q]

    return get


@pytest.mark.parametrize("name", LEARNED_MODELS)
@pytest.mark.parametrize("q", ["fp32", "dynamic", "static", "qat"])
def test_every_model_and_quant_builds_and_runs(name, q, built, x):
    v = built(name, q)
    assert v.info["status"] == "ok" and v.info["reason"] is None
    assert v.info["model"] == name and v.info["quant"] == q and v.info["device"] == "cpu"
    assert v.info["checkpoint"]["source"] == "user"
    assert len(v.info["checkpoint"]["sha256"]) == 64
    for key in ("engine", "quantized_layers", "quantized_nothing", "calibration", "dtype",
                "note"):
        assert key in v.info
    with torch.inference_mode():
        y = v.module(x)
    assert y.shape == (1, 3, 48, 80) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    if q in ("static", "qat"):
        assert v.info["quantized_layers"] > 0 and v.info["quantized_nothing"] is False
        assert v.info["engine"] == fx.select_engine() and v.info["dtype"] == "int8"
        assert v.info["calibration"]["task"] == ("synth-train" if q == "static" else "test")
    if q == "qat":
        assert v.info["calibration"]["method"].startswith("QAT")


def test_dynamic_quantizes_nothing(built):
    v = built("sid", "dynamic")
    assert v.info["quantized_layers"] == 0
    assert v.info["quantized_nothing"] is True
    assert v.info["dtype"] == "float32"
    assert "nothing was quantized" in v.info["note"]


@pytest.mark.parametrize("name", LEARNED_MODELS)
def test_static_is_close_to_fp32(name, built, x):
    fp32 = built(name, "fp32")
    int8 = built(name, "static")
    cal = int8.info["calibration"]
    assert cal["task"] == "synth-train"  # the train split, never the synth test split
    assert (cal["pairs"], cal["crops"], cal["crop_packed"], cal["seed"]) == (1, 2, 32, 0)
    assert int8.info["engine"] in torch.backends.quantized.supported_engines
    assert report.count_quantized_layers(int8.module) == int8.info["quantized_layers"]
    with torch.inference_mode():
        assert psnr_db(int8.module(x), fp32.module(x)) > INT8_PSNR_DB


def test_calibration_cache_hit_skips_calibration(float_ckpts, qat_ckpts, x, monkeypatch):
    settings = calibrate.CalibrationSettings(pairs=1, crops=2, crop_packed=32, seed=1234, batch=2)
    first = build_variant("lighter", "static", checkpoint=float_ckpts["lighter"],
                          calibration=settings)
    assert first.info["calibration"]["cached"] is False
    assert first.info["calibration"]["source"] == "calibrated"  # a user checkpoint: not shipped
    assert Path(first.info["calibration"]["cache_file"]).is_file()

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibration ran on a cache hit")

    monkeypatch.setattr(calibrate, "observe", no_calibration)
    monkeypatch.setattr(calibrate, "calibration_crops", no_calibration)
    second = build_variant("lighter", "static", checkpoint=float_ckpts["lighter"],
                           calibration=settings)
    assert second.info["calibration"]["cached"] is True
    assert second.info["calibration"]["source"] == "cache"
    assert second.info["calibration"]["pairs"] == 1
    with torch.inference_mode():
        assert torch.equal(first.module(x), second.module(x))


def test_static_cache_is_keyed_by_the_weights(monkeypatch):
    """Two models that differ only in their weights get different observer-cache keys and
    files: the second is calibrated afresh, never served the first one's ranges; the same
    weights again (a copy, digested from its state dict) reuse the first one's cache file."""
    import copy

    settings = calibrate.CalibrationSettings(pairs=1, crops=2, crop_packed=32, seed=4321, batch=2)
    torch.manual_seed(1)
    first = build("lighter")
    torch.manual_seed(2)
    other = build("lighter")
    same = copy.deepcopy(first)
    runs: list[int] = []
    observe = calibrate.observe

    def counted(prepared, crops, batch):
        runs.append(len(crops))
        observe(prepared, crops, batch)

    monkeypatch.setattr(calibrate, "observe", counted)
    infos = [recipes.build_static(m, "lighter", settings=settings, use_shipped=False)[1]
             for m in (first, other, same)]
    cals = [i["calibration"] for i in infos]
    assert [c["source"] for c in cals] == ["calibrated", "calibrated", "cache"]
    assert runs == [2, 2]  # the other weights were calibrated; the same weights were not
    assert cals[0]["cache_file"] != cals[1]["cache_file"]
    assert cals[2]["cache_file"] == cals[0]["cache_file"]
    # the keys differ in the weights alone, and neither file is served under the other's key
    engine = fx.use_engine()
    keys = [calibrate.static_calibration_key(
        fx.prepare_static(copy.deepcopy(m.core), engine), m, "lighter", weights_id=None,
        calibration_task="synth-train", engine=engine, settings=settings) for m in (first, other)]
    assert {k for k in keys[0] if keys[0][k] != keys[1][k]} == {"weights"}
    assert calibrate.read_observer_cache(Path(cals[0]["cache_file"]), keys[1]) is None
    assert calibrate.read_observer_cache(Path(cals[1]["cache_file"]), keys[0]) is None
    states = [calibrate.read_observer_cache(Path(c["cache_file"]), k)[0]
              for c, k in zip(cals[:2], keys, strict=True)]
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_calibration_cache_is_safetensors_of_observer_state(built):
    v = built("lighter", "static")
    from safetensors.torch import load_file

    state = load_file(v.info["calibration"]["cache_file"])
    assert state and all("activation_post_process" in k for k in state)
    assert not any(k.endswith(".weight") for k in state)


def test_fp16_on_cpu_is_half_or_unsupported(float_ckpts, qat_ckpts):
    v = _build("lighter", "fp16", float_ckpts, qat_ckpts)
    assert v.info["dtype"] == "float16"
    if v.info["status"] == "ok":
        params = list(v.module.parameters())
        assert params and all(p.dtype == torch.float16 for p in params)
        with torch.inference_mode():
            y = v.module(torch.rand(1, 4, 16, 16))
        assert y.dtype == torch.float32 and y.shape == (1, 3, 32, 32)
    else:
        assert v.module is None
        assert v.info["reason"].startswith("fp16 convolution unsupported on this device")


def test_fp16_reports_unsupported_when_half_conv_fails(float_ckpts, qat_ckpts, monkeypatch):
    real_conv = F.conv2d

    def no_half(inp, *args, **kwargs):
        if inp.dtype == torch.float16:
            raise RuntimeError('"slow_conv2d_cpu" not implemented for \'Half\'')
        return real_conv(inp, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", no_half)
    v = _build("lighter", "fp16", float_ckpts, qat_ckpts)
    assert v.module is None and v.info["status"] == "unsupported"
    assert v.info["reason"] == ("fp16 convolution unsupported on this device: "
                                "\"slow_conv2d_cpu\" not implemented for 'Half'")


def test_prepare_qat_model_is_trainable_fake_quant():
    model = prepare_qat_model(build("lighter"), "lighter")
    assert model.training
    keys = model.state_dict().keys()
    assert any("fake_quant" in k for k in keys)
    assert all(k.startswith("core.") for k in keys)


def test_qat_int8_matches_fake_quant_model(qat_ckpts, x):
    path, fake_quant = qat_ckpts["sid"]
    v = build_variant("sid", "qat", checkpoint=path)
    fake_quant.eval()
    fake_quant.apply(torch.ao.quantization.disable_observer)
    with torch.inference_mode():
        assert psnr_db(v.module(x), fake_quant(x)) > QAT_PSNR_DB
    assert v.info["checkpoint"]["path"] == str(path)


# -- errors --------------------------------------------------------------------------------
def test_libraw_fp32_is_left_to_the_harness():
    v = build_variant("libraw", "fp32")
    assert v.module is None and v.info["status"] == "ok"
    assert v.info["note"] == "LibRaw baseline, handled by the harness"


def test_libraw_static_is_a_variant_error():
    with pytest.raises(VariantError, match=r"'libraw'.*'static'.*valid: --quant fp32"):
        build_variant("libraw", "static")


def test_unknown_quant_lists_the_names():
    with pytest.raises(LowbenchError) as err:
        build_variant("sid", "int4")
    assert "'int4'" in str(err.value)
    assert all(q in str(err.value) for q in QUANT_NAMES)


def test_missing_engine_is_a_variant_error(float_ckpts, qat_ckpts, monkeypatch):
    monkeypatch.setattr(fx, "supported_engines", lambda: ["none"])
    with pytest.raises(VariantError, match=r"engine '(x86|qnnpack)'.*supported: none"):
        _build("lighter", "static", float_ckpts, qat_ckpts)


def test_sid_task_without_data_root_is_a_data_error(float_ckpts, qat_ckpts):
    with pytest.raises(DataError, match="sid-sony-train.*--data-root"):
        _build("lighter", "static", float_ckpts, qat_ckpts, task="sid-sony-test")


def test_cuda_without_cuda_is_an_error(float_ckpts, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LowbenchError, match="CUDA is not available"):
        build_variant("lighter", "fp32", checkpoint=float_ckpts["lighter"], device="cuda")


def test_qat_without_checkpoint_says_how_to_get_one(monkeypatch, tmp_path):
    import lowbench.checkpoint

    monkeypatch.setattr(lowbench.checkpoint, "_CHECKPOINT_DIR", tmp_path)  # ships none
    with pytest.raises(VariantError, match=r"no QAT checkpoint for fire; run `lowbench train "
                                           r"--model fire --qat"):
        build_variant("fire", "qat")


def test_qat_refuses_float_and_non_safetensors_checkpoints(float_ckpts, qat_ckpts, tmp_path):
    with pytest.raises(CheckpointError, match="not a QAT checkpoint"):
        build_variant("lighter", "qat", checkpoint=float_ckpts["lighter"])
    pth = tmp_path / "x.pth"
    pth.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match=r"\.safetensors"):
        build_variant("lighter", "qat", checkpoint=pth)
    with pytest.raises(CheckpointError, match="for model 'sid', not 'lighter'"):
        build_variant("lighter", "qat", checkpoint=qat_ckpts["sid"][0])


def test_arm_engine_path_quantizes_transposed_convs(float_ckpts, qat_ckpts, x, monkeypatch):
    """The qnnpack (Jetson/ARM) recipe, run here: its int8 ConvTranspose2d is correct."""
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("this PyTorch build has no qnnpack")
    monkeypatch.setattr(fx, "select_engine", lambda: "qnnpack")
    fp32 = _build("lighter", "fp32", float_ckpts, qat_ckpts)
    int8 = _build("lighter", "static", float_ckpts, qat_ckpts)
    assert int8.info["engine"] == "qnnpack"
    assert int8.info["quantized_layer_types"].get("ConvTranspose2d") == 4
    with torch.inference_mode():
        assert psnr_db(int8.module(x), fp32.module(x)) > INT8_PSNR_DB
    qat = _build("lighter", "qat", float_ckpts, qat_ckpts)  # an x86-trained QAT checkpoint
    assert qat.info["engine"] == "qnnpack" and qat.info["quantized_layers"] > 0


def test_fp16_emulated_on_cpu_is_unsupported_unless_forced(float_ckpts, qat_ckpts, monkeypatch):
    times = iter([1.0, 20.0, 1.0, 20.0])  # fp32 ms, fp16 ms per probe: 20x slower = emulation
    monkeypatch.setattr(recipes, "probe_ms", lambda fn: next(times))
    monkeypatch.setattr(recipes, "cpu_has_native_fp16", lambda: True)  # the timing decides
    monkeypatch.delenv("LOWBENCH_FP16_CPU", raising=False)
    v = _build("lighter", "fp16", float_ckpts, qat_ckpts)
    assert v.module is None and v.info["status"] == "unsupported"
    assert "20x slower" in v.info["reason"] and "LOWBENCH_FP16_CPU=emulated" in v.info["reason"]
    monkeypatch.setenv("LOWBENCH_FP16_CPU", "emulated")
    v = _build("lighter", "fp16", float_ckpts, qat_ckpts)
    assert v.info["status"] == "ok"
    assert all(p.dtype == torch.float16 for p in v.module.parameters())


def test_fp16_on_a_cpu_without_native_fp16_is_refused_however_fast_the_probe(
        float_ckpts, qat_ckpts, monkeypatch):
    """A loaded machine slows the fp32 probe: the timing alone once let an emulated fp16 run
    (0.19x of fp32) under the fp16 label. oneDNN's CPU check decides first."""
    times = iter([10.0, 11.0])  # fp16 barely slower than fp32: the timing alone would pass it
    monkeypatch.setattr(recipes, "probe_ms", lambda fn: next(times))
    monkeypatch.setattr(recipes, "cpu_has_native_fp16", lambda: False)
    monkeypatch.delenv("LOWBENCH_FP16_CPU", raising=False)
    v = _build("lighter", "fp16", float_ckpts, qat_ckpts)
    assert v.module is None and v.info["status"] == "unsupported"
    assert "no native fp16 arithmetic" in v.info["reason"]


# -- shipped static calibration (issue 16 §6: a fresh clone reproduces the published int8) ----
def _shipped_key(name: str) -> tuple[dict, object]:
    """The calibration key of ``name``'s shipped checkpoint with the default settings (x86)."""
    import copy

    from lowbench.checkpoint import load_into, shipped_checkpoint_path
    from lowbench.digest import sha256_file

    checkpoint = shipped_checkpoint_path(name)
    model = build(name)
    load_into(model, checkpoint, name)
    prepared = fx.prepare_static(copy.deepcopy(model.core), fx.use_engine("x86"))
    key = calibrate.static_calibration_key(
        prepared, model, name, weights_id=sha256_file(checkpoint),
        calibration_task="synth-train", engine="x86", settings=calibrate.DEFAULT_CALIBRATION)
    return key, prepared


@pytest.mark.skipif("x86" not in torch.backends.quantized.supported_engines,
                    reason="the shipped calibrations are for the x86 int8 engine")
@pytest.mark.parametrize("name", LEARNED_MODELS)
def test_shipped_checkpoints_ship_a_current_static_calibration(name):
    """Every shipped checkpoint has its static observer state in the package, keyed exactly as
    build_static keys it today (a retrained checkpoint or a changed recipe fails here until
    `python scripts/ship_calibration.py` is rerun), and that state fits the prepared graph."""
    key, prepared = _shipped_key(name)
    path = calibrate.shipped_calibration_path(key)
    assert path.is_file(), f"no shipped calibration {path.name}: run scripts/ship_calibration.py"
    state, summary = calibrate.read_observer_cache(path, key)
    assert observers.load_observer_state(prepared, state)
    assert (summary["task"], summary["pairs"], summary["crops"]) == ("synth-train", 32, 32)


@pytest.mark.skipif(fx.select_engine() != "x86",
                    reason="the shipped calibrations are for the x86 int8 engine")
def test_shipped_calibration_wins_over_a_local_cache_entry(tmp_path, monkeypatch, x):
    """A cache entry under the shipped key (e.g. calibrated on this CPU before lowbench shipped
    its calibration) never replaces the shipped state: every machine builds the same int8."""
    monkeypatch.setenv("LOWBENCH_DATA", str(tmp_path))
    shipped = build_variant("lighter", "static")
    assert shipped.info["calibration"]["source"] == "shipped"
    assert shipped.info["calibration"]["cache_file"].startswith("lowbench/calibration/")
    key, _ = _shipped_key("lighter")
    state, summary = calibrate.read_observer_cache(calibrate.shipped_calibration_path(key), key)
    narrowed = {k: v * 0.5 if k.endswith(("min_val", "max_val")) else v for k, v in state.items()}
    local = calibrate.cache_path(key)
    local.parent.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file(narrowed, str(local), metadata={"key": json.dumps(key, sort_keys=True),
                                              "calibration": json.dumps(summary)})
    again = build_variant("lighter", "static")
    assert again.info["calibration"]["source"] == "shipped"
    with torch.inference_mode():
        assert torch.equal(again.module(x), shipped.module(x))
