"""Model-only latency measurement (pyperf / MLPerf habits) and per-stage end-to-end timing.

``measure_latency`` times each call individually with ``time.perf_counter_ns``: the clock starts
immediately before ``fn()`` and stops immediately after ``sync()`` returns (or after ``fn()`` when
no ``sync`` is given). The reported figure is the median of ``n`` such individually timed calls,
after ``warmup`` untimed calls. Nothing is allocated inside the timed region; between runs the loop
only stores one int into a preallocated list and checks the stopping rule: it stops early once
the median's distribution-free 95% interval is narrow enough (after >= 64 runs, MLPerf's floor
for a p90), else at the time budget (the cap). Every sample is kept, so two runs can be compared
with a rank test (:mod:`lowbench.results.compare`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

_NS_PER_MS = 1_000_000.0


def _clock_description(sync: Callable[[], None] | None) -> str:
    """Precise definition of the measured quantity, stored next to the numbers."""
    stop = "stops after sync() returns" if sync is not None else "stops after fn() returns"
    return (
        f"perf_counter_ns; clock starts before the call and {stop}; "
        "median of n individually timed calls"
    )


#: Default cap on the summed timed durations of one latency measurement (s): --latency-budget.
DEFAULT_BUDGET_S = 10.0
#: Default floor of timed runs (--latency-min-runs): the loop never stops before it.
DEFAULT_MIN_RUNS = 10
#: Timed runs before the loop may stop on a narrow interval: MLPerf's early-stopping rule needs
#: at least 64 samples for a p90 (mlcommons/inference#1629); a distribution-free 95% interval of
#: the p90 exists from 36.
CONVERGE_MIN_RUNS = 64
#: Default target: stop once the median's 95% interval is within +/- this fraction of it.
DEFAULT_TARGET_REL = 0.01
#: Decimals (of a ms) kept of each sample in a record: 0.1 us.
SAMPLE_DECIMALS = 4


def measure_latency(
    fn: Callable[[], object],
    *,
    warmup: int = 3,
    min_runs: int = DEFAULT_MIN_RUNS,
    budget_s: float = DEFAULT_BUDGET_S,
    max_runs: int = 10000,
    sync: Callable[[], None] | None = None,
    target_rel: float | None = DEFAULT_TARGET_REL,
    converge_min_runs: int = CONVERGE_MIN_RUNS,
) -> dict:
    """Time ``fn`` repeatedly and return latency statistics in milliseconds (ms), their 95%
    confidence intervals, every sample and why the loop stopped.

    ``fn`` is called ``warmup`` times untimed (each followed by ``sync()`` if given), then timed
    runs follow until the first of (checked after each run, outside the timed region):

    - ``max_runs`` runs are done (``stop.reason`` "max_runs");
    - at least ``converge_min_runs`` (and ``min_runs``) runs are done and the median's
      distribution-free 95% interval is within +/- ``target_rel`` of the median ("converged";
      ``target_rel=None`` never converges: a fixed budget);
    - at least ``min_runs`` runs are done and the summed timed durations reach ``budget_s``
      seconds, the cap ("budget").

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called after ``fn`` inside every timed region.

    Returns :func:`summarize_ns`'s statistics (ms) plus ``ci`` (:func:`latency_ci`), ``stop``
    (reason, target, runs, timed s), ``samples_ms`` (every timed run in order, ms, rounded to
    0.1 us), ``warmup`` (untimed runs), ``budget_s`` (s) and ``clock`` (the measured quantity).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if min_runs < 1:
        raise ValueError(f"min_runs must be >= 1, got {min_runs}")
    if max_runs < min_runs:
        raise ValueError(f"max_runs ({max_runs}) must be >= min_runs ({min_runs})")
    if budget_s < 0:
        raise ValueError(f"budget_s must be >= 0 s, got {budget_s}")
    if target_rel is not None and not target_rel > 0:
        raise ValueError(f"target_rel must be > 0 (a fraction of the median), got {target_rel}")

    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()

    clock = time.perf_counter_ns
    budget_ns = int(budget_s * 1e9)
    times = [0] * max_runs
    spent = 0
    n = 0
    reason = "max_runs"
    converge_from = max(converge_min_runs, min_runs) if target_rel is not None else max_runs + 1
    next_check = converge_from
    # the branch on ``sync`` sits outside the timed region (before t0)
    while n < max_runs:
        if sync is None:
            t0 = clock()
            fn()
            t1 = clock()
        else:
            t0 = clock()
            fn()
            sync()
            t1 = clock()
        d = t1 - t0
        times[n] = d
        n += 1
        spent += d
        if n >= next_check:
            # an interval check sorts the samples: about every 1/16 of n more runs
            next_check = next_check_at(n)
            if _converged(times[:n], target_rel):
                reason = "converged"
                break
        if n >= min_runs and spent >= budget_ns:
            reason = "budget"
            break

    return latency_result(
        times[:n], warmup=warmup, budget_s=budget_s, clock=_clock_description(sync),
        stop={"reason": reason, "target_rel": target_rel,
              "converge_min_runs": converge_min_runs if target_rel is not None else None,
              "min_runs": min_runs, "max_runs": max_runs, "timed_s": spent / 1e9})


#: How :func:`measure_latency` stops, stored with every record's ``latency.stop``.
STOP_RULE = ("the first of: max_runs runs; >= converge_min_runs runs and the median's 95% "
             "interval within +/- target_rel; >= min_runs runs and budget_s s of timed runs")


def check_schedule(converge_from: int, max_runs: int) -> list[int]:
    """The run counts at which :func:`measure_latency` checks the median's interval: from
    ``converge_from``, then about every 1/16 more runs, up to ``max_runs`` (a device runner
    gets the interval's ranks at exactly these counts, precomputed)."""
    out, n = [], converge_from
    while n <= max_runs:
        out.append(n)
        n = next_check_at(n)
    return out


def next_check_at(n: int) -> int:
    """The run count of the interval check after one at ``n`` runs: about 1/16 more runs
    (a check sorts the samples, so it is not done after every run)."""
    return n + max(1, n // 16)


def latency_result(samples_ns: list[int], *, warmup: int, budget_s: float | None,
                   stop: dict, clock: str) -> dict:
    """The record's ``latency`` section from every timed call (ns) of one measurement:
    :func:`summarize_ns`'s statistics (ms), ``ci`` (:func:`latency_ci`), ``stop`` (``stop``
    plus the median's relative half-width reached and :data:`STOP_RULE`), ``samples_ms``
    (rounded to 0.1 us), ``warmup``, ``budget_s`` (s) and ``clock``. The one builder of the
    section: :func:`measure_latency` here, a device bundle's samples on the host."""
    stats = summarize_ns(samples_ns)
    ci = latency_ci([t / _NS_PER_MS for t in samples_ns])
    return {**stats, "ci": ci, "warmup": warmup, "budget_s": budget_s,
            "stop": {"rule": STOP_RULE, **stop,
                     "median_half_width_rel": ci.get("median_half_width_rel")},
            "samples_ms": [round(t / _NS_PER_MS, SAMPLE_DECIMALS) for t in samples_ns],
            "clock": clock}


def measure_interleaved(fns: dict[str, Callable[[], object]], *, runs: int,
                        warmup: int = 1) -> dict[str, dict]:
    """Time several callables call by call in turn (a, b, c, a, b, c, ...): ``runs`` timed calls
    each after ``warmup`` untimed rounds, so the i-th sample of every callable was taken within
    a few calls of the others' and a machine's slow drift (another tenant, a frequency change)
    touches all alike; the way to compare two variants on a noisy machine.

    Returns name -> :func:`summarize_ns`'s statistics (ms) plus ``ci`` and ``samples_ms``, as
    :func:`measure_latency` (``stop.reason`` is "fixed": ``runs`` calls), and ``interleaved``
    (the session's id, this callable's position in each round): two runs of one session are
    compared pair by pair (:mod:`lowbench.results.compare`)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    items = list(fns.items())
    for _ in range(warmup):
        for _name, fn in items:
            fn()
    clock = time.perf_counter_ns
    times: dict[str, list[int]] = {name: [0] * runs for name in fns}
    for i in range(runs):
        for name, fn in items:
            t0 = clock()
            fn()
            times[name][i] = clock() - t0
    session = uuid.uuid4().hex[:12]
    out = {}
    for position, (name, samples) in enumerate(times.items()):
        out[name] = latency_result(
            samples, warmup=warmup, budget_s=None, clock=_clock_description(None),
            stop={"reason": "fixed", "runs": runs,
                  "rule": f"{runs} calls, interleaved with {len(fns) - 1} other callables"})
        out[name]["interleaved"] = {"session": session, "position": position,
                                    "callables": len(fns)}
    return out


def _converged(samples_ns: list[int], target_rel: float | None) -> bool:
    """Whether the median's 95% interval of ``samples_ns`` is within +/- ``target_rel``."""
    if target_rel is None:
        return False
    from lowbench.stats import quantile_ci, relative_half_width  # scipy: only when measuring

    x = np.asarray(samples_ns, dtype=np.float64)
    ci = quantile_ci(x, 0.5)
    half = relative_half_width(ci, float(np.median(x)))
    return half is not None and half <= target_rel


def latency_ci(samples_ms: list[float] | np.ndarray) -> dict:
    """95% distribution-free intervals (ms) of the median and p90 of ``samples_ms``:
    ``median_ms`` and ``p90_ms`` as [lo, hi] (None, with ``reasons``, when there are too few
    samples), ``median_half_width_rel`` (a fraction of the median), ``confidence`` and
    ``method``."""
    from lowbench.stats import (
        CONFIDENCE,
        QUANTILE_CI_METHOD,
        min_samples_for_quantile_ci,
        quantile_ci,
        relative_half_width,
    )

    x = np.asarray(samples_ms, dtype=np.float64)
    out: dict = {"confidence": CONFIDENCE, "method": QUANTILE_CI_METHOD}
    reasons = {}
    for name, q in (("median_ms", 0.5), ("p90_ms", 0.9)):
        ci = quantile_ci(x, q) if x.size else None
        out[name] = None if ci is None else [ci[0], ci[1]]
        if ci is None:
            reasons[name] = (f"{x.size} samples: a {CONFIDENCE:.0%} interval of this quantile "
                             f"needs >= {min_samples_for_quantile_ci(q)}")
    out["median_half_width_rel"] = (
        relative_half_width(tuple(out["median_ms"]), float(np.median(x)))
        if out["median_ms"] is not None else None)
    if reasons:
        out["reasons"] = reasons
    return out


def summarize_ns(samples_ns: list[int]) -> dict:
    """Summarise durations given in nanoseconds as statistics in milliseconds (ms).

    Returns ``median_ms``, ``p90_ms``, ``p99_ms`` (numpy "linear" percentiles), ``mean_ms``,
    ``std_ms`` (ddof=1; 0.0 for a single sample), ``min_ms``, ``max_ms`` and ``n``.
    """
    if len(samples_ns) == 0:
        raise ValueError("no samples to summarise")
    ms = np.asarray(samples_ns, dtype=np.float64) / _NS_PER_MS
    p50, p90, p99 = np.percentile(ms, [50.0, 90.0, 99.0], method="linear")
    return {
        "median_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "n": int(ms.size),
    }


class StageTimer:
    """Accumulate wall time per named stage (e.g. decode, pack, forward, postprocess).

    Use ``with timer.stage("forward"): ...`` once per image per stage; ``summary()`` reports the
    mean time per stage in ms and their sum (the mean end-to-end time per image in ms when every
    stage runs once per image). A stage whose body raises is not recorded. ``sync`` (e.g.
    ``torch.cuda.synchronize``) is called at the end of every stage, inside the timed region.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync
        self._total_ns: dict[str, int] = {}
        self._count: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block (perf_counter_ns, in ns internally) and add it to ``name``."""
        t0 = time.perf_counter_ns()
        yield
        if self._sync is not None:
            self._sync()
        d = time.perf_counter_ns() - t0
        self._total_ns[name] = self._total_ns.get(name, 0) + d
        self._count[name] = self._count.get(name, 0) + 1

    def elapsed_ms(self) -> float:
        """The summed time of every stage so far (ms): the difference of two readings is the
        end-to-end time of what ran between them."""
        return sum(self._total_ns.values()) / _NS_PER_MS

    def reset(self) -> None:
        """Forget all recorded stage times."""
        self._total_ns.clear()
        self._count.clear()

    def summary(self) -> dict:
        """Mean time per stage in ms, in first-use order, plus counts and the total in ms.

        Returns ``{"stages_ms": {name: mean ms}, "counts": {name: calls}, "total_ms": float}``
        where ``total_ms`` is the sum of the per-stage means (ms).
        """
        stages = {k: v / self._count[k] / _NS_PER_MS for k, v in self._total_ns.items()}
        return {
            "stages_ms": stages,
            "counts": dict(self._count),
            "total_ms": float(sum(stages.values())),
        }


def set_threads(n: int | None) -> int:
    """Apply ``torch.set_num_threads(n)`` (None leaves it unchanged); return the thread count.

    The returned value is ``torch.get_num_threads()`` after the change (a count, no unit).
    """
    import torch

    if n is not None:
        if n < 1:
            raise ValueError(f"thread count must be >= 1, got {n}")
        torch.set_num_threads(int(n))
    return int(torch.get_num_threads())
