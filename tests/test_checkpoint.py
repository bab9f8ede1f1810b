"""Checkpoint save/load: metadata, fp16 storage, safety of .pth import, architecture checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import lowbench.checkpoint as ckpt
from lowbench.checkpoint import (
    load_checkpoint,
    load_into,
    save_checkpoint,
    shipped_checkpoint_path,
    shipped_qat_checkpoint_path,
)
from lowbench.errors import CheckpointError, LowbenchError
from lowbench.models.registry import build
from lowbench.pth import detect_architecture

META = {
    "recipe": {"lr": 1e-4, "epochs": 2},
    "task": "sony",
    "steps": 1200,
    "seed": 7,
    "commit": "abc1234",
    "val_psnr_db": 28.5,
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sid() -> nn.Module:
    torch.manual_seed(0)
    return build("sid").eval()


@pytest.fixture(scope="module")
def light() -> nn.Module:
    torch.manual_seed(1)
    return build("light").eval()


def _fresh(name: str) -> nn.Module:
    torch.manual_seed(123)
    return build(name).eval()


def _same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.rand(1, 4, 13, 21, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


# --- safetensors round trips ----------------------------------------------------------------


def test_fp32_round_trip_is_exact(tmp_path: Path, light: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "light.safetensors", "light", light.state_dict(), META)
    state, meta = load_checkpoint(path, expected_model="light")
    original = light.state_dict()
    assert state.keys() == original.keys()
    assert all(torch.equal(state[k], original[k]) for k in original)
    assert all(v.dtype == torch.float32 for v in state.values())
    assert meta["model"] == "light" and meta["dtype"] == "float32"
    assert meta["format_version"] == "1" and meta["task"] == "sony" and meta["qat"] == "false"
    assert meta["steps"] == "1200" and meta["seed"] == "7" and meta["commit"] == "abc1234"
    assert float(meta["val_psnr_db"]) == 28.5
    assert json.loads(meta["recipe"]) == META["recipe"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["light.safetensors"]  # no temp left


def test_fp16_storage_is_upcast(tmp_path: Path, light: nn.Module) -> None:
    full = save_checkpoint(tmp_path / "a.safetensors", "light", light.state_dict(), META)
    half = save_checkpoint(tmp_path / "b.safetensors", "light", light.state_dict(), META, half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    state, meta = load_checkpoint(half, expected_model="light")
    assert meta["dtype"] == "float16"
    for key, value in light.state_dict().items():
        assert state[key].dtype == torch.float32
        torch.testing.assert_close(state[key], value, atol=1e-3, rtol=1e-3)
    assert not all(torch.equal(state[k], v) for k, v in light.state_dict().items())


def test_core_state_dict_is_accepted_and_load_into(tmp_path: Path, light: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", "light", light.core.state_dict(), {})
    state, meta = load_checkpoint(path)
    assert set(state) == set(light.state_dict())  # stored with the core. prefix
    assert meta["recipe"] == "{}" and meta["task"] == ""
    wrapped, core = _fresh("light"), _fresh("light").core
    assert not _same_outputs(wrapped, light)
    assert load_into(wrapped, path, "light")["model"] == "light"
    load_into(core, path, "light")
    assert _same_outputs(wrapped, light)
    x = torch.rand(1, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(core(x), light.core(x))


def test_save_is_atomic(tmp_path: Path, light: nn.Module, monkeypatch) -> None:
    path = tmp_path / "light.safetensors"
    path.write_bytes(b"previous")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", fail)
    with pytest.raises(OSError):
        save_checkpoint(path, "light", light.state_dict(), META)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["light.safetensors"]


def test_save_rejects_bad_input(tmp_path: Path, light: nn.Module) -> None:
    with pytest.raises(CheckpointError, match="'light'.*'sid'|'sid'.*'light'"):
        save_checkpoint(tmp_path / "x.safetensors", "sid", light.state_dict(), META)
    with pytest.raises(CheckpointError, match=r"\.safetensors"):
        save_checkpoint(tmp_path / "x.pth", "light", light.state_dict(), META)
    with pytest.raises(CheckpointError, match="model_name"):
        save_checkpoint(tmp_path / "x.safetensors", "light", light.state_dict(), {"model": "sid"})
    with pytest.raises(LowbenchError, match="unknown model"):
        save_checkpoint(tmp_path / "x.safetensors", "unet", light.state_dict(), META)
    with pytest.raises(LowbenchError, match="not a neural network"):
        save_checkpoint(tmp_path / "x.safetensors", "libraw", light.state_dict(), META)
    assert not list(tmp_path.iterdir())


def test_qat_checkpoint_may_carry_observer_state(tmp_path: Path, light: nn.Module) -> None:
    state = dict(light.state_dict())
    state["core.activation_post_process_0.scale"] = torch.tensor([0.0123456789])
    state["core.activation_post_process_0.zero_point"] = torch.tensor([3], dtype=torch.int32)
    path = tmp_path / "light-qat.safetensors"
    with pytest.raises(CheckpointError, match="do not fit model 'light'"):
        save_checkpoint(path, "light", state, META)  # extra keys only allowed for QAT
    recipe = {**META["recipe"], "qat": True}
    save_checkpoint(path, "light", state, {**META, "recipe": recipe}, half=True)
    loaded, meta = load_checkpoint(path, expected_model="light")
    assert meta["qat"] == "true" and set(loaded) == set(state)
    assert loaded["core.activation_post_process_0.scale"].item() == pytest.approx(0.0123456789)
    assert loaded["core.activation_post_process_0.zero_point"].dtype == torch.int32
    assert loaded["core.conv1_1.weight"].dtype == torch.float32
    with pytest.raises(CheckpointError, match="'light'.*'sid'"):
        load_checkpoint(path, expected_model="sid")


# --- architecture mismatches ----------------------------------------------------------------


def test_light_checkpoint_loaded_as_sid_names_both(tmp_path: Path, light: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "light.safetensors", "light", light.state_dict(), META)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expected_model="sid")
    assert "'light'" in str(err.value) and "'sid'" in str(err.value)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="'light'"):
        load_into(_fresh("sid"), path, "sid")


def test_keys_decide_when_metadata_is_missing(tmp_path: Path, light: nn.Module) -> None:
    path = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in light.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expected_model="sid")
    assert "'light'" in str(err.value) and "'sid'" in str(err.value)
    state, _ = load_checkpoint(path, expected_model="light")
    assert detect_architecture(state) == "light"


def test_metadata_that_lies_about_the_model(tmp_path: Path, light: nn.Module) -> None:
    path = tmp_path / "liar.safetensors"
    tensors = {k: v.contiguous() for k, v in light.state_dict().items()}
    save_file(tensors, str(path), metadata={"model": "sid", "format_version": "1"})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expected_model="sid")
    assert "model 'sid'" in str(err.value) and "fit model 'light'" in str(err.value)


def test_unknown_weights_fit_no_model(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="fit no registered model"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="fit no registered model"):
        load_checkpoint(path, expected_model="fire")


def test_newer_format_is_refused(tmp_path: Path, light: nn.Module) -> None:
    path = tmp_path / "future.safetensors"
    tensors = {k: v.contiguous() for k, v in light.state_dict().items()}
    save_file(tensors, str(path), metadata={"model": "light", "format_version": "2"})
    with pytest.raises(CheckpointError, match="upgrade lowbench"):
        load_checkpoint(path)


# --- corrupt files --------------------------------------------------------------------------


def test_truncated_safetensors(tmp_path: Path, light: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "t.safetensors", "light", light.state_dict(), META)
    data = path.read_bytes()
    for cut in (len(data) // 2, 100, 4):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="t.safetensors.*truncated or corrupt"):
            load_checkpoint(path, expected_model="light")


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="g.safetensors"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(LowbenchError, match="unknown model 'unet'"):
        load_checkpoint(tmp_path / "missing.safetensors", expected_model="unet")
    (tmp_path / "w.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported checkpoint type"):
        load_checkpoint(tmp_path / "w.ckpt")


# --- .pth import ----------------------------------------------------------------------------


class _Payload:
    """Unpickling this would create a marker file: proves nothing is unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1_1.weight": torch.zeros(1), "x": _Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="evil.pth.*SeeInDark"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj",
    [
        {"a": [1, 2, 3]},
        [torch.zeros(2)],
        {"fc.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(3)},
        {"state_dict": {"conv1_1.weight": torch.zeros(1)}},
        {},
    ],
    ids=["list-in-dict", "list", "other-net", "nested", "empty"],
)
def test_non_seeindark_pickles_are_refused(tmp_path: Path, obj: object) -> None:
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="other.pt: only SeeInDark state dicts"):
        load_checkpoint(path)


def test_torchscript_archive_and_garbage_pth_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(nn.Conv2d(4, 4, 1)), str(path))
    with pytest.raises(CheckpointError, match="script.pt"):
        load_checkpoint(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_checkpoint(junk)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_seeindark_pth_is_imported_as_sid(tmp_path: Path, sid: nn.Module, prefix: str) -> None:
    path = tmp_path / "checkpoint_sony_e4000.pth"
    torch.save({prefix + k: v for k, v in sid.core.state_dict().items()}, path)
    state, meta = load_checkpoint(path, expected_model="sid")
    assert meta["model"] == "sid" and meta["source"] == "seeindark-pth"
    assert set(state) == set(sid.state_dict())
    target = _fresh("sid")
    assert not _same_outputs(target, sid)
    load_into(target, path, "sid")
    assert _same_outputs(target, sid)
    with pytest.raises(CheckpointError, match="'sid'.*'light'|'light'.*'sid'"):
        load_checkpoint(path, expected_model="light")


def test_pth_of_another_architecture_is_refused(tmp_path: Path, light: nn.Module) -> None:
    path = tmp_path / "light.pth"
    torch.save(light.core.state_dict(), path)
    with pytest.raises(CheckpointError, match="not SeeInDark's; its keys fit 'light'"):
        load_checkpoint(path)


def test_pth_with_wrong_shapes_is_refused(tmp_path: Path, sid: nn.Module) -> None:
    state = dict(sid.core.state_dict())
    state["conv1_1.weight"] = torch.zeros(32, 3, 3, 3)  # an RGB-input variant
    path = tmp_path / "rgb.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="rgb.pth"):
        load_checkpoint(path)


# --- shipped checkpoints --------------------------------------------------------------------


def test_shipped_checkpoint_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ckpt, "_CHECKPOINT_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="no shipped checkpoint for fire; .*--model fire"):
        shipped_checkpoint_path("fire")
    with pytest.raises(CheckpointError, match="no shipped QAT checkpoint for fire"):
        shipped_qat_checkpoint_path("fire")
    (tmp_path / "fire.safetensors").write_bytes(b"x")
    (tmp_path / "fire-qat.safetensors").write_bytes(b"x")
    assert shipped_checkpoint_path("fire") == tmp_path / "fire.safetensors"
    assert shipped_qat_checkpoint_path("fire") == tmp_path / "fire-qat.safetensors"
    with pytest.raises(LowbenchError, match="'libraw' is not a neural network"):
        shipped_checkpoint_path("libraw")
    with pytest.raises(LowbenchError, match="unknown model"):
        shipped_checkpoint_path("resnet")


def test_shipped_dir_is_inside_the_package() -> None:
    import lowbench

    assert ckpt._CHECKPOINT_DIR == Path(lowbench.__file__).resolve().parent / "checkpoints"


# --- resolve_checkpoint: the variant's one place for weights --------------------------------


def test_resolve_checkpoint_loads_a_user_file_into_the_model(tmp_path: Path, light) -> None:
    from lowbench.checkpoint import resolve_checkpoint
    from lowbench.digest import sha256_file
    from lowbench.models.registry import get_model

    path = save_checkpoint(tmp_path / "l.safetensors", "light", light.state_dict(), META)
    model = _fresh("light")
    assert not _same_outputs(model, light)
    weights = resolve_checkpoint(get_model("light"), path, into=model)
    assert _same_outputs(model, light)
    assert (weights.path, weights.source, weights.qat) == (path, "user", False)
    assert weights.sha256 == sha256_file(path) and weights.metadata["model"] == "light"
    with pytest.raises(CheckpointError, match="not 'sid'.*pass --model light"):
        resolve_checkpoint(get_model("sid"), path, into=_fresh("sid"))
    with pytest.raises(CheckpointError, match="do not fit model 'light' .they fit no regis"):
        resolve_checkpoint(get_model("light"), _one_short(tmp_path, light), into=_fresh("light"))


def _one_short(tmp_path: Path, light: nn.Module) -> Path:
    """light's weights less one tensor, in a file whose metadata names no model."""
    from lowbench.tensorfile import write_tensors

    state = dict(light.state_dict())
    del state["core.conv10_1.bias"]
    return write_tensors(tmp_path / "anon.safetensors", state, {"format_version": "1"})


def test_resolve_checkpoint_shipped_and_qat(tmp_path: Path, light, monkeypatch) -> None:
    from lowbench.checkpoint import resolve_checkpoint
    from lowbench.errors import VariantError
    from lowbench.models.registry import get_model

    observer = "core.activation_post_process_0.scale"
    qat_state = {**light.state_dict(), observer: torch.tensor([0.5])}
    qat_meta = {**META, "recipe": {"qat": True}}
    save_checkpoint(tmp_path / "light-qat.safetensors", "light", qat_state, qat_meta)
    save_checkpoint(tmp_path / "light.safetensors", "light", light.state_dict(), META)
    monkeypatch.setattr(ckpt, "_CHECKPOINT_DIR", tmp_path)
    spec = get_model("light")
    shipped = resolve_checkpoint(spec, into=_fresh("light"))
    assert (shipped.path, shipped.source) == (tmp_path / "light.safetensors", "shipped")
    qat = resolve_checkpoint(spec, qat=True)
    assert qat.qat and qat.source == "shipped" and observer in qat.state_dict
    model = _fresh("light")
    as_float = resolve_checkpoint(spec, tmp_path / "light-qat.safetensors", into=model)
    assert as_float.qat and observer not in as_float.state_dict and _same_outputs(model, light)
    with pytest.raises(VariantError, match="no QAT checkpoint for sid.*--qat --out"):
        resolve_checkpoint(get_model("sid"), qat=True)
    with pytest.raises(CheckpointError, match="no shipped checkpoint for sid"):
        resolve_checkpoint(get_model("sid"), into=_fresh("sid"))
