"""User task files: a YAML file of pairs (see docs/tasks.md), read and validated with one-line
errors into a :class:`TaskFile`; ``lowbench.tasks`` makes it a ``Task`` (``get_task``).

This module knows nothing of the standard tasks beyond the names it is given, so that
``lowbench.tasks`` can use it without a circle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lowbench.digest import bytes_digest
from lowbench.errors import LowbenchError

TASK_FILE_SUFFIXES = (".yaml", ".yml")
_TASK_FILE_KEYS = ("name", "description", "pairs", "crop", "calibration_task")
_PAIR_KEYS = ("short", "long", "ratio")
#: what a task file's ``name:`` may be (it names result files)
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_task_file(value: str | Path) -> bool:
    """Whether a ``--task`` value names a task file (a .yaml/.yml path) rather than a task."""
    return Path(value).suffix.lower() in TASK_FILE_SUFFIXES


@dataclass(frozen=True)
class TaskFile:
    """A validated user task file: its resolved ``path``, ``name``, ``description``, ``pairs``
    (short, long as written in the file, ratio = long / short exposure), ``crop`` (raw pixels,
    None = full frames), ``calibration_task`` (a task name or an absolute task file path) and the
    ``sha256`` of its bytes."""

    path: Path
    name: str
    description: str
    pairs: tuple[tuple[str, str, float], ...]
    crop: int | None
    calibration_task: str | None
    sha256: str


def read_task_file(path: str | Path, standard: Sequence[str]) -> TaskFile:
    """Read and validate the user task file ``path`` (YAML); ``standard``: the standard tasks'
    names (a task file may not take one, and may name one as its ``calibration_task``).

    Form (paths relative to the file; ``ratio`` = long / short exposure, > 0)::

        name: my-camera
        pairs:
          - {short: short/a.dng, long: long/a.dng, ratio: 100}
        crop: 512                    # optional: centred raw crop, even pixels
        calibration_task: synth-train  # optional: what calibrates static int8 (a task name
                                       # or another task file)

    Raises :class:`LowbenchError` with one line naming the file and what to fix.
    """
    written = Path(path)
    file = written.expanduser().resolve()
    if not file.is_file():
        raise LowbenchError(f"task file {written} not found (resolved: {file}); pass the path "
                            "of a YAML task file (see docs/tasks.md)")
    data = file.read_bytes()
    try:
        spec = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise LowbenchError(f"task file {written} is not valid YAML{line}; expected `name:` and "
                            "`pairs:` (see docs/tasks.md)") from None
    if not isinstance(spec, dict):
        raise LowbenchError(f"task file {written} must be a mapping with `name:` and `pairs:` "
                            "(see docs/tasks.md)")
    unknown = sorted(set(map(str, spec)) - set(_TASK_FILE_KEYS))
    if unknown:
        raise LowbenchError(f"task file {written}: unknown key {unknown[0]!r}; allowed keys: "
                            f"{', '.join(_TASK_FILE_KEYS)}")
    for key in ("name", "pairs"):
        if key not in spec:
            raise LowbenchError(f"task file {written}: missing key `{key}:` (see docs/tasks.md)")
    name = spec["name"]
    if (not isinstance(name, str) or not _TASK_NAME.fullmatch(name)
            or name in standard):
        raise LowbenchError(f"task file {written}: `name:` must be letters, digits, '.', '_' or "
                            f"'-' (it names result files) and not a standard task's name, got "
                            f"{name!r}")
    if not isinstance(spec["pairs"], list) or not spec["pairs"]:
        raise LowbenchError(f"task file {written}: `pairs:` must be a non-empty list of "
                            "{short: FILE, long: FILE, ratio: NUMBER}")
    pairs = tuple(_user_pair(written, i, item) for i, item in enumerate(spec["pairs"], start=1))
    crop = spec.get("crop")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 2
                             or crop % 2):
        raise LowbenchError(f"task file {written}: `crop:` must be an even number of raw "
                            f"pixels (or absent for full frames), got {crop!r}")
    calibration = spec.get("calibration_task")
    if calibration is not None:
        calibration = _calibration_ref(written, file, calibration, standard)
    return TaskFile(path=file, name=name,
                    description=str(spec.get("description") or f"user task file {file.name}"),
                    pairs=pairs, crop=crop, calibration_task=calibration,
                    sha256=bytes_digest(data))


def _user_pair(written: Path, index: int, item: Any) -> tuple[str, str, float]:
    where = f"task file {written}, pair {index}"
    if not isinstance(item, dict):
        raise LowbenchError(f"{where}: expected {{short: FILE, long: FILE, ratio: NUMBER}}, "
                            f"got {item!r}")
    for key in _PAIR_KEYS:
        if key not in item:
            raise LowbenchError(f"{where}: missing key `{key}:`")
    extra = sorted(set(map(str, item)) - set(_PAIR_KEYS))
    if extra:
        raise LowbenchError(f"{where}: unknown key {extra[0]!r}; a pair has short, long, ratio")
    for key in ("short", "long"):
        if not isinstance(item[key], str) or not item[key].strip():
            raise LowbenchError(f"{where}: `{key}:` must be a file path, got {item[key]!r}")
    ratio = item["ratio"]
    if (isinstance(ratio, bool) or not isinstance(ratio, int | float) or not math.isfinite(ratio)
            or ratio <= 0):
        raise LowbenchError(f"{where}: `ratio:` must be a number > 0 (long exposure / short "
                            f"exposure, e.g. 100), got {ratio!r}")
    return item["short"], item["long"], float(ratio)


def _calibration_ref(written: Path, file: Path, value: Any, standard: Sequence[str]) -> str:
    """A task file's ``calibration_task``: a name in ``standard``, or a task file (made absolute,
    relative to ``file``)."""
    if not isinstance(value, str) or not value.strip():
        raise LowbenchError(f"task file {written}: `calibration_task:` must be a task name or "
                            f"a task file, got {value!r}")
    if value in standard:
        return value
    if is_task_file(value):
        target = (file.parent / value).resolve()
        if not target.is_file():
            raise LowbenchError(f"task file {written}: calibration_task file {value} not found "
                                f"(resolved: {target})")
        return str(target)
    raise LowbenchError(f"task file {written}: calibration_task {value!r} is neither a task "
                        f"({', '.join(standard)}) nor a .yaml task file")
