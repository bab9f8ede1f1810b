"""Shared fixtures: an isolated data cache and results store per test session, and small DNG
writers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point LOWBENCH_DATA at a fresh folder so tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("lowbench-cache")
    old = os.environ.get("LOWBENCH_DATA")
    os.environ["LOWBENCH_DATA"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LOWBENCH_DATA", None)
    else:
        os.environ["LOWBENCH_DATA"] = old


@pytest.fixture(scope="session", autouse=True)
def _isolated_results_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point LOWBENCH_RESULTS at a fresh folder so tests never write into the user's store."""
    path = tmp_path_factory.mktemp("lowbench-results")
    old = os.environ.get("LOWBENCH_RESULTS")
    os.environ["LOWBENCH_RESULTS"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LOWBENCH_RESULTS", None)
    else:
        os.environ["LOWBENCH_RESULTS"] = old


@pytest.fixture(scope="session", autouse=True)
def _no_progress_lines() -> None:
    """Without a TTY, long commands print progress lines to stderr every few seconds; on a busy
    machine they would land before the one error line that the bad-input tests check. Tests of
    the progress lines set LOWBENCH_PROGRESS_INTERVAL themselves."""
    old = os.environ.get("LOWBENCH_PROGRESS_INTERVAL")
    os.environ["LOWBENCH_PROGRESS_INTERVAL"] = "86400"
    yield
    if old is None:
        os.environ.pop("LOWBENCH_PROGRESS_INTERVAL", None)
    else:
        os.environ["LOWBENCH_PROGRESS_INTERVAL"] = old


@pytest.fixture
def write_bayer_dng(tmp_path: Path):
    """Factory: write a real DNG (via lowbench's writer) and return its path."""
    from lowbench.data.dng import write_dng

    def _write(mosaic: np.ndarray, name: str = "t.dng", **kw) -> Path:
        kw.setdefault("xyz_to_camera", np.eye(3).ravel())
        kw.setdefault("as_shot_neutral", (0.5, 1.0, 0.7))
        return write_dng(tmp_path / name, mosaic, **kw)

    return _write
