"""The human score (issue 22): Bradley-Terry strengths from pairwise votes, checked against the
closed form for two variants, with ties, and with an interval over voters that excludes 0 only
when the preference is real."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lowbench.judge.score import Vote, human_scores, strengths


def _votes(p_a: float, voters: int = 12, per_voter: int = 20, seed: int = 3) -> list[Vote]:
    """``voters`` people each judging A vs B ``per_voter`` times, preferring A with
    probability ``p_a``; A is shown first or second at random."""
    rng = np.random.default_rng(seed)
    out = []
    for person in range(voters):
        for _ in range(per_voter):
            a_wins = rng.random() < p_a
            if rng.random() < 0.5:
                out.append(Vote(f"voter{person}", "A", "B", "a" if a_wins else "b"))
            else:
                out.append(Vote(f"voter{person}", "B", "A", "b" if a_wins else "a"))
    return out


def test_two_variants_match_the_closed_form() -> None:
    """With two variants the Bradley-Terry MLE is log(wins_A / wins_B) apart (ties: half a win
    each); the prior is too small to move it by more than 1%."""
    votes = ([Vote("v", "A", "B", "a")] * 30 + [Vote("v", "B", "A", "a")] * 9
             + [Vote("v", "A", "B", "tie")] * 6)
    a, b = strengths(["A", "B"], votes)
    assert a - b == pytest.approx(math.log((30 + 3) / (9 + 3)), rel=0.01)
    assert a + b == pytest.approx(0.0, abs=1e-9)


def test_a_90_percent_preference_ranks_first_with_an_interval_above_zero() -> None:
    scores = human_scores(_votes(0.9), resamples=300)
    assert scores["A"]["rank"] == 1 and scores["B"]["rank"] == 2
    assert scores["A"]["ci"][0] > 0 > scores["B"]["ci"][1]
    assert scores["A"]["votes"] == scores["B"]["votes"] == 240
    assert scores["A"]["wins"] == scores["B"]["losses"] > 200
    assert scores["A"]["voters"] == 12


def test_no_preference_gives_an_interval_around_zero() -> None:
    scores = human_scores(_votes(0.5), resamples=300)
    assert scores["A"]["ci"][0] < 0 < scores["A"]["ci"][1]


def test_three_variants_keep_their_order_and_ties_are_half_wins() -> None:
    """C beats B beats A, each 80%; a block of ties between A and C pulls them together but
    leaves the order."""
    rng = np.random.default_rng(5)
    votes = []
    for person in range(8):
        for better, worse in (("B", "A"), ("C", "B"), ("C", "A")):
            for _ in range(10):
                won = rng.random() < 0.8
                votes.append(Vote(f"p{person}", better, worse, "a" if won else "b"))
    ranks = {k: v["rank"] for k, v in human_scores(votes, resamples=100).items()}
    assert ranks == {"C": 1, "B": 2, "A": 3}
    tied = votes + [Vote("q", "A", "C", "tie")] * 200
    plain, with_ties = human_scores(votes, resamples=2), human_scores(tied, resamples=2)
    gap = plain["C"]["score"] - plain["A"]["score"]
    assert 0 < with_ties["C"]["score"] - with_ties["A"]["score"] < gap
    assert with_ties["A"]["ties"] == 200


def test_one_voter_has_no_interval_and_bad_votes_are_refused() -> None:
    scores = human_scores([Vote("solo", "A", "B", "a")] * 5)
    assert scores["A"]["ci"] is None and scores["A"]["rank"] == 1
    with pytest.raises(ValueError, match="outcome"):
        human_scores([Vote("v", "A", "B", "left")])
    with pytest.raises(ValueError, match="two different"):
        human_scores([Vote("v", "A", "A", "a")])
    assert human_scores([]) == {}
