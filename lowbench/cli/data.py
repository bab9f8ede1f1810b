"""`lowbench data prepare|verify|generate`: make task data ready and check it."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from lowbench.data.sid import ListedPair
from lowbench.errors import DataError
from lowbench.fsutil import check_output_folder
from lowbench.paths import cache_dir
from lowbench.tasks import Task, get_task, load_truth


def prepare(task_name: str, data_root: str | None) -> int:
    """Generate what a task needs (synth-train scenes) and cache every ground truth (.npy)."""
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
    task = get_task(task_name)
    root = task.resolve_root(data_root)
    if task.name == "synth-train" and data_root is None and not root.is_dir():
        raise DataError(f"synth-train has not been generated yet in {root}; "
                        "run `lowbench data prepare synth-train`")
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
                        f"in {root}; " + task._problem_summary(root, problems))
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
    from lowbench.data import synth

    out_dir = check_output_folder(out)
    if task_name == "synth":
        pairs = synth.generate_test_split(out_dir)
    else:
        task = get_task(task_name)
        pairs = []
        for i in tqdm(list(synth.train_scene_ids(task.n_scenes)), desc="synth-train"):
            pairs += synth.generate_train_scene(out_dir, i)
    print(f"wrote {len(pairs)} pairs to {out_dir}")
    return 0
