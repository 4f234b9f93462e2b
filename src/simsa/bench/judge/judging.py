"""How verdicts become item results: ensemble means, position-swap resolution, majorities and the language penalty.

Pure functions, no I/O; the rules are those of the module docstrings in `korean` (penalty) and `records` (swap).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

SCALE = (1.0, 10.0)  # rubric scale; rescaled to 0-1 as (s - 1) / 9
OUTCOME_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}
_AS_A = {"A": "win", "B": "loss", "tie": "tie"}  # the candidate shown as A
_AS_B = {"A": "loss", "B": "win", "tie": "tie"}  # the candidate shown as B


def rescale(score: float) -> float:
    """A 1-10 score on 0-1."""
    low, high = SCALE
    return (score - low) / (high - low)


def rubric_item(scores: Sequence[float | None], language_ok: bool) -> tuple[float | None, float | None, str | None]:
    """(judged, score, penalty) of a rubric item: the mean of the parsed scores (unparseable ones excluded), then the
    scale minimum when the answer failed the language check, whatever the judges said."""
    valid = [s for s in scores if s is not None]
    judged = sum(valid) / len(valid) if valid else None
    if not language_ok:
        return judged, SCALE[0], "language: score set to the scale minimum"
    return judged, judged, None


def swap_vote(verdict_ab: str | None, verdict_ba: str | None) -> tuple[str | None, bool]:
    """(vote, inconsistent) of one judge from its verdicts in both orders (`ab`: candidate shown as A).

    The same outcome both ways is that outcome; different outcomes (the judge preferred a position, or tied in one
    order only) are a tie marked inconsistent; a missing verdict in either order gives no vote.
    """
    if verdict_ab is None or verdict_ba is None:
        return None, False
    first, second = _AS_A[verdict_ab], _AS_B[verdict_ba]
    return (first, False) if first == second else ("tie", True)


def majority(votes: Sequence[str | None]) -> str | None:
    """The most frequent vote among the judges that voted; a tie between different outcomes is "tie"; None when no
    judge voted."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return None
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return "tie"
    return ranked[0][0]


def pair_item(votes: Sequence[str | None], candidate_ok: bool,
              baseline_ok: bool) -> tuple[str | None, str | None, str | None]:
    """(judged, outcome, penalty) of a pairwise item: the judges' majority, then the language rule: the side whose
    answer failed the check loses; when both failed the judges' outcome stands."""
    judged = majority(votes)
    if candidate_ok == baseline_ok:
        return judged, judged, None
    if not candidate_ok:
        return judged, "loss", "language: candidate answer failed the check"
    return judged, "win", "language: baseline answer failed the check"
