"""`lowbench data prepare|verify|generate`: make task data ready and check it."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from lowbench.errors import DataError
from lowbench.paths import cache_dir
from lowbench.tasks import get_task, load_truth


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
    problems = task.check_files(root)
    problems += task.check_contents(root, progress=lambda files: tqdm(
        files, desc=f"verify {task.name}", unit="file", leave=False, disable=None))
    n_files = len({p.short for p in task.listed()} | {p.long for p in task.listed()})
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
    print(f"{task.name} v{task.version}: OK, {n_files} files in {root} ({pinned}; {checked}), "
          f"{len(task.listed())} pairs")
    return 0


def generate(task_name: str, out: str) -> int:
    """Regenerate a synthetic split's DNGs into ``out`` (the shipped synth split's source)."""
    from lowbench.data import synth

    out_dir = Path(out)
    if task_name == "synth":
        pairs = synth.generate_test_split(out_dir)
    else:
        task = get_task(task_name)
        pairs = []
        for i in tqdm(list(synth.train_scene_ids(task.n_scenes)), desc="synth-train"):
            pairs += synth.generate_train_scene(out_dir, i)
    print(f"wrote {len(pairs)} pairs to {out_dir}")
    return 0
