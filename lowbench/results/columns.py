"""THE metric catalogue: one :class:`Column` per metric, and everything that reads metrics reads
it (rows from records, asv ingestion, `lowbench results table`, the site's leaderboard, history,
Pareto marks, ablation, charts and downloads).

A column's name carries its unit (``latency_median_ms``); its entry says how it is shown (header,
unit, divisor, format), which direction is better, the smallest change a comparison reports
(minimum effect) and which raw values it tests, where an evaluate record holds it, which asv
benchmark it is ingested from, and on which views it appears. Adding a metric is one entry in
:data:`COLUMNS` (see docs/results.md, "Adding a column").

Every reader looks the catalogue up when it runs (:func:`column`, :func:`metric_names`,
:func:`view`), never at import, so a test can append an entry with ``monkeypatch``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from lowbench.units import BYTES_PER_MIB, SIZE_UNIT

Direction = Literal["higher", "lower"]
#: Minimum effect (fraction of the previous value, and absolute floor in the column's unit) of a
#: column that names none.
DEFAULT_MIN_EFFECT = (0.05, 0.0)
#: What a comparison of two runs tests a column's raw values with: ``latency`` (every timed run:
#: Mann-Whitney U) or ``per_pair`` (the value of each pair, ``quality.per_pair[].<name>``:
#: Wilcoxon signed-rank on the pairs both runs scored); None: one value per run (the minimum
#: effect alone decides).
Samples = Literal["latency", "per_pair"]


@dataclass(frozen=True)
class Column:
    """One metric column of a result row.

    Views: ``leaderboard`` and ``ablation`` are positions (None: not shown there); ``history``
    (a sparkline on the history overview) and ``recent`` (the recent-runs table of a variant
    page) follow the catalogue's order; ``results_table`` is the column's name in
    `lowbench results table` (None: not shown there).
    """

    #: row key, with its unit: ``latency_median_ms``
    name: str
    #: header without unit: ``Latency median``
    header: str
    #: unit shown after the header ('' for none): ``ms``
    unit: str
    #: which value is better; None for a column with no better side
    direction: Direction | None
    #: where an evaluate record holds the value (section, field); None: only asv measures it,
    #: and it is not one of a row's metrics (:func:`metric_names`)
    record: tuple[str, ...] | None = None
    #: shown value = value / divisor (e.g. bytes -> MiB)
    divisor: float = 1.0
    #: format of the shown value (``.2f``); None: by magnitude (see :func:`number`)
    fmt: str | None = None
    #: the smallest change a comparison reports (:mod:`lowbench.results.compare`): (fraction
    #: of the previous value, absolute floor in this unit); (0, 0): exact, any change counts
    min_effect: tuple[float, float] = DEFAULT_MIN_EFFECT
    #: the raw values a comparison tests (:data:`Samples`); None: one value per run
    samples: Samples | None = None
    #: the machine's state moves this metric for every variant alike (a slower VM, a hotter
    #: board): a comparison across many variants measures each net of their common shift
    session_shift: bool = False
    #: where a record holds the value's 95% interval ([lo, hi], this unit); None: no interval
    ci: tuple[str, ...] | None = None
    #: the quantile of the timed runs this column is (0.5: the median); a comparison needs
    #: enough samples in both runs for its interval to exist (36 for a p90, 368 for a p99)
    quantile: float | None = None
    #: precision at which Pareto marks compare values (None: exact)
    resolution: float | None = None
    #: a count (exact; asv's float is rounded to an int)
    integer: bool = False
    #: asv benchmark (``Class.method``) the value is ingested from, and the factor from asv's
    #: unit (s, bytes) to this column's
    asv: str | None = None
    asv_factor: float = 1.0
    #: how the ablation states an effect: a ratio (after / before) or a difference
    effect: Literal["ratio", "difference"] = "ratio"
    leaderboard: int | None = None
    ablation: int | None = None
    history: bool = False
    recent: bool = False
    results_table: str | None = None
    #: a column that records from before it lack (their section is missing): a row read from
    #: such a record holds None with no reason, and every view lists the column only where some
    #: row holds a value (:func:`shown`), so older tables read exactly as before
    optional: bool = False

    @property
    def heading(self) -> str:
        """Header with its unit, e.g. 'Latency median (ms)'."""
        return f"{self.header} ({self.unit})" if self.unit else self.header

    def show(self, value: float) -> str:
        """A finite number as shown in this column's unit (divisor, then format)."""
        value = value / self.divisor
        return format(value, self.fmt) if self.fmt else by_magnitude(value)


#: The catalogue, in display order (variant pages, downloads, history checks).
COLUMNS: tuple[Column, ...] = (
    Column("psnr_db", "PSNR", "dB", "higher", ("quality", "psnr_db"), fmt=".2f",
           min_effect=(0.0, 0.05), samples="per_pair", ci=("quality", "ci", "psnr_db"),
           resolution=0.01, asv="Measures.track_psnr",
           effect="difference", leaderboard=100, ablation=70, history=True, recent=True,
           results_table="psnr_db"),
    Column("ssim", "SSIM", "", "higher", ("quality", "ssim"), fmt=".3f", min_effect=(0.0, 0.002),
           samples="per_pair", ci=("quality", "ci", "ssim"),
           resolution=0.0001, asv="Measures.track_ssim", effect="difference", leaderboard=110,
           ablation=80, history=True, recent=True, results_table="ssim"),
    Column("latency_median_ms", "Latency median", "ms", "lower", record=("latency", "median_ms"),
           min_effect=(0.05, 0.0), samples="latency", session_shift=True, quantile=0.5,
           ci=("latency", "ci", "median_ms"), asv="Speed.time_forward", asv_factor=1e3,
           leaderboard=40, ablation=10, history=True, recent=True,
           results_table="latency_median_ms"),
    Column("latency_p90_ms", "Latency p90", "ms", "lower", record=("latency", "p90_ms"),
           min_effect=(0.10, 0.0), samples="latency", session_shift=True, quantile=0.9,
           ci=("latency", "ci", "p90_ms"), leaderboard=50, history=True),
    Column("latency_p99_ms", "Latency p99", "ms", "lower", record=("latency", "p99_ms"),
           min_effect=(0.20, 0.0), samples="latency", session_shift=True, quantile=0.99),
    Column("end_to_end_ms", "End-to-end", "ms", "lower", record=("end_to_end", "total_ms"),
           min_effect=(0.05, 0.0), samples="per_pair", session_shift=True,
           asv="Speed.time_end_to_end",
           asv_factor=1e3, leaderboard=60, ablation=20, history=True, recent=True,
           results_table="end_to_end_ms"),
    # one value per fresh worker process, whose VmHWM moves by up to 10.6% between runs of
    # unchanged code in the published history: a smaller change is not reported
    Column("peak_rss_mib", "Peak RSS", "MiB", "lower", record=("memory", "peak_rss_mib"),
           min_effect=(0.12, 16.0), asv="Measures.track_peak_rss_mib", leaderboard=70, ablation=30,
           history=True, recent=True, results_table="peak_rss_mib"),
    Column("swap_peak_mib", "Peak swap", "MiB", "lower", record=("memory", "swap_peak_mib"),
           min_effect=(0.10, 16.0), asv="Measures.track_swap_peak_mib", leaderboard=80,
           ablation=40, history=True, results_table="swap_peak_mib"),
    Column("energy_per_inference_net_mj", "Energy/image net", "mJ", "lower",
           record=("energy", "energy_per_inference_net_mj"), min_effect=(0.05, 0.0),
           session_shift=True,
           asv="Energy.track_energy_mj", leaderboard=90, ablation=50, history=True,
           recent=True, results_table="energy_per_inference_net_mj"),
    Column("energy_per_inference_gross_mj", "Energy/image gross", "mJ", "lower",
           record=("energy", "energy_per_inference_gross_mj"), min_effect=(0.05, 0.0),
           session_shift=True),
    Column("params", "Params", "M", "lower", record=("size", "params"), divisor=1e6,
           min_effect=(0.0, 0.0), integer=True, asv="Measures.track_params", leaderboard=10),
    Column("macs", "MACs", "G", "lower", record=("size", "macs"), divisor=1e9,
           min_effect=(0.0, 0.0), integer=True, leaderboard=20),
    Column("size_bytes", "Size", SIZE_UNIT, "lower", record=("size", "size_bytes"),
           divisor=float(BYTES_PER_MIB), fmt=".2f", min_effect=(0.0, 0.0), integer=True,
           asv="Measures.track_size_bytes", leaderboard=30, ablation=60, history=True,
           results_table="size_mib"),
    # asv's own peak memory (max RSS) of its forward benchmark: rows read from asv only
    Column("asv_peakmem_mib", "Peak memory (asv)", "MiB", "lower",
           asv="Speed.peakmem_forward", asv_factor=1 / BYTES_PER_MIB),
    # a deployment runtime's export/compile/quantize time, once per build, never inside latency
    # (issue 18; null for eager torch): on the variant pages, downloads and `results table`, not
    # on the leaderboard (a one-off cost, not per image) nor in the ablation (eager has none)
    Column("build_s", "Build", "s", "lower", record=("variant", "runtime", "build_s"),
           min_effect=(0.5, 1.0), results_table="build_s", optional=True),
    # gCO2e of 1,000 images at the grid intensity given to `lowbench evaluate` (issue 20):
    # energy x intensity, so only where both are known; the row keeps the intensity and its
    # source (grid_intensity_g_per_kwh, grid_source), which the site names beside the figures
    Column("gco2e_per_1k_net", "CO2e/1k images net", "g", "lower",
           record=("carbon", "gco2e_per_1k_net"), min_effect=(0.05, 0.0), session_shift=True,
           leaderboard=92, recent=True, results_table="gco2e_per_1k_net", optional=True),
    Column("gco2e_per_1k_gross", "CO2e/1k images gross", "g", "lower",
           record=("carbon", "gco2e_per_1k_gross"), min_effect=(0.05, 0.0), session_shift=True,
           leaderboard=94, results_table="gco2e_per_1k_gross", optional=True),
)

#: ``psnr_<ratio>_db``: the PSNR of one exposure ratio of the task (quality.per_ratio).
PER_RATIO = re.compile(r"psnr_(?P<label>.+)_db")

_index: tuple[tuple[Column, ...], dict[str, Column], tuple[Column, ...]] = ((), {}, ())


def _current() -> tuple[tuple[Column, ...], dict[str, Column], tuple[Column, ...]]:
    """(catalogue, name -> column, metric columns), rebuilt when :data:`COLUMNS` changes."""
    global _index
    if _index[0] is not COLUMNS:
        _index = (COLUMNS, {c.name: c for c in COLUMNS},
                  tuple(c for c in COLUMNS if c.record is not None))
    return _index


def by_name() -> dict[str, Column]:
    """name -> Column of the catalogue as it is now."""
    return _current()[1]


def metric_columns() -> tuple[Column, ...]:
    """The metric columns of every row (the entries with a record field), in display order."""
    return _current()[2]


def per_ratio_column(label: str) -> Column:
    """The column of the PSNR at one exposure ratio (``label``, e.g. 'x100'): PSNR's entry,
    read from ``quality.per_ratio.<label>.psnr_db`` and shown on no view of its own."""
    return replace(by_name()["psnr_db"], name=f"psnr_{label}_db", header=f"PSNR {label}",
                   record=("quality", "per_ratio", label, "psnr_db"), asv=None,
                   leaderboard=None, ablation=None, history=False, recent=False,
                   results_table=None)


def column(name: str | None) -> Column | None:
    """The catalogue entry of ``name`` (a per-ratio PSNR too); None for a non-metric."""
    if name is None:
        return None
    col = by_name().get(name)
    if col is None and (m := PER_RATIO.fullmatch(name)):
        col = per_ratio_column(m["label"])
    return col


def metric_names() -> tuple[str, ...]:
    """The names of :func:`metric_columns`, in display order."""
    return tuple(c.name for c in metric_columns())


def view(name: Literal["leaderboard", "ablation", "history", "recent"]) -> tuple[str, ...]:
    """The columns of one view, in its order: by position for the leaderboard and the ablation,
    in catalogue order for the history overview and the recent-runs table."""
    if name in ("leaderboard", "ablation"):
        placed = [c for c in COLUMNS if getattr(c, name) is not None]
        return tuple(c.name for c in sorted(placed, key=lambda c: getattr(c, name)))
    return tuple(c.name for c in COLUMNS if getattr(c, name))


def shown(names: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """``names`` (metric columns, in their order) less the optional columns
    (``Column.optional``) that no row of ``rows`` holds a value of."""
    names = tuple(names)
    optional = {n for n in names if (c := column(n)) is not None and c.optional}
    if not optional:
        return names
    held = set()
    for row in rows:
        held.update(n for n in optional - held if row.get(n) is not None)
        if held == optional:
            break
    return tuple(n for n in names if n not in optional or n in held)


def results_table_columns() -> tuple[tuple[str, Column], ...]:
    """(name shown, column) of `lowbench results table`'s metric columns, in catalogue order."""
    return tuple((c.results_table, c) for c in COLUMNS if c.results_table)


def asv_benchmarks() -> dict[str, Column]:
    """asv benchmark (``Class.method``) -> the column it is ingested into."""
    return {c.asv: c for c in COLUMNS if c.asv}


def direction(metric: str) -> Direction | None:
    """'higher' or 'lower' is better, for a metric column (None for non-metrics)."""
    col = column(metric)
    return None if col is None else col.direction


class _Directions(Mapping[str, Direction | None]):
    """metric -> its direction, for every metric of a row, read live from the catalogue."""

    def __getitem__(self, metric: str) -> Direction | None:
        if metric not in metric_names():
            raise KeyError(metric)
        return direction(metric)

    def __iter__(self) -> Iterator[str]:
        return iter(metric_names())

    def __len__(self) -> int:
        return len(metric_names())


#: Metric name -> "higher" or "lower" (which direction is better), a live view of the catalogue.
DIRECTIONS: Mapping[str, Direction | None] = _Directions()


def min_effect(metric: str) -> tuple[float, float]:
    """The smallest change of ``metric`` a comparison reports: (fraction of the previous value,
    absolute floor in its unit)."""
    col = column(metric)
    return DEFAULT_MIN_EFFECT if col is None else col.min_effect


def min_change(metric: str, before: float) -> float:
    """The smallest change (the metric's unit) from ``before`` that a comparison reports:
    max(fraction x |before|, floor); 0 for an exact metric (any change counts)."""
    rel, floor = min_effect(metric)
    return max(rel * abs(before), floor)


def header(metric: str) -> str:
    """Column header with its unit, e.g. 'Latency median (ms)' (the name for a non-metric)."""
    col = column(metric)
    return metric if col is None else col.heading


def by_magnitude(value: float) -> str:
    """A number with precision by magnitude: '1,234', '123.4', '12.34', '0.123'."""
    mag = abs(value)
    if mag == 0:
        return "0"
    if mag >= 1000:
        return f"{value:,.0f}"
    if mag >= 100:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def number(value: float | None, metric: str | None = None) -> str:
    """A value for display in the unit of its column header; '' for None, ``str()`` of
    anything that is not a finite number."""
    if value is None:
        return ""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return str(value)
    col = column(metric)
    return by_magnitude(value) if col is None else col.show(value)
