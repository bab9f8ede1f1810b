"""Did a metric change between two runs? The one decision `lowbench results compare`, the history
page and the A/A tests share (issue 20).

A change is reported only when it is both **real** and **large enough**:

- *real*: a two-sided rank test on the runs' raw values rejects "no change" at :data:`ALPHA`:
  Mann-Whitney U on the timed runs of the latency loop (Wilcoxon signed-rank on the log
  ratios of paired calls when the two runs were interleaved call by call in one session),
  Wilcoxon's signed-rank test on the per-pair values (PSNR, SSIM, end-to-end time) of the
  pairs both runs scored. A timing metric (one the machine's state moves) whose runs kept no
  raw values (records from before issue 20, asv rows) is ``n/a`` (untested), never flagged on
  its summary alone; quality without per-pair values (a deterministic score of the same pairs)
  and a metric with one value per run (peak RSS, energy, size) are judged on the minimum
  effect alone, and the verdict says so;
- *large enough*: the change is at least the metric's minimum effect (the catalogue's
  ``Column.min_effect``: a fraction of the previous value and an absolute floor); an exact
  metric (size, parameters, MACs) changes at any difference.

Direction comes from the catalogue: a worse value is a regression, a better one an improvement.

**Session shift.** Between two sessions a shared VM or a warmer board moves every variant's
timing together. Across a set of variants measured at both commits (:func:`compare_many`), the
common shift of a ``Column.session_shift`` metric is the median over the variants of
log(after / before); each variant is judged net of it (its samples rescaled by the shift
before the rank test), and the shift itself is reported as one verdict of its own, never
hidden: a harness change that slows every variant shows there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lowbench.results.columns import Column, column, metric_names, min_change
from lowbench.stats import (
    TestResult,
    mann_whitney,
    min_samples_for_quantile_ci,
    paired_signed_rank,
    quantile_ci,
)

#: Significance level of the rank tests (two-sided).
ALPHA = 0.01
#: Fewest variants measured at both commits for a common session shift to be estimated.
SHIFT_MIN_VARIANTS = 3
#: A machine's own noise floor for a timing metric: this many robust standard deviations
#: (1.4826 x MAD) of the net log ratios of consecutive runs in its history, from at least
#: NOISE_MIN_STEPS of them; it raises the catalogue's minimum effect where the machine is noisier.
NOISE_SIGMAS = 3.0
NOISE_MIN_STEPS = 8

Kind = Literal["regression", "improvement", "same", "n/a", "shift"]


class Movement:
    """``before`` -> ``after`` of one metric (numbers in its unit; anything else, e.g. a status,
    has no delta): what a verdict and a history change share."""

    before: Any
    after: Any

    @property
    def delta(self) -> float | None:
        """after - before (the metric's unit); None unless both are numbers."""
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   for v in (self.before, self.after)):
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        """(after - before) / |before| (None when before is 0 or not a number)."""
        d = self.delta
        return None if d is None or not self.before else d / abs(self.before)


@dataclass(frozen=True)
class Verdict(Movement):
    """One metric of one variant, ``before`` -> ``after`` (the metric's unit)."""

    metric: str
    before: float | None
    after: float | None
    #: regression / improvement (real and large enough), same, n/a (a value is missing), shift
    #: (the common session shift of many variants, :func:`compare_many`)
    kind: Kind
    #: the smallest change reported here (the metric's unit)
    threshold: float | None = None
    #: the rank test, when the runs kept raw values
    test: TestResult | None = None
    #: the common session shift removed before judging (a factor, 1.0: none)
    shift: float = 1.0
    #: why the verdict is what it is, in words
    reason: str = ""

    @property
    def bad(self) -> bool:
        """A regression."""
        return self.kind == "regression"

    @property
    def flagged(self) -> bool:
        """A regression or an improvement."""
        return self.kind in ("regression", "improvement")


def _value(row: Mapping[str, Any], metric: str) -> float | None:
    v = row.get(metric)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def latency_samples(row: Mapping[str, Any]) -> np.ndarray | None:
    """The row's timed runs (ms), or None when its record kept none."""
    s = row.get("latency_samples_ms")
    return np.asarray(s, dtype=np.float64) if s else None


def pair_values(row: Mapping[str, Any], metric: str) -> dict[str, float]:
    """pair -> ``metric`` (psnr_db, ssim) of every pair the row scored."""
    out = {}
    for p in row.get("per_pair") or ():
        v = p.get(metric)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[str(p["pair"])] = float(v)
    return out


def _same_session(before: Mapping[str, Any], after: Mapping[str, Any], n_a: int,
                  n_b: int) -> bool:
    """Whether two rows' timed runs were interleaved call by call in one session
    (:func:`lowbench.measure.latency.measure_interleaved`), so they pair up one to one."""
    sa, sb = before.get("latency_interleaved"), after.get("latency_interleaved")
    return (isinstance(sa, Mapping) and isinstance(sb, Mapping) and n_a == n_b
            and sa.get("session") is not None and sa.get("session") == sb.get("session"))


def _rank_test(col: Column, before: Mapping[str, Any], after: Mapping[str, Any],
               shift: float) -> tuple[TestResult | None, str, str | None]:
    """The rank test of ``col`` on the raw values of two rows (the after-run's latency samples
    divided by ``shift``), or None; the basis in words; and, for a quantile of the timed runs
    whose two 95% intervals overlap, why that quantile did not really move (a rank test speaks
    of the whole distributions, the intervals of the quantile compared), else None."""
    if col.samples == "latency":
        a, b = latency_samples(before), latency_samples(after)
        if a is None or b is None:
            return None, "no timed samples in " + ("either run" if a is None and b is None
                                                   else "the before run" if a is None
                                                   else "the after run"), None
        need = min_samples_for_quantile_ci(col.quantile) if col.quantile else 2
        if min(a.size, b.size) < need:
            return (TestResult("Mann-Whitney U", None, None,
                               f"{a.size} vs {b.size} timed runs: comparing a "
                               f"p{col.quantile * 100:g} needs >= {need} in each (enough for "
                               "its 95% interval to exist)"),
                    f"{a.size} vs {b.size} timed runs", None)
        if _same_session(before, after, a.size, b.size):
            # interleaved call by call: the i-th calls of the two runs saw the same machine
            test = paired_signed_rank(np.log(a), np.log(b / shift))
            return test, f"{a.size} interleaved pairs of timed runs", None
        test = mann_whitney(a, b / shift)
        basis = f"{a.size} vs {b.size} timed runs"
        if col.quantile:
            ia, ib = quantile_ci(a, col.quantile), quantile_ci(b / shift, col.quantile)
            if ia is not None and ib is not None and ia[0] <= ib[1] and ib[0] <= ia[1]:
                return test, basis, (f"the runs' 95% intervals of the p{col.quantile * 100:g} "
                                     f"overlap ([{ia[0]:.4g}, {ia[1]:.4g}] vs [{ib[0]:.4g}, "
                                     f"{ib[1]:.4g}] ms)")
        return test, basis, None
    if col.samples == "per_pair":
        a, b = pair_values(before, col.name), pair_values(after, col.name)
        common = sorted(a.keys() & b.keys())
        if not common:
            return None, "no per-pair values both runs share", None
        return (paired_signed_rank([a[k] for k in common], [b[k] / shift for k in common]),
                f"{len(common)} pairs both runs scored", None)
    return None, "one value per run", None


def compare_metric(metric: str, before: Mapping[str, Any], after: Mapping[str, Any], *,
                   shift: float = 1.0, floor: float | None = None,
                   alpha: float = ALPHA) -> Verdict:
    """The verdict of ``metric`` from row ``before`` to row ``after`` (rows of
    :func:`lowbench.results.table.row_from_record`), net of a common session ``shift`` (a
    factor on the after-run, applied to ``Column.session_shift`` metrics only); ``floor``: the
    machine's noise floor for it (a fraction, :func:`noise_floors`), which raises the minimum
    effect where it is larger."""
    col = column(metric)
    if col is None:
        raise KeyError(f"{metric!r} is not a metric of the catalogue")
    v0, v1 = _value(before, metric), _value(after, metric)
    if v0 is None or v1 is None:
        missing = "before" if v0 is None else "after"
        why = (before if v0 is None else after).get("reasons", {}).get(metric)
        return Verdict(metric, v0, v1, "n/a",
                       reason=f"no value {missing}" + (f": {why}" if why else ""))
    shift = shift if col.session_shift else 1.0
    net = v1 / shift
    threshold = min_change(metric, v0)
    shift_note = f"; net of a common shift x{shift:.3f}" if shift != 1.0 else ""
    if floor is not None and col.session_shift and floor * abs(v0) > threshold:
        threshold = floor * abs(v0)
        shift_note += f"; this machine's noise floor {floor:.1%} is the minimum effect"
    test, basis, overlap = _rank_test(col, before, after, shift)
    effect = net - v0
    if test is not None and test.p_value is None:
        return Verdict(metric, v0, v1, "n/a", threshold, test, shift,
                       f"{test.test} not computable: {test.reason}")
    if threshold == 0 and effect == 0 or threshold > 0 and abs(effect) < threshold:
        return Verdict(metric, v0, v1, "same", threshold, test, shift,
                       f"change {_fmt_change(effect, v0)} below the minimum effect"
                       f"{shift_note}" if threshold else "unchanged (exact)")
    if test is None and col.samples is not None and col.session_shift:
        return Verdict(metric, v0, v1, "n/a", threshold, None, shift,
                       f"untested: {basis} (records from before issue 20 kept none), and a "
                       f"{_fmt_change(effect, v0)} change without them cannot be told from the "
                       f"runs' noise{shift_note}")
    if test is not None and test.p_value is not None:
        if test.p_value >= alpha:
            return Verdict(metric, v0, v1, "same", threshold, test, shift,
                           f"{test.test} p={test.p_value:.3g} >= {alpha} on {basis}: the "
                           f"{_fmt_change(effect, v0)} change is within the runs' spread"
                           f"{shift_note}")
        if overlap is not None:
            return Verdict(metric, v0, v1, "same", threshold, test, shift,
                           f"{test.test} p={test.p_value:.2g} on {basis}, but {overlap}: the "
                           f"{_fmt_change(effect, v0)} change is within the runs' spread"
                           f"{shift_note}")
        why = f"{test.test} p={test.p_value:.2g} < {alpha} on {basis}"
    else:
        why = f"{basis}: minimum effect only"
    worse = effect > 0 if col.direction == "lower" else effect < 0
    kind: Kind = "regression" if worse else "improvement"
    return Verdict(metric, v0, v1, kind, threshold, test, shift,
                   f"{_fmt_change(effect, v0)} >= minimum effect; {why}{shift_note}")


def _fmt_change(effect: float, before: float) -> str:
    if before:
        return f"{effect / abs(before):+.1%}"
    return f"{effect:+.4g}"


def compare_rows(before: Mapping[str, Any], after: Mapping[str, Any],
                 metrics: Iterable[str] | None = None, *, shifts: Mapping[str, float] | None = None,
                 floors: Mapping[str, float] | None = None,
                 alpha: float = ALPHA) -> list[Verdict]:
    """Verdicts of ``metrics`` (default: every metric of the catalogue) between two rows of one
    variant, net of ``shifts`` (metric -> common factor, :func:`session_shifts`), with the
    machine's noise ``floors`` (metric -> fraction, :func:`noise_floors`)."""
    shifts, floors = shifts or {}, floors or {}
    return [compare_metric(m, before, after, shift=shifts.get(m, 1.0), floor=floors.get(m),
                           alpha=alpha)
            for m in (metric_names() if metrics is None else metrics)]


def session_shifts(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
                   metrics: Iterable[str] | None = None) -> dict[str, float]:
    """metric -> the common factor after / before of ``pairs`` (rows of many variants measured
    at the same two commits): exp(median of log(after / before)), for every
    ``Column.session_shift`` metric that at least :data:`SHIFT_MIN_VARIANTS` pairs hold."""
    out = {}
    for metric in metric_names() if metrics is None else metrics:
        col = column(metric)
        if col is None or not col.session_shift:
            continue
        logs = []
        for b, a in pairs:
            v0, v1 = _value(b, metric), _value(a, metric)
            if v0 and v1 and v0 > 0 and v1 > 0:
                logs.append(math.log(v1 / v0))
        if len(logs) >= SHIFT_MIN_VARIANTS:
            out[metric] = math.exp(float(np.median(logs)))
    return out


def net_steps(steps: Iterable[Mapping[Any, tuple[Mapping[str, Any], Mapping[str, Any]]]],
              metrics: Iterable[str] | None = None) -> dict[str, list[float]]:
    """metric -> log(after / before) net of the step's common shift, of every variant in every
    step (one step: the variants measured at two consecutive commits, as :func:`compare_many`
    takes them), for the ``Column.session_shift`` metrics."""
    metrics = tuple(metric_names() if metrics is None else metrics)
    out: dict[str, list[float]] = {}
    for pairs in steps:
        shifts = session_shifts(list(pairs.values()), metrics)
        for metric in metrics:
            col = column(metric)
            if col is None or not col.session_shift:
                continue
            common = math.log(shifts.get(metric, 1.0))
            for b, a in pairs.values():
                v0, v1 = _value(b, metric), _value(a, metric)
                if v0 and v1 and v0 > 0 and v1 > 0:
                    out.setdefault(metric, []).append(math.log(v1 / v0) - common)
    return out


def noise_floors(log_ratios: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """metric -> the machine's noise floor (a fraction): exp(NOISE_SIGMAS x 1.4826 x MAD) - 1
    of its net log ratios (:func:`net_steps`), for a metric with at least
    :data:`NOISE_MIN_STEPS` of them. The MAD is robust: a few real changes among many unchanged
    steps barely move it."""
    out = {}
    for metric, values in log_ratios.items():
        if len(values) >= NOISE_MIN_STEPS:
            x = np.asarray(values, dtype=np.float64)
            mad = float(np.median(np.abs(x - np.median(x))))
            out[metric] = math.expm1(NOISE_SIGMAS * 1.4826 * mad)
    return out


def shift_verdict(metric: str, factor: float, variants: int) -> Verdict:
    """The common session shift of ``metric`` as a verdict of its own: ``shift`` when it is at
    least the metric's minimum effect (every variant moved together: the machine's state or
    the harness), else ``same``."""
    threshold = min_change(metric, 1.0)
    kind: Kind = "shift" if abs(factor - 1.0) >= threshold and threshold > 0 else "same"
    return Verdict(metric, 1.0, factor, kind, threshold, None, factor,
                   f"median change of {variants} variants x{factor:.3f}: every variant moved "
                   "together (the machine's state or the harness); each variant is judged net "
                   "of it")


def compare_many(pairs: Mapping[Any, tuple[Mapping[str, Any], Mapping[str, Any]]],
                 metrics: Iterable[str] | None = None, *,
                 floors: Mapping[str, float] | None = None, alpha: float = ALPHA
                 ) -> tuple[dict[Any, list[Verdict]], list[Verdict]]:
    """Verdicts of many variants between the same two commits: key -> (before row, after row)
    in, (key -> verdicts, the common session shifts as verdicts) out; ``floors``: the
    machine's noise floors (:func:`noise_floors`)."""
    metrics = tuple(metric_names() if metrics is None else metrics)
    shifts = session_shifts(list(pairs.values()), metrics)
    per = {k: compare_rows(b, a, metrics, shifts=shifts, floors=floors, alpha=alpha)
           for k, (b, a) in pairs.items()}
    common = [shift_verdict(m, f, len(pairs)) for m, f in shifts.items()]
    return per, common


# -- choosing the runs to compare (`lowbench results compare`, the history page) -------------

#: What identifies a variant's run apart from its commit: two runs compared must agree on all.
VARIANT_KEY = ("machine_id", "task", "task_version", "task_digest", "crop", "model", "quant",
               "runtime", "tiling", "memory_limit", "checkpoint", "pairs", "pairs_total")


def preference(row: Mapping[str, Any]) -> tuple:
    """Which of a variant's runs at one commit a comparison uses (larger first): an evaluate
    record (it keeps the raw values the tests need; an asv row keeps none), then the latest by
    commit position, creation time and run id."""
    pos = row.get("commit_position")
    return (row.get("source") == "evaluate", pos is not None, pos or 0,
            str(row.get("created_utc")), str(row.get("run_id")))


def latest_per_variant(rows: Iterable[Mapping[str, Any]]) -> dict[tuple, Mapping[str, Any]]:
    """variant key (:data:`VARIANT_KEY`) -> the preferred run of ``rows`` (:func:`preference`)."""
    out: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        key = tuple(row.get(k) for k in VARIANT_KEY)
        if key not in out or preference(row) > preference(out[key]):
            out[key] = row
    return out


def pair_runs(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
              ) -> dict[tuple, tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """variant key -> (before run, after run) for every variant both sets measured."""
    b, a = latest_per_variant(before), latest_per_variant(after)
    return {k: (b[k], a[k]) for k in sorted(b.keys() & a.keys(), key=str)}


def latency_row(latency: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable part of a row from a record's latency section alone (what
    :func:`lowbench.measure.latency.measure_latency` returns): every catalogue metric read from
    the ``latency`` section, and the samples, as :func:`lowbench.results.table.row_from_record`
    reads them."""
    from lowbench.results.columns import metric_columns

    row: dict[str, Any] = {"latency_samples_ms": latency.get("samples_ms"),
                           "latency_interleaved": latency.get("interleaved"), "reasons": {}}
    for c in metric_columns():
        if c.record is not None and c.record[0] == "latency" and len(c.record) == 2:
            row[c.name] = latency.get(c.record[1])
    return row
