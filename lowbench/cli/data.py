"""`lowbench data prepare|verify|generate`: make task data ready and check it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lowbench.errors import DataError

if TYPE_CHECKING:
    from lowbench.data.sid import ListedPair
    from lowbench.tasks import Task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `lowbench data` and their options to ``parser``."""
    dsub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, helptext in (("prepare", "make a task ready (generate synth data, cache GT)"),
                           ("verify", "check every file is present and every pinned sha256 "
                                      "matches (exit 0 when all good)")):
        d = dsub.add_parser(name, help=helptext)
        d.add_argument("task", help="task name (see `lowbench list tasks`)")
        d.add_argument("--data-root", default=None,
                       help="folder holding the task's files (default: the task's own: the "
                            "package for synth, the data cache for synth-train)")
    d = dsub.add_parser("generate", help="regenerate a synthetic split's DNG files into --out")
    d.add_argument("task", choices=["synth", "synth-train", "synth-full"],
                   help="synthetic split to write")
    d.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    """Run `lowbench data prepare|verify|generate`; the exit code of :func:`prepare`,
    :func:`verify` or :func:`generate`."""
    if args.action == "prepare":
        return prepare(args.task, args.data_root)
    if args.action == "verify":
        return verify(args.task, args.data_root)
    return generate(args.task, args.out)


def prepare(task_name: str, data_root: str | None) -> int:
    """Generate what a task needs (synth-train scenes) and cache every ground truth (.npy)."""
    from tqdm import tqdm

    from lowbench.pairs import load_truth
    from lowbench.paths import cache_dir
    from lowbench.tasks import get_task

    task = get_task(task_name)
    pairs = task.pairs(data_root)
    for long in tqdm(sorted({p.long for p in pairs}), desc=f"ground truth {task.name}",
                     unit="file"):
        pair = next(p for p in pairs if p.long == long)
        load_truth(pair)
    print(f"{task.name} v{task.version}: {len(pairs)} pairs ready "
          f"(ground truth cached in {cache_dir() / 'gt'})")
    return 0


def verify(task_name: str, data_root: str | None) -> int:
    """Exit 0 when every file is present, matches its pinned sha256, decodes completely as a
    Bayer raw, passes the task's raw checks and pairs with a frame of its size; else list each
    failing file with its reason and exit 2."""
    from tqdm import tqdm

    from lowbench.tasks import get_task

    task = get_task(task_name)
    root = task.resolve_root(data_root)
    if task.name in ("synth-train", "synth-full") and data_root is None and not root.is_dir():
        raise DataError(f"{task.name} has not been generated yet in {root}; "
                        f"run `lowbench data prepare {task.name}`")
    listed, not_generated = task.listed(), 0
    if task.name == "synth-train" and data_root is None:
        listed, not_generated = _generated_scenes(task, root)
    problems = task.check_files(root, listed)
    problems += task.check_contents(root, listed, progress=lambda files: tqdm(
        files, desc=f"verify {task.name}", unit="file", leave=False, disable=None))
    n_files = len({p.short for p in listed} | {p.long for p in listed})
    pinned = "sha256 pinned" if task.sha256 else "presence only (no pinned checksums)"
    if problems:
        # every file that is there but wrong, one line each; missing files: the first 20
        missing = [p for p in problems if p.startswith("missing")]
        for line in [p for p in problems if not p.startswith("missing")] + missing[:20]:
            print(f"  {line}")
        if len(missing) > 20:
            print(f"  ... and {len(missing) - 20} more missing files")
        raise DataError(f"verify {task.name}: {len(problems)} problem(s) among {n_files} files "
                        f"in {root}; " + task.problem_summary(root, problems))
    checked = "decoded and checked" + (" against the task's raw checks" if task.checks else "")
    later = (f"; {not_generated} more scenes are generated when first used (`lowbench data "
             f"prepare {task.name}` generates them all)" if not_generated else "")
    print(f"{task.name} v{task.version}: OK, {n_files} files in {root} ({pinned}; {checked}), "
          f"{len(listed)} pairs{later}")
    return 0


def _generated_scenes(task: Task, root: Path) -> tuple[list[ListedPair], int]:
    """The listed pairs of the scenes of a generated-on-demand split (synth-train) that have
    at least one file under ``root``, and how many scenes have none yet.

    Calibration and training generate only the scenes they use, so a split in normal use is
    partial; a scene with some of its files missing is still reported by check_files."""
    present = {rel for rel in _relative_files(root)}
    by_scene: dict[int, list[ListedPair]] = {}
    for p in task.listed():
        by_scene.setdefault(p.scene_id, []).append(p)
    started = [pairs for pairs in by_scene.values()
               if any(p.short in present or p.long in present for p in pairs)]
    return [p for pairs in started for p in pairs], len(by_scene) - len(started)


def _relative_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def generate(task_name: str, out: str) -> int:
    """Regenerate a synthetic split's DNGs into ``out`` (the shipped synth split's source)."""
    from tqdm import tqdm

    from lowbench.data import synth
    from lowbench.fsutil import check_output_folder
    from lowbench.tasks import get_task

    out_dir = check_output_folder(out)
    if task_name == "synth":
        pairs = synth.generate_test_split(out_dir)
    elif task_name == "synth-full":
        pairs = synth.generate_full_split(out_dir)
    else:
        task = get_task(task_name)
        pairs = []
        for i in tqdm(list(synth.train_scene_ids(task.n_scenes)), desc="synth-train"):
            pairs += synth.generate_train_scene(out_dir, i)
    print(f"wrote {len(pairs)} pairs to {out_dir}")
    return 0
