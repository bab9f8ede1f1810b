"""Tests for lowbench.measure.latency (no timing assertions: a fake clock gives exact stats)."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from lowbench.measure import latency
from lowbench.measure.latency import StageTimer, measure_latency, set_threads, summarize_ns

MS = 1_000_000  # ns per ms


class FakeClock:
    """A virtual perf_counter_ns that only moves when fn / sync advance it."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(latency.time, "perf_counter_ns", fake)
    return fake


#: Timed durations (ms) in run order: skewed, so that the median (2), mean (12.4), p90 (17.2) and
#: p99 (91.72) all differ and a swap of any two, a warmup run counted, a "lower"/"nearest"
#: percentile or a population standard deviation gives a wrong value. Hand-computed from the
#: sorted samples 1 1 1 1 2 2 3 5 8 100 (numpy "linear" = position (n - 1) q):
#: p50 at 4.5 -> 2 + 0.5 (2 - 2); p90 at 8.1 -> 8 + 0.1 (100 - 8); p99 at 8.91 -> 8 + 0.91 x 92.
SKEWED_MS = [5, 1, 100, 2, 1, 8, 3, 1, 2, 1]
SKEWED_STATS = {"median_ms": 2.0, "mean_ms": 12.4, "p90_ms": 17.2, "p99_ms": 91.72,
                "min_ms": 1.0, "max_ms": 100.0,
                # sum of squared deviations from 12.4 is 8572.4, over n - 1 = 9
                "std_ms": (8572.4 / 9) ** 0.5}


def test_stats_exact_on_known_durations(clock: FakeClock) -> None:
    warmup_ms = [1000, 1000]  # far outside the timed samples: counting one would show
    durations = [t * MS for t in warmup_ms + SKEWED_MS]
    calls = {"fn": 0, "sync": 0}

    def fn() -> None:
        clock.now += durations[calls["fn"]]
        calls["fn"] += 1

    def sync() -> None:
        calls["sync"] += 1

    res = measure_latency(fn, warmup=2, min_runs=10, budget_s=0.0, max_runs=10, sync=sync)
    assert res["n"] == 10
    assert res["warmup"] == 2
    assert calls == {"fn": 12, "sync": 12}  # once per warmup run + once per timed run
    for key, want in SKEWED_STATS.items():
        assert res[key] == pytest.approx(want, rel=1e-12), key
    # the same figures from independent references
    assert res["std_ms"] == pytest.approx(statistics.stdev(SKEWED_MS), rel=1e-12)
    assert res["median_ms"] == pytest.approx(statistics.median(SKEWED_MS), rel=1e-12)
    assert res["mean_ms"] == pytest.approx(statistics.fmean(SKEWED_MS), rel=1e-12)
    assert res["p90_ms"] == pytest.approx(np.percentile(SKEWED_MS, 90, method="linear"))
    assert res["p99_ms"] == pytest.approx(np.percentile(SKEWED_MS, 99, method="linear"))
    assert "sync" in res["clock"] and "perf_counter_ns" in res["clock"]


def test_sync_time_is_inside_timed_region(clock: FakeClock) -> None:
    def fn() -> None:
        clock.now += 2 * MS

    def sync() -> None:
        clock.now += 3 * MS

    res = measure_latency(fn, warmup=0, min_runs=5, budget_s=0.0, sync=sync)
    assert res["n"] == 5
    assert res["median_ms"] == pytest.approx(5.0)
    assert res["std_ms"] == 0.0


def test_stops_after_budget(clock: FakeClock) -> None:
    def fn() -> None:
        clock.now += 10 * MS

    # 10 ms each, budget 0.5 s -> exactly 50 runs (both min_runs and budget satisfied)
    res = measure_latency(fn, warmup=3, min_runs=10, budget_s=0.5)
    assert res["n"] == 50
    assert res["budget_s"] == 0.5
    # min_runs dominates when the budget is small
    res = measure_latency(fn, warmup=0, min_runs=25, budget_s=0.05)
    assert res["n"] == 25
    # max_runs caps a long budget
    res = measure_latency(fn, warmup=0, min_runs=10, budget_s=100.0, max_runs=30)
    assert res["n"] == 30


def test_no_sync_clock_text(clock: FakeClock) -> None:
    def fn() -> None:
        clock.now += MS

    res = measure_latency(fn, warmup=0, min_runs=3, budget_s=0.0)
    assert "after fn() returns" in res["clock"]
    assert res["n"] == 3


def test_real_sleep_ordering() -> None:
    rng = np.random.default_rng(0)
    sleeps = list(rng.uniform(0.0005, 0.002, 200))
    it = iter(sleeps)
    synced = []

    res = measure_latency(lambda: time.sleep(next(it)), warmup=2, min_runs=15, budget_s=0.02,
                          sync=lambda: synced.append(1))
    assert res["n"] >= 15
    assert len(synced) == res["n"] + 2
    assert res["min_ms"] <= res["median_ms"] <= res["p90_ms"] <= res["p99_ms"] <= res["max_ms"]
    assert res["min_ms"] > 0.4  # sleep(>=0.5 ms) cannot take less than ~0.5 ms
    assert set(res) >= {"median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
                        "max_ms", "n", "warmup", "budget_s", "clock"}


@pytest.mark.parametrize(
    "kwargs",
    [{"warmup": -1}, {"min_runs": 0}, {"min_runs": 10, "max_runs": 5}, {"budget_s": -1.0}],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        measure_latency(lambda: None, **kwargs)


def test_summarize_ns() -> None:
    s = summarize_ns([t * MS for t in SKEWED_MS])
    assert {k: s[k] for k in SKEWED_STATS} == pytest.approx(SKEWED_STATS, rel=1e-12)
    assert s["n"] == 10
    # unsorted 1 2 4 10 3 ms: median 3, mean 4, p90 at 3.6 -> 4 + 0.6 x 6, p99 at 3.96;
    # squared deviations from 4: 9 4 0 36 1 -> 50, over n - 1 = 4
    s = summarize_ns([1 * MS, 2 * MS, 4 * MS, 10 * MS, 3 * MS])
    assert s == pytest.approx({"median_ms": 3.0, "mean_ms": 4.0, "p90_ms": 7.6, "p99_ms": 9.76,
                               "std_ms": 12.5 ** 0.5, "min_ms": 1.0, "max_ms": 10.0, "n": 5},
                              rel=1e-12)
    one = summarize_ns([7 * MS])
    assert (one["median_ms"], one["std_ms"], one["n"]) == (7.0, 0.0, 1)
    with pytest.raises(ValueError):
        summarize_ns([])


def test_stage_timer(clock: FakeClock) -> None:
    timer = StageTimer()
    for i in range(4):
        with timer.stage("decode"):
            clock.now += 4 * MS
        with timer.stage("forward"):
            clock.now += (30 if i == 3 else 10) * MS  # mean 15 ms, median 10 ms
    with pytest.raises(RuntimeError), timer.stage("postprocess"):
        raise RuntimeError("boom")
    s = timer.summary()
    assert list(s["stages_ms"]) == ["decode", "forward"]
    assert s["stages_ms"]["decode"] == pytest.approx(4.0)
    assert s["stages_ms"]["forward"] == pytest.approx(15.0)  # the mean, not the median
    assert s["total_ms"] == pytest.approx(19.0)
    assert s["counts"] == {"decode": 4, "forward": 4}
    timer.reset()
    assert timer.summary() == {"stages_ms": {}, "counts": {}, "total_ms": 0.0}


def test_stage_timer_sync(clock: FakeClock) -> None:
    calls = []

    def sync() -> None:
        calls.append(1)
        clock.now += MS

    timer = StageTimer(sync=sync)
    with timer.stage("forward"):
        clock.now += 2 * MS
    assert calls == [1]
    assert timer.summary()["stages_ms"]["forward"] == pytest.approx(3.0)


def test_set_threads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
        assert torch.get_num_threads() == 1
        assert set_threads(None) == 1
        with pytest.raises(ValueError):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
