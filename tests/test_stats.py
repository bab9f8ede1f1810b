"""The statistics of issue 20 against independent references: order-statistic intervals by brute
force over binomial sums and by simulated coverage on a skewed distribution, the cluster
bootstrap by exact enumeration, the rank tests by hand-counted statistics, and the latency loop's
stopping rule on real timed calls."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from lowbench.measure.latency import measure_latency
from lowbench.stats import (
    cluster_bootstrap_ci,
    mann_whitney,
    min_samples_for_quantile_ci,
    paired_signed_rank,
    quantile_ci,
    quantile_ci_ranks,
)


def _coverage(n: int, q: float, lo: int, hi: int) -> float:
    """P(x_(lo) <= xi_q < x_(hi)) = P(lo <= B <= hi - 1), B ~ Binomial(n, q), by math.comb."""
    return sum(math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(lo, hi))


@pytest.mark.parametrize(("n", "q"), [(10, 0.5), (64, 0.5), (64, 0.9), (200, 0.9), (36, 0.9)])
def test_quantile_ranks_are_the_tightest_symmetric_pair_with_coverage(n: int, q: float) -> None:
    lo, hi = quantile_ci_ranks(n, q)
    assert _coverage(n, q, lo, hi) >= 0.95
    # each bound is the tightest one with at most 2.5% outside it
    tail_lo = sum(math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(0, lo))
    tail_hi = sum(math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(hi, n + 1))
    assert tail_lo <= 0.025 and tail_hi <= 0.025
    assert tail_lo + math.comb(n, lo) * q ** lo * (1 - q) ** (n - lo) > 0.025
    assert tail_hi + math.comb(n, hi - 1) * q ** (hi - 1) * (1 - q) ** (n - hi + 1) > 0.025


def test_minimum_samples_for_a_p90_interval() -> None:
    # 0.9^35 = 0.0250 > 0.025 >= 0.9^36: the p90's upper bound needs a 36th sample
    assert min_samples_for_quantile_ci(0.9) == 36
    assert min_samples_for_quantile_ci(0.5) == 6
    assert quantile_ci(np.arange(35.0), 0.9) is None
    assert quantile_ci(np.arange(36.0), 0.9) is not None


def test_quantile_interval_covers_on_a_skewed_distribution() -> None:
    """Simulated coverage on exponential samples (median ln 2, p90 ln 10): at least 95%, and
    not trivially wide (at most 99%)."""
    rng = np.random.default_rng(7)
    for q, truth in ((0.5, math.log(2)), (0.9, math.log(10))):
        hits = 0
        trials = 2000
        for _ in range(trials):
            lo, hi = quantile_ci(rng.exponential(size=64), q)
            hits += lo <= truth <= hi
        assert 0.945 <= hits / trials <= 0.99, (q, hits / trials)


def test_cluster_bootstrap_matches_exact_enumeration() -> None:
    """Four scenes of different sizes: the 4^4 equally likely resamples enumerated exactly give
    the interval the 2000-resample bootstrap estimates."""
    values = [20.0, 21.0, 22.0, 25.0, 25.5, 30.0, 23.0, 24.0]
    scenes = ["a", "a", "a", "b", "b", "c", "d", "d"]
    groups = {"a": [20.0, 21.0, 22.0], "b": [25.0, 25.5], "c": [30.0], "d": [23.0, 24.0]}
    means = []
    for draw in itertools.product("abcd", repeat=4):
        pooled = [v for s in draw for v in groups[s]]
        means.append(sum(pooled) / len(pooled))
    lo, hi = cluster_bootstrap_ci(values, scenes)
    # quantiles of the exact (discrete) resampling distribution: 256 atoms of 1/256 each
    exact_lo, exact_hi = np.quantile(means, [0.025, 0.975])
    assert lo == pytest.approx(exact_lo, abs=0.35)
    assert hi == pytest.approx(exact_hi, abs=0.35)
    # a scene's pairs move together, so the interval is wider than one over independent pairs
    naive = cluster_bootstrap_ci(values, list(range(len(values))))
    assert (hi - lo) > (naive[1] - naive[0])
    assert cluster_bootstrap_ci([1.0, 2.0], ["s", "s"]) is None


def test_rank_tests_against_hand_counts() -> None:
    before = [1.0, 2.0, 3.0, 4.0]
    after = [2.5, 5.0, 6.0, 7.0]
    # U of `before` = pairs (b, a) with b > a, ties 1/2: only (3, 2.5) and (4, 2.5) -> 2
    res = mann_whitney(before, after)
    assert res.statistic == pytest.approx(2.0)
    # exact two-sided p: P(U <= 2) over C(8, 4) = 70 equally likely rank splits, doubled
    dist = [sum(x > y for x in c for y in set(range(8)) - set(c))
            for c in itertools.combinations(range(8), 4)]
    assert res.p_value == pytest.approx(2 * sum(u <= 2 for u in dist) / 70)
    same = paired_signed_rank([30.0, 31.0, 32.0], [30.0, 31.0, 32.0])
    assert same.p_value == 1.0
    shifted = paired_signed_rank(list(range(20)), [x - 0.1 for x in range(20)])
    assert shifted.p_value < 1e-4  # every pair worse: not chance
    assert mann_whitney([1.0], [2.0, 3.0]).p_value is None


def test_latency_loop_stops_when_the_median_is_pinned_down() -> None:
    """A steady call converges after >= 64 runs; a call alternating 1 ms / 3 ms never pins its
    median down and runs to the time cap; every sample is recorded."""
    steady = measure_latency(lambda: time.sleep(0.001), warmup=1, budget_s=5.0,
                             target_rel=0.05)
    assert steady["stop"]["reason"] == "converged"
    assert 64 <= steady["n"] == len(steady["samples_ms"])
    lo, hi = steady["ci"]["median_ms"]
    assert lo <= steady["median_ms"] <= hi and (hi - lo) / 2 <= 0.05 * steady["median_ms"]
    assert steady["ci"]["p90_ms"] is not None
    flip = iter(itertools.cycle([0.001, 0.003]))
    erratic = measure_latency(lambda: time.sleep(next(flip)), warmup=0, budget_s=0.4,
                              target_rel=0.01)
    assert erratic["stop"]["reason"] == "budget"
    assert erratic["stop"]["median_half_width_rel"] > 0.01
    fixed = measure_latency(lambda: None, warmup=0, budget_s=0.0, min_runs=5, target_rel=None)
    assert fixed["n"] == 5 and fixed["stop"]["reason"] == "budget"
    assert fixed["ci"]["p90_ms"] is None and "needs >= 36" in fixed["ci"]["reasons"]["p90_ms"]
