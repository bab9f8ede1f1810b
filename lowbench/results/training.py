"""Training records: what one ``lowbench train`` run trained and what its loop cost.

One JSON file per run, ``training/<model>__<UTC time>__<run id>.json`` inside a results folder
(the user results store by default, like evaluate records; the ``training/`` folder is not read
as evaluate records), written atomically, schema ``lowbench/schema/training-v1.json``. The same
``energy`` and ``carbon`` sections sit in the checkpoint's metadata (``training_cost``), so the
checkpoint tells its own cost wherever it goes. The site's Costs page reads these records.

Units live in names: J, W, s, g/kWh, g.
"""

from __future__ import annotations

import json
import math
import uuid
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema

from lowbench.fsutil import atomic_write_text
from lowbench.paths import PACKAGE_DIR
from lowbench.results.records import RecordWarning, describe_invalid

SCHEMA = "lowbench.training"
#: The folder of a results folder that holds training records.
FOLDER = "training"


@lru_cache(maxsize=1)
def _validator():
    path = PACKAGE_DIR / "schema" / "training-v1.json"
    return fastjsonschema.compile(json.loads(path.read_text(encoding="utf-8")))


def validate_training(record: dict[str, Any]) -> None:
    """Raise ValueError naming the field if ``record`` is not a valid training record."""
    try:
        _validator()(record)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValueError(f"invalid training record: {describe_invalid(exc)}") from None


def training_record(summary: dict[str, Any], recipe: dict[str, Any], checkpoint: Path,
                    command: str | None = None) -> dict[str, Any]:
    """The record of a finished run: ``summary`` is :func:`lowbench.train.train`'s (its
    ``cost`` holds the ``energy`` and ``carbon`` sections), ``checkpoint`` the file it wrote
    (stored by name and sha256, never by path)."""
    from lowbench.digest import sha256_file
    from lowbench.environment import git_commit, machine_info, machine_label

    cost = summary.get("cost") or {}
    machine = machine_info()
    return {
        "schema": SCHEMA, "schema_version": 1, "run_id": uuid.uuid4().hex,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": summary["model"], "task": recipe["task"], "steps": summary["steps"],
        "start_step": summary.get("start_step", 0),
        "steps_metered": cost.get("steps_metered", summary["steps"]),
        "world_size": summary.get("world_size", 1), "recipe": recipe,
        "val_psnr_db": _finite(summary.get("val_psnr_db")),
        "checkpoint": {"name": checkpoint.name, "sha256": sha256_file(checkpoint)},
        "energy": cost["energy"], "carbon": cost["carbon"],
        "environment": {"machine_label": machine_label(machine), "machine": machine,
                        "commit": git_commit(), "command": command},
    }


def _finite(value: Any) -> float | None:
    """``value`` if it is a finite number (JSON holds no NaN), else None."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def write_training_record(record: dict[str, Any], results_folder: str | Path) -> Path:
    """Validate ``record`` and write it atomically into ``results_folder/training/``."""
    validate_training(record)
    stamp = record["created_utc"].replace(":", "").replace("-", "")
    name = f"{record['model']}__{stamp}__{record['run_id'][:12]}.json"
    path = Path(results_folder) / FOLDER / name
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def load_training_records(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every valid training record under ``folder/training/`` of each results folder, sorted
    by model, creation time and run id; an invalid file is skipped with a RecordWarning."""
    records = []
    for folder in folders:
        for path in sorted((Path(folder) / FOLDER).glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(record, dict) or record.get("schema") != SCHEMA:
                    raise ValueError("not a lowbench training record")
                validate_training(record)
            except (OSError, ValueError) as exc:
                warnings.warn(f"skipping {path}: {str(exc).splitlines()[0][:200]}",
                              RecordWarning, stacklevel=2)
                continue
            records.append(record)
    return sorted(records, key=lambda r: (r["model"], r["created_utc"], r["run_id"]))
