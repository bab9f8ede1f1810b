"""What the repository publishes: shipped checkpoints beat the LibRaw baseline, and site/ is
exactly the build of results/."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from lowbench.checkpoint import shipped_checkpoint_path
from lowbench.harness import EvalConfig, Session

REPO = Path(__file__).resolve().parents[1]
#: issue "Model zoo": every shipped model beats LibRaw by at least this on synth (dB)
MARGIN_DB = 3.0


@pytest.fixture(scope="module")
def libraw_psnr() -> float:
    return Session(EvalConfig(model="libraw")).run_quality()["quality"]["psnr_db"]


@pytest.mark.parametrize("model", ["sid", "light", "lighter", "fire"])
def test_shipped_checkpoint_beats_libraw(model: str, libraw_psnr: float) -> None:
    shipped_checkpoint_path(model)  # a clear error if the package ships none
    q = Session(EvalConfig(model=model)).run_quality()["quality"]
    assert q["psnr_db"] >= libraw_psnr + MARGIN_DB, (model, q["psnr_db"], libraw_psnr)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_site_is_the_build_of_results(tmp_path: Path) -> None:
    from lowbench.site.build import build_site

    # the committed results only: `lowbench evaluate` writes new records into results/ too
    listed = subprocess.run(["git", "ls-files", "-z", "results"], cwd=REPO, capture_output=True)
    tracked = [f for f in listed.stdout.decode().split("\0") if f]
    if listed.returncode != 0 or not tracked:
        pytest.skip("no committed results/ in this checkout")
    for rel in tracked:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, tmp_path / rel)
    out = tmp_path / "site"
    build_site([tmp_path / "results"], out)
    published = REPO / "site"
    assert _tree(out) == _tree(published), "site/ is stale: run `lowbench site build`"
    mismatch = filecmp.cmpfiles(out, published, _tree(out), shallow=False)[1]
    assert not mismatch, f"site/ differs from a rebuild of results/: {mismatch[:5]}"
