"""The runtime axis, run for real: ONNX Runtime and OpenVINO (CPU), torch.compile, the registry's
reasons, the honest precision read back from each runtime, quality from the runtime's own
outputs, the TEST01 output check and the CLI.

Inputs are odd-sized (not multiples of 16) so the pad-and-crop around a runtime is exercised;
int8 is calibrated on 4 crops to keep the suite short.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lowbench.harness.evaluate import evaluate
from lowbench.harness.session import EvalConfig, Session
from lowbench.quant.calibrate import CalibrationSettings
from lowbench.results.records import record_filename, validate
from lowbench.runtimes.base import DeployRequest, RuntimeModule, RuntimeUnavailable
from lowbench.runtimes.registry import RUNTIME_NAMES, deploy, why_not
from lowbench.variants import build_variant
from tests.cli_helpers import assert_one_line_error, lowbench

SMALL_CALIBRATION = CalibrationSettings(pairs=4, crops=4)
#: an input that is not a multiple of 16 in either side, and not square
ODD = (1, 4, 37, 53)


@pytest.fixture(scope="module")
def odd_input() -> torch.Tensor:
    """A real packed input (synth pair 1, amplified), cropped to the odd size at an offset."""
    from lowbench.pairs import load_input
    from lowbench.tasks import get_task

    packed = load_input(get_task("synth").pairs(None, limit=1)[0])
    return torch.from_numpy(np.ascontiguousarray(packed[:, 11:11 + ODD[2], 7:7 + ODD[3]]))[None]


@pytest.fixture(scope="module")
def eager_fp32() -> torch.nn.Module:
    return build_variant("lighter", "fp32").module


def _eager(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(x)


def _request(quant: str, **kw) -> DeployRequest:
    return DeployRequest("lighter", quant, threads=1, input_hw=ODD[2:],
                         calibration=SMALL_CALIBRATION, **kw)


def test_list_runtimes_names_every_runtime_and_why_not() -> None:
    proc = lowbench("list", "runtimes", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert tuple(rows) == RUNTIME_NAMES
    assert rows["torch"]["why_not"] is None
    assert rows["onnxruntime"]["why_not"] is None and rows["openvino"]["why_not"] is None
    # ONNX Runtime's CPU EP has no fp16/bf16 convolution: refused with the reason, per quant
    assert "CPU execution provider" in rows["onnxruntime"]["quants"]["bf16"]
    assert rows["onnxruntime"]["quants"]["static"] is None
    # no CUDA GPU here: TensorRT is listed with the reason (not installed, or no GPU)
    assert rows["tensorrt"]["why_not"]
    assert all(rows["tensorrt"]["quants"].values())


def test_unknown_runtime_is_one_line(tmp_path: Path) -> None:
    proc = lowbench("evaluate", "--model", "lighter", "--runtime", "tflite", "--out",
                    str(tmp_path))
    assert_one_line_error(proc, "tflite", "lowbench list runtimes")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_fp32_on_a_runtime_matches_eager_torch(runtime: str, odd_input: torch.Tensor,
                                               eager_fp32: torch.nn.Module) -> None:
    variant = deploy(runtime, _request("fp32"))
    assert isinstance(variant.module, RuntimeModule)
    out = variant.module(odd_input)
    assert out.shape == (1, 3, 74, 106)
    assert float((out - _eager(eager_fp32, odd_input)).abs().max()) < 1e-4
    info = variant.info["runtime"]
    # the precision is read back: OpenVINO's default hint on a bf16 CPU is bf16, pinned here
    assert info["precision"] == "float32" and info["requested_precision"] == "float32"
    assert info["build_s"] > 0 and info["threads"] == 1
    folder = Path(variant.module.worker["file"]).parent
    on_disk = sum(p.stat().st_size for p in folder.iterdir() if p.name in
                  info["artifact"]["files"])
    assert info["artifact"]["bytes"] == on_disk > 1_000_000  # lighter: ~6 MB of float32


def test_openvino_bf16_runs_bf16_or_says_why(odd_input: torch.Tensor,
                                             eager_fp32: torch.nn.Module) -> None:
    import openvino as ov

    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if not has_bf16:
        with pytest.raises(RuntimeUnavailable, match="bfloat16"):
            deploy("openvino", _request("bf16"))
        return
    variant = deploy("openvino", _request("bf16"))
    assert variant.info["runtime"]["precision"] == "bfloat16"
    diff = float((variant.module(odd_input) - _eager(eager_fp32, odd_input)).abs().max())
    assert 1e-4 < diff < 0.2  # really computed in bf16 (an fp32 run would agree to 1e-6)


def test_openvino_fp16_is_refused_where_the_cpu_would_run_another_precision() -> None:
    import openvino as ov

    if "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert deploy("openvino", _request("fp16")).info["runtime"]["precision"] == "float16"
    else:
        assert "float16" in why_not("openvino", "fp16")
        with pytest.raises(RuntimeUnavailable, match="float16"):
            deploy("openvino", _request("fp16"))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_static_int8_is_made_by_the_runtime_and_read_back(runtime: str, odd_input: torch.Tensor,
                                                          eager_fp32: torch.nn.Module) -> None:
    variant = deploy(runtime, _request("static"))
    info = variant.info
    assert "int8" in info["runtime"]["precision"].split("+")
    assert info["quantized_layers"] == info["runtime"]["precision_counts"]["int8"] > 0
    assert info["calibration"]["crops"] == 4 and info["calibration"]["task"] == "synth"
    assert runtime in info["calibration"]["observer"] or "nncf" in info["calibration"]["observer"]
    ref = _eager(eager_fp32, odd_input)
    out = variant.module(odd_input)
    diff = float((out - ref).abs().max())
    # int8 arithmetic: not the float output, but close to it (a broken graph is far off)
    assert 1e-4 < diff and float((out - ref).abs().mean()) < 0.05
    # int8 weights: the artifact is far smaller than the ~6 MB float32 file
    assert info["runtime"]["artifact"]["bytes"] < 3_000_000


def test_qat_runs_on_onnxruntime_from_its_qdq_export(odd_input: torch.Tensor) -> None:
    variant = deploy("onnxruntime", _request("qat"))
    assert "int8" in variant.info["runtime"]["precision"]
    torch_qat = build_variant("lighter", "qat").module
    diff = (variant.module(odd_input) - _eager(torch_qat, odd_input)).abs()
    # the same int8 graph, other kernels: outputs differ by whole steps of the output's
    # quantization (~0.01), mostly by none or one
    assert float(diff.median()) <= 0.011 and float(diff.mean()) < 0.02


def test_torch_compile_keeps_compile_time_apart(odd_input: torch.Tensor,
                                                eager_fp32: torch.nn.Module) -> None:
    variant = deploy("torch-compile", _request("fp32"))
    info = variant.info["runtime"]
    assert info["name"] == "torch-compile" and info["precision"] == "float32"
    assert info["build_s"] > 1  # inductor compiled here, before any timing
    assert variant.module.prepare(ODD) == 0.0  # the request's size is already compiled
    out = variant.module(odd_input)
    assert float((out - _eager(eager_fp32, odd_input)).abs().max()) < 1e-4
    assert why_not("torch-compile", "static")  # torch.ao int8 modules: refused, with a reason


def test_runtime_record_end_to_end(tmp_path: Path) -> None:
    """A full record through the one harness: quality from ONNX Runtime's own outputs, the
    artifact's bytes as size, the clean worker without torch, the runtime in the file name."""
    proc = lowbench("evaluate", "--model", "lighter", "--quant", "int8", "--runtime",
                    "onnxruntime", "--limit", "2", "--latency-budget", "0.2", "--no-energy",
                    "--threads", "1", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    validate(record)
    variant = record["variant"]
    assert variant["quant"] == "static"  # int8 is an alias of static
    runtime = variant["runtime"]
    assert runtime["name"] == "onnxruntime" and "int8" in runtime["precision"]
    assert record["size"]["size_bytes"] == runtime["artifact"]["bytes"]
    assert record["latency"]["output_check"]["ok"] is True
    assert "no torch" in record["memory"]["definition"]
    assert record["memory"]["peak_rss_mib"] > 0
    assert "__onnxruntime__" in record_filename(record)
    assert (tmp_path / record_filename(record)).exists()
    # PSNR from the runtime's own outputs, not borrowed from torch: eager torch's int8 (another
    # quantizer) scores the same pair differently
    from lowbench.metrics import psnr
    from lowbench.pairs import load_input, load_truth
    from lowbench.tasks import get_task

    pair = get_task("synth").pairs(None, limit=1)[0]
    assert record["quality"]["per_pair"][0]["pair"] == pair.pair_id
    torch_static = build_variant("lighter", "static").module
    with torch.inference_mode():
        y = torch_static(torch.from_numpy(load_input(pair))[None])
    torch_psnr = psnr(y[0].permute(1, 2, 0).numpy(), load_truth(pair))
    assert abs(record["quality"]["per_pair"][0]["psnr_db"] - torch_psnr) > 1e-3


def test_unsupported_runtime_precision_is_recorded_with_its_reason(tmp_path: Path) -> None:
    record = evaluate(EvalConfig(model="lighter", quant="bf16", runtime="onnxruntime", limit=1,
                                 memory=False, energy=False, gallery=False, command=[]))
    assert record["status"] == "unsupported"
    assert "onnxruntime" in record["failure"]["reason"]
    assert "bfloat16" in record["failure"]["reason"]
    assert record["variant"]["runtime"]["name"] == "onnxruntime"
    assert record["quality"]["psnr_db"] is None and record["latency"] is None
    validate(record)


class _SkipsWorkAfterFirstCalls(torch.nn.Module):
    """A cheating runtime: computes the real output for the accuracy pass, then returns a
    constant in the timed loop (as a runtime that caches or skips work would)."""

    def __init__(self, inner: torch.nn.Module, honest_calls: int) -> None:
        super().__init__()
        self.inner, self.calls, self.honest_calls = inner, 0, honest_calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y = self.inner(x)
        return y if self.calls <= self.honest_calls else torch.zeros_like(y)


def test_output_check_catches_a_runtime_that_skips_work() -> None:
    cfg = EvalConfig(model="lighter", quant="fp32", limit=1, latency_budget_s=0.05,
                     latency_min_runs=3, memory=False, energy=False, gallery=False, command=[])
    honest = Session(cfg)
    honest.run_quality()
    assert honest.measure_latency()["output_check"] == {
        "ok": True, "max_abs_diff": 0.0, "tolerance": 1e-3}
    variant = dataclasses.replace(honest.variant,
                                  module=_SkipsWorkAfterFirstCalls(honest.variant.module, 1))
    cheat = Session(cfg, variant)
    cheat.run_quality()
    check = cheat.measure_latency()["output_check"]
    assert check["ok"] is False and check["max_abs_diff"] > 0.1


def test_export_runtime_writes_the_deployed_ir(tmp_path: Path, odd_input: torch.Tensor,
                                               eager_fp32: torch.nn.Module) -> None:
    out = tmp_path / "lighter.xml"
    proc = lowbench("export", "--model", "lighter", "--runtime", "openvino", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and out.with_suffix(".bin").stat().st_size > 1_000_000
    assert "executes float32" in proc.stdout
    from lowbench.runtimes.loaders import openvino_compile, openvino_runner
    from lowbench.runtimes.openvino_runtime import compile_config

    x = torch.nn.functional.pad(odd_input, (0, 11, 0, 11), mode="reflect")  # 48 x 64
    run = openvino_runner(openvino_compile(out, tuple(x.shape), compile_config("fp32", 1)))
    got = run(np.ascontiguousarray(x.numpy()))[:, :, :74, :106]
    assert float(np.abs(got - _eager(eager_fp32, odd_input).numpy()).max()) < 1e-4
    bad = lowbench("export", "--model", "lighter", "--runtime", "openvino", "--out",
                   str(tmp_path / "lighter.onnx"))
    assert_one_line_error(bad, "lighter.onnx", ".xml")


def test_export_of_a_runtime_without_a_file_is_one_line(tmp_path: Path) -> None:
    """torch.compile deploys no file: refused before anything is built, no traceback."""
    proc = lowbench("export", "--model", "lighter", "--runtime", "torch-compile", "--out",
                    str(tmp_path / "x.pt"))
    assert_one_line_error(proc, "torch-compile", "--format")
    assert not (tmp_path / "x.pt").exists()
