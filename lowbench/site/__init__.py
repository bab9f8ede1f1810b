"""The static HTML leaderboard: ``lowbench site build`` (see :func:`build_site`).

Pages (all static, relative links, no network): the leaderboard (latest commit per task x
machine, sortable, Pareto marks), Pareto charts, history with regression flags, the ablation
study, the gallery, one page per variant and per machine, and CSV/JSON downloads. The same
results always give byte-identical output.

Modules: ``model`` (variants, ordering, latest commit, formatting), ``pareto``, ``history``
(noise bands, regressions), ``svg`` (hand-made sparklines), ``ablation``, ``charts``
(matplotlib), ``gallery``, ``downloads``, ``pages`` (template data, page writer) and ``build``
(orchestration, staging folder, worker processes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["build_site"]


def build_site(results_folders: Iterable[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """See :func:`lowbench.site.build.build_site` (imported lazily: matplotlib is heavy)."""
    from lowbench.site.build import build_site as _build

    return _build(results_folders, out_dir)
