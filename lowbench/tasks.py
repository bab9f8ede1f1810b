"""Tasks: the standard ones of ``data_manifest.yaml`` and user task files; data roots,
verification, the pairs a task yields.

A :class:`Task` yields :class:`lowbench.pairs.Pair` objects (short exposure, long exposure,
ratio, crop); how a pair loads (input and ground truth) is ``lowbench.pairs``. A user task file
is a YAML file of pairs (see docs/tasks.md, :func:`load_task_file` and ``lowbench.task_files``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lowbench import raw as rawpipe
from lowbench.data import sid as sidlists
from lowbench.digest import bytes_digest, sha256_file
from lowbench.errors import DataError, LowbenchError
from lowbench.pairs import Pair, RawChecks, frame_mismatch
from lowbench.paths import PACKAGE_DIR, cache_dir, git_checkout_root, manifest_path
from lowbench.task_files import is_task_file, read_task_file

SID_PUBLISHED = "github.com/cchen156/Learning-to-See-in-the-Dark"
SYNTH_TEST_DIR = PACKAGE_DIR / "data" / "synth_test"
SID_LIST_DIR = PACKAGE_DIR / "data" / "sid_lists"


@dataclass(frozen=True)
class Task:
    """A task: a standard one as declared in the manifest, or a user task file (kind "user")."""

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
    #: DN that normalises the packed input (SID tasks: SID's constant); None: each file's own
    white_level: int | None = None
    checks: RawChecks | None = None
    #: the YAML file of a user task (kind "user"); its folder is the task's data root
    task_file: Path | None = None
    #: a user task's pairs: (short, long as written in the file, ratio)
    user_pairs: tuple[tuple[str, str, float], ...] = ()

    # -- data roots -------------------------------------------------------------------------
    def default_root(self) -> Path | None:
        """The root used without ``--data-root``: the package (synth), the cache (synth-train),
        or None (SID tasks need a user-supplied root)."""
        if self.name == "synth":
            return SYNTH_TEST_DIR
        if self.name in ("synth-train", "synth-full"):
            return cache_dir() / f"{self.name}-v{self.version}"
        if self.task_file is not None:
            return self.task_file.parent
        return None

    def resolve_root(self, data_root: str | Path | None) -> Path:
        """The data root to read, or a :class:`DataError` saying how to supply one."""
        if data_root is not None and self.kind == "user":
            raise DataError(f"--data-root does not apply to the task file {self.task_file}: its "
                            "paths are relative to the file; drop --data-root")
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
        if self.kind == "user":
            return f"paths in {self.task_file} are relative to its folder"
        return "expected the task's short/ and long/ DNG folders"

    # -- pairs ------------------------------------------------------------------------------
    def listed(self) -> list[sidlists.ListedPair]:
        """Every pair the task declares, relative to its root (no file access beyond the list)."""
        if self.kind == "sid":
            pairs = sidlists.parse_list(SID_LIST_DIR / str(self.list_file))
            return sidlists.select(pairs, list(self.bursts) if self.bursts is not None else None,
                                   list(self.exclusions))
        if self.kind == "user":  # relative exposures: short 1, long = the file's ratio
            return [sidlists.ListedPair(short, long, i, 0, 1.0, ratio)
                    for i, (short, long, ratio) in enumerate(self.user_pairs, start=1)]
        from lowbench.data import synth

        if self.name == "synth":
            ids, exposures = [sid for _, sid in synth.TEST_SCENES], synth.SHORT_EXPOSURES_S
        elif self.name == "synth-full":
            ids, exposures = [sid for _, sid in synth.FULL_SCENES], synth.FULL_SHORT_EXPOSURES_S
        else:
            ids, exposures = list(synth.train_scene_ids(self.n_scenes)), synth.SHORT_EXPOSURES_S
        long_s = synth.LONG_EXPOSURE_S
        return [
            sidlists.ListedPair(f"short/{i:05d}_00_{synth.exposure_name(t)}s.dng",
                                f"long/{i:05d}_00_{synth.exposure_name(long_s)}s.dng",
                                i, 0, t, long_s)
            for i in ids for t in exposures
        ]

    def pairs(self, data_root: str | Path | None = None, *, limit: int | None = None,
              indices: list[int] | None = None, check: bool = True) -> list[Pair]:
        """The task's pairs with absolute paths, in manifest order: the first ``limit``, or the
        listed pairs at ``indices`` (in that order), or all.

        ``check`` verifies presence of the files of the pairs returned (one clear error counting
        what is missing among them) and pinned checksums (synth). For synth-train, missing
        scenes are generated.
        """
        root = self.resolve_root(data_root)
        listed = self.listed()
        if indices is not None:
            listed = [listed[i] for i in indices]
        elif limit is not None:
            listed = listed[:limit]
        if self.name == "synth-train":
            ensure_synth_train(root, sorted({p.scene_id for p in listed}))
        if self.name == "synth-full" and data_root is None:
            ensure_synth_full(root, listed)
        if check:
            problems = self.check_files(root, listed)
            if problems:
                raise DataError(self.problem_summary(root, problems, listed))
        ids = [Path(p.short).stem for p in listed]
        if len(set(ids)) < len(ids):  # user files may repeat a name in two folders
            ids = [str(Path(p.short).with_suffix("")).replace("/", "_") for p in listed]
        return [
            Pair(pair_id, root / p.short, root / p.long, self._ratio(p), p.scene_id, self.crop,
                 self.white_level, self.checks)
            for pair_id, p in zip(ids, listed, strict=True)
        ]

    def _ratio(self, listed: sidlists.ListedPair) -> float:
        if self.kind == "user":  # the file's ratio as given, no SID cap
            return listed.long_exposure_s / listed.short_exposure_s
        return sidlists.exposure_ratio(listed.short_exposure_s, listed.long_exposure_s)

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
                problems.append(f"missing: {self._describe(rel, path)}")
            elif self.sha256:
                want = self.sha256.get(rel)
                if want is not None and _cached_sha(str(path), path.stat().st_mtime_ns) != want:
                    problems.append(f"checksum mismatch: {path}")
        return problems

    def _describe(self, rel: str, path: Path) -> str:
        """A file as the user wrote it (task files) and where that resolves, else its path."""
        if self.kind == "user":
            return f"{rel} (in {self.task_file}, resolved: {path})"
        return str(path)

    def check_contents(self, root: Path, listed: list[sidlists.ListedPair] | None = None,
                       progress: Any = None) -> list[str]:
        """Problems inside the (present) files of ``listed`` (default: all pairs): unreadable,
        truncated, not Bayer, not what the task's ``raw_checks`` declare, and the two exposures
        of a pair of different frame size. One ``"<file>: <reason>"`` line per problem; this
        decodes every file (seconds per full-size raw). ``progress`` wraps the file iterable."""
        listed = self.listed() if listed is None else listed
        rels = sorted({p.short for p in listed} | {p.long for p in listed})
        sizes: dict[str, tuple[int, int]] = {}
        problems = []
        for rel in progress(rels) if progress is not None else rels:
            path = root / rel
            if not path.is_file():
                continue
            try:
                with rawpipe.read(path) as raw:
                    sizes[rel] = (int(raw.sizes.height), int(raw.sizes.width))
                    reasons = self.checks.problems(path, raw) if self.checks else []
            except DataError as err:
                problems.append(f"unreadable: {err}")
                continue
            problems += [f"unexpected: {path}: {why}" for why in reasons]
        for p in listed:
            if p.short in sizes and p.long in sizes and sizes[p.short] != sizes[p.long]:
                why = frame_mismatch(root / p.short, sizes[p.short], root / p.long,
                                      sizes[p.long])
                problems.append(f"frame mismatch: {why}")
        return problems

    def problem_summary(self, root: Path, problems: list[str],
                        listed: list[sidlists.ListedPair] | None = None) -> str:
        """One line for ``problems`` (from :meth:`check_files` under ``root``) of ``listed``
        (default: all pairs), counted among the files of those pairs, with how to fix them."""
        listed = self.listed() if listed is None else listed
        missing = [p for p in problems if p.startswith("missing")]
        bad = [p for p in problems if p.startswith("checksum")]
        if bad:
            first = Path(bad[0].split(": ", 1)[1])
            return (f"{len(bad)} file(s) of task {self.name} v{self.version} do not match the "
                    f"sha256 pinned in data_manifest.yaml (first: {first}); the data was "
                    f"modified or belongs to another version: {_checksum_fix(self, first)}")
        if not missing:
            return f"task {self.name}: {len(problems)} problem(s), first: {problems[0]}"
        n_files = len({p.short for p in listed} | {p.long for p in listed})
        n_all = len(self.listed())
        used = (f"the {len(listed)} pairs used (of {n_all})" if len(listed) < n_all
                else f"its {n_all} pairs")
        if self.kind == "user":
            return (f"task file {self.task_file}: {len(missing)} of the {n_files} files of "
                    f"{used} not found (first: {missing[0].split(': ', 1)[1]}); "
                    f"{self._layout_hint()}")
        return (f"data root {root} is incomplete for task {self.name}: {len(missing)} of the "
                f"{n_files} files of {used} missing (first: "
                f"{missing[0].split(': ', 1)[1]}); {self._layout_hint()}")

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this task's data in a result record (manifest hash + file checksums)."""
        digest = bytes_digest(yaml.safe_dump(self.spec, sort_keys=True).encode("utf-8"))
        return {"task": self.name, "task_version": self.version, "manifest_sha256": digest,
                "files_sha256": dict(sorted(self.sha256.items())) or None}


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


def ensure_synth_full(root: Path, listed: list[sidlists.ListedPair]) -> None:
    """Generate the scenes of the ``listed`` synth-full pairs that miss a file in ``root``
    (seconds each; the files are then checked against the manifest's checksums like every
    pinned task)."""
    from lowbench.data.synth import FULL_SCENES, generate_full_scene

    names = {sid: name for name, sid in FULL_SCENES}
    todo = sorted({p.scene_id for p in listed
                   if not (root / p.short).is_file() or not (root / p.long).is_file()})
    from tqdm import tqdm

    for i in tqdm(todo, desc="generating synth-full (full Sony frames)", unit="scene",
                  leave=False, disable=not todo):
        generate_full_scene(root, names[i], i)


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
        white_level=spec.get("white_level"), checks=RawChecks.from_spec(spec.get("raw_checks")),
    )


def all_tasks() -> list[Task]:
    """Every task in manifest order."""
    return [_task_from_spec(s) for s in load_manifest()["tasks"]]


def get_task(name: str | Path) -> Task:
    """The standard task called ``name``, or the task of the YAML file ``name``
    (:func:`load_task_file`); else a :class:`LowbenchError` listing the valid names."""
    specs = {s["name"]: s for s in load_manifest()["tasks"]}
    if str(name) in specs:
        return _task_from_spec(specs[str(name)])
    if is_task_file(name) or Path(name).is_file():
        return load_task_file(name)
    raise LowbenchError(f"unknown task {str(name)!r}; valid tasks: {', '.join(specs)}, or a "
                        "task file my_task.yaml (see docs/tasks.md)")


def load_task_file(path: str | Path) -> Task:
    """The :class:`Task` of a user task file (YAML; form and validation:
    :func:`lowbench.task_files.read_task_file`), a :class:`LowbenchError` naming what to fix.

    The task's ``manifest_sha256`` is a digest of the file's bytes, so two different files
    named alike never share a leaderboard row.
    """
    file = read_task_file(path, [t.name for t in all_tasks()])
    return Task(
        name=file.name, version=1, description=file.description, split="test", kind="user",
        expected_pairs=len(file.pairs), crop=file.crop, exclusions=(), bursts=None,
        list_file=None, calibration_task=file.calibration_task, sha256={},
        spec={"kind": "user", "name": file.name, "task_file_sha256": file.sha256},
        task_file=file.path, user_pairs=file.pairs,
    )
