"""The human score: Bradley-Terry strengths of variants from blind pairwise votes.

A vote compares two variants' outputs of one scene and says which looks better, or a tie. The
strengths are fitted by ``choix`` (iterative Luce spectral ranking, a small ridge prior
``alpha`` so that a variant that never lost still has a finite strength), on a log scale
centred on the mean of the variants voted on: a difference d between two variants means the
first is preferred with probability 1 / (1 + exp(-d)). A tie counts as half a win each way
(every vote enters twice: a win as two wins, a tie as one win each way).

The 95% interval of each strength is a percentile bootstrap over **voters** (their votes are
resampled together, since one person's votes are not independent); the rank orders the
variants by strength (1 = most preferred).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lowbench.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE

#: Ridge prior of the fit (choix's ``alpha``): small against a handful of votes per pair.
ALPHA = 0.01
#: The outcomes of a vote: the first variant, the second, or a tie.
OUTCOMES = ("a", "b", "tie")


@dataclass(frozen=True)
class Vote:
    """One judgement by ``voter``: variant ``a`` against variant ``b`` (names), ``outcome`` one
    of :data:`OUTCOMES`."""

    voter: str
    a: str
    b: str
    outcome: str


def _pairs(votes: Iterable[Vote], index: dict[str, int]) -> list[tuple[int, int]]:
    """choix's (winner, loser) list: a win twice, a tie once each way."""
    data: list[tuple[int, int]] = []
    for v in votes:
        a, b = index[v.a], index[v.b]
        if v.outcome == "a":
            data += [(a, b), (a, b)]
        elif v.outcome == "b":
            data += [(b, a), (b, a)]
        else:
            data += [(a, b), (b, a)]
    return data


def strengths(items: Sequence[str], votes: Sequence[Vote], alpha: float = ALPHA
              ) -> np.ndarray:
    """Bradley-Terry log-strengths of ``items`` (in that order, mean 0) fitted to ``votes``."""
    import choix

    index = {name: i for i, name in enumerate(items)}
    params = choix.ilsr_pairwise(len(items), _pairs(votes, index), alpha=alpha)
    return params - params.mean()


def human_scores(votes: Sequence[Vote], *, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE,
                 alpha: float = ALPHA) -> dict[str, dict[str, Any]]:
    """Per variant voted on: ``score`` (log-strength, mean 0 over the variants), ``ci`` (its
    ``confidence`` interval, bootstrap over voters; None with one voter), ``rank`` (1 = most
    preferred), ``votes`` (comparisons it took part in), ``wins``, ``losses``, ``ties``,
    ``voters``."""
    for v in votes:
        if v.outcome not in OUTCOMES or v.a == v.b:
            raise ValueError(f"a vote needs two different variants and an outcome of "
                             f"{OUTCOMES}: got {v}")
    items = sorted({v.a for v in votes} | {v.b for v in votes})
    if len(items) < 2:
        return {}
    point = strengths(items, votes, alpha)
    by_voter: dict[str, list[Vote]] = defaultdict(list)
    for v in votes:
        by_voter[v.voter].append(v)
    voters = sorted(by_voter)
    ci: dict[str, list[float] | None] = dict.fromkeys(items)
    if len(voters) >= 2:
        rng = np.random.default_rng(seed)
        draws = np.empty((resamples, len(items)))
        for r in range(resamples):
            picked = rng.integers(0, len(voters), len(voters))
            draws[r] = strengths(items, [v for i in picked for v in by_voter[voters[i]]],
                                 alpha)
        tail = (1.0 - confidence) / 2.0 * 100.0
        lo, hi = np.percentile(draws, [tail, 100.0 - tail], axis=0)
        ci = {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(items)}
    tally: dict[str, Counter[str]] = {name: Counter() for name in items}
    for v in votes:
        for me, other_won in ((v.a, "b"), (v.b, "a")):
            tally[me]["votes"] += 1
            tally[me]["ties" if v.outcome == "tie" else
                      "losses" if v.outcome == other_won else "wins"] += 1
    order = sorted(items, key=lambda name: -point[items.index(name)])
    return {name: {"score": float(point[i]), "ci": ci[name], "rank": order.index(name) + 1,
                   "votes": tally[name]["votes"], "wins": tally[name]["wins"],
                   "losses": tally[name]["losses"], "ties": tally[name]["ties"],
                   "voters": len({v.voter for v in votes if name in (v.a, v.b)})}
            for i, name in enumerate(items)}
