"""Progress without a terminal: long commands tell a CI log or a nohup file what they are doing
(real subprocesses whose stderr is a pipe, not a TTY)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lowbench.checkpoint import save_checkpoint
from lowbench.errors import LowbenchError
from lowbench.models import build
from lowbench.progress import INTERVAL_ENV, Progress

REPO = Path(__file__).resolve().parents[1]
FAST = ["--latency-budget", "0.2", "--latency-min-runs", "3", "--threads", "1"]


def _lowbench(*args: str, interval: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, INTERVAL_ENV: interval}
    return subprocess.run([sys.executable, "-m", "lowbench", *args], capture_output=True,
                          text=True, env=env, timeout=300, cwd=REPO, stdin=subprocess.DEVNULL)


def _lines(stream: io.StringIO) -> list[str]:
    """The stream's lines without their elapsed seconds."""
    return [re.sub(r",? \d+ s", "", line) for line in stream.getvalue().splitlines()]


def test_plain_lines_at_start_each_step_and_end() -> None:
    every = io.StringIO()
    with Progress("job", stream=every, interval_s=0, tty=False) as reporter:
        reporter.stage("building")
        assert list(reporter.iterate(range(3), "pairs")) == [0, 1, 2]
        reporter.stage("latency")
    assert _lines(every) == [
        "lowbench: job: building ...", "lowbench: job: pairs 0/3", "lowbench: job: pairs 1/3",
        "lowbench: job: pairs 2/3", "lowbench: job: pairs 3/3, done", "lowbench: job: latency ..."]


def test_heartbeat_names_the_stage_and_a_fast_failure_prints_nothing() -> None:
    out = io.StringIO()
    with Progress("export x", stream=out, interval_s=2, tty=False) as reporter:
        reporter.stage("building the variant")
        assert out.getvalue() == ""  # bad input failing now answers with its one error line
        deadline = time.monotonic() + 60
        while not out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        # a loop after a printed line announces itself at once, start and end
        list(reporter.iterate(iter("ab"), "files"))
        reporter.stage("checking")
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"lowbench: export x: building the variant \.\.\. [2-9]\d* s", lines[0])
    assert _lines(out)[-3:] == ["lowbench: export x: files 0", "lowbench: export x: files 2, done",
                                "lowbench: export x: checking ..."]


def test_a_bad_interval_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(LowbenchError, match=INTERVAL_ENV):
        Progress("x", stream=io.StringIO())


def test_evaluate_without_a_tty_prints_progress_lines(tmp_path: Path) -> None:
    proc = _lowbench("evaluate", "--model", "libraw", "--limit", "2", "--no-memory", "--out",
                     str(tmp_path), *FAST)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines()
             if line.startswith("lowbench: evaluate libraw/fp32: ")]
    pairs = [line for line in lines if " pairs " in line]
    assert re.search(r"pairs 0/2, \d+ s$", pairs[0]), pairs
    assert re.search(r"pairs 2/2, \d+ s, done$", pairs[-1]), pairs
    stages = [line.split(": ", 2)[2] for line in lines if line not in pairs]
    assert any(s.startswith("latency ...") for s in stages), stages
    assert "\r" not in proc.stderr  # no tqdm bar redrawn into the log


def test_export_says_what_it_is_doing(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "lighter.safetensors", "lighter",
                           build("lighter").state_dict(), {})
    out = tmp_path / "lighter.pt"
    proc = _lowbench("export", "--model", "lighter", "--quant", "fp32", "--format",
                     "torchscript", "--checkpoint", str(ckpt), "--size", "32", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    stages = [line.split(": ", 2)[2] for line in proc.stderr.splitlines()
              if line.startswith("lowbench: export lighter/fp32: ")]
    assert [s.split(" ...")[0].split(":")[0] for s in stages] == [
        "building the variant", "exporting to torchscript", "checking"], stages
    assert out.is_file() and "MiB" in proc.stdout
