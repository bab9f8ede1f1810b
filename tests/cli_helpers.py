"""Running the real `lowbench` command in a subprocess, and the one-line error contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")


def lowbench(*args: str, env: dict[str, str] | None = None, timeout: float = 600
             ) -> subprocess.CompletedProcess:
    """``python -m lowbench ARGS`` from the repository root, this environment plus ``env``."""
    return subprocess.run([sys.executable, "-m", "lowbench", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          cwd=REPO)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2 and one ``lowbench: error:`` line on stderr (no traceback, no ANSI escapes,
    never a hint to unpickle) containing every needle; returns that line."""
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("lowbench: error:"), err
    assert not ANSI.search(err), err
    assert "weights_only=False" not in err, err
    for needle in needles:
        assert needle in err, err
    return err
