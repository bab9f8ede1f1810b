"""Vote files (issue 22): the site's Judge manifest, `lowbench votes import` (real CLI) keeping
only votes on exactly the pictures of a build, and the human score of the kept votes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, lowbench
from site_fixtures import write_store

from lowbench.judge.score import human_scores
from lowbench.judge.votes import load_votes
from lowbench.site.build import build_site

PAIRS = ("90001_00_0.1s", "90002_00_0.04s")
VARIANTS = (("sid", "fp32"), ("light", "static"), ("lighter", "fp32"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("judge")
    write_store(tmp / "results", n_commits=1, n_machines=1, variants=VARIANTS,
                gallery_pairs=PAIRS)
    build_site([tmp / "results"], tmp / "site")
    return tmp / "site", json.loads((tmp / "site" / "data" / "judge.json").read_text())


def _vote_file(path: Path, manifest: dict, voter: str, favourite: str, p: float,
               rng: np.random.Generator, n: int = 20) -> Path:
    """``n`` votes by ``voter``, who prefers ``favourite`` with probability ``p``; left and
    right in random order, as the page shows them."""
    votes = []
    for k in range(n):
        scene = manifest["scenes"][k % len(manifest["scenes"])]
        fav = next(o for o in scene["outputs"] if o["variant"] == favourite)
        other = [o for o in scene["outputs"] if o["variant"] != favourite][k % 2]
        win = fav if rng.random() < p else other
        left, right = (fav, other) if rng.random() < 0.5 else (other, fav)
        votes.append({"scene": scene["id"], "left": left["image"], "right": right["image"],
                      "outcome": "left" if win is left else "right"})
    path.write_text(json.dumps({"schema": "lowbench.votes", "build_id": manifest["build_id"],
                                "voter": voter, "votes": votes}))
    return path


def test_the_manifest_names_every_output_by_digest_and_is_reproducible(
        site: tuple[Path, dict], tmp_path: Path) -> None:
    folder, manifest = site
    assert len(manifest["scenes"]) == len(PAIRS)
    for scene in manifest["scenes"]:
        assert len(scene["outputs"]) == len(VARIANTS)
        for out in scene["outputs"]:
            assert (folder / out["image"]).is_file()
    # the same results give the same build id; other pictures another
    again = tmp_path / "again"
    write_store(tmp_path / "results", n_commits=1, n_machines=1, variants=VARIANTS,
                gallery_pairs=PAIRS)
    build_site([tmp_path / "results"], again)
    assert json.loads((again / "data" / "judge.json").read_text())["build_id"] == \
        manifest["build_id"]
    write_store(tmp_path / "other", n_commits=1, n_machines=1, variants=VARIANTS,
                gallery_pairs=PAIRS[:1])
    build_site([tmp_path / "other"], tmp_path / "other-site")
    assert json.loads((tmp_path / "other-site" / "data" / "judge.json").read_text())[
        "build_id"] != manifest["build_id"]


def test_imported_votes_give_the_human_score(site: tuple[Path, dict], tmp_path: Path) -> None:
    """Six voters prefer light/static 90% of the time: kept by the real CLI, it ranks first
    with an interval above 0."""
    folder, manifest = site
    favourite = manifest["scenes"][0]["outputs"][1]["variant"]
    rng = np.random.default_rng(11)
    files = [str(_vote_file(tmp_path / f"v{i}.json", manifest, f"voter-{i}", favourite, 0.9,
                            rng)) for i in range(6)]
    store = tmp_path / "store"
    proc = lowbench("votes", "import", *files, "--site", str(folder), "--out", str(store))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("kept 20 vote(s)") == 6
    again = lowbench("votes", "import", files[0], "--site", str(folder), "--out", str(store))
    assert again.returncode == 0  # the same file twice: one copy
    votes = load_votes([store], manifest)
    assert len(votes) == 120
    scores = human_scores(votes, resamples=200)
    assert scores[favourite]["rank"] == 1 and scores[favourite]["ci"][0] > 0
    assert sum(s["votes"] for s in scores.values()) == 240


def test_votes_from_another_build_or_edited_are_refused(site: tuple[Path, dict],
                                                        tmp_path: Path) -> None:
    folder, manifest = site
    rng = np.random.default_rng(0)
    good = _vote_file(tmp_path / "good.json", manifest, "v", manifest["scenes"][0]["outputs"][0]
                      ["variant"], 0.5, rng, n=4)
    store = tmp_path / "store"
    doc = json.loads(good.read_text())
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({**doc, "build_id": "f" * 24}))
    assert_one_line_error(lowbench("votes", "import", str(good), str(foreign), "--site",
                                   str(folder), "--out", str(store)), "f" * 24, "--site")
    assert not (store / "votes").exists()  # nothing kept: every file is checked first
    other_scene = manifest["scenes"][1]["outputs"][0]["image"]  # shown in another scene
    assert other_scene not in {o["image"] for o in manifest["scenes"][0]["outputs"]}
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**doc, "votes": [{**doc["votes"][0], "left": other_scene}]}))
    assert_one_line_error(lowbench("votes", "import", str(edited), "--site", str(folder),
                                   "--out", str(store)), "vote 1", "not two variants")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert_one_line_error(lowbench("votes", "import", str(broken), "--site", str(folder)),
                          "broken.json", "JSON")
    assert_one_line_error(lowbench("votes", "import", str(good), "--site", str(tmp_path)),
                          "no built site")


def test_identical_pictures_are_one_output() -> None:
    """fp32 and dynamic (which quantizes nothing) give the same bytes: one picture to vote on."""
    from lowbench.site.gallery import Crop, Output
    from lowbench.site.judge import judge_manifest

    crop = Crop("p1", "x100", machines={"m": [Output("sid/fp32", "", "img/a.png"),
                                              Output("sid/dynamic", "", "img/a.png"),
                                              Output("sid/static", "", "img/b.png")]})
    (scene,) = judge_manifest({"synth": [crop]})["scenes"]
    assert scene["outputs"] == [
        {"variant": "sid/dynamic", "image": "img/a.png", "same_image": ["sid/fp32"]},
        {"variant": "sid/static", "image": "img/b.png", "same_image": []}]
    only_one = Crop("p2", "x100", machines={"m": [Output("sid/fp32", "", "img/a.png"),
                                                  Output("sid/dynamic", "", "img/a.png")]})
    assert judge_manifest({"synth": [only_one]})["scenes"] == []
