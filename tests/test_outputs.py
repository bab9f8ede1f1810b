"""Outputs the system refuses: a read-only place, a path through a file, disk full.

Every command that writes (`evaluate`, `export`, `site build`, `train`) answers with one line
naming the path and the fix, exit code 2, leaves no temp file and keeps what was there.

How the refusals are made here, also as root (where chmod stops nothing):
- read-only: a folder under ``/sys`` (sysfs refuses new entries, even to root: EPERM, or
  EROFS in containers that mount it read-only); as a normal user a chmod 0555 folder;
- a path through a regular file (ENOTDIR) and an ``--out`` of the wrong kind;
- disk full: ``RLIMIT_FSIZE`` set in the child before ``lowbench.cli.main.main`` runs, so a write
  past the limit fails with EFBIG (``cli.main`` ignores SIGXFSZ, which would kill it).
Output goes to pipes: with the limit set, a child writing to a *file* stderr could not report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lowbench import fsutil
from lowbench.errors import LowbenchError

REPO = Path(__file__).resolve().parents[1]
FAST_EVAL = ["--model", "libraw", "--limit", "1", "--no-memory", "--no-energy",
             "--latency-budget", "0.05", "--latency-min-runs", "2", "--threads", "1"]
TINY_TRAIN = ["--model", "lighter", "--task", "synth-train", "--batch-size", "1", "--patch", "64",
              "--scenes", "2", "--val-scenes", "1", "--threads", "1", "--val-every", "1000",
              "--no-progress", "--steps", "1"]
_RUN = ("import resource, sys\n"
        "limit = int(sys.argv[1])\n"
        "if limit >= 0:\n"
        "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))\n"
        "from lowbench.cli.main import main\n"
        "sys.exit(main(sys.argv[2:]))\n")


def lowbench(*args: str, max_file_bytes: int = -1, timeout: float = 300
             ) -> subprocess.CompletedProcess:
    """Run `lowbench ARGS` in a child, files limited to ``max_file_bytes`` (-1: no limit)."""
    return subprocess.run([sys.executable, "-c", _RUN, str(max_file_bytes), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def assert_refused(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("lowbench: error:"), err
    for needle in needles:
        assert needle in err, err


def no_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".writing", ".building"))
            or ".lowbench-probe." in p.name]


@pytest.fixture(scope="module")
def readonly_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder path no file can be created in (see the module docstring)."""
    if os.geteuid() != 0:
        folder = tmp_path_factory.mktemp("readonly")
        folder.chmod(0o555)
        yield folder / "out"
        folder.chmod(0o755)
        return
    candidate = Path("/sys/lowbench-readonly-test")
    try:
        candidate.mkdir()
    except OSError:
        yield candidate
        return
    candidate.rmdir()
    pytest.skip("/sys accepts new folders here; no read-only place to test with as root")


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file.txt"
    path.write_text("keep me\n")
    return path


# -- the helper itself ------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_and_no_temp_when_refused(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    fsutil.atomic_write_text(target, "old\n")
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))\n"
            "import signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "from lowbench.fsutil import atomic_write_bytes\n"
            "from lowbench.errors import LowbenchError\n"
            "try:\n"
            f"    atomic_write_bytes({str(target)!r}, b'x' * 1000)\n"
            "except LowbenchError as err:\n"
            "    print(err)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert str(target) in proc.stdout and "ulimit -f" in proc.stdout, proc.stdout + proc.stderr
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_atomic_write_through_a_file_names_path_and_fix(a_file: Path) -> None:
    with pytest.raises(LowbenchError, match=r"a-file\.txt/x\.json.*is a file, not a folder"):
        fsutil.atomic_write_bytes(a_file / "x.json", b"{}")
    assert a_file.read_text() == "keep me\n"


# -- evaluate -----------------------------------------------------------------------------------
def test_evaluate_out_readonly_a_file_or_through_a_file(readonly_dir: Path,
                                                        a_file: Path) -> None:
    assert_refused(lowbench("evaluate", *FAST_EVAL, "--out", str(readonly_dir)),
                   str(readonly_dir))
    assert_refused(lowbench("evaluate", *FAST_EVAL, "--out", str(a_file)), str(a_file),
                   "not a folder")
    out = a_file / "results"
    assert_refused(lowbench("evaluate", *FAST_EVAL, "--out", str(out)), str(out),
                   "is a file, not a folder")
    assert a_file.read_text() == "keep me\n"


def test_evaluate_disk_full_keeps_earlier_records(tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = lowbench("evaluate", *FAST_EVAL, "--out", str(out))
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = lowbench("evaluate", *FAST_EVAL, "--out", str(out), max_file_bytes=2000)
    assert_refused(proc, str(out), "File too large", "ulimit -f")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not no_temp_files(tmp_path)


# -- export -------------------------------------------------------------------------------------
def test_export_out_readonly(readonly_dir: Path) -> None:
    assert_refused(lowbench("export", "--model", "lighter", "--out",
                            str(readonly_dir / "m.pt")), str(readonly_dir / "m.pt"))


def test_export_out_a_folder_or_through_a_file(tmp_path: Path, a_file: Path) -> None:
    assert_refused(lowbench("export", "--model", "lighter", "--out", str(tmp_path)),
                   str(tmp_path), "is a folder")
    assert_refused(lowbench("export", "--model", "lighter", "--out", str(a_file / "m.pt")),
                   str(a_file / "m.pt"), "is a file, not a folder")
    assert a_file.read_text() == "keep me\n"


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_disk_full_keeps_the_old_file(tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("onnx") if fmt == "onnx" else None
    out = tmp_path / "model.out"
    out.write_bytes(b"previous export")
    proc = lowbench("export", "--model", "lighter", "--format", fmt, "--out", str(out),
                    max_file_bytes=100_000)
    assert_refused(proc, str(out), "File too large")
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.out"]


# -- site build ---------------------------------------------------------------------------------
def test_site_build_out_readonly_or_a_file(readonly_dir: Path, a_file: Path,
                                           tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    assert_refused(lowbench("site", "build", "--results", str(results), "--out",
                            str(readonly_dir)), str(readonly_dir))
    assert_refused(lowbench("site", "build", "--results", str(results), "--out", str(a_file)),
                   str(a_file))
    assert_refused(lowbench("site", "build", "--results", str(results), "--out",
                            str(a_file / "site")), str(a_file))
    assert a_file.read_text() == "keep me\n"


def test_site_build_disk_full_keeps_the_previous_site(tmp_path: Path) -> None:
    site = tmp_path / "site"
    results = tmp_path / "results"
    results.mkdir()
    first = lowbench("site", "build", "--results", str(results), "--out", str(site))
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    proc = lowbench("site", "build", "--results", str(results), "--out", str(site),
                    max_file_bytes=1000)
    assert_refused(proc, str(site), "File too large")
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "site"]


# -- train --------------------------------------------------------------------------------------
def test_train_out_readonly_or_through_a_file(readonly_dir: Path, a_file: Path) -> None:
    out = readonly_dir / "w.safetensors"
    assert_refused(lowbench("train", *TINY_TRAIN, "--out", str(out)), str(out))
    assert_refused(lowbench("train", *TINY_TRAIN, "--out", str(a_file / "w.safetensors")),
                   str(a_file / "w.safetensors"), "is a file, not a folder")
    assert a_file.read_text() == "keep me\n"


def test_train_disk_full_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    from lowbench.pairs import load_truth
    from lowbench.tasks import get_task

    for pair in get_task("synth-train").pairs(None, limit=6):  # the 2 scenes of TINY_TRAIN:
        load_truth(pair)  # their DNGs and cached truths are written before the limit applies
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"previous checkpoint")
    proc = lowbench("train", *TINY_TRAIN, "--out", str(out), max_file_bytes=100_000)
    assert_refused_last_line(proc, str(out), "File too large")
    assert out.read_bytes() == b"previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def assert_refused_last_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Like :func:`assert_refused` for a command that prints progress before failing."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lowbench: error:"), proc.stderr
    for needle in needles:
        assert needle in last, last


# -- PNGs: written whole or not at all ---------------------------------------------------------
def test_site_and_gallery_pngs_go_through_the_atomic_helper(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Gallery copies and Pareto charts are written by fsutil.atomic_write_bytes; an
    interrupted write (the process killed before the rename) leaves neither a PNG nor a temp
    file behind."""
    import numpy as np

    from lowbench.harness import gallery as harness_gallery
    from lowbench.results.table import load_table
    from lowbench.site import charts, gallery
    from lowbench.site.model import group_tables, latest

    written: list[Path] = []

    def spy(path: str | os.PathLike[str], data: bytes) -> Path:
        written.append(Path(path))
        return fsutil.atomic_write_bytes(path, data)

    monkeypatch.setattr(gallery, "atomic_write_bytes", spy)
    monkeypatch.setattr(charts, "atomic_write_bytes", spy)
    rows = load_table([REPO / "results"]).rows
    item = next(g for r in rows if r["source"] == "evaluate" for g in r["gallery"])
    site = tmp_path / "site"
    store = gallery.ImageStore(site)
    rel = store.add(str(REPO / "results"), item["output"])
    assert rel is not None and written == [site / rel]
    assert (site / rel).read_bytes() == (REPO / "results" / item["output"]).read_bytes()
    lt = latest(group_tables(rows)[0])
    assert charts.pareto_figure(lt.rows, site / "charts" / "p.png", "t")
    assert written[-1] == site / "charts" / "p.png"
    assert (site / "charts" / "p.png").read_bytes().startswith(gallery.PNG_SIGNATURE)

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # stands for the end of a process killed before the rename

    monkeypatch.setattr(os, "replace", killed)
    other = next(g["truth"] for r in rows if r["source"] == "evaluate" for g in r["gallery"]
                 if g["truth"] != item["output"])
    with pytest.raises(KeyboardInterrupt):
        gallery.ImageStore(site).add(str(REPO / "results"), other)
    with pytest.raises(KeyboardInterrupt):
        harness_gallery.store_png(tmp_path / "results" / "gallery", np.zeros((8, 8, 3), np.float32))
    assert sorted(p.name for p in (site / "img").iterdir()) == [Path(rel).name]
    assert not list((tmp_path / "results" / "gallery").iterdir())
    assert not no_temp_files(tmp_path)


def test_data_generate_out_a_file_readonly_or_disk_full(tmp_path: Path, a_file: Path,
                                                        readonly_dir: Path) -> None:
    assert_refused(lowbench("data", "generate", "synth", "--out", str(a_file)), str(a_file))
    assert_refused(lowbench("data", "generate", "synth", "--out", str(readonly_dir)),
                   str(readonly_dir))
    out = tmp_path / "gen"
    proc = lowbench("data", "generate", "synth", "--out", str(out), max_file_bytes=100_000)
    assert_refused_last_line(proc, str(out), "File too large")
    assert a_file.read_text() == "keep me\n"
    assert not no_temp_files(out) and not list(out.rglob("*.dng"))
