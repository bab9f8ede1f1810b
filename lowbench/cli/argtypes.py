"""argparse value types for numeric options: checked while parsing, before torch is imported,
so a bad value answers at once with one line naming the option's value and the allowed range."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: steps, pairs, threads, batch size)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (e.g. a learning rate)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (e.g. seconds)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= {low}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return value


def memory_size(text: str) -> int:
    """Bytes of a size such as ``2GiB`` or ``512MiB`` (at least 1 MiB; see
    :func:`lowbench.measure.memory_limit.parse_size`)."""
    from lowbench.errors import LowbenchError
    from lowbench.measure.memory_limit import parse_size

    try:
        return parse_size(text)
    except LowbenchError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_grid_arguments(p: argparse.ArgumentParser) -> None:
    """``--grid-intensity`` and ``--grid-region``: the grid's carbon intensity, for the CO2
    figures (read by :func:`grid_from_args`)."""
    p.add_argument("--grid-intensity", default=None, metavar="G",
                   help="carbon intensity of the grid, gCO2e per kWh (e.g. 56 France, 369 "
                        "USA): the record gets gCO2e figures (default: none, with the reason)")
    p.add_argument("--grid-region", default=None, metavar="ISO3",
                   help="the grid's country, ISO-3166 alpha-3 (FRA, USA, ...): its intensity "
                        "from codecarbon's bundled data, offline (pip install "
                        "'lowbench[carbon]')")


def grid_from_args(args: argparse.Namespace):  # -> GridIntensity | None
    """The intensity of ``--grid-intensity``/``--grid-region`` (None: neither given), checked
    before torch is imported: LowbenchError naming a bad value and the fix."""
    from lowbench.energy.carbon import grid_intensity

    return grid_intensity(args.grid_intensity, args.grid_region)
