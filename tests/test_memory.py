"""Tests for lowbench.measure.memory (each test starts a fresh worker process)."""

from __future__ import annotations

import os
import sys

import pytest

from lowbench.measure.memory import run_in_worker

ALLOC = "lowbench.measure.memory:_selftest_allocate"
LINUX = os.path.exists("/proc/self/status")


def test_peak_rss_grows_with_allocation() -> None:
    small = run_in_worker(ALLOC, {"mib": 10})
    big = run_in_worker(ALLOC, {"mib": 200})
    assert small["result"] == {"mib": 10, "checksum": 10 * 256}
    assert big["result"]["mib"] == 200
    assert big["peak_rss_mib"] - small["peak_rss_mib"] >= 150
    assert small["peak_rss_mib"] > 0


@pytest.mark.skipif(not LINUX, reason="needs /proc")
def test_swap_figures_are_numbers_on_linux() -> None:
    res = run_in_worker(ALLOC, {"mib": 20, "hold_s": 0.1}, sample_interval_s=0.01)
    for key in ("swap_peak_mib", "system_swap_peak_mib", "system_swap_baseline_mib",
                "swap_total_mib"):
        assert isinstance(res[key], float), key
        assert res[key] >= 0, key
    assert res["system_swap_peak_mib"] >= res["system_swap_baseline_mib"]
    assert res["samples"] >= 1
    assert "VmHWM" in res["peak_rss_source"]
    if res["swap_total_mib"] == 0:
        assert res["swap_peak_mib"] == 0.0


def test_cuda_is_none_with_reason_without_torch() -> None:
    res = run_in_worker(ALLOC, {"mib": 1})
    assert res["cuda_peak_allocated_mib"] is None
    assert "torch" in res["reasons"]["cuda_peak_allocated_mib"]
    # every None figure has a reason
    for key, value in res.items():
        if value is None:
            assert key in res["reasons"]


def test_worker_is_clean() -> None:
    res = run_in_worker("lowbench.measure.memory:_selftest_loaded_modules", {})
    assert res["result"]["heavy"] == []
    assert res["result"]["pid"] != os.getpid()
    assert res["result"]["executable"] == sys.executable


def test_failing_target_raises_with_child_message() -> None:
    with pytest.raises(RuntimeError, match="ValueError: kaboom-4711"):
        run_in_worker("lowbench.measure.memory:_selftest_fail", {"message": "kaboom-4711"})


def test_missing_target_raises() -> None:
    with pytest.raises(RuntimeError, match="ModuleNotFoundError"):
        run_in_worker("lowbench_no_such_module:fn", {})
    with pytest.raises(ValueError):
        run_in_worker("no_colon", {})


def test_timeout_raises() -> None:
    with pytest.raises(RuntimeError, match="timed out"):
        run_in_worker(ALLOC, {"mib": 1, "hold_s": 30}, timeout_s=1.0)

