"""Original SID checkpoints: `lowbench checkpoint convert`, pickle refusals, QAT weights as float.

The ``.pth`` files are written with ``torch.save`` from a lowbench model's state dict renamed to
the original project's layout (SeeInDark, Light_SeeInDark, Lighter_SeeInDark,
Light_SeeInDark_Rewrite), optionally wrapped in a checkpoint dict and ``module.``-prefixed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, lowbench
from quant_fixtures import TINY_CALIBRATION
from safetensors import safe_open
from torch import nn

from lowbench.checkpoint import load_checkpoint
from lowbench.convert import convert_checkpoint
from lowbench.digest import sha256_file
from lowbench.errors import CheckpointError
from lowbench.models.registry import build, describe
from lowbench.pth import detect_architecture
from lowbench.variants import QAT_FLOAT_NOTE, build_variant

REPO = Path(__file__).resolve().parents[1]
QAT_CHECKPOINT = REPO / "lowbench" / "checkpoints" / "lighter-qat.safetensors"
FAST = ["--latency-budget", "0.2", "--latency-min-runs", "3", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    """Seeded sid, light and lighter (not the shipped weights, so a load is visible)."""
    built = {}
    for seed, name in enumerate(("sid", "light", "lighter"), start=11):
        torch.manual_seed(seed)
        built[name] = build(name).eval()
    return built


def original_state_dict(model: nn.Module, rewrite: bool = False) -> dict[str, torch.Tensor]:
    """The core's state dict under the original project's names (Rewrite: split convs)."""
    state = {}
    for key, value in model.core.state_dict().items():
        if rewrite:
            key = re.sub(r"^(conv\d+_2)\.depthwise\.", r"\1_1.", key)
            key = re.sub(r"^(conv\d+_2)\.pointwise\.", r"\1_2.", key)
        state[key] = value.clone()
    return state


def outputs(module: nn.Module) -> torch.Tensor:
    x = torch.rand(1, 4, 16, 24, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        return module(x)


CASES = [  # (original class, lowbench model, rewrite, wrapping)
    ("SeeInDark", "sid", False, "flat"),
    ("Light_SeeInDark", "light", False, "module."),
    ("Lighter_SeeInDark", "lighter", False, "state_dict"),
    ("Light_SeeInDark_Rewrite", "light", True, "model+module."),
]


@pytest.mark.parametrize(("architecture", "name", "rewrite", "wrapping"), CASES,
                         ids=[c[0] for c in CASES])
def test_converted_original_checkpoint_gives_the_source_models_outputs(
        tmp_path: Path, models: dict[str, nn.Module], architecture: str, name: str,
        rewrite: bool, wrapping: str) -> None:
    state = original_state_dict(models[name], rewrite)
    if "module." in wrapping:
        state = {"module." + k: v for k, v in state.items()}
    if wrapping == "state_dict":
        state = {"state_dict": state, "epoch": 4000}
    elif wrapping.startswith("model"):
        state = {"model": state, "optimizer": {"lr": 1e-4}}
    source = tmp_path / f"{architecture}.pth"
    torch.save(state, source)
    out = tmp_path / f"{architecture}.safetensors"

    done = convert_checkpoint(source, out)

    assert done.model == name and done.source_architecture == architecture
    assert done.params == describe(name)["params"]
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["model"] == name and meta["source_file"] == source.name
    assert meta["source_sha256"] == sha256_file(source)
    assert meta["source_architecture"] == architecture
    assert meta["converted_by"].startswith("lowbench ")
    variant = build_variant(name, "fp32", checkpoint=out)  # the path `evaluate` loads
    assert variant.info["checkpoint"]["sha256"] == sha256_file(out)
    assert torch.equal(outputs(variant.module), outputs(models[name]))


def test_rewrite_form_is_detected_as_light(models: dict[str, nn.Module]) -> None:
    assert detect_architecture(original_state_dict(models["light"], rewrite=True)) == "light"
    assert detect_architecture(original_state_dict(models["lighter"])) == "lighter"


def test_convert_command_writes_a_checkpoint_evaluate_loads(
        tmp_path: Path, models: dict[str, nn.Module]) -> None:
    source = tmp_path / "checkpoint_sony_e4000.pth"
    torch.save(original_state_dict(models["light"], rewrite=True), source)
    out = tmp_path / "converted" / "light.safetensors"
    proc = lowbench("checkpoint", "convert", str(source), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout and "Light_SeeInDark_Rewrite" in proc.stdout
    state, meta = load_checkpoint(out, expected_model="light")
    assert meta["source_sha256"] == sha256_file(source)
    assert torch.equal(outputs(build_variant("light", "fp32", checkpoint=out).module),
                       outputs(models["light"]))
    assert sorted(p.name for p in out.parent.iterdir()) == ["light.safetensors"]


class _Payload:
    """Unpickling this would create a marker file: proves nothing is unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


class Trainer:
    """An arbitrary Python object, as a whole-model or trainer pickle would hold."""

    def __init__(self) -> None:
        self.weights = torch.zeros(2)


def test_convert_refuses_a_pickled_object_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "trainer.pth"
    torch.save({"model": Trainer(), "epoch": 3}, source)
    out = tmp_path / "trainer.safetensors"
    err = assert_one_line_error(lowbench("checkpoint", "convert", str(source), "--out", str(out)),
                                str(source), "Trainer", "state_dict()")
    assert "refused" in err
    assert not out.exists()


def test_convert_never_runs_pickled_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source = tmp_path / "evil.pth"
    torch.save({"conv1_1.weight": torch.zeros(1), "x": _Payload(marker)}, source)
    with pytest.raises(CheckpointError, match="evil.pth: refused"):
        convert_checkpoint(source, tmp_path / "evil.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "evil.safetensors").exists()


def test_convert_names_the_keys_and_shapes_that_do_not_fit(
        tmp_path: Path, models: dict[str, nn.Module]) -> None:
    state = original_state_dict(models["sid"])
    state["conv1_1.weight"] = torch.zeros(32, 3, 3, 3)  # an RGB-input variant
    state["fc.weight"] = torch.zeros(4)
    source = tmp_path / "rgb.pth"
    torch.save(state, source)
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(source, tmp_path / "rgb.safetensors")
    message = str(info.value)
    assert "'sid'" in message and "fc.weight" in message
    assert "conv1_1.weight (32, 3, 3, 3) vs (32, 4, 3, 3)" in message
    light = tmp_path / "light.pth"
    torch.save(original_state_dict(models["light"]), light)
    with pytest.raises(CheckpointError, match="--model light"):
        convert_checkpoint(light, tmp_path / "light.safetensors", model="sid")
    assert not list(tmp_path.glob("*.safetensors"))


def test_pickle_checkpoint_error_names_the_convert_command(tmp_path: Path) -> None:
    bad = tmp_path / "trainer.pth"
    torch.save({"model": Trainer()}, bad)
    proc = lowbench("evaluate", "--model", "sid", "--checkpoint", str(bad), "--out",
                    str(tmp_path / "r"), "--no-memory", "--no-energy", *FAST)
    assert_one_line_error(proc, str(bad), "lowbench checkpoint convert")
    assert not list(tmp_path.rglob("*.json"))


# --- a QAT checkpoint with a float or post-training int8 variant ------------------------------


def test_qat_checkpoint_runs_as_fp32_through_the_cli(tmp_path: Path) -> None:
    proc = lowbench("evaluate", "--model", "lighter", "--quant", "fp32", "--checkpoint",
                    str(QAT_CHECKPOINT), "--limit", "1", "--no-memory", "--no-energy", "--out",
                    str(tmp_path), "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["variant"]["quant"] == "fp32" and record["variant"]["note"] == QAT_FLOAT_NOTE
    assert record["variant"]["checkpoint"]["sha256"] == sha256_file(QAT_CHECKPOINT)
    assert record["quality"]["psnr_db"] > 15


def real_input() -> torch.Tensor:
    """A 1x4x24x40 packed crop of the first synth test pair (real data, odd size)."""
    from lowbench.pairs import load_input
    from lowbench.tasks import get_task

    image = torch.from_numpy(load_input(get_task("synth").pairs()[0]))
    return image[None, :, 100:124, 60:100].contiguous()


def psnr_db(pred: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR (dB) of ``pred`` against ``ref`` with the peak taken as ``ref``'s range."""
    mse = float(((pred - ref) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(float(ref.max() - ref.min()) ** 2 / mse)


#: Each reduced-precision variant of the QAT checkpoint's float weights against the float model
#: of those weights, on the real crop. Measured on the 2-core Xeon: static (tiny calibration)
#: 37.4 dB; dynamic identical (it quantizes Linear layers, the U-Net has none); fp16 is
#: "unsupported" (emulated) on that CPU, so its bound is a generous guess for half kernels.
MIN_PSNR_DB = {"fp16": 40.0, "dynamic": 40.0, "static": 30.0}


@pytest.mark.parametrize("quant_name", ["fp32", "fp16", "dynamic", "static"])
def test_qat_checkpoint_float_weights_build_every_post_training_variant(quant_name: str) -> None:
    state, _ = load_checkpoint(QAT_CHECKPOINT, expected_model="lighter")
    reference = build("lighter").eval()
    reference.load_state_dict({k: v for k, v in state.items() if k in reference.state_dict()})
    variant = build_variant("lighter", quant_name, checkpoint=QAT_CHECKPOINT,
                            calibration=TINY_CALIBRATION)
    assert variant.info["note"].startswith(QAT_FLOAT_NOTE)
    if variant.info["status"] == "unsupported":  # fp16 on a CPU without half convs
        return
    x = real_input()
    with torch.inference_mode():
        ref, out = reference(x), variant.module(x)
    if quant_name == "fp32":
        assert torch.equal(out, ref)
    else:
        assert psnr_db(out, ref) > MIN_PSNR_DB[quant_name]
