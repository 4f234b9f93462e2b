"""Vote-drop robustness and rigging simulation: how many votes, removed or injected, change the cut.

Two analyses that public arenas do not publish, shown next to the ranking:

- **Vote dropping** (Broderick, Giordano & Meager; Huang et al., 2025, who found arena top ranks that change after
  dropping a handful of votes). The candidate votes are ranked by their linearised influence on the gap between a
  model just inside the cut and one just outside (one Newton step of the Bradley–Terry likelihood: removing vote i
  moves θ by about −J⁻¹gᵢ, J the information matrix, gᵢ the vote's score). The most influential are removed
  greedily, and the smallest number that changes the set is found by binary search with a **real refit** at every
  step; the approximation only orders the votes, the refit decides. Several boundary pairs are tried (the three
  lowest inside against the three highest outside) and the smallest number wins.
- **Rigging** (Min et al., ICML 2025). "target": votes in which a model outside the cut beats one inside;
  "omnipresent": the adversary votes on the battles the schedule happens to give it (sampled like the existing
  battles), always for its own model, against the models inside the cut, and a tie elsewhere; every cast vote
  counts, so this strategy is more expensive in votes but needs no control over which pairs are shown. The fewest
  injected votes that change the cut are again found by binary search with a refit each time.

A warning is raised when fewer than 1 % of the votes suffice: the cut is then a matter of a few votes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simsa.errors import InputError

from .bt import fit
from .votes import OUTCOMES, Votes

WARN_FRACTION = 0.01
BOUNDARY = 3  # models each side of the cut tried as boundary pairs
STRATEGIES = ("target", "omnipresent")


def _ranking(votes: Votes, weights: np.ndarray | None = None) -> np.ndarray | None:
    """Model indices from strongest to weakest, or None when the fit has no finite maximum."""
    try:
        theta = fit(votes, weights).theta
    except InputError:
        return None
    return np.argsort(-theta, kind="stable")


def _top(order: np.ndarray, cut: int) -> frozenset[int]:
    return frozenset(int(m) for m in order[:cut])


def _check_cut(votes: Votes, cut: int, target: str) -> int:
    if target not in ("cut", "top"):
        raise InputError(f"unknown target {target!r}: expected 'cut' or 'top'")
    cut = 1 if target == "top" else cut
    if not 1 <= cut < len(votes.models):
        raise InputError(f"the cut must be between 1 and {len(votes.models) - 1} models, got {cut}")
    if not len(votes):
        raise InputError("no votes")
    return cut


def _boundary_pairs(order: np.ndarray, cut: int) -> list[tuple[int, int]]:
    inside = [int(m) for m in order[max(0, cut - BOUNDARY):cut]][::-1]
    outside = [int(m) for m in order[cut:cut + BOUNDARY]]
    pairs = [(i, j) for i in inside for j in outside]
    return sorted(pairs, key=lambda p: (inside.index(p[0]) + outside.index(p[1]), inside.index(p[0])))


def _smallest(flips, hi: int) -> int | None:
    """The smallest m in 1..hi with flips(m), by binary search (None when flips(hi) is false)."""
    if hi < 1 or not flips(hi):
        return None
    lo, top = 0, hi  # flips(lo) false (or lo = 0), flips(top) true
    while top - lo > 1:
        mid = (lo + top) // 2
        if flips(mid):
            top = mid
        else:
            lo = mid
    return top


def influence_on_gap(votes: Votes, theta: np.ndarray, inside: int, outside: int) -> np.ndarray:
    """Per vote, the linearised change in θ[inside] − θ[outside] if that vote were removed."""
    k = len(votes.models)
    d = theta[votes.a] - theta[votes.b]
    p = 1.0 / (1.0 + np.exp(-d))
    h = p * (1.0 - p)
    info = np.zeros((k, k))
    np.add.at(info, (votes.a, votes.a), h)
    np.add.at(info, (votes.b, votes.b), h)
    np.add.at(info, (votes.a, votes.b), -h)
    np.add.at(info, (votes.b, votes.a), -h)
    info += np.trace(info) / k / k  # the gauge direction (all θ shifted) made invertible; gaps are unaffected
    c = np.zeros(k)
    c[inside], c[outside] = 1.0, -1.0
    u = np.linalg.solve(info, c)
    score = votes.outcome - p  # derivative of vote i's log-likelihood along e_a − e_b
    return -score * (u[votes.a] - u[votes.b])


@dataclass(frozen=True)
class DropResult:
    """The fewest votes whose removal changes the top-`cut` set (or the #1 model), verified by refitting."""

    target: str
    cut: int
    votes_total: int
    votes_needed: int | None
    fraction: float | None
    dropped: tuple[int, ...]
    boundary: tuple[str, str] | None  # the (inside, outside) pair whose gap was attacked
    before: tuple[str, ...]
    after: tuple[str, ...] | None
    verified: bool
    warning: bool
    max_fraction: float

    def to_dict(self) -> dict:
        return {"target": self.target, "cut": self.cut, "votes_total": self.votes_total,
                "votes_needed": self.votes_needed, "fraction": self.fraction, "dropped": list(self.dropped),
                "boundary": list(self.boundary) if self.boundary else None, "before": list(self.before),
                "after": list(self.after) if self.after is not None else None, "verified": self.verified,
                "warning": self.warning, "max_fraction": self.max_fraction}


def vote_drop(votes: Votes, cut: int, *, target: str = "cut", max_fraction: float = 0.05) -> DropResult:
    """Search for the fewest votes (at most `max_fraction` of them) whose removal changes the top-`cut` set
    (`target="top"`: the #1 model). See the module docstring for the method."""
    cut = _check_cut(votes, cut, target)
    if not 0 < max_fraction <= 1:
        raise InputError(f"max_fraction must be in (0, 1], got {max_fraction}")
    base = fit(votes)
    order = np.argsort(-base.theta, kind="stable")
    before = _top(order, cut)
    limit = int(np.floor(max_fraction * len(votes)))
    best: tuple[int, np.ndarray, tuple[int, int]] | None = None
    for inside, outside in _boundary_pairs(order, cut):
        delta = influence_on_gap(votes, base.theta, inside, outside)
        ranked = np.argsort(delta, kind="stable")
        ranked = ranked[delta[ranked] < 0]
        hi = min(limit, len(ranked), best[0] - 1 if best else limit)

        def flips(m: int, ranked=ranked) -> bool:
            weights = np.ones(len(votes))
            weights[ranked[:m]] = 0.0
            new = _ranking(votes, weights)
            return new is not None and _top(new, cut) != before

        m = _smallest(flips, hi)
        if m is not None:
            best = (m, np.sort(ranked[:m]), (inside, outside))
    names = votes.models
    shown = tuple(names[i] for i in order[:cut])
    if best is None:
        return DropResult(target, cut, len(votes), None, None, (), None, shown, None, False, False, max_fraction)
    m, dropped, (inside, outside) = best
    weights = np.ones(len(votes))
    weights[dropped] = 0.0
    check = _ranking(votes, weights)
    verified = check is not None and _top(check, cut) != before
    after_names = tuple(names[i] for i in check[:cut]) if check is not None else None
    fraction = m / len(votes)
    return DropResult(target, cut, len(votes), m, fraction, tuple(int(i) for i in dropped),
                      (names[inside], names[outside]), shown, after_names, verified, fraction < WARN_FRACTION,
                      max_fraction)


@dataclass(frozen=True)
class StrategyResult:
    """One rigging strategy: the fewest injected votes found, for which adversary model, and the votes."""

    strategy: str
    votes_needed: int | None
    fraction: float | None
    adversary: str | None
    displaced: str | None  # for "target": the inside model the injected votes beat
    injected: tuple[tuple[str, str, str], ...]  # (model_a, model_b, winner) rows
    after: tuple[str, ...] | None
    verified: bool

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "votes_needed": self.votes_needed, "fraction": self.fraction,
                "adversary": self.adversary, "displaced": self.displaced,
                "injected": [list(r) for r in self.injected],
                "after": list(self.after) if self.after is not None else None, "verified": self.verified}


@dataclass(frozen=True)
class RigResult:
    """Rigging simulation over several strategies: each one's result and the minimum over them."""

    cut: int
    votes_total: int
    before: tuple[str, ...]
    strategies: tuple[StrategyResult, ...]
    votes_needed: int | None
    fraction: float | None
    warning: bool
    max_votes: int

    def to_dict(self) -> dict:
        return {"cut": self.cut, "votes_total": self.votes_total, "before": list(self.before),
                "strategies": [s.to_dict() for s in self.strategies], "votes_needed": self.votes_needed,
                "fraction": self.fraction, "warning": self.warning, "max_votes": self.max_votes}


def with_injected(votes: Votes, rows: Sequence[tuple[str, str, str]]) -> Votes:
    """The votes plus injected (model_a, model_b, winner) rows (style columns dropped: a plain fit)."""
    index = {m: i for i, m in enumerate(votes.models)}
    a = np.array([index[r[0]] for r in rows], dtype=np.int64)
    b = np.array([index[r[1]] for r in rows], dtype=np.int64)
    kind = np.array([OUTCOMES.index(r[2]) for r in rows], dtype=np.int8)
    return Votes(votes.models, np.concatenate([votes.a, a]), np.concatenate([votes.b, b]),
                 np.concatenate([votes.kind, kind]))


def _omnipresent_rows(votes: Votes, adversary: int, inside: frozenset[int], theta: np.ndarray, count: int,
                      rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """`count` battles drawn like the existing ones (pair frequencies), each voted to lift `adversary` over the
    models inside the cut."""
    names = votes.models
    draw = rng.integers(len(votes), size=count)
    rows = []
    for i in draw:
        x, y = int(votes.a[i]), int(votes.b[i])
        if adversary in (x, y):
            winner = "model_a" if x == adversary else "model_b"
        elif (x in inside) != (y in inside):
            winner = "model_b" if x in inside else "model_a"
        elif x in inside:
            winner = "model_b" if theta[x] >= theta[y] else "model_a"
        else:
            winner = "tie"
        rows.append((names[x], names[y], winner))
    return rows


def rigging(votes: Votes, cut: int, *, strategies: Sequence[str] = STRATEGIES, max_votes: int | None = None,
            seed: int = 0) -> RigResult:
    """The fewest injected adversarial votes (at most `max_votes`, default as many as there are votes) that change
    the top-`cut` set, per strategy and overall. See the module docstring."""
    cut = _check_cut(votes, cut, "cut")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise InputError(f"unknown rigging strategies {unknown}: expected some of {', '.join(STRATEGIES)}")
    max_votes = len(votes) if max_votes is None else max_votes
    if max_votes < 1:
        raise InputError(f"max_votes must be at least 1, got {max_votes}")
    base = fit(votes)
    order = np.argsort(-base.theta, kind="stable")
    before = _top(order, cut)
    names = votes.models
    results = []
    for strategy in strategies:
        best: tuple[int, int, int | None, list] | None = None
        candidates: list[tuple[int, int | None]]  # (adversary, the model it displaces; None: whoever falls out)
        if strategy == "target":
            candidates = [(j, i) for i, j in _boundary_pairs(order, cut)]
        else:
            candidates = [(int(j), None) for j in order[cut:cut + BOUNDARY]]
        for adversary, displaced in candidates:
            hi = min(max_votes, best[0] - 1 if best else max_votes)
            if displaced is not None:
                pool = [(names[adversary], names[displaced], "model_a")] * hi
            else:
                pool = _omnipresent_rows(votes, adversary, before, base.theta, hi,
                                         np.random.default_rng([seed, adversary]))

            def flips(m: int, pool=pool) -> bool:
                new = _ranking(with_injected(votes, pool[:m]))
                return new is not None and _top(new, cut) != before

            m = _smallest(flips, hi)
            if m is not None:
                best = (m, adversary, displaced, pool[:m])
        if best is None:
            results.append(StrategyResult(strategy, None, None, None, None, (), None, False))
            continue
        m, adversary, displaced, rows = best
        check = _ranking(with_injected(votes, rows))
        verified = check is not None and _top(check, cut) != before
        results.append(StrategyResult(
            strategy, m, m / len(votes), names[adversary], names[displaced] if displaced is not None else None,
            tuple(rows), tuple(names[i] for i in check[:cut]) if check is not None else None, verified))
    found = [r.votes_needed for r in results if r.votes_needed is not None]
    needed = min(found) if found else None
    fraction = needed / len(votes) if needed is not None else None
    return RigResult(cut, len(votes), tuple(names[i] for i in order[:cut]), tuple(results), needed, fraction,
                     fraction is not None and fraction < WARN_FRACTION, max_votes)


def summary(votes: Votes, cut: int, *, max_fraction: float = 0.05) -> dict:
    """Every robustness figure a ranking is published with: the fewest votes whose removal changes the top `cut`
    (when 0 < cut < number of models) and the top rank, and the fewest injected votes that change the top `cut` (or
    the top rank when cut is 1), each refit-verified; `warning` when any needs fewer than 1 % of the votes. A set
    with no finite ranking gives `problem` instead of failing, so the ranking can still be shown."""
    out: dict = {"cut": cut, "votes": len(votes)}
    try:
        if 1 < cut < len(votes.models):
            out["drop_cut"] = vote_drop(votes, cut, target="cut", max_fraction=max_fraction).to_dict()
        out["drop_top"] = vote_drop(votes, max(cut, 1), target="top", max_fraction=max_fraction).to_dict()
        if 0 < cut < len(votes.models):
            out["rigging"] = rigging(votes, cut).to_dict()
    except InputError as exc:
        out["problem"] = str(exc)
    figures = [v for v in (out.get("drop_cut"), out.get("drop_top"), out.get("rigging")) if isinstance(v, dict)]
    out["warning"] = any(bool(f.get("warning")) for f in figures)
    return out
