"""Where lowbench keeps things: the data cache (``LOWBENCH_DATA`` overrides), the user's results
store (``LOWBENCH_RESULTS`` overrides), the checkout's published results and package files.

A user's own runs never go into the repository: ``lowbench evaluate`` writes into
:func:`results_store` and ``lowbench site build`` into ``./lowbench-site/`` (untracked). Only
``--publish`` writes the tracked ``results/`` and ``site/`` of a checkout
(:func:`published_results_dir`, :func:`published_site_dir`).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from lowbench.errors import LowbenchError

PACKAGE_DIR = Path(__file__).resolve().parent

#: Default output folder of ``lowbench site build`` (relative to the working directory; the
#: repository's .gitignore lists it).
USER_SITE_DIR = Path("lowbench-site")


def cache_dir() -> Path:
    """The data cache: ``$LOWBENCH_DATA`` if set, else the user cache dir (~/.cache/lowbench)."""
    env = os.environ.get("LOWBENCH_DATA")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("lowbench"))


def results_store() -> Path:
    """The user's results store, where ``lowbench evaluate`` writes records and gallery PNGs by
    default: ``$LOWBENCH_RESULTS`` if set, else ``<user data dir>/results`` (on Linux
    ~/.local/share/lowbench/results). The folder may not exist yet."""
    env = os.environ.get("LOWBENCH_RESULTS")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("lowbench")) / "results"


def checkout_root() -> Path | None:
    """The lowbench repository checkout this package runs from (the package's parent folder when
    it holds ``data_manifest.yaml`` and ``results/``), or None when lowbench is installed
    without a checkout (e.g. from a wheel into site-packages)."""
    root = PACKAGE_DIR.parent
    if (root / "data_manifest.yaml").is_file() and (root / "results").is_dir():
        return root
    return None


def git_checkout_root() -> Path | None:
    """The repository root when lowbench runs from a git checkout (a clone, a worktree, an
    editable install of one), else None (installed from a wheel or sdist)."""
    root = PACKAGE_DIR.parent
    return root if (root / ".git").exists() else None


def _require_checkout(what: str) -> Path:
    root = checkout_root()
    if root is None:
        raise LowbenchError(
            f"--publish writes the tracked {what} of a lowbench checkout, but lowbench runs from "
            f"{PACKAGE_DIR} without one; run it from a git clone of lowbench (pip install -e .) "
            "or leave out --publish")
    return root


def published_results_dir() -> Path:
    """The checkout's tracked ``results/`` (the published records and asv results);
    LowbenchError when lowbench is installed without a checkout."""
    return _require_checkout("results/") / "results"


def published_site_dir() -> Path:
    """The checkout's tracked ``site/`` (the published leaderboard); LowbenchError when lowbench
    is installed without a checkout."""
    return _require_checkout("site/") / "site"


def user_results_folders() -> list[Path]:
    """What ``lowbench site build`` and ``lowbench results table`` read by default: the
    checkout's published ``results/`` (none without a checkout), the user's asv runs
    (``<checkout>/.asv/results``, see asv.conf.json) and :func:`results_store`, each only if it
    exists."""
    root = checkout_root()
    candidates = [] if root is None else [root / "results", root / ".asv" / "results"]
    candidates.append(results_store())
    return [folder for folder in candidates if folder.is_dir()]


def manifest_path() -> Path:
    """The packaged ``data_manifest.yaml`` (the repository's top-level file links to it)."""
    return PACKAGE_DIR / "data_manifest.yaml"
