"""Static int8 calibration: the crops, the observer-state cache and the shipped calibrations.

Crops: :data:`DEFAULT_CALIBRATION`, one pair per scene of the first 32 scenes of the task's
train split (``calibration_task``), one 256 x 256 packed crop each, seed 0. The observer state
(not the weights) of a calibration is stored as safetensors, keyed by
:func:`static_calibration_key`: first looked up in the package (``lowbench/calibration/``,
written by ``scripts/ship_calibration.py``, because a calibration is not portable across
CPUs), then in ``cache_dir()/calibration/``; on a miss the model is calibrated and cached.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lowbench.digest import bytes_digest, json_digest, weights_digest
from lowbench.errors import CheckpointError, DataError
from lowbench.models.unet import PaddedModel
from lowbench.paths import PACKAGE_DIR, cache_dir
from lowbench.quant.fx import act_quant_max, prepare_static
from lowbench.quant.observers import load_observer_state, observe, observer_state
from lowbench.tensorfile import read_tensors, write_tensors

#: Bump when the qconfig or the observer-state layout changes (invalidates calibration caches).
CALIBRATION_FORMAT = "1"
#: Observer states of the shipped checkpoints' static int8 (``scripts/ship_calibration.py``).
SHIPPED_CALIBRATION_DIR = PACKAGE_DIR / "calibration"


@dataclass(frozen=True)
class CalibrationSettings:
    """How static int8 observers are calibrated (numbers are counts; ``crop_packed`` in pixels).

    ``pairs`` pairs (one per scene, first scenes of the train split), ``crops`` random crops
    of ``crop_packed`` x ``crop_packed`` packed pixels spread evenly over them, drawn with
    ``seed``; forwarded ``batch`` crops at a time.
    """

    pairs: int = 32
    crops: int = 32
    crop_packed: int = 256
    seed: int = 0
    batch: int = 4


DEFAULT_CALIBRATION = CalibrationSettings()


# -- calibration data -------------------------------------------------------------------------
def calibration_task_name(task: str) -> str:
    """The train split that calibrates int8 for ``task`` (its ``calibration_task``, or itself
    when ``task`` is a train split); DataError if it has none."""
    from lowbench.tasks import get_task

    t = get_task(task)
    if t.calibration_task:
        return t.calibration_task
    if t.split == "train":
        return t.name
    raise DataError(
        f"task {task} declares no calibration_task (train split) for int8; use a task that "
        "does (see `lowbench list tasks`) or --quant fp32"
    )


def _calibration_root(task: str, cal_task: str, kind: str, data_root: Any) -> Any:
    # SID test and train splits live under the same --data-root; synth-train lives in the cache.
    return data_root if (kind == "sid" or cal_task == task) else None


def calibration_crops(
    task: str, data_root: str | Path | None, settings: CalibrationSettings
) -> tuple[list[torch.Tensor], list[str]]:
    """Random packed crops (float32 (4, c, c) each) from the train split of ``task``.

    One pair per scene from the first ``settings.pairs`` scenes (the exposure rotates with the
    scene), ``settings.crops`` crops spread evenly, crop side ``min(crop_packed, image side)``
    rounded down to a multiple of 16. Returns the crops and the pair ids used.
    """
    from lowbench.pairs import load_input
    from lowbench.tasks import get_task

    cal_name = calibration_task_name(task)
    cal = get_task(cal_name)
    root = _calibration_root(task, cal_name, cal.kind, data_root)
    cal.resolve_root(root)  # DataError naming the fix before anything else happens
    listed = cal.listed()
    by_scene: dict[int, list[int]] = {}
    for i, p in enumerate(listed):
        by_scene.setdefault(p.scene_id, []).append(i)
    scenes = list(by_scene)[: settings.pairs]
    picks = [by_scene[s][k % len(by_scene[s])] for k, s in enumerate(scenes)]
    if not picks:
        raise DataError(f"calibration task {cal_name} lists no pairs; check its data root")
    pairs = cal.pairs(root, indices=picks)  # checks exactly the files calibration reads
    rng = np.random.default_rng(settings.seed)
    crops: list[torch.Tensor] = []
    for k, pair in enumerate(pairs):
        n = settings.crops // len(pairs) + (k < settings.crops % len(pairs))
        if n == 0:
            continue
        image = load_input(pair)
        side = min(settings.crop_packed, image.shape[1], image.shape[2]) // 16 * 16
        if side < 16:
            raise DataError(f"calibration pair {pair.pair_id} is smaller than 16 x 16 packed "
                            "pixels; use a task with full-size frames")
        for _ in range(n):
            y = int(rng.integers(0, image.shape[1] - side + 1))
            x = int(rng.integers(0, image.shape[2] - side + 1))
            crops.append(torch.from_numpy(np.ascontiguousarray(image[:, y:y + side,
                                                                       x:x + side])))
    return crops, [p.pair_id for p in pairs]


def calibration_summary(task: str, crops: list[torch.Tensor], pair_ids: list[str],
                        settings: CalibrationSettings) -> dict[str, Any]:
    """What calibrated the int8 ranges (counts; ``crop_packed`` in pixels), as records and
    QAT checkpoints state it."""
    return {"task": task, "pairs": len(pair_ids), "crops": len(crops),
            "crop_packed": int(crops[0].shape[-1]), "seed": settings.seed,
            "batch": settings.batch, "observer": "HistogramObserver", "pair_ids": pair_ids}


# -- the observer cache -----------------------------------------------------------------------
def static_calibration_key(prepared: nn.Module, model: PaddedModel, model_name: str, *,
                           weights_id: str | None, calibration_task: str, engine: str,
                           settings: CalibrationSettings) -> dict[str, Any]:
    """What identifies a static int8 observer state: model, weights, calibration task, engine,
    activation range, settings, the prepared graph and torch's minor version."""
    # The prepared graph's code pins where every observer sits, so a qconfig change can never
    # load observer statistics recorded at other positions.
    graph = bytes_digest(prepared.code.encode(), 16)
    return {"format": CALIBRATION_FORMAT, "model": model_name,
            "weights": weights_id or weights_digest(model), "task": calibration_task,
            "engine": engine, "act_quant_max": act_quant_max(engine),
            "settings": asdict(settings),
            "graph": graph, "torch": ".".join(torch.__version__.split(".")[:2])}


def cache_path(key: dict[str, Any]) -> Path:
    """The cache file of the observer state keyed ``key``:
    ``cache_dir()/calibration/<model>-<engine>-<24 hex digits of the key>.safetensors``."""
    digest = json_digest(key, 24)
    return cache_dir() / "calibration" / f"{key['model']}-{key['engine']}-{digest}.safetensors"


def shipped_calibration_path(key: dict[str, Any]) -> Path:
    """Where the package ships the observer state for ``key`` (it may not exist)."""
    return SHIPPED_CALIBRATION_DIR / cache_path(key).name


def read_observer_cache(path: Path, key: dict[str, Any]
                        ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(observer state, calibration summary) stored at ``path`` under exactly ``key``; None
    for a missing, unreadable or stale (other key) file."""
    if not path.is_file():
        return None
    try:
        state, meta = read_tensors(path)
        if json.loads(meta.get("key", "null")) != key:
            return None
        return state, json.loads(meta.get("calibration", "{}"))
    except (CheckpointError, ValueError):
        return None  # unreadable or stale cache file: recalibrate and overwrite it


def write_observer_cache(path: Path, key: dict[str, Any], prepared: nn.Module,
                         calibration: dict[str, Any]) -> None:
    """Store the observer state of ``prepared`` at ``path`` under ``key``, with the summary
    ``calibration`` (:func:`calibration_summary`) in the metadata."""
    meta = {"key": json.dumps(key, sort_keys=True), "calibration": json.dumps(calibration)}
    write_tensors(path, observer_state(prepared), meta)


def calibrated_static(model: PaddedModel, model_name: str, engine: str, *,
                      weights_id: str | None, task: str, data_root: str | Path | None,
                      settings: CalibrationSettings, use_shipped: bool = True,
                      ) -> tuple[nn.Module, dict[str, Any]]:
    """``model.core`` prepared for static int8 on ``engine`` with its observers set: from the
    package's shipped state (unless ``use_shipped`` is False), the cache, or a calibration on
    :func:`calibration_crops` of ``task``'s train split, then cached. Returns the prepared
    graph and the calibration summary with ``cached``, ``source`` ("shipped", "cache",
    "calibrated") and ``cache_file``. Raises DataError for missing data."""
    cal_name = calibration_task_name(task)
    prepared = prepare_static(copy.deepcopy(model.core), engine)
    key = static_calibration_key(prepared, model, model_name, weights_id=weights_id,
                                 calibration_task=cal_name, engine=engine, settings=settings)
    path = cache_path(key)
    shipped = SHIPPED_CALIBRATION_DIR / path.name  # shipped_calibration_path(key), one digest
    places = ([("shipped", shipped)] if use_shipped else []) + [("cache", path)]
    source, calibration = "calibrated", None
    for name, where in places:
        hit = read_observer_cache(where, key)
        if hit is None:
            continue
        if load_observer_state(prepared, hit[0]):
            source, calibration = name, hit[1]
            break
        prepared = prepare_static(copy.deepcopy(model.core), engine)  # layout changed
    if calibration is None:
        crops, pair_ids = calibration_crops(task, data_root, settings)
        observe(prepared, crops, settings.batch)
        calibration = calibration_summary(cal_name, crops, pair_ids, settings)
        write_observer_cache(path, key, prepared, calibration)
    cache_file = (shipped.relative_to(PACKAGE_DIR.parent).as_posix() if source == "shipped"
                  else str(path))
    return prepared, {**calibration, "cached": source != "calibrated", "source": source,
                      "cache_file": cache_file}
