"""Shared fixtures: an isolated data cache and results store per test session, and small DNG
writers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _environment_set(name: str, value: str) -> Iterator[str]:
    """Set ``$name`` to ``value`` for the test session, then restore what was there."""
    old = os.environ.get(name)
    os.environ[name] = value
    yield value
    if old is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = old


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Point LOWBENCH_DATA at a fresh folder so tests never touch the user's cache."""
    yield from _environment_set("LOWBENCH_DATA", str(tmp_path_factory.mktemp("lowbench-cache")))


@pytest.fixture(scope="session", autouse=True)
def _isolated_results_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Point LOWBENCH_RESULTS at a fresh folder so tests never write into the user's store."""
    yield from _environment_set("LOWBENCH_RESULTS",
                                str(tmp_path_factory.mktemp("lowbench-results")))


@pytest.fixture(scope="session", autouse=True)
def _no_progress_lines() -> Iterator[str]:
    """Without a TTY, long commands print progress lines to stderr every few seconds; on a busy
    machine they would land before the one error line that the bad-input tests check. Tests of
    the progress lines set LOWBENCH_PROGRESS_INTERVAL themselves."""
    yield from _environment_set("LOWBENCH_PROGRESS_INTERVAL", "86400")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny inputs: one intra-op thread avoids OpenMP spin contention on a loaded 2-core box
    (a module uses it with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_bayer_dng(tmp_path: Path):
    """Factory: write a real DNG (via lowbench's writer) and return its path."""
    from lowbench.data.dng import write_dng

    def _write(mosaic: np.ndarray, name: str = "t.dng", **kw) -> Path:
        kw.setdefault("xyz_to_camera", np.eye(3).ravel())
        kw.setdefault("as_shot_neutral", (0.5, 1.0, 0.7))
        return write_dng(tmp_path / name, mosaic, **kw)

    return _write
