"""The ablation study: the marginal effect of each trick on each metric, and its interactions.

Tricks: architecture (sid -> light -> lighter, sid -> fire), quantization (fp32 -> fp16,
fp32 -> dynamic (expected to do nothing), fp32 -> static -> qat), fast preprocessing (rows
whose ``preprocess`` column is set, see lowbench.site.model.PREPROCESS_FIELD; "not measured"
otherwise) and, in a table with runs of a deployment runtime, the runtime: for each model and
quant, eager torch -> the best runtime other than eager torch at the same quant, per metric
(what the deployment runtime alone buys; "not measured" for a model and quant no runtime ran).
Architecture, quantization and the interaction grids compare eager torch rows only.
Effects are ratios (after / before) for costs and differences (after - before) for quality
(PSNR in dB, SSIM), whose scales are already relative: ``Column.effect`` of the catalogue, which
also says which metrics take part (``Column.ablation``, their order).

Interaction of architecture m and quantization q, against the sid/fp32 baseline:
``r(m, q) / (r(m, fp32) x r(sid, q))`` for ratios and ``d(m, q) - d(m, fp32) - d(sid, q)`` for
differences: 1 (or 0) means q helps m exactly as much as it helps sid.

Only reference rows take part: the shipped checkpoints on every pair of the task (a run on a user
checkpoint or a ``--limit`` subset measured something else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lowbench.results.columns import column, direction, header, min_change, number, view
from lowbench.site.model import Latest, Variant, variant_of

BASELINE = Variant("sid", "fp32")
ARCH_STEPS = (("sid", "light"), ("light", "lighter"), ("sid", "lighter"), ("sid", "fire"))
QUANT_STEPS = (("fp32", "fp16"), ("fp32", "dynamic"), ("fp32", "static"), ("static", "qat"),
               ("fp32", "qat"))


@dataclass
class Effect:
    """One effect: its value (ratio or difference), display text, CSS class, hover text."""

    value: float | None
    text: str
    cls: str = ""
    title: str = ""


@dataclass
class Trick:
    """One row of the marginal-effects table."""

    group: str
    label: str
    context: str
    effects: list[Effect]
    note: str = ""


@dataclass
class Cell:
    """One cell of an arch x quant grid."""

    value: str
    effect: Effect
    interaction: Effect | None


@dataclass
class Grid:
    """Arch x quant table of one metric."""

    metric: str
    header: str
    models: list[str]
    quants: list[str]
    cells: dict[tuple[str, str], Cell]


@dataclass
class Ablation:
    """The study for one task x machine (latest commit)."""

    latest: Latest
    metrics: tuple[str, ...]
    tricks: list[Trick] = field(default_factory=list)
    grids: list[Grid] = field(default_factory=list)
    preprocess_measured: bool = False
    #: some row at this commit ran on a runtime other than eager torch (the "runtime" tricks)
    runtime_measured: bool = False


def _num(row: dict[str, Any] | None, metric: str) -> float | None:
    if row is None or row.get("status") != "ok":
        return None
    v = row.get(metric)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _is_difference(metric: str) -> bool:
    """Whether the effect on ``metric`` is a difference (else a ratio)."""
    col = column(metric)
    return col is not None and col.effect == "difference"


def _difference_text(value: float, metric: str) -> str:
    """A signed difference in the column's format: '+0.12' (dB), '-0.004' (SSIM)."""
    col = column(metric)
    fmt = col.fmt if col is not None and col.fmt else ".3g"
    return format(value, "+" + fmt)


def effect(before: float | None, after: float | None, metric: str) -> Effect:
    """The effect of going from ``before`` to ``after`` on ``metric``, classed 'better',
    'worse' or 'same' (a change smaller than the metric's minimum effect)."""
    if before is None or after is None:
        return Effect(None, "n/a", "na", "not measured for both variants")
    title = f"{number(before, metric)} -> {number(after, metric)}"
    band = min_change(metric, before)
    sign = 1 if direction(metric) == "higher" else -1
    diff = after - before
    cls = "same" if abs(diff) <= band else ("better" if sign * diff > 0 else "worse")
    if _is_difference(metric):
        return Effect(diff, _difference_text(diff, metric), cls, title)
    if before == 0:
        return Effect(None, "n/a", "na", f"{title} (ratio undefined: before is 0)")
    ratio = after / before
    return Effect(ratio, f"x{ratio:.2f}", cls, title)


def _interaction(cells: dict[Variant, dict[str, Any]], model: str, quant: str,
                 metric: str) -> Effect | None:
    base = _num(cells.get(BASELINE), metric)
    m_fp = _num(cells.get(Variant(model, "fp32")), metric)
    sid_q = _num(cells.get(Variant("sid", quant)), metric)
    both = _num(cells.get(Variant(model, quant)), metric)
    if model == "sid" or quant == "fp32":
        return None
    if None in (base, m_fp, sid_q, both):
        return Effect(None, "n/a", "na", "needs sid/fp32, this model at fp32, sid at this "
                      "quantization and this cell")
    if _is_difference(metric):
        val = (both - base) - (m_fp - base) - (sid_q - base)
        return Effect(val, _difference_text(val, metric), "",
                      "(cell - base) - (model fp32 - base) - (sid quant - base)")
    if 0 in (base, m_fp, sid_q):
        return Effect(None, "n/a", "na", "a zero value: ratio undefined")
    val = (both / base) / ((m_fp / base) * (sid_q / base))
    return Effect(val, f"x{val:.2f}", "", "r(cell) / (r(model fp32) x r(sid quant)), "
                  "r = ratio to sid/fp32")


def build_ablation(latest: Latest, metrics: tuple[str, ...] | None = None) -> Ablation:
    """The ablation tables of one task x machine from its latest-commit rows (``metrics``:
    default the catalogue's ablation view)."""
    if metrics is None:
        metrics = view("ablation")
    ref: dict[Variant, dict[str, Any]] = {}
    pre: dict[Variant, dict[str, Any]] = {}
    runtime: dict[Variant, dict[str, Any]] = {}
    for row in latest.rows:
        v = variant_of(row)
        if not v.is_reference:
            continue
        (pre if v.preprocess else runtime if v.runtime else ref)[v] = row
    out = Ablation(latest, metrics, preprocess_measured=bool(pre),
                   runtime_measured=bool(runtime))

    def trick(group: str, label: str, context: str, a: Variant, b: Variant) -> None:
        ra = ref.get(a) if a in ref else runtime.get(a)
        rb = ref.get(b) if b in ref else pre.get(b)
        if ra is None and rb is None:
            return
        note = ""
        if rb is not None and rb.get("quantized_nothing"):
            note = "quantized nothing: expected to change nothing"
        if ra is None or rb is None:
            missing = a if ra is None else b
            note = f"{missing.label} not measured at this commit"
        out.tricks.append(Trick(group, label, context, [
            effect(_num(ra, m), _num(rb, m), m) for m in metrics], note))

    for m1, m2 in ARCH_STEPS:
        trick("architecture", f"{m1} -> {m2}", "fp32", Variant(m1, "fp32"), Variant(m2, "fp32"))
    for q1, q2 in QUANT_STEPS:
        trick("quantization", f"{q1} -> {q2}", "sid", Variant("sid", q1), Variant("sid", q2))
    for v in sorted(pre, key=Variant.sort_key):
        base = v._replace(preprocess=None)
        if base in ref or base in runtime:
            trick("preprocessing", f"reference -> {v.preprocess}", base.label, base, v)
    if runtime:
        out.tricks.extend(runtime_tricks(ref, runtime, metrics))
    models = sorted({v.model for v in ref}, key=lambda m: Variant(m, "").sort_key())
    quants = sorted({v.quant for v in ref}, key=lambda q: Variant("", q).sort_key())
    for metric in metrics:
        base = _num(ref.get(BASELINE), metric)
        cells = {}
        for model in models:
            for quant in quants:
                row = ref.get(Variant(model, quant))
                val = _num(row, metric)
                if row is None:
                    text = "not run"
                elif val is None:
                    text = row.get("status") if row.get("status") != "ok" else "n/a"
                else:
                    text = number(val, metric)
                cells[(model, quant)] = Cell(text, effect(base, val, metric),
                                             _interaction(ref, model, quant, metric))
        out.grids.append(Grid(metric, header(metric), models, quants, cells))
    return out


def _best(rows: list[dict[str, Any]], metric: str) -> tuple[float, dict[str, Any]] | None:
    """The best value of ``metric`` among ``rows`` (in its direction; a tie: the first row)
    and its row; None when no row has one."""
    sign = 1 if direction(metric) == "higher" else -1
    best: tuple[float, dict[str, Any]] | None = None
    for row in rows:
        v = _num(row, metric)
        if v is not None and (best is None or sign * v > sign * best[0]):
            best = (v, row)
    return best


def runtime_tricks(eager: dict[Variant, dict[str, Any]], runtime: dict[Variant, dict[str, Any]],
                   metrics: tuple[str, ...]) -> list[Trick]:
    """The "runtime" tricks: for each model and quant (eager torch ``eager`` or another runtime
    ``runtime`` rows, reference variants), eager torch -> the best row of another runtime at
    the same model and quant, per metric (hover: which runtime and the two values). A model and
    quant that no runtime other than eager torch ran is "not measured"."""
    pairs = sorted({(v.model, v.quant) for v in (*eager, *runtime)},
                   key=lambda mq: Variant(*mq).sort_key())
    out = []
    for model, quant in pairs:
        base = eager.get(Variant(model, quant))
        others = sorted((v for v in runtime if (v.model, v.quant) == (model, quant)),
                        key=Variant.sort_key)
        context = f"{model} / {quant}"
        if not others:
            out.append(Trick("runtime", "torch -> other runtime", context, [
                Effect(None, "n/a", "na", "not measured") for _ in metrics],
                f"not measured: no runtime other than eager torch ran {context} at this "
                "commit"))
            continue
        names = [v.runtime_name for v in others]
        label = "torch -> " + (names[0] if len(names) == 1 else f"best of {', '.join(names)}")
        effects = []
        for m in metrics:
            best = _best([runtime[v] for v in others], m)
            before = _num(base, m)
            e = effect(before, None if best is None else best[0], m)
            if best is not None and before is not None:
                e.title = f"{best[1].get('runtime')}: {e.title}"
            effects.append(e)
        note = "" if base is not None else f"{context} (eager torch) not measured at this commit"
        out.append(Trick("runtime", label, context, effects, note))
    return out
