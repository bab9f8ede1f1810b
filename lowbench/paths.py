"""Where lowbench keeps things: the data cache (``LOWBENCH_DATA`` overrides) and package files."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The data cache: ``$LOWBENCH_DATA`` if set, else the user cache dir (~/.cache/lowbench)."""
    env = os.environ.get("LOWBENCH_DATA")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("lowbench"))


def manifest_path() -> Path:
    """The packaged ``data_manifest.yaml`` (the repository's top-level file links to it)."""
    return PACKAGE_DIR / "data_manifest.yaml"
