"""`lowbench data verify synth-train` after normal use: calibration and training generate only
the scenes they use, so the split in the cache is partial, and that is not a problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def verify(cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lowbench", "data", "verify", "synth-train"],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "LOWBENCH_DATA": str(cache)})


def test_verify_synth_train_after_calibration_or_training(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from lowbench.tasks import get_task

    monkeypatch.setenv("LOWBENCH_DATA", str(tmp_path))
    task = get_task("synth-train")
    # what calibration_crops and train do: ask for the first pairs, which generates their scenes
    pairs = task.pairs(None, limit=4)
    scene_ids = {p.scene_id for p in pairs}
    assert len(scene_ids) == 2
    proc = verify(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "OK, 8 files" in proc.stdout and f"{task.n_scenes - 2} more scenes" in proc.stdout
    assert "data prepare synth-train" in proc.stdout

    # a scene that was started but lost a file is still a problem, named
    lost = pairs[0].short
    lost.unlink()
    proc = verify(tmp_path)
    assert proc.returncode == 2
    assert str(lost) in proc.stderr and "Traceback" not in proc.stderr
