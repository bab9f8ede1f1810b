"""Training with SID's recipe, optionally distributed (torchrun -> DistributedDataParallel).

Recipe (Chen et al. 2018): L1 loss on sRGB; Adam, lr 1e-4 dropping 10x late in training;
random crops of 512 x 512 raw (256 x 256 packed); random horizontal/vertical flips and
transposes; inputs amplified by the exposure ratio exactly as at test time.

Determinism: every random choice of step ``s`` on rank ``r`` comes from
``SeedSequence([seed, s, r])``, so a run is reproducible given its seed and a resumed run
continues exactly where the interrupted one stopped (the optimizer state is checkpointed too).

Scale-out: ``torchrun --nproc-per-node N -m lowbench train ...`` starts N ranks; each rank
trains on its own shard of the scenes (scene index mod N), gradients are averaged by DDP
(nccl on GPUs, gloo on CPU), and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from lowbench.digest import weights_digest
from lowbench.energy.run_meter import RunMeter
from lowbench.errors import LowbenchError
from lowbench.tensorfile import read_tensors, write_tensors


@dataclass(frozen=True)
class Recipe:
    """The training hyper-parameters recorded in every checkpoint."""

    model: str
    task: str
    steps: int
    batch_size: int
    patch_raw: int
    lr: float
    lr_drop: float
    seed: int
    val_scenes: int
    qat: bool = False
    world_size: int = 1
    distill: float = 0.0  # weight of L1 to the frozen float start's output (1-w: ground truth)
    loss: str = "L1"
    optimizer: str = "Adam"


def held_out_scenes(scene_order: list[int], val_scenes: int) -> set[int]:
    """The validation scenes ``lowbench train`` holds out: the last ``val_scenes`` of the
    task's scene order, always leaving at least one scene to train on."""
    n_val = min(val_scenes, max(len(scene_order) - 1, 0))
    return set(scene_order[len(scene_order) - n_val:]) if n_val else set()


class PairBank:
    """Training pairs held in memory: packed inputs (4, h, w) and ground truths (2h, 2w, 3)."""

    def __init__(self, inputs: list[np.ndarray], truths: list[np.ndarray],
                 truth_index: list[int], scene_ids: list[int]) -> None:
        self.inputs, self.truths, self.truth_index, self.scene_ids = (
            inputs, truths, truth_index, scene_ids)

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def load(cls, pairs: list[Any], desc: str, progress: bool) -> PairBank:
        """Read, pack, amplify every pair; develop (cached) each ground truth once."""
        from lowbench.pairs import load_input, load_truth

        inputs, truth_index, scene_ids = [], [], []
        truths: list[np.ndarray] = []
        truth_of: dict[Path, int] = {}
        for pair in tqdm(pairs, desc=desc, unit="pair", disable=not progress, leave=False):
            inputs.append(load_input(pair))
            if pair.long not in truth_of:
                truth_of[pair.long] = len(truths)
                truths.append(load_truth(pair))
            truth_index.append(truth_of[pair.long])
            scene_ids.append(pair.scene_id)
        return cls(inputs, truths, truth_index, scene_ids)

    def batch(self, rng: np.random.Generator, indices: list[int], batch_size: int,
              patch_packed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of crops with random flips/transposes: (B,4,p,p), (B,3,2p,2p)."""
        xs, ys = [], []
        for _ in range(batch_size):
            i = indices[int(rng.integers(len(indices)))]
            x, y = self.inputs[i], self.truths[self.truth_index[i]]
            h, w = x.shape[1:]
            p = min(patch_packed, h, w)
            yy, xx = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            xc = x[:, yy:yy + p, xx:xx + p]
            yc = y[2 * yy:2 * yy + 2 * p, 2 * xx:2 * xx + 2 * p].transpose(2, 0, 1)
            if rng.integers(2):
                xc, yc = xc[:, :, ::-1], yc[:, :, ::-1]
            if rng.integers(2):
                xc, yc = xc[:, ::-1, :], yc[:, ::-1, :]
            if rng.integers(2):
                xc, yc = xc.transpose(0, 2, 1), yc.transpose(0, 2, 1)
            xs.append(np.ascontiguousarray(xc))
            ys.append(np.ascontiguousarray(yc))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def dist_env() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment (1 process when not under torchrun)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _state_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".state.safetensors")


def _save_optimizer(path: Path, opt: torch.optim.Optimizer, step: int) -> None:
    """Adam state as safetensors (never pickle): per-parameter exp_avg, exp_avg_sq, step."""
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"{idx}.{k}"] = torch.as_tensor(v).detach().clone().contiguous()
    write_tensors(path, tensors, {"step": str(step)})


def _load_optimizer(path: Path, opt: torch.optim.Optimizer) -> int:
    tensors, metadata = read_tensors(path)
    step = int(metadata["step"])
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)
    return step


def validate(model: torch.nn.Module, bank: PairBank, indices: list[int],
             teacher: torch.nn.Module | None = None) -> dict[str, float | None]:
    """Mean PSNR (dB, SID protocol) over the held-out pairs, whole images: ``val_psnr_db``
    against the ground truth and, with a distill ``teacher``, ``val_fidelity_db`` against
    the teacher's output (the distillation objective, e.g. how close QAT is to fp32; None
    when every output equals the teacher's, an infinite PSNR JSON cannot hold)."""
    from lowbench.metrics import psnr

    if not indices:
        return {"val_psnr_db": float("nan")}
    model.eval()
    scores, fidelity = [], []
    with torch.no_grad():
        for i in indices:
            x = torch.from_numpy(bank.inputs[i])[None].to(next(model.parameters()).device)
            out = model(x)[0].permute(1, 2, 0).cpu().numpy()
            scores.append(psnr(out, bank.truths[bank.truth_index[i]]))
            if teacher is not None:
                fidelity.append(psnr(out, teacher(x)[0].permute(1, 2, 0).cpu().numpy()))
    model.train()
    result = {"val_psnr_db": float(np.mean(scores))}
    if fidelity:
        mean_fidelity = float(np.mean(fidelity))
        result["val_fidelity_db"] = mean_fidelity if np.isfinite(mean_fidelity) else None
    return result


def _git_commit() -> str:
    from lowbench.environment import git_commit

    info = git_commit()
    return info.get("sha") or "unknown"


def train(recipe: Recipe, out: Path, *, data_root: str | None = None, init: str | None = None,
          resume: bool = False, scenes: int | None = None, val_every: int = 250,
          save_every: int = 250, threads: int | None = None, half: bool = False,
          progress: bool = True, meter: RunMeter | None = None) -> dict[str, Any]:
    """Train one model and write its checkpoint (rank 0); returns a summary dict.

    ``val_psnr_db`` in the summary and the checkpoint is the mean PSNR (dB) on the held-out scenes.
    With a ``meter`` (rank 0), the training loop runs inside one energy window: its ``energy``
    (J, W, s) and ``carbon`` (g) sections go into the final checkpoint's metadata
    (``training_cost``, JSON) and the summary (``cost``; None without a meter). The caller
    closes the meter if training raises.
    """
    from lowbench.checkpoint import load_checkpoint, load_into, save_checkpoint
    from lowbench.models.registry import LEARNED_MODELS, build
    from lowbench.tasks import get_task

    if recipe.model not in LEARNED_MODELS:
        raise LowbenchError(f"cannot train {recipe.model!r}; learned models: "
                            f"{', '.join(LEARNED_MODELS)}")
    if not 0.0 <= recipe.distill <= 1.0:
        raise LowbenchError(f"--distill {recipe.distill} must be between 0 and 1")
    if recipe.distill and not (init or recipe.qat):
        raise LowbenchError("--distill needs a float teacher: pass --init WEIGHTS (or --qat, "
                            "which starts from the shipped fp32 checkpoint)")
    task = get_task(recipe.task)
    if task.split != "train":
        raise LowbenchError(f"task {task.name} is a {task.split} split; train on synth-train or "
                            "sid-sony-train (never on a test split)")
    rank, world = dist_env()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
                          if torch.cuda.is_available() else "cpu")

    # data: scenes split into train / held-out validation; train scenes sharded by rank
    listed = task.listed()
    scene_order = list(dict.fromkeys(p.scene_id for p in listed))
    if scenes is not None:
        scene_order = scene_order[:scenes]
    val_scene_set = held_out_scenes(scene_order, recipe.val_scenes)
    keep = set(scene_order)
    limit = max(i for i, p in enumerate(listed) if p.scene_id in keep) + 1
    pairs = [p for p in task.pairs(data_root, limit=limit) if p.scene_id in keep]
    train_scenes = [s for s in scene_order if s not in val_scene_set]
    my_scenes = set(train_scenes[rank::world])
    bank = PairBank.load(pairs, f"loading {task.name}", progress and rank == 0)
    train_idx = [i for i, s in enumerate(bank.scene_ids) if s in my_scenes]
    val_idx = [i for i, s in enumerate(bank.scene_ids) if s in val_scene_set]
    if not train_idx:
        raise LowbenchError(f"rank {rank} has no training scenes; use more --scenes")

    model = build(recipe.model)
    start_step = 0
    state_file = _state_path(out)
    resuming = resume and out.is_file()
    if not resuming and (init or recipe.qat):
        load_into(model, _float_start(recipe.model, init), recipe.model)
    teacher = _teacher(recipe.model, init).to(device) if recipe.distill else None
    qat_calibration: dict[str, Any] | None = None
    if recipe.qat:
        from lowbench.quant.qat import calibrate_qat_ranges, prepare_qat_model

        model = prepare_qat_model(model, recipe.model)
        if not resuming:  # a resumed run loads its frozen ranges with the checkpoint
            qat_calibration = calibrate_qat_ranges(model, recipe.task, data_root)
    history: list[dict[str, float | None]] = []
    if resuming:
        # a QAT checkpoint holds fake-quant/observer state too: load it into the prepared model
        sd, previous = load_checkpoint(out, recipe.model, check_architecture=not recipe.qat)
        history = json.loads(previous.get("history") or "[]")  # continue the same history
        model.load_state_dict(sd)
        if recipe.qat:  # a run saved before the pool ties were introduced gets them now
            from lowbench.quant.ties import tie_pool_qparams

            tie_pool_qparams(model.core)
    model.to(device)
    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp_model.parameters(), lr=recipe.lr)
    if resume and state_file.is_file():
        start_step = _load_optimizer(state_file, opt)

    drop_at = int(recipe.steps * recipe.lr_drop)
    patch_packed = recipe.patch_raw // 2
    val_psnr = float("nan")
    if start_step == 0 and rank == 0 and val_idx:  # where training starts (QAT: static int8)
        history.append({"step": 0, "loss": None, **validate(model, bank, val_idx, teacher)})
    bar = tqdm(total=recipe.steps, initial=start_step, desc=f"train {recipe.model}",
               disable=not (progress and rank == 0), unit="step")
    t0, seen = time.perf_counter(), 0
    metered = meter is not None and rank == 0
    cost: dict[str, Any] | None = None
    if metered:
        meter.start()
    ddp_model.train()
    loss_value = float("nan")
    for step in range(start_step, recipe.steps):
        for group in opt.param_groups:
            group["lr"] = recipe.lr if step < drop_at else recipe.lr / 10
        rng = np.random.default_rng(np.random.SeedSequence([recipe.seed, step, rank]))
        x, y = bank.batch(rng, train_idx, recipe.batch_size, patch_packed)
        x, y = x.to(device), y.to(device)
        pred = ddp_model(x)
        loss = F.l1_loss(pred, y)
        if teacher is not None:
            with torch.no_grad():
                target = teacher(x)
            loss = (1 - recipe.distill) * loss + recipe.distill * F.l1_loss(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        seen += x.shape[0] * world
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}",
                        img_s=f"{seen / max(time.perf_counter() - t0, 1e-9):.2f}")
        if done % val_every == 0 or done == recipe.steps:
            if rank == 0:
                scores = validate(model, bank, val_idx, teacher)
                val_psnr = scores["val_psnr_db"]
                history.append({"step": done, "loss": loss_value, **scores})
                fidelity = (f", {scores['val_fidelity_db']:.2f} dB to the teacher"
                            if scores.get("val_fidelity_db") is not None else "")
                bar.write(f"step {done}: loss {loss_value:.4f}, val PSNR {val_psnr:.2f} dB"
                          f"{fidelity}")
        if rank == 0 and (done % save_every == 0 or done == recipe.steps):
            meta = {"recipe": json.dumps(asdict(recipe)), "task": recipe.task,
                    "steps": str(done), "seed": str(recipe.seed), "commit": _git_commit(),
                    "val_psnr_db": f"{val_psnr:.4f}", "history": json.dumps(history)}
            if recipe.qat:
                from lowbench.quant.qat import QAT_NUMERICS

                meta["qat_calibration"] = json.dumps(qat_calibration)
                meta["qat_numerics"] = QAT_NUMERICS
            if teacher is not None:
                meta["distill_teacher"] = str(Path(init) if init else "shipped checkpoint")
            if metered and done == recipe.steps:  # the window closes before the last save
                cost = meter.stop()
                meta["training_cost"] = json.dumps({**cost, "steps_metered": done - start_step})
            save_checkpoint(out, recipe.model, _plain_state_dict(model, recipe), meta,
                            half=half)
            _save_optimizer(state_file, opt, done)
    bar.close()
    if metered and cost is None:  # nothing left to train (a resumed, finished run)
        cost = meter.stop()
    if world > 1:
        dist.barrier()
    return {"model": recipe.model, "steps": recipe.steps, "loss": loss_value,
            "val_psnr_db": val_psnr, "checkpoint": str(out), "rank": rank, "world_size": world,
            "start_step": start_step,
            "cost": None if cost is None else {**cost, "steps_metered": recipe.steps - start_step},
            "weights_sha": weights_digest(model)}  # last: the printed line ends in the digest


def _float_start(model_name: str, init: str | None) -> Path:
    """The float weights fine-tuning (and QAT) starts from: --init, else the shipped ones."""
    from lowbench.checkpoint import shipped_checkpoint_path

    return Path(init) if init else shipped_checkpoint_path(model_name)


def _teacher(model_name: str, init: str | None) -> torch.nn.Module:
    """The frozen float model a distilling run matches: the run's float starting weights."""
    from lowbench.checkpoint import load_into
    from lowbench.models.registry import build

    teacher = build(model_name)
    load_into(teacher, _float_start(model_name, init), model_name)
    return teacher.eval().requires_grad_(False)


def _plain_state_dict(model: torch.nn.Module, recipe: Recipe) -> dict[str, torch.Tensor]:
    """The float state dict to store (for QAT: the fake-quant model's float weights + observers)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if isinstance(v, torch.Tensor)}
