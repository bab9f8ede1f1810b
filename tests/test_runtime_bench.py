"""benchmarks/runtime_speed.py end to end: a real subprocess on the smallest setting, and the
structure of what it prints (torch fp32 is the 1.00x reference, every row has a PSNR, refused
rows are listed with their reason, the best-row line)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^lighter\s+(?P<runtime>\S+)\s+(?P<quant>\S+)\s+(?P<precision>\S+)\s+"
                 r"(?P<ms>[0-9.]+)\s+(?P<ratio>[0-9.]+)x\s+\S+x\s+\S+\s+\S+\s+"
                 r"(?P<psnr>[0-9.]+)\s+(?P<check>ok|FAIL|-)$")


def test_runtime_speed_quick_prints_one_row_per_usable_runtime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out_json = tmp_path / "rs.json"
    cmd = [sys.executable, "benchmarks/runtime_speed.py", "--quick", "--models", "lighter",
           "--runtimes", "torch,onnxruntime", "--quants", "fp32,fp16,static", "--pairs", "1",
           "--rounds", "1", "--calibration-crops", "2", "--json", str(out_json)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "cores" in lines[0] and "avx512_bf16" in lines[0]
    rows = {(m["runtime"], m["quant"]): m for m in map(ROW.match, lines) if m}
    # torch fp16 runs only on a CPU with fp16 arithmetic; elsewhere it is listed as skipped
    assert set(rows) - {("torch", "fp16")} == {("torch", "fp32"), ("torch", "static"),
                                               ("onnxruntime", "fp32"),
                                               ("onnxruntime", "static")}, done.stdout
    assert rows["torch", "fp32"]["ratio"] == "1.00"
    assert rows["torch", "fp32"]["precision"] == "float32"
    assert rows["onnxruntime", "static"]["precision"].startswith("int8")
    for row in rows.values():
        assert 10.0 < float(row["psnr"]) < 60.0, row.string
        assert float(row["ms"]) > 0
    skipped = done.stdout.split("skipped (why_not or the runtime's refusal")[1]
    assert "lighter onnxruntime fp16: " in skipped
    assert (("torch", "fp16") in rows) != ("lighter torch fp16: " in skipped)
    assert re.search(r"^  lighter: \S+ \S+ \(.+\) [0-9.]+ ms, [0-9.]+x vs torch fp32, PSNR",
                     done.stdout, re.M), done.stdout
    assert out_json.is_file()
