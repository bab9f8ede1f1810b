"""The statistics lowbench reports and decides with (issue 20), on scipy: distribution-free
confidence intervals of quantiles (latency median, p90), cluster-bootstrap intervals of a mean
over pairs (PSNR/SSIM, resampling scenes: the pairs of one scene are not independent), and the
two-sample tests a comparison of two runs uses (Mann-Whitney U on latency samples, Wilcoxon's
signed-rank test on per-pair quality).

Every function is pure (numbers in, numbers out) and seeded where it resamples, so a record is
reproducible from its samples.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

#: Confidence of every interval lowbench stores (two-sided).
CONFIDENCE = 0.95
#: Resamples of the cluster bootstrap, and its seed (fixed: a record's interval is reproducible).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20
QUANTILE_CI_METHOD = ("distribution-free: order statistics whose ranks are binomial(n, q) "
                      "quantiles (coverage >= the confidence for any continuous distribution)")
BOOTSTRAP_METHOD = (f"cluster bootstrap over scenes ({BOOTSTRAP_RESAMPLES} resamples, seed "
                    f"{BOOTSTRAP_SEED}, percentile interval): pairs of one scene are resampled "
                    "together")


def min_samples_for_quantile_ci(q: float, confidence: float = CONFIDENCE) -> int:
    """The fewest samples for which :func:`quantile_ci` of quantile ``q`` exists (a count):
    35 for the p90 at 95%, 6 for the median."""
    alpha = 1.0 - confidence
    n = 1
    while (q ** n > alpha / 2) or ((1 - q) ** n > alpha / 2):
        n += 1
    return n


def quantile_ci_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks (lo, hi) of the order statistics that bound quantile ``q`` of ``n`` samples
    with at least ``confidence`` coverage, or None when ``n`` is too small for both to exist.

    With B ~ Binomial(n, q) the number of samples below the true quantile, P(x_(l) <= xi <
    x_(u)) = P(l <= B <= u - 1); l is the largest rank with P(B <= l - 1) <= alpha/2 and u the
    smallest with P(B <= u - 1) >= 1 - alpha/2."""
    if n < 1:
        return None
    alpha = 1.0 - confidence
    lo = int(sps.binom.ppf(alpha / 2, n, q))
    if sps.binom.cdf(lo, n, q) <= alpha / 2:  # ppf may land one short on a discrete cdf
        lo += 1
    hi = int(sps.binom.ppf(1 - alpha / 2, n, q)) + 1
    if lo < 1 or hi > n:
        return None
    return lo, hi


def quantile_ci(samples: Sequence[float] | np.ndarray, q: float,
                confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Distribution-free ``confidence`` interval (same unit as ``samples``) of quantile ``q``
    (0.5: the median; 0.9: p90), or None when there are too few samples
    (:func:`min_samples_for_quantile_ci`)."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    ranks = quantile_ci_ranks(int(x.size), q, confidence)
    if ranks is None:
        return None
    return float(x[ranks[0] - 1]), float(x[ranks[1] - 1])


def relative_half_width(ci: tuple[float, float] | None, centre: float) -> float | None:
    """Half the width of ``ci`` over ``centre`` (a fraction: 0.01 is +/-1%); None when there is
    no interval or the centre is 0."""
    if ci is None or not centre:
        return None
    return (ci[1] - ci[0]) / 2.0 / abs(centre)


def cluster_bootstrap_ci(values: Sequence[float], clusters: Sequence[Hashable],
                         confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap ``confidence`` interval of the mean of ``values`` (their unit),
    resampling whole clusters (scenes) with replacement; None with fewer than 2 clusters."""
    v = np.asarray(values, dtype=np.float64)
    if v.size != len(clusters):
        raise ValueError(f"{v.size} values but {len(clusters)} cluster labels")
    labels = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
    k = len(labels)
    if k < 2:
        return None
    idx = np.fromiter((labels[c] for c in clusters), dtype=np.intp, count=v.size)
    sums = np.bincount(idx, weights=v, minlength=k)
    counts = np.bincount(idx, minlength=k).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(resamples, k))
    # each resample's mean over the pairs of its drawn scenes (a scene drawn twice counts twice)
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: its name, statistic and two-sided p-value (None: not computable, with
    ``reason``)."""

    test: str
    statistic: float | None
    p_value: float | None
    reason: str | None = None


def mann_whitney(before: Sequence[float], after: Sequence[float]) -> TestResult:
    """Two-sided Mann-Whitney U test of two independent samples (scipy; the asymptotic normal
    approximation with tie correction above 8 samples each, exact below)."""
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return TestResult("Mann-Whitney U", None, None,
                          f"needs >= 2 samples per run, got {a.size} and {b.size}")
    res = sps.mannwhitneyu(a, b, alternative="two-sided")
    return TestResult("Mann-Whitney U", float(res.statistic), float(res.pvalue))


def paired_signed_rank(before: Sequence[float], after: Sequence[float]) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of paired values (same pairs in the same order);
    p = 1 when every difference is 0 (nothing changed)."""
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    if a.size != b.size:
        raise ValueError(f"paired test of {a.size} and {b.size} values")
    d = b - a
    if not np.any(d):
        return TestResult("Wilcoxon signed-rank", 0.0, 1.0)
    if a.size < 2:
        return TestResult("Wilcoxon signed-rank", None, None, f"needs >= 2 pairs, got {a.size}")
    res = sps.wilcoxon(d, zero_method="zsplit", alternative="two-sided")
    p = float(res.pvalue)
    return TestResult("Wilcoxon signed-rank", float(res.statistic), p if math.isfinite(p) else None)
