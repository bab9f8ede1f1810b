"""Vote files: what the Judge page exports, how ``lowbench votes import`` checks and keeps them.

A vote file (``schema: lowbench.votes``) names the site build it was made on (``build_id``),
one ``voter`` (a random id the page keeps) and the votes; each vote names its scene (``scene``,
the id in the build's ``data/judge.json``), the two images shown left and right (their paths,
which are digests of their bytes) and the ``outcome``: "left", "right" or "tie". A vote counts
only if both images are outputs of that scene in that build, so it is tied to exactly the
pictures that were shown.

Imported files are kept, as validated, under ``<results store>/votes/<build id>/`` (one file
per distinct content, written atomically); :func:`load_votes` reads them back as
:class:`lowbench.judge.score.Vote` (variant labels) for the human score.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lowbench.digest import json_digest
from lowbench.errors import DataError
from lowbench.fsutil import atomic_write_text
from lowbench.judge.score import Vote

VOTES_SCHEMA = "lowbench.votes"
#: Where a built site keeps its Judge manifest (written by :mod:`lowbench.site.judge`).
JUDGE_FILE = "data/judge.json"
#: The Judge manifest's format.
JUDGE_SCHEMA = "lowbench.judge"
#: The outcome words of a vote file -> :data:`lowbench.judge.score.OUTCOMES`.
OUTCOME_WORDS = {"left": "a", "right": "b", "tie": "tie"}
#: The folder of a results store that holds imported votes.
VOTES_FOLDER = "votes"


def read_manifests(sites: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """build id -> the Judge manifest (``data/judge.json``) of each built site given."""
    out = {}
    for site in sites:
        path = Path(site) / JUDGE_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema") == JUDGE_SCHEMA and doc.get("build_id"):
            out[doc["build_id"]] = doc
    return out


def check_vote_file(doc: Any, manifests: dict[str, dict[str, Any]], source: str
                    ) -> tuple[dict[str, Any], list[Vote]]:
    """(the build's manifest, the votes as variant-label :class:`Vote`) of one vote file's
    parsed ``doc``; :class:`DataError` naming ``source`` and what is wrong otherwise."""
    if not isinstance(doc, dict) or doc.get("schema") != VOTES_SCHEMA:
        raise DataError(f"{source} is not a lowbench vote file; export it from the site's "
                        "Judge page")
    build = doc.get("build_id")
    manifest = manifests.get(str(build))
    if manifest is None:
        known = ", ".join(sorted(manifests)) or "none"
        raise DataError(f"{source} was made on site build {build}, which is not among the "
                        f"sites given (builds: {known}); vote on the published Judge page or "
                        "pass that build's folder with --site")
    voter = doc.get("voter")
    if not isinstance(voter, str) or not voter.strip():
        raise DataError(f"{source} names no voter; export it from the site's Judge page")
    scenes = {s["id"]: s for s in manifest["scenes"]}
    votes = []
    for i, vote in enumerate(doc.get("votes") or []):
        where = f"{source}: vote {i + 1}"
        scene = scenes.get(vote.get("scene")) if isinstance(vote, dict) else None
        if scene is None:
            raise DataError(f"{where} names scene {vote!r:.60}, not one of build {build}")
        images = {o["image"]: o["variant"] for o in scene["outputs"]}
        left, right = images.get(vote.get("left")), images.get(vote.get("right"))
        if left is None or right is None or left == right:
            raise DataError(f"{where}: images {vote.get('left')} and {vote.get('right')} are "
                            f"not two variants' outputs of scene {scene['id']} in build {build} "
                            "(a file edited, or from another build)")
        outcome = OUTCOME_WORDS.get(vote.get("outcome"))
        if outcome is None:
            raise DataError(f"{where}: outcome {vote.get('outcome')!r}; choose one of "
                            f"{', '.join(OUTCOME_WORDS)}")
        votes.append(Vote(voter, left, right, outcome))
    if not votes:
        raise DataError(f"{source} holds no votes")
    return manifest, votes


def import_votes(files: Iterable[Path], manifests: dict[str, dict[str, Any]], store: Path
                 ) -> list[tuple[Path, int]]:
    """Check every vote file first, then keep each under ``store/votes/<build id>/``; (kept
    path, votes) per file. Importing the same file twice keeps one copy."""
    checked = []
    for path in files:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise DataError(f"{path} cannot be read as JSON ({err}); give the file the "
                            "Judge page exported") from None
        manifest, votes = check_vote_file(doc, manifests, str(path))
        checked.append((doc, manifest, votes))
    out = []
    for doc, manifest, votes in checked:
        target = (Path(store) / VOTES_FOLDER / manifest["build_id"]
                  / f"{json_digest(doc, 24)}.json")
        atomic_write_text(target, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        out.append((target, len(votes)))
    return out


def load_votes(folders: Iterable[Path], manifest: dict[str, Any]) -> list[Vote]:
    """Every kept vote of ``manifest``'s build under the results ``folders`` (unreadable or
    foreign files are skipped: they were checked when imported)."""
    votes: list[Vote] = []
    for folder in folders:
        for path in sorted((Path(folder) / VOTES_FOLDER / manifest["build_id"]).glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                votes += check_vote_file(doc, {manifest["build_id"]: manifest}, str(path))[1]
            except (OSError, ValueError, DataError):
                continue
    return votes
