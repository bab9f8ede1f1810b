"""Walk the lowbench source files Python runs while one variant is built (issue 17's measure).

``python scripts/variant_walk.py [--model light] [--quant static] [--task synth]`` builds the
variant exactly as ``lowbench evaluate --model M --quant Q`` configures it
(``lowbench.variants.build_variant(model, quant, checkpoint=None, task=..., data_root=None,
device="cpu")``) under :func:`sys.setprofile` and prints:

- the walk: the lowbench files in the order Python executes them, one line per *stay* (a
  maximal run of Python calls/returns in one file);
- ``stays``: the number of those runs (file transitions + 1);
- ``distinct files``: how many files the walk visits;
- ``climbs``: transitions into a file that comes *earlier* in the import order (the order in
  which the modules entered :data:`sys.modules`: an importer enters before what it imports,
  so a climb is a step back up towards the caller's layer);
- ``returns``: transitions into a file the walk had already left (a file visited twice).

Only frames whose code lives under the imported ``lowbench`` package count; C calls and other
packages (torch, numpy, ...) are transparent. As in ``lowbench evaluate``, ``lowbench.variants``
is imported and the task read (``lowbench.tasks.get_task``) before the walk starts; modules
first imported during the build are walked. The data cache (``$LOWBENCH_DATA``) is pointed at an
empty temporary folder, so no cached calibration from an earlier run changes the walk. Run it
against another checkout with ``PYTHONPATH=/path/to/checkout``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any


def _package_dir() -> Path:
    import lowbench

    return Path(lowbench.__file__).resolve().parent


def _module_files(package_dir: Path) -> list[Path]:
    """Files of the lowbench modules in :data:`sys.modules` order (the import order)."""
    out = []
    for name, module in list(sys.modules.items()):
        if name != "lowbench" and not name.startswith("lowbench."):
            continue
        path = getattr(module, "__file__", None)
        if path:
            out.append(Path(path).resolve())
    return [p for p in out if package_dir in p.parents]


def walk(model: str, quant: str, task: str) -> tuple[list[str], list[str], list[str]]:
    """The stays (file per maximal run, package-relative), the function each stay starts in,
    and the import order of the files."""
    package_dir = _package_dir()
    from lowbench import variants
    from lowbench.tasks import get_task

    get_task(task)  # the evaluate session reads its task before it builds the variant

    files: list[str] = []
    names: list[str] = []
    resolved: dict[str, str | None] = {}

    def relative(filename: str) -> str | None:
        if filename not in resolved:
            path = Path(filename).resolve()
            resolved[filename] = (path.relative_to(package_dir.parent).as_posix()
                                  if package_dir in path.parents else None)
        return resolved[filename]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        if event == "return" and frame.f_back is not None:
            frame = frame.f_back  # execution goes on in the caller's file
        rel = relative(frame.f_code.co_filename)
        if rel is not None and (not files or files[-1] != rel):
            files.append(rel)
            names.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        variants.build_variant(model, quant, checkpoint=None, task=task, data_root=None,
                               device="cpu")
    finally:
        sys.setprofile(None)
    order = [p.relative_to(package_dir.parent).as_posix()
             for p in _module_files(package_dir)]
    return files, names, order


def summarize(files: list[str], order: list[str]) -> dict[str, int]:
    """stays, distinct files, climbs (back up the import order), returns (to a left file) and
    how many of those returns come before the walk first enters the quantization code (a
    file named ``lowbench/quant.py`` or under ``lowbench/quant/``: the recipe)."""
    rank = {f: i for i, f in enumerate(order)}
    climbs = returns = before_recipe = 0
    in_recipe = False
    seen = set(files[:1])
    for before, after in zip(files, files[1:], strict=False):
        in_recipe = in_recipe or after.startswith("lowbench/quant")
        if rank.get(after, len(rank)) < rank.get(before, len(rank)):
            climbs += 1
        if after in seen:
            returns += 1
            before_recipe += not in_recipe
        seen.add(after)
    return {"stays": len(files), "distinct files": len(set(files)), "climbs": climbs,
            "returns": returns, "returns before the quant recipe": before_recipe}


def main(argv: list[str] | None = None) -> int:
    """Print the walk and its four numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="light")
    p.add_argument("--quant", default="static")
    p.add_argument("--task", default="synth")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LOWBENCH_DATA"] = cache
        files, names, order = walk(args.model, args.quant, args.task)
    counts: dict[str, int] = {}
    for f, name in zip(files, names, strict=True):
        counts[f] = counts.get(f, 0) + 1
        print(f"{counts[f]:>3}  {f:<32} {name}")
    print(f"\nbuild_variant({args.model!r}, {args.quant!r}, task={args.task!r}) from "
          f"{_package_dir()}")
    for key, value in summarize(files, order).items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
