"""Training (issue "Model zoo"): a short run lowers the loss, runs are deterministic and
resumable, and a real 2-process torchrun/gloo DDP job leaves both ranks with identical weights
while only rank 0 writes the checkpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lowbench.checkpoint import load_checkpoint
from lowbench.models import build
from lowbench.train import PairBank, Recipe, held_out_scenes, train

#: A tiny recipe: 4 synth-train scenes (1 held out), 64 x 64 raw crops, lighter, one thread.
TINY = {"model": "lighter", "task": "synth-train", "batch_size": 2, "patch_raw": 64,
        "lr": 1e-3, "lr_drop": 0.8, "seed": 0, "val_scenes": 1}
CLI_TINY = ["--model", "lighter", "--task", "synth-train", "--batch-size", "2", "--patch", "64",
            "--lr", "1e-3", "--seed", "0", "--scenes", "4", "--val-scenes", "1",
            "--threads", "1", "--val-every", "1000", "--no-progress"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """train(threads=1) sets torch's process-wide thread count: restore it afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _run(recipe: Recipe, out: Path, **kw) -> dict:
    return train(recipe, out, scenes=4, threads=1, val_every=1000, progress=False, **kw)


def _fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Eight 64 x 64 raw training crops drawn with a seed the training never uses."""
    from lowbench.tasks import get_task

    task = get_task("synth-train")
    pairs = task.pairs(None, limit=6)
    bank = PairBank.load(pairs, "test", progress=False)
    return bank.batch(np.random.default_rng(12345), list(range(len(bank))), 8, 32)


def test_short_training_lowers_the_loss(tmp_path: Path) -> None:
    x, y = _fixed_batch()
    torch.manual_seed(0)  # train() seeds the same way before building the model
    before = build("lighter").eval()
    with torch.no_grad():
        loss_before = float(F.l1_loss(before(x), y))
    out = tmp_path / "lighter.safetensors"
    summary = _run(Recipe(steps=40, **TINY), out)
    sd, meta = load_checkpoint(out, "lighter")
    after = build("lighter")
    after.load_state_dict(sd)
    after.eval()
    with torch.no_grad():
        loss_after = float(F.l1_loss(after(x), y))
    assert loss_after < 0.8 * loss_before, (loss_before, loss_after)
    assert meta["model"] == "lighter" and meta["steps"] == "40" and meta["seed"] == "0"
    assert json.loads(meta["recipe"])["patch_raw"] == 64
    assert np.isfinite(summary["val_psnr_db"])  # validated on the held-out scene at the end


def test_training_is_deterministic_and_resumable(tmp_path: Path) -> None:
    # no lr drop here: the drop step is a fraction of --steps, so a 2-step run is the prefix of
    # a 4-step run only without it (an interrupted 4-step run resumes with its own recipe)
    flat = {**TINY, "lr_drop": 1.0}
    straight = _run(Recipe(steps=4, **flat), tmp_path / "a.safetensors")
    again = _run(Recipe(steps=4, **flat), tmp_path / "b.safetensors")
    assert straight["weights_sha"] == again["weights_sha"]
    # stop after 2 steps (checkpoint + optimizer state), then resume to 4: the same weights
    resumed_out = tmp_path / "c.safetensors"
    _run(Recipe(steps=2, **flat), resumed_out, save_every=2)
    assert (tmp_path / "c.state.safetensors").is_file()
    resumed = _run(Recipe(steps=4, **flat), resumed_out, resume=True, save_every=2)
    assert resumed["weights_sha"] == straight["weights_sha"]
    # the resumed checkpoint keeps the interrupted run's validations and adds its own
    _, meta = load_checkpoint(resumed_out, "lighter")
    assert [e["step"] for e in json.loads(meta["history"])] == [0, 2, 4]
    other_seed = _run(Recipe(steps=4, **{**flat, "seed": 1}), tmp_path / "d.safetensors")
    assert other_seed["weights_sha"] != straight["weights_sha"]


def test_two_process_gloo_ddp_ranks_agree(tmp_path: Path) -> None:
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "LOWBENCH_PRINT_ALL_RANKS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "lowbench", "train", *CLI_TINY, "--steps", "3", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # each rank prints one JSON summary ending in its weights digest; ranks share the pipe, so
    # find the objects rather than trusting line boundaries
    summaries = [json.loads(m) for m in
                 re.findall(r'\{"model".*?"weights_sha": "[0-9a-f]{64}"\}', proc.stdout)]
    assert sorted(s["rank"] for s in summaries) == [0, 1]
    assert all(s["world_size"] == 2 for s in summaries)
    # DDP averaged the gradients of two different data shards: identical weights on both ranks
    assert summaries[0]["weights_sha"] == summaries[1]["weights_sha"]
    # rank 0 alone wrote the checkpoint, recording the 2-process recipe
    _, meta = load_checkpoint(out, "lighter")
    assert json.loads(meta["recipe"])["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.safetensors",
                                                          "ddp.state.safetensors"]


@pytest.fixture(scope="module")
def start_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step TINY lighter checkpoint: the float start both distillation tests begin from
    (training is deterministic, so one run serves both)."""
    threads = torch.get_num_threads()
    start = tmp_path_factory.mktemp("distill-start") / "start.safetensors"
    _run(Recipe(steps=2, **TINY), start)
    torch.set_num_threads(threads)
    return start


def test_distilling_from_its_own_start_changes_nothing(tmp_path: Path,
                                                       start_checkpoint: Path) -> None:
    """--distill 1 matches the frozen float start: started from those very weights the L1 to
    the teacher and its gradient are zero, so the weights stay bit-identical; the same run on
    the ground truth moves them (so the teacher, not luck, kept them)."""
    start = start_checkpoint
    init_sd, _ = load_checkpoint(start, "lighter")
    kept = tmp_path / "distilled.safetensors"
    _run(Recipe(steps=3, distill=1.0, **TINY), kept, init=str(start))
    moved = tmp_path / "tuned.safetensors"
    _run(Recipe(steps=3, **TINY), moved, init=str(start))
    kept_sd, meta = load_checkpoint(kept, "lighter")
    moved_sd, _ = load_checkpoint(moved, "lighter")
    assert all(torch.equal(kept_sd[k], init_sd[k]) for k in init_sd)
    assert not all(torch.equal(moved_sd[k], init_sd[k]) for k in init_sd)
    assert json.loads(meta["recipe"])["distill"] == 1.0
    history = json.loads(meta["history"])
    assert history[0]["step"] == 0 and history[0]["loss"] is None  # the starting point
    # identical to the teacher: an infinite PSNR, which JSON cannot hold, is recorded as None
    assert all(h["val_fidelity_db"] is None for h in history)


@pytest.mark.parametrize("distill", [0.5, 1.5])
def test_distill_needs_a_teacher_and_a_weight_in_range(tmp_path: Path, distill: float) -> None:
    from lowbench.errors import LowbenchError

    match = "needs a float teacher" if distill <= 1 else "between 0 and 1"
    with pytest.raises(LowbenchError, match=match):
        _run(Recipe(steps=1, distill=distill, **TINY), tmp_path / "x.safetensors")


def test_qat_distill_run_validates_against_its_teacher(tmp_path: Path, monkeypatch,
                                                       start_checkpoint: Path) -> None:
    """A QAT run distilling the fp32 start records, at every validation, how close (dB) its
    fake-quant model is to that teacher, and writes a checkpoint that converts to int8."""
    from quant_fixtures import TINY_CALIBRATION

    from lowbench.quant import qat
    from lowbench.variants import build_variant

    monkeypatch.setattr(qat, "DEFAULT_CALIBRATION", TINY_CALIBRATION)  # seconds, not minutes
    start = start_checkpoint
    out = tmp_path / "qat.safetensors"
    summary = train(Recipe(steps=2, distill=1.0, qat=True, **TINY), out, init=str(start),
                    scenes=4, threads=1, val_every=1, progress=False)
    _, meta = load_checkpoint(out, "lighter", check_architecture=False)
    history = json.loads(meta["history"])
    assert [h["step"] for h in history] == [0, 1, 2]
    fidelity = [h["val_fidelity_db"] for h in history]
    assert all(isinstance(f, float) and 15.0 < f < 80.0 for f in fidelity), fidelity
    assert summary["val_psnr_db"] == pytest.approx(history[-1]["val_psnr_db"])
    v = build_variant("lighter", "qat", checkpoint=out)
    assert v.info["calibration"]["qat_numerics"] == qat.QAT_NUMERICS
    assert v.info["quantized_layers"] > 5


def test_held_out_scenes_are_the_last_and_leave_one_to_train_on() -> None:
    order = [80005, 80001, 80003, 80002]  # the task's order, not sorted
    assert held_out_scenes(order, 2) == {80003, 80002}
    assert held_out_scenes(order, 8) == {80001, 80003, 80002}
    assert held_out_scenes([80001], 8) == set()
    assert held_out_scenes(order, 0) == set()
