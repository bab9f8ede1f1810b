"""Rewrite result records in place as the harness writes them now: no absolute path of the
machine that made them (checkpoint by package-relative or file name + sha256 + ``reference``,
calibration cache by file name, command line without absolute paths) and the task's
``pairs_total`` and ``crop``. Figures are untouched. Idempotent: a second run changes nothing.

    python scripts/migrate_records.py [FOLDER ...]      (default: results)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lowbench.fsutil import atomic_write_text
from lowbench.results.provenance import migrate_record
from lowbench.results.records import record_files, validate


def main(argv: list[str] | None = None) -> int:
    """Migrate every record under the given folders; prints how many changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", default=["results"],
                        help="results folders to migrate in place (default: results)")
    args = parser.parse_args(argv)
    total = changed = 0
    for folder in args.folders:
        if not Path(folder).is_dir():
            print(f"migrate_records: {folder} is not a folder", file=sys.stderr)
            return 2
        for path in record_files(folder):
            with open(path, encoding="utf-8") as fh:
                record = json.load(fh)
            if not isinstance(record, dict) or record.get("schema") != "lowbench.record":
                continue
            total += 1
            new = migrate_record(record)
            if new == record:
                continue
            validate(new)
            atomic_write_text(path, json.dumps(new, indent=1, sort_keys=True,
                                               allow_nan=False) + "\n")
            changed += 1
    print(f"migrated {changed} of {total} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
