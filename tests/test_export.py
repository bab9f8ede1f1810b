"""Export round trips: TorchScript and ONNX (via onnxruntime) for every model x variant."""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from quant_fixtures import TINY_CALIBRATION as TINY

from lowbench import export
from lowbench.checkpoint import save_checkpoint
from lowbench.cli import export as export_cmd
from lowbench.errors import LowbenchError, VariantError
from lowbench.models import LEARNED_MODELS, build
from lowbench.quant import calibrate
from lowbench.quant.qat import calibrate_qat, prepare_qat_model
from lowbench.variants import Variant, build_variant

SIZE = 32
#: A reloaded float TorchScript runs the same kernels: equal up to float reordering.
FP32_ATOL = 1e-5
#: A reloaded int8 TorchScript runs the same int8 kernels with the same qparams; allow one
#: 8-bit output level (1/255 in sRGB units) for any requantization rounding difference.
INT8_ATOL = 1 / 255
#: onnxruntime computes the QDQ graph with its own rounding (requantize, LeakyReLU between
#: DQ/Q). On these 32x32 fixtures (uniform-noise input, far outside the 2-crop calibration)
#: the largest pixel differs by at most 0.03 (sRGB units) and the mean by 0.003 on the AVX-512
#: VNNI Xeon. With PyTorch forced onto its AVX2 kernels (scripts/int8_avx2_check.py's
#: environment), whose u8 x s8 pair sums saturate in 16 bits, fire's differ by up to 0.123 and
#: 0.012 in the mean. Bounds: mean 0.02, largest pixel 0.25. A wrong graph (a dropped layer, a
#: wrong scale) moves the mean far more. Whole synth images with the shipped checkpoints score
#: within 0.014 dB of the in-process int8 against the ground truth (scripts/onnx_quality.py).
ONNX_INT8_ATOL = 0.25
ONNX_INT8_MEAN_ATOL = 0.02
#: Half precision: a reloaded TorchScript runs the same fp16 kernels (equal up to reordering,
#: one fp16 step near 1.0 is 2**-10); onnxruntime's own fp16 kernels measured at most 0.002
#: max |diff| on these 32x32 fixtures (0.004 at 64x64 on the shipped checkpoints): bound 0.02.
FP16_ATOL = 2 ** -9
ONNX_FP16_ATOL = 0.02
ATOL = {"fp32": FP32_ATOL, "dynamic": FP32_ATOL, "fp16": FP16_ATOL, "static": INT8_ATOL,
        "qat": INT8_ATOL}
ONNX_ATOL = {**ATOL, "fp16": ONNX_FP16_ATOL, "static": ONNX_INT8_ATOL, "qat": ONNX_INT8_ATOL}
#: Mean |diff| bounds: a tenth of the largest-pixel bound for the float variants.
ONNX_MEAN_ATOL = {q: a / 10 for q, a in ONNX_ATOL.items()} | {
    "static": ONNX_INT8_MEAN_ATOL, "qat": ONNX_INT8_MEAN_ATOL}
QUANTS = ["fp32", "fp16", "dynamic", "static", "qat"]


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Variant]:
    """Every learned model x every variant, from checkpoints written here. fp16 is built even
    where this CPU emulates it (``LOWBENCH_FP16_CPU=emulated``): exporting does not time it."""
    root = tmp_path_factory.mktemp("export-ckpt")
    crops = calibrate.calibration_crops("synth", None, TINY)[0]
    out = {}
    for name in LEARNED_MODELS:
        torch.manual_seed(0)
        fp = save_checkpoint(root / f"{name}.safetensors", name, build(name).state_dict(), {})
        torch.manual_seed(0)
        qat = prepare_qat_model(build(name), name)
        calibrate_qat(qat, crops, TINY.batch)  # frozen ranges, as `lowbench train --qat`
        opt = torch.optim.Adam(qat.parameters(), lr=1e-3)
        F.l1_loss(qat(torch.rand(1, 4, 32, 32)), torch.rand(1, 3, 64, 64)).backward()
        opt.step()  # one QAT step: weights differ from the fp32 checkpoint's
        qp = save_checkpoint(root / f"{name}-qat.safetensors", name, qat.state_dict(), {},
                             check_architecture=False)
        for q in QUANTS:
            ckpt = qp if q == "qat" else fp
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("LOWBENCH_FP16_CPU", "emulated")
                out[name, q] = build_variant(name, q, checkpoint=ckpt, calibration=TINY)
    return out


def _runs(v: Variant) -> Variant:
    if v.module is None:  # fp16 where this build has no fp16 convolution at all
        pytest.skip(f"{v.model_name}/{v.quant}: {v.info.get('reason')}")
    return v


@pytest.mark.parametrize("name", LEARNED_MODELS)
@pytest.mark.parametrize("q", QUANTS)
def test_torchscript_round_trip(name, q, variants, tmp_path):
    v = _runs(variants[name, q])
    path = export.export_variant(v, "torchscript", tmp_path / "m.pt", size=SIZE)
    assert path == tmp_path / "m.pt" and path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind
    loaded = torch.jit.load(str(path))
    atol = ATOL[q]
    for shape in ((1, 4, SIZE, SIZE), (2, 4, 24, 40)):  # any size: the pad wrapper is scripted
        x = torch.rand(*shape)
        with torch.inference_mode():
            ref, got = v.module(x), loaded(x)
        assert got.shape == ref.shape
        assert float((got - ref).abs().max()) <= atol


@pytest.mark.parametrize("name", LEARNED_MODELS)
@pytest.mark.parametrize("q", QUANTS)
def test_onnx_runs_in_onnxruntime(name, q, variants, tmp_path):
    pytest.importorskip("onnxruntime")
    v = _runs(variants[name, q])
    path = export.export_variant(v, "onnx", tmp_path / "m.onnx", size=SIZE)
    assert export.max_abs_diff(v, path, "onnx", size=SIZE) <= ONNX_ATOL[q]
    x = export.example_input(v.module, SIZE)  # the input max_abs_diff compares on
    with torch.inference_mode():
        mean_diff = float((export.reload_outputs(path, "onnx", x) - v.module(x).float()).abs()
                          .mean())
    assert mean_diff <= ONNX_MEAN_ATOL[q]


def test_onnx_int8_exports_as_qdq(variants, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    v = variants["lighter", "static"]
    path = export.export_variant(v, "onnx", tmp_path / "m.onnx", size=SIZE)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert export.max_abs_diff(v, path, "onnx", size=SIZE) <= ONNX_INT8_ATOL


def test_failed_onnx_export_is_a_variant_error_and_leaves_nothing(variants, tmp_path,
                                                                  monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("quantized::something has no symbolic")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(VariantError, match="--format torchscript"):
        export.export_variant(variants["sid", "static"], "onnx", tmp_path / "m.onnx", size=SIZE)
    assert list(tmp_path.iterdir()) == []


def test_bad_exports_are_refused(variants, tmp_path):
    with pytest.raises(VariantError, match="nothing to export"):
        export.export_variant(build_variant("libraw", "fp32"), "onnx", tmp_path / "x.onnx")
    with pytest.raises(LowbenchError, match="torchscript, onnx"):
        export.export_variant(variants["sid", "fp32"], "tflite", tmp_path / "x")
    with pytest.raises(LowbenchError, match="--size 0"):
        export.export_variant(variants["sid", "fp32"], "onnx", tmp_path / "x.onnx", size=0)


def test_run_from_args_prints_path_size_and_diff(variants, tmp_path, capsys):
    ckpt = tmp_path / "lighter.safetensors"
    torch.manual_seed(0)
    save_checkpoint(ckpt, "lighter", build("lighter").state_dict(), {})
    out = tmp_path / "lighter.pt"
    args = argparse.Namespace(model="lighter", quant="fp32", runtime="torch",
                              format="torchscript", out=str(out),
                              checkpoint=str(ckpt), task="synth", data_root=None, size=SIZE)
    assert export_cmd.run(args) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert str(out) in line and "MiB" in line and "max |diff| = 0" in line
    assert Path(out).is_file()


def test_torchscript_file_size_does_not_depend_on_the_file_name(tmp_path):
    """A TorchScript zip keeps its entries under one folder; saved to a path, that folder was
    the (temp) file's name, so the size changed with --out. Each export runs in a fresh process
    (TorchScript numbers the class names of every module it compiles within a process)."""
    files = [tmp_path / "a.pt", tmp_path / "a_much_longer_name.pt"]
    for out in files:
        proc = subprocess.run([sys.executable, "-m", "lowbench", "export", "--model", "lighter",
                               "--out", str(out), "--size", "16"], capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    assert files[0].stat().st_size == files[1].stat().st_size
    entries = [zipfile.ZipFile(f).namelist() for f in files]
    assert entries[0] == entries[1] and all(n.startswith("archive/") for n in entries[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "a_much_longer_name.pt"]
