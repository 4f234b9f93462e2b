"""Anomalous-rater test: flags raters whose votes are improbable given what everyone else said about each pair.

FastChat's approach (Chiang et al., 2024, "Chatbot Arena", §5): for each of a user's votes, a p-value from how
rare that outcome is in the pair's history; the p-values are combined (Fisher) over the user's first j votes and
compared with a Bonferroni-corrected threshold for a few fixed j. We keep the idea (each vote judged against the
pair's history) but combine the votes with a test martingale, which is valid at every vote at once — the admin can
look after any number of votes, and a rater can be flagged at the first vote where the evidence suffices, without
the level being spent on a fixed list of checkpoints.

Per vote. Outcomes are three classes, oriented to the pair: first model (sorted) won, second won, tie or both bad.
The null probability q of each class is the pair's history **without this rater's votes**, smoothed (add one per
class): q = (n_c + 1) / (n + 3). A vote whose pair has fewer than `min_history` such votes is not tested.

Per rater. Each vote's e-value is r(outcome)/q(outcome), where r is an alternative distribution fixed before the
vote is seen (learnt from the rater's earlier votes, starting at the null with `prior_strength` pseudo-votes).
Under the null (the rater votes like everyone else) each e-value has expectation 1 whatever r is, so the running
product M_t is a test martingale and, by Ville's inequality, P(M_t ever reaches 1/α) ≤ α. Three families of
alternatives are mixed with equal weight (see `_Evidence`): unexpected outcomes in general (random or contrarian
voting), one model favoured or disfavoured (a fan), and the first-listed answer favoured (a rater who always picks
one side). An honest rater's r tracks the null and M_t drifts down; a cheat's r learns the pattern and M_t grows
geometrically.

Across raters: with `correction="bonferroni"` (the default) a rater is flagged when M_t ≥ m/α, m the number of
raters tested, so the chance of flagging any honest rater is at most α; `"none"` tests each rater at level α.
The reported p-value, min(1, 1/max_t M_t) (times m under Bonferroni), is valid under optional stopping.

The null is approximate where the history is small (q is estimated); the tests measure the false-flag rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simsa.errors import InputError

from .votes import Votes

CLASS_LABELS = ("first won", "second won", "tie or both bad")
CORRECTIONS = ("bonferroni", "none")


@dataclass(frozen=True)
class SurprisingVote:
    """One of a rater's most unexpected votes: its index in the vote set, the pair, what was voted, and how
    probable that outcome was in the pair's history without the rater."""

    index: int
    model_a: str
    model_b: str
    voted: str  # the winner, "tie" or "both_bad"
    probability: float
    history: int

    def to_dict(self) -> dict:
        return {"index": self.index, "model_a": self.model_a, "model_b": self.model_b, "voted": self.voted,
                "probability": round(self.probability, 4), "history": self.history}


@dataclass(frozen=True)
class RaterTest:
    """The sequential test of one rater: `votes` tested (of `total_votes`), the largest log10 e-value reached
    (`statistic`), its anytime-valid p-value (corrected as configured), whether flagged and at which tested vote
    (1-based) the threshold was first crossed, and the most surprising votes as evidence."""

    rater: str
    votes: int
    total_votes: int
    statistic: float
    e_value: float
    p_value: float
    flagged: bool
    first_flag_at: int | None
    evidence: tuple[SurprisingVote, ...]

    def to_dict(self) -> dict:
        return {"rater": self.rater, "votes": self.votes, "total_votes": self.total_votes,
                "log10_e_value": round(self.statistic, 4), "e_value": self.e_value, "p_value": self.p_value,
                "flagged": self.flagged, "first_flag_at": self.first_flag_at,
                "evidence": [e.to_dict() for e in self.evidence]}


def _oriented_class(votes: Votes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vote: the pair's canonical (low, high) model indices and the outcome class relative to them."""
    a, b, kind = np.asarray(votes.a), np.asarray(votes.b), np.asarray(votes.kind)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    winner_is_a = kind == 0
    winner_is_b = kind == 1
    first_won = (winner_is_a & (a == lo)) | (winner_is_b & (b == lo))
    cls = np.where(kind >= 2, 2, np.where(first_won, 0, 1))
    return lo, hi, cls


def anomalous_raters(votes: Votes, raters: Sequence[str], alpha: float = 0.05, min_votes: int = 10, *,
                     min_history: int = 10, prior_strength: float = 4.0, correction: str = "bonferroni",
                     evidence: int = 5) -> tuple[RaterTest, ...]:
    """Test every rater (votes in time order; `raters[i]` cast vote i). A rater is flagged only once at least
    `min_votes` of their votes were tested; raters with none tested are reported, unflagged."""
    if len(raters) != len(votes):
        raise InputError(f"{len(raters)} raters given for {len(votes)} votes")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    if correction not in CORRECTIONS:
        raise InputError(f"unknown correction {correction!r}: expected one of {', '.join(CORRECTIONS)}")
    if min_votes < 1 or min_history < 0 or prior_strength <= 0:
        raise InputError("min_votes must be ≥ 1, min_history ≥ 0 and prior_strength > 0")
    k = len(votes.models)
    lo, hi, cls = _oriented_class(votes)
    pair = lo * k + hi
    names = list(dict.fromkeys(str(r) for r in raters))
    rater_idx = np.array([names.index(str(r)) for r in raters], dtype=np.int64) if len(raters) else np.empty(0, int)
    total = np.zeros((k * k, 3))
    np.add.at(total, (pair, cls), 1.0)
    own = np.zeros((len(names), k * k, 3))
    np.add.at(own, (rater_idx, pair, cls), 1.0)

    raw = []
    for r, name in enumerate(names):
        idx = np.flatnonzero(rater_idx == r)
        hist = total[pair[idx]] - own[r, pair[idx]]
        size = hist.sum(axis=1)
        tested = idx[size >= min_history]
        hist = hist[size >= min_history]
        q = (hist + 1.0) / (hist.sum(axis=1, keepdims=True) + 3.0)
        raw.append((name, idx, tested, hist, q))
    m = sum(1 for _, _, tested, _, _ in raw if len(tested)) or 1
    scale = m if correction == "bonferroni" else 1
    threshold = scale / alpha

    results = []
    a_idx = np.asarray(votes.a)
    for name, idx, tested, hist, q in raw:
        track = _Evidence(k, prior_strength)
        best, first = 0.0, None
        for t in range(len(tested)):
            i = tested[t]
            log_m = track.update(q[t], int(cls[i]), int(lo[i]), int(hi[i]), int(a_idx[i]))
            best = max(best, log_m)
            if first is None and t + 1 >= min_votes and log_m >= np.log(threshold):
                first = t + 1
        e_max = float(np.exp(best))
        p = min(1.0, scale / e_max)
        q_obs = q[np.arange(len(tested)), cls[tested]] if len(tested) else np.empty(0)
        worst = np.argsort(q_obs, kind="stable")[:evidence]
        ev = tuple(SurprisingVote(
            index=int(tested[j]), model_a=votes.models[int(votes.a[tested[j]])],
            model_b=votes.models[int(votes.b[tested[j]])],
            voted=_voted(votes, int(tested[j])), probability=float(q_obs[j]), history=int(hist[j].sum()))
            for j in worst)
        results.append(RaterTest(rater=name, votes=len(tested), total_votes=len(idx), statistic=best / np.log(10),
                                 e_value=e_max, p_value=p, flagged=first is not None, first_flag_at=first,
                                 evidence=ev))
    return tuple(results)


def _voted(votes: Votes, i: int) -> str:
    kind = int(votes.kind[i])
    if kind == 0:
        return votes.models[int(votes.a[i])]
    if kind == 1:
        return votes.models[int(votes.b[i])]
    return "tie" if kind == 2 else "both_bad"


class _Evidence:
    """The rater's test martingale: an equal-weight mixture of three families of plug-in e-processes.

    - surprise: the rank (by q) of each vote's outcome, against the rater's own rank frequencies so far — catches
      raters who keep choosing unexpected outcomes (random or contrarian voting);
    - one per model: whether that model won its battles, against q scaled by the rater's own win rate for it so
      far (up or down) — catches a fan (or a hater) of one model, whose other votes are honest;
    - position: whether the first-listed (left) answer won — catches a rater who always picks one side.
    Every factor has expectation 1 under the null given the past, so each product and their mixture are test
    martingales.
    """

    def __init__(self, k: int, prior_strength: float) -> None:
        self.s = prior_strength
        self.t = 0
        self.rank_counts = np.zeros(3)
        self.rank_qsum = np.zeros(3)
        self.log_rank = 0.0
        self.wins = np.zeros(k + 1)  # per model, and the position family in slot k
        self.expected = np.zeros(k + 1)
        self.log_item = np.zeros(k + 1)
        self.k = k

    def _binary(self, item: int, q_win: float, won: bool) -> None:
        ratio = (self.wins[item] + self.s * q_win) / (self.expected[item] + self.s * q_win)
        r_win = float(np.clip(q_win * ratio, 1e-3, 1.0 - 1e-3))
        self.log_item[item] += np.log(r_win / q_win) if won else np.log((1.0 - r_win) / (1.0 - q_win))
        self.wins[item] += won
        self.expected[item] += q_win

    def update(self, q: np.ndarray, cls: int, lo: int, hi: int, a: int) -> float:
        """Add one vote (null probabilities q of the three oriented classes, observed class) and return log M_t."""
        order = np.lexsort((np.arange(3), -q))
        qs = q[order]
        self.rank_qsum += qs
        prior = self.rank_qsum / (self.t + 1)
        r_hat = (self.rank_counts + self.s * prior) / (self.t + self.s)
        rank = int(np.flatnonzero(order == cls)[0])
        self.log_rank += np.log(r_hat[rank]) - np.log(qs[rank])
        self.rank_counts[rank] += 1
        self.t += 1
        self._binary(lo, float(q[0]), cls == 0)
        self._binary(hi, float(q[1]), cls == 1)
        a_class = 0 if a == lo else 1
        self._binary(self.k, float(q[a_class]), cls == a_class)
        models = self.log_item[: self.k]
        family_models = np.logaddexp.reduce(models) - np.log(self.k)
        parts = np.array([self.log_rank, family_models, self.log_item[self.k]])
        return float(np.logaddexp.reduce(parts) - np.log(3.0))
