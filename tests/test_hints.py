"""Error messages give the fix that works for this install: a git checkout or an installed
package, and the extra to install for ONNX."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _verify_copy(tmp_path: Path, git: bool) -> tuple[str, str]:
    """`data verify synth` on a copy of the package (without its checkpoints), in a git
    checkout or not, with one pinned synth file changed: (error line, the file's repo path)."""
    install = tmp_path / ("checkout" if git else "installed")
    shutil.copytree(REPO / "lowbench", install / "lowbench",
                    ignore=shutil.ignore_patterns("checkpoints", "__pycache__"))
    if git:
        subprocess.run(["git", "init", "-q", str(install)], check=True)
    changed = sorted((install / "lowbench" / "data" / "synth_test").rglob("*.dng"))[0]
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF
    changed.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "lowbench", "data", "verify", "synth"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(install)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("lowbench: error:"), err
    return err, changed.relative_to(install).as_posix()


def test_checksum_mismatch_hint_fits_the_install(tmp_path: Path) -> None:
    """In a git checkout the fix is `git checkout -- <path>`; in an installed package, a
    reinstall."""
    err, rel = _verify_copy(tmp_path, git=True)
    assert f"git checkout -- {rel}" in err and "git status" in err, err
    assert "pip install" not in err, err
    err, _rel = _verify_copy(tmp_path, git=False)
    assert "pip install --force-reinstall lowbench" in err and "git" not in err, err


def test_export_onnx_without_onnx_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys\n"
            "sys.modules['onnx'] = None  # as if not installed: `import onnx` raises\n"
            "from lowbench.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "m.onnx"
    proc = subprocess.run([sys.executable, "-c", code, "export", "--model", "lighter",
                           "--format", "onnx", "--out", str(out)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lowbench: error:"), err
    assert "pip install 'lowbench[onnx]'" in err
    assert not out.exists() and not list(tmp_path.iterdir())
