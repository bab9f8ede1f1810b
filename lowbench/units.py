"""Display units shared by every front door (CLI tables, README tables, the site, export).

A model's size is shown in one unit, MiB (2**20 bytes), with one rounding, 2 decimals, wherever
it appears; records keep exact bytes (``size.size_bytes``).
"""

from __future__ import annotations

BYTES_PER_MIB = 2**20
#: The unit label that goes with :func:`format_mib`.
SIZE_UNIT = "MiB"


def mib(size_bytes: int | float) -> float:
    """``size_bytes`` (bytes) in MiB (2**20 bytes)."""
    return size_bytes / BYTES_PER_MIB


def format_mib(size_bytes: int | float | None, missing: str | None = "n/a") -> str | None:
    """A size in bytes as MiB with 2 decimals, e.g. 31_129_600 -> '29.69'; ``missing`` for
    None."""
    if size_bytes is None:
        return missing
    return f"{mib(size_bytes):.2f}"


__all__ = ["BYTES_PER_MIB", "SIZE_UNIT", "format_mib", "mib"]
