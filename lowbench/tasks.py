"""Standard tasks from ``data_manifest.yaml``: Task, Pair, data roots, verification, loading.

A :class:`Task` yields :class:`Pair` objects (short exposure, long exposure, ratio, crop); the
input of a pair is ``clip(pack(raw) x ratio, 0, 1)`` and its ground truth is the LibRaw
development of the long exposure (``lowbench.raw``), both cropped by the task's crop rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lowbench import raw as rawpipe
from lowbench.data import sid as sidlists
from lowbench.errors import DataError, LowbenchError
from lowbench.fsutil import sha256_file
from lowbench.paths import PACKAGE_DIR, cache_dir, manifest_path

SID_PUBLISHED = "github.com/cchen156/Learning-to-See-in-the-Dark"
SYNTH_TEST_DIR = PACKAGE_DIR / "data" / "synth_test"
SID_LIST_DIR = PACKAGE_DIR / "data" / "sid_lists"


@dataclass(frozen=True)
class Pair:
    """One evaluation/training sample: absolute paths, SID ratio, optional centred raw crop."""

    pair_id: str
    short: Path
    long: Path
    ratio: float
    scene_id: int
    crop: int | None = None

    @property
    def ratio_label(self) -> str:
        """'x100', 'x250', 'x300' (the ratio rounded to an integer)."""
        return f"x{round(self.ratio)}"


@dataclass(frozen=True)
class Task:
    """A standard task as declared in the manifest."""

    name: str
    version: int
    description: str
    split: str
    kind: str
    expected_pairs: int
    crop: int | None
    exclusions: tuple[int, ...]
    bursts: tuple[int, ...] | None
    list_file: str | None
    calibration_task: str | None
    sha256: dict[str, str] = field(default_factory=dict)
    n_scenes: int = 0
    is_default: bool = False
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # -- data roots -------------------------------------------------------------------------
    def default_root(self) -> Path | None:
        """The root used without ``--data-root``: the package (synth), the cache (synth-train),
        or None (SID tasks need a user-supplied root)."""
        if self.name == "synth":
            return SYNTH_TEST_DIR
        if self.name == "synth-train":
            return cache_dir() / f"synth-train-v{self.version}"
        return None

    def resolve_root(self, data_root: str | Path | None) -> Path:
        """The data root to read, or a :class:`DataError` saying how to supply one."""
        if data_root is not None:
            root = Path(data_root).expanduser()
            if not root.is_dir():
                raise DataError(f"--data-root {root} is not a directory; {self._layout_hint()}")
            return root
        root = self.default_root()
        if root is None:
            raise DataError(
                f"task {self.name} needs the SID Sony data: pass --data-root DIR; "
                f"{self._layout_hint()}"
            )
        return root

    def _layout_hint(self) -> str:
        if self.kind == "sid":
            return (f"expected DIR/Sony/short/*.ARW and DIR/Sony/long/*.ARW "
                    f"(SID's Sony set, published at {SID_PUBLISHED})")
        return "expected the task's short/ and long/ DNG folders"

    # -- pairs ------------------------------------------------------------------------------
    def listed(self) -> list[sidlists.ListedPair]:
        """Every pair the task declares, relative to its root (no file access beyond the list)."""
        if self.kind == "sid":
            pairs = sidlists.parse_list(SID_LIST_DIR / str(self.list_file))
            return sidlists.select(pairs, list(self.bursts) if self.bursts is not None else None,
                                   list(self.exclusions))
        if self.name == "synth":
            from lowbench.data.synth import LONG_EXPOSURE_S, SHORT_EXPOSURES_S, TEST_SCENES

            ids = [sid for _, sid in TEST_SCENES]
        else:
            from lowbench.data.synth import (
                LONG_EXPOSURE_S,
                SHORT_EXPOSURES_S,
                train_scene_ids,
            )

            ids = list(train_scene_ids(self.n_scenes))
        from lowbench.data.synth import exposure_name

        return [
            sidlists.ListedPair(f"short/{i:05d}_00_{exposure_name(t)}s.dng",
                                f"long/{i:05d}_00_{exposure_name(LONG_EXPOSURE_S)}s.dng",
                                i, 0, t, LONG_EXPOSURE_S)
            for i in ids for t in SHORT_EXPOSURES_S
        ]

    def pairs(self, data_root: str | Path | None = None, *, limit: int | None = None,
              check: bool = True) -> list[Pair]:
        """The task's pairs with absolute paths, in manifest order (first ``limit`` if given).

        ``check`` verifies presence (SID tasks: one clear error listing how many files are
        missing) and pinned checksums (synth). For synth-train, missing scenes are generated.
        """
        root = self.resolve_root(data_root)
        listed = self.listed()[:limit] if limit is not None else self.listed()
        if self.name == "synth-train":
            ensure_synth_train(root, sorted({p.scene_id for p in listed}))
        if check:
            problems = self.check_files(root, listed)
            if problems:
                raise DataError(self._problem_summary(root, problems))
        return [
            Pair(Path(p.short).stem, root / p.short, root / p.long,
                 sidlists.exposure_ratio(p.short_exposure_s, p.long_exposure_s),
                 p.scene_id, self.crop)
            for p in listed
        ]

    # -- verification -----------------------------------------------------------------------
    def check_files(self, root: Path, listed: list[sidlists.ListedPair] | None = None
                    ) -> list[str]:
        """Problems with the files of ``listed`` (default: all pairs) under ``root``: missing
        files, and for pinned tasks, checksum mismatches. Empty list = all good."""
        listed = self.listed() if listed is None else listed
        rels = sorted({p.short for p in listed} | {p.long for p in listed})
        problems = []
        for rel in rels:
            path = root / rel
            if not path.is_file():
                problems.append(f"missing: {path}")
            elif self.sha256:
                want = self.sha256.get(rel)
                if want is not None and _cached_sha(str(path), path.stat().st_mtime_ns) != want:
                    problems.append(f"checksum mismatch: {path}")
        return problems

    def _problem_summary(self, root: Path, problems: list[str]) -> str:
        missing = [p for p in problems if p.startswith("missing")]
        bad = [p for p in problems if p.startswith("checksum")]
        if bad:
            first = Path(bad[0].split(": ", 1)[1])
            return (f"{len(bad)} file(s) of task {self.name} v{self.version} do not match the "
                    f"sha256 pinned in data_manifest.yaml (first: {first}); the data was "
                    f"modified or belongs to another version: {_checksum_fix(self, first)}")
        return (f"data root {root} is incomplete for task {self.name}: {len(missing)} of "
                f"{len(self._all_rels())} listed files missing (first: "
                f"{missing[0].split(': ', 1)[1]}); {self._layout_hint()}")

    def _all_rels(self) -> set[str]:
        listed = self.listed()
        return {p.short for p in listed} | {p.long for p in listed}

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this task's data in a result record (manifest hash + file checksums)."""
        digest = hashlib.sha256(
            yaml.safe_dump(self.spec, sort_keys=True).encode("utf-8")).hexdigest()
        return {"task": self.name, "task_version": self.version, "manifest_sha256": digest,
                "files_sha256": dict(sorted(self.sha256.items())) or None}


def git_checkout_root() -> Path | None:
    """The repository root when lowbench runs from a git checkout (a clone, a worktree, an
    editable install of one), else None (installed from a wheel or sdist)."""
    root = PACKAGE_DIR.parent
    return root if (root / ".git").exists() else None


def _checksum_fix(task: Task, bad_file: Path) -> str:
    """How to get pristine files back, for the kind of install and data root at hand."""
    try:
        bad_file.resolve().relative_to(PACKAGE_DIR)
    except ValueError:  # the user's --data-root
        regenerate = (f"regenerate it with `lowbench data generate {task.name} --out DIR` or "
                      if task.kind == "synthetic" else "")
        return f"{regenerate}point --data-root at pristine data"
    repo = git_checkout_root()
    if repo is not None:
        rel = bad_file.resolve().relative_to(repo.resolve()).as_posix()
        return (f"this is a git checkout: restore the shipped files with `git checkout -- "
                f"{rel}` (`git status` lists every changed file)")
    return "reinstall lowbench (pip install --force-reinstall lowbench)"


@lru_cache(maxsize=4096)
def _cached_sha(path: str, mtime_ns: int) -> str:
    return sha256_file(path)


def ensure_synth_train(root: Path, scene_ids: list[int]) -> None:
    """Generate the synth-train scenes that are not in ``root`` yet (seeded, deterministic)."""
    from lowbench.data.synth import generate_train_scene

    todo = [i for i in scene_ids if not (root / f"long/{i:05d}_00_10s.dng").is_file()
            or not (root / f"short/{i:05d}_00_0.033s.dng").is_file()]
    if not todo:
        return
    from tqdm import tqdm

    for i in tqdm(todo, desc="generating synth-train", unit="scene", leave=False,
                  disable=len(todo) < 8):
        generate_train_scene(root, i)


# -- the manifest --------------------------------------------------------------------------
@lru_cache(maxsize=1)
def load_manifest() -> dict[str, Any]:
    """The parsed ``data_manifest.yaml``."""
    with open(manifest_path(), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _task_from_spec(spec: dict[str, Any]) -> Task:
    crop = spec.get("crop")
    source = spec["source"]
    scenes = source.get("scenes") or {}
    return Task(
        name=spec["name"], version=int(spec["version"]), description=spec["description"],
        split=spec["split"], kind=source["kind"], expected_pairs=int(spec["expected_pairs"]),
        crop=int(crop["size"]) if isinstance(crop, dict) else None,
        exclusions=tuple(spec.get("exclusions") or ()),
        bursts=tuple(spec["bursts"]) if spec.get("bursts") is not None else None,
        list_file=source.get("list"), calibration_task=spec.get("calibration_task"),
        sha256=dict(spec.get("sha256") or {}),
        n_scenes=int(scenes.get("count", 0)) if "count" in scenes else 0,
        is_default=bool(spec.get("default", False)), spec=spec,
    )


def all_tasks() -> list[Task]:
    """Every task in manifest order."""
    return [_task_from_spec(s) for s in load_manifest()["tasks"]]


def get_task(name: str) -> Task:
    """The task called ``name``, or a :class:`LowbenchError` listing the valid names."""
    tasks = {t.name: t for t in all_tasks()}
    if name not in tasks:
        raise LowbenchError(f"unknown task {name!r}; valid tasks: {', '.join(tasks)}")
    return tasks[name]


# -- loading a pair ------------------------------------------------------------------------
def crop_box(height: int, width: int, size: int | None) -> tuple[int, int, int, int]:
    """Centred, Bayer-aligned (even offsets) crop of a raw frame: (y0, x0, h, w) in raw pixels."""
    if size is None:
        return 0, 0, height - height % 2, width - width % 2
    if size % 2 or size > min(height, width):
        raise DataError(f"crop {size} does not fit a {height} x {width} raw frame")
    y0 = ((height - size) // 2) & ~1
    x0 = ((width - size) // 2) & ~1
    return y0, x0, size, size


def packed_input(raw: Any, pair: Pair) -> np.ndarray:
    """The network input of ``pair`` from its opened short-exposure raw: float32 (4, h, w)."""
    mosaic = raw.raw_image_visible
    y0, x0, h, w = crop_box(*mosaic.shape, pair.crop)
    phase = rawpipe.bayer_phase(raw)
    blacks, scales = rawpipe.channel_scales(raw, phase)
    packed = rawpipe.pack_mosaic(mosaic[y0:y0 + h, x0:x0 + w], phase, blacks, scales)
    return rawpipe.amplify(packed, pair.ratio)


def load_input(pair: Pair) -> np.ndarray:
    """Read, pack, amplify and crop the short exposure of ``pair``: float32 (4, h, w)."""
    with rawpipe.read(pair.short) as raw:
        return packed_input(raw, pair)


def load_truth(pair: Pair, cache: Path | None = None) -> np.ndarray:
    """Ground truth of ``pair`` (cached LibRaw development, cropped): float32 (2h, 2w, 3)."""
    gt = rawpipe.develop(pair.long, cache_dir() if cache is None else cache)
    y0, x0, h, w = crop_box(gt.shape[0], gt.shape[1], pair.crop)
    return gt[y0:y0 + h, x0:x0 + w]
