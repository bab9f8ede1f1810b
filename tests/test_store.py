"""A user's runs go to the user results store and ./lowbench-site/, never into the tracked
results/ and site/ (issue 16 §1): real `lowbench` subprocesses in a throwaway git repository
holding this working tree, checked with `git status`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lowbench.results.records import read_record, record_paths

REPO = Path(__file__).resolve().parents[1]
FAST = ["--limit", "1", "--no-memory", "--no-energy", "--latency-budget", "0.1",
        "--latency-min-runs", "2", "--threads", "1"]
GIT = ["git", "-c", "user.name=lowbench-test", "-c", "user.email=test@lowbench.invalid",
       "-c", "commit.gpgsign=false"]


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run([*GIT, "-C", str(repo), *args], capture_output=True, check=True)
    return proc.stdout.decode()


def _clone_working_tree(dest: Path) -> Path:
    """A git repository at ``dest`` holding REPO's working tree as one clean commit: a shared
    clone of HEAD, then every uncommitted change and untracked (not ignored) file of REPO."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    subprocess.run([*GIT, "clone", "--shared", "-q", str(REPO), str(dest)], check=True)
    changed = _git(REPO, "diff", "--name-only", "-z", "HEAD").split("\0")
    changed += _git(REPO, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    for rel in filter(None, changed):
        src, dst = REPO / rel, dest / rel
        if src.is_symlink() or src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.unlink(missing_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
        else:
            dst.unlink(missing_ok=True)
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "--allow-empty", "-m", "working tree under test")
    assert _git(dest, "status", "--porcelain") == ""
    return dest


def lowbench(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m lowbench ARGS`` in ``cwd``, importing lowbench from ``env["PYTHONPATH"]``."""
    return subprocess.run([sys.executable, "-m", "lowbench", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, cwd=cwd, timeout=600)


def _site_run_ids(site: Path) -> set[str]:
    """run_id of every row in a built site's rows.json download."""
    table = json.loads((site / "data" / "rows.json").read_text(encoding="utf-8"))
    column = table["columns"].index("run_id")
    return {row[column] for row in table["rows"] if row[column]}


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's flow as a user runs it in a fresh clone: `lowbench evaluate` (no --out),
    then `lowbench site build` (no arguments); `git status` is taken right after."""
    tmp = tmp_path_factory.mktemp("store")
    clone = _clone_working_tree(tmp / "clone")
    store = tmp / "user-store"
    env = {"PYTHONPATH": str(clone), "LOWBENCH_RESULTS": str(store)}
    evaluate = lowbench(clone, "evaluate", "--model", "lighter", "--quant", "fp32", *FAST,
                        env=env)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    site = lowbench(clone, "site", "build", env=env)
    assert site.returncode == 0, site.stderr[-3000:]
    return {"clone": clone, "store": store, "env": env,
            "status": _git(clone, "status", "--porcelain", "--untracked-files=all")}


def test_evaluate_and_site_build_leave_the_checkout_clean(user_run: dict) -> None:
    assert user_run["status"] == "", user_run["status"]


def test_evaluate_writes_record_and_gallery_into_the_store(user_run: dict) -> None:
    (path,) = record_paths(user_run["store"])
    record = read_record(path)
    assert (record["variant"]["model"], record["variant"]["quant"]) == ("lighter", "fp32")
    assert record["gallery"], "a --limit 1 run still shows its pair in the gallery"
    for item in record["gallery"]:
        for key in ("input", "output", "truth"):
            assert (user_run["store"] / item[key]).is_file(), item[key]


def test_site_build_shows_published_and_user_rows(user_run: dict) -> None:
    clone, store = user_run["clone"], user_run["store"]
    site = clone / "lowbench-site"
    index = (site / "index.html").read_text(encoding="utf-8")
    (user_path,) = record_paths(store)
    user_record = read_record(user_path)
    published = [read_record(p) for p in record_paths(clone / "results")]
    assert published, "the checkout publishes no records"
    ids = _site_run_ids(site)
    assert user_record["run_id"] in ids
    assert {r["run_id"] for r in published} <= ids
    # the leaderboard itself: the user's table at the clone's commit beside published tables
    head = _git(clone, "rev-parse", "HEAD").strip()
    assert user_record["environment"]["commit"]["sha"] == head
    # a --limit 1 run is its own marked row: in this machine's published table where there is
    # one (a partial run never moves a table to its commit), else in a table of its own
    assert "1/21 pairs" in index
    assert any(r["environment"]["commit"]["sha"][:10] in index for r in published)
    # the tracked site/ was not rebuilt from the user's runs
    assert user_record["run_id"] not in _site_run_ids(clone / "site")


@pytest.fixture(scope="module")
def publish_run(user_run: dict) -> dict:
    """After the user's run: `evaluate --publish` and `site build --publish` in the clone."""
    clone, env = user_run["clone"], user_run["env"]
    before = {p.name for p in record_paths(clone / "results")}
    evaluate = lowbench(clone, "evaluate", "--model", "lighter", "--quant", "fp32", "--publish",
                        *FAST, env=env)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    site = lowbench(clone, "site", "build", "--publish", env=env)
    assert site.returncode == 0, site.stderr[-3000:]
    new = [p for p in record_paths(clone / "results") if p.name not in before]
    return {"new": new, "status": _git(clone, "status", "--porcelain", "--untracked-files=all")}


def test_publish_writes_the_tracked_results_and_site_only(user_run: dict,
                                                          publish_run: dict) -> None:
    (new,) = publish_run["new"]
    changed = [line[3:] for line in publish_run["status"].splitlines()]
    assert f"results/{new.name}" in changed
    assert any(p.startswith("site/") for p in changed), "site/ was not rebuilt"
    assert all(p.startswith(("results/", "site/")) for p in changed), changed
    assert len(record_paths(user_run["store"])) == 1, "--publish wrote into the user store"


def test_published_site_never_holds_the_users_runs(user_run: dict, publish_run: dict) -> None:
    ids = _site_run_ids(user_run["clone"] / "site")
    (new,) = publish_run["new"]
    assert read_record(new)["run_id"] in ids
    (user_path,) = record_paths(user_run["store"])
    assert read_record(user_path)["run_id"] not in ids


def test_results_table_reads_published_and_user_rows(user_run: dict) -> None:
    proc = lowbench(user_run["clone"], "results", "table", "--json", env=user_run["env"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    ids = {row["run_id"] for row in json.loads(proc.stdout)}
    (user_path,) = record_paths(user_run["store"])
    assert read_record(user_path)["run_id"] in ids
    assert len(ids) > 1


# -- without a checkout -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lowbench package alone (as pip installs it, without the repository around it)."""
    site_packages = tmp_path_factory.mktemp("site-packages")
    shutil.copytree(REPO / "lowbench", site_packages / "lowbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors", "*.dng"))
    return site_packages


@pytest.mark.parametrize("args", [
    ["evaluate", "--model", "libraw", "--publish"],
    ["site", "build", "--publish"],
])
def test_publish_without_a_checkout_is_one_line(installed_copy: Path, tmp_path: Path,
                                                args: list[str]) -> None:
    env = {"PYTHONPATH": str(installed_copy), "LOWBENCH_RESULTS": str(tmp_path / "store")}
    proc = lowbench(tmp_path, *args, env=env)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "--publish" in err and "checkout" in err, err
    assert not list(tmp_path.rglob("*.json")) and not (tmp_path / "site").exists()


def test_site_build_without_checkout_or_store_says_what_to_run(installed_copy: Path,
                                                               tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(installed_copy), "LOWBENCH_RESULTS": str(tmp_path / "none")}
    proc = lowbench(tmp_path, "site", "build", env=env)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert str(tmp_path / "none") in err and "lowbench evaluate" in err, err


def test_publish_and_out_together_are_refused(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(REPO), "LOWBENCH_RESULTS": str(tmp_path / "store")}
    for args in (["evaluate", "--model", "libraw", "--publish", "--out", str(tmp_path / "o")],
                 ["site", "build", "--publish", "--out", str(tmp_path / "o")]):
        proc = lowbench(tmp_path, *args, env=env)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "--publish" in proc.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "store").exists()


# -- where things go ----------------------------------------------------------------------------
def test_results_store_is_the_env_var_else_the_user_data_dir(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs

    from lowbench import paths

    monkeypatch.setenv("LOWBENCH_RESULTS", str(tmp_path / "mine"))
    assert paths.results_store() == tmp_path / "mine"
    monkeypatch.delenv("LOWBENCH_RESULTS")
    assert paths.results_store() == Path(platformdirs.user_data_dir("lowbench")) / "results"
    assert paths.checkout_root() == REPO
    assert paths.published_results_dir() == REPO / "results"


def test_asv_writes_only_ignored_folders() -> None:
    """`asv run` writes results_dir, html_dir and env_dir: none may be tracked in git."""
    from asv.util import load_json

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    conf = load_json(str(REPO / "asv.conf.json"), js_comments=True)
    for key in ("results_dir", "html_dir", "env_dir"):
        probe = f"{conf[key].rstrip('/')}/machine/0123abcd-env.json"
        proc = subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO)
        assert proc.returncode == 0, f"asv.conf.json {key} {conf[key]} is not git-ignored"


def test_user_site_folder_is_ignored() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for probe in ("lowbench-site/index.html", ".lowbench-site.building/index.html"):
        assert subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO).returncode == 0
