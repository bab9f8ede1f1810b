"""lowbench: reproducible benchmarks for efficient low-light RAW enhancement on edge devices.

The public Python API (defined in :mod:`lowbench.api`, documented in docs/api.md)::

    import lowbench
    record = lowbench.evaluate(model="light", quant="static", limit=3)
    record["quality"]["psnr_db"], record["latency"]["median_ms"]

The names are loaded on first use (PEP 562), so ``import lowbench`` imports neither torch
nor numpy; the command line parses its arguments before anything heavy is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "evaluate", "get_task", "list_tasks", "load_results"]

#: The public names loaded on first use, each defined in lowbench.api.
_API = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ loads them
    from lowbench.api import build_model, evaluate, get_task, list_tasks, load_results


def __getattr__(name: str) -> Any:
    if name in _API:
        from lowbench import api

        value = getattr(api, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'lowbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
