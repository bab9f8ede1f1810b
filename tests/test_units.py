"""One size unit (MiB) and one rounding (2 decimals) in every place a size is shown: evaluate's
summary table, `lowbench results table`, the site and the README tables."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from site_fixtures import make_record

from lowbench.cli import results as results_cmd
from lowbench.harness.evaluate import summary_rows
from lowbench.results.columns import number
from lowbench.results.records import write_record
from lowbench.units import format_mib

REPO = Path(__file__).resolve().parents[1]
#: bytes -> what every place must show: 2**20 bytes to a MiB, always 2 decimals
SIZES = {31_129_600: "29.69", 524_288: "0.50", 157_286_400: "150.00", 4_790_000: "4.57"}


def test_format_mib_is_mebibytes_with_two_decimals() -> None:
    for size_bytes, text in SIZES.items():
        assert format_mib(size_bytes) == text
    assert format_mib(None) == "n/a"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A results folder with one sid record per size, one machine each (one table each)."""
    folder = tmp_path_factory.mktemp("sizes")
    records = []
    for i, size_bytes in enumerate(SIZES):
        rec = make_record("sid", "fp32", machine=i, size__size_bytes=size_bytes)
        write_record(rec, folder)
        records.append(rec)
    return folder, records


def test_summary_results_table_site_and_readme_agree(store, capsys) -> None:
    folder, records = store
    shown = {r["size"]["size_bytes"]: SIZES[r["size"]["size_bytes"]] for r in records}
    # evaluate's summary table
    for rec in records:
        row = next(r for r in summary_rows(rec) if r[0] == "size")
        assert row[1:] == [shown[rec["size"]["size_bytes"]], "MiB"]
    # the site's cells
    for size_bytes, text in shown.items():
        assert number(size_bytes, "size_bytes") == text
    # `lowbench results table`
    assert results_cmd.run(argparse.Namespace(results=[str(folder)], json=False)) == 0
    table = capsys.readouterr().out.splitlines()
    header = table[0].split()
    assert "size_mib" in header and "size_bytes" not in header
    cells = sorted(line.split()[-1] for line in table[2:] if line.strip()
                   and not line.endswith("machine(s)"))
    assert cells == sorted(shown.values())
    # the README's tables (scripts/readme_tables.py)
    proc = subprocess.run([sys.executable, "scripts/readme_tables.py", "--results", str(folder)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| size MiB |" in proc.stdout and "size MB" not in proc.stdout
    readme_cells = sorted(line.split("|")[-3].strip() for line in proc.stdout.splitlines()
                          if line.startswith("| sid | fp32 |"))
    assert readme_cells == sorted(shown.values())
