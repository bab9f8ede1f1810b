"""Model-only latency measurement (pyperf / MLPerf habits) and per-stage end-to-end timing.

``measure_latency`` times each call individually with ``time.perf_counter_ns``: the clock starts
immediately before ``fn()`` and stops immediately after ``sync()`` returns (or after ``fn()`` when
no ``sync`` is given). The reported figure is the median of ``n`` such individually timed calls,
after ``warmup`` untimed calls. Nothing is allocated inside the timed region; between runs the loop
only stores one int into a preallocated list and checks the stopping rule.
"""

from __future__ import annotations

import time
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


def measure_latency(
    fn: Callable[[], object],
    *,
    warmup: int = 3,
    min_runs: int = 10,
    budget_s: float = 2.0,
    max_runs: int = 10000,
    sync: Callable[[], None] | None = None,
) -> dict:
    """Time ``fn`` repeatedly and return latency statistics in milliseconds (ms).

    ``fn`` is called ``warmup`` times untimed (each followed by ``sync()`` if given), then timed
    runs follow until BOTH at least ``min_runs`` runs are done AND the summed timed durations reach
    ``budget_s`` seconds, or ``max_runs`` runs are done, whichever comes first. ``sync`` (e.g.
    ``torch.cuda.synchronize``) is called after ``fn`` inside every timed region, so it is called
    ``warmup + n`` times in total.

    Returns a dict with ``median_ms``, ``p90_ms``, ``p99_ms`` (numpy "linear" percentiles),
    ``mean_ms``, ``std_ms`` (sample standard deviation, ddof=1; 0.0 when n == 1), ``min_ms``,
    ``max_ms`` (all in ms), ``n`` (timed runs), ``warmup`` (untimed runs), ``budget_s`` (seconds)
    and ``clock`` (a text definition of the measured quantity).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if min_runs < 1:
        raise ValueError(f"min_runs must be >= 1, got {min_runs}")
    if max_runs < min_runs:
        raise ValueError(f"max_runs ({max_runs}) must be >= min_runs ({min_runs})")
    if budget_s < 0:
        raise ValueError(f"budget_s must be >= 0 s, got {budget_s}")

    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()

    clock = time.perf_counter_ns
    budget_ns = int(budget_s * 1e9)
    times = [0] * max_runs
    spent = 0
    n = 0
    # Two copies of the loop so the timed region holds no branch on ``sync``.
    if sync is None:
        while n < max_runs:
            t0 = clock()
            fn()
            t1 = clock()
            d = t1 - t0
            times[n] = d
            n += 1
            spent += d
            if n >= min_runs and spent >= budget_ns:
                break
    else:
        while n < max_runs:
            t0 = clock()
            fn()
            sync()
            t1 = clock()
            d = t1 - t0
            times[n] = d
            n += 1
            spent += d
            if n >= min_runs and spent >= budget_ns:
                break

    return {**summarize_ns(times[:n]), "warmup": warmup, "budget_s": budget_s,
            "clock": _clock_description(sync)}


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
