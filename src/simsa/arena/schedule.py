"""Balanced battle schedule: the server, never the rater, picks which two entrants meet.

A rater who could choose (or re-roll) the pair could steer votes towards or away from a model; a schedule that drifts
leaves some pairs with too few votes for an interval and gives one side the left-hand position more often (raters
favour the left answer slightly). `next_battle` is a pure function of the counts so far, so the same rule runs in
the web server, in tests and in a replay from the audit log.

Counting convention: `ScheduleCounts` holds what the caller adds. Add a pick when its vote is cast (an abandoned
battle then leaves the pair at the front of the queue); a server with many battles open at once may also add picks
when they are handed out and rebuild the counts from the recorded votes, so that concurrent raters do not all get
the same pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from simsa.errors import InputError

Pair = tuple[str, str]


def pair_key(a: str, b: str) -> Pair:
    """The unordered pair in canonical (sorted) order."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Pick:
    """One scheduled battle: who is shown on the left, who on the right, and the prompt category."""

    left: str
    right: str
    category: str

    def to_dict(self) -> dict:
        return {"left": self.left, "right": self.right, "category": self.category}


@dataclass
class ScheduleCounts:
    """Votes so far per unordered pair: the total, how often each side was on the left, and per category."""

    total: dict[Pair, int] = field(default_factory=dict)
    left: dict[Pair, dict[str, int]] = field(default_factory=dict)
    by_category: dict[Pair, dict[str, int]] = field(default_factory=dict)

    def add(self, pick: Pick) -> None:
        """Count one battle (see the module docstring for when to call this)."""
        if pick.left == pick.right:
            raise InputError(f"a battle needs two different entrants, got {pick.left!r} twice")
        key = pair_key(pick.left, pick.right)
        self.total[key] = self.total.get(key, 0) + 1
        lefts = self.left.setdefault(key, {})
        lefts[pick.left] = lefts.get(pick.left, 0) + 1
        cats = self.by_category.setdefault(key, {})
        cats[pick.category] = cats.get(pick.category, 0) + 1

    @classmethod
    def from_battles(cls, battles: Iterable[Pick | tuple[str, str, str]]) -> ScheduleCounts:
        """Rebuild the counts from recorded battles (picks or (left, right, category) rows)."""
        counts = cls()
        for battle in battles:
            counts.add(battle if isinstance(battle, Pick) else Pick(*battle))
        return counts

    def pair_total(self, a: str, b: str) -> int:
        return self.total.get(pair_key(a, b), 0)

    def left_count(self, pair: Pair, model: str) -> int:
        return self.left.get(pair_key(*pair), {}).get(model, 0)

    def category_count(self, pair: Pair, category: str) -> int:
        return self.by_category.get(pair_key(*pair), {}).get(category, 0)

    def balance_report(self, entrants: Sequence[str], quota: int, categories: Sequence[str]) -> ScheduleReport:
        """How far the schedule is from balance: per pair and overall."""
        _check_config(entrants, quota, categories)
        rows = []
        for a, b in combinations(sorted(entrants), 2):
            key = (a, b)
            per_cat = {c: self.category_count(key, c) for c in categories}
            rows.append(PairBalance(
                a=a, b=b, votes=self.pair_total(a, b), quota=quota,
                left_a=self.left_count(key, a), left_b=self.left_count(key, b),
                by_category=tuple(sorted(per_cat.items())),
            ))
        totals = [r.votes for r in rows]
        return ScheduleReport(
            pairs=tuple(rows),
            quota=quota,
            all_quotas_met=all(t >= quota for t in totals),
            max_vote_spread=(max(totals) - min(totals)) if totals else 0,
            max_left_right_difference=max((abs(r.left_a - r.left_b) for r in rows), default=0),
            max_category_spread=max((r.category_spread for r in rows), default=0),
        )


@dataclass(frozen=True)
class PairBalance:
    """One pair's state: votes against its quota, left-position counts, votes per category."""

    a: str
    b: str
    votes: int
    quota: int
    left_a: int
    left_b: int
    by_category: tuple[tuple[str, int], ...]

    @property
    def category_spread(self) -> int:
        values = [n for _, n in self.by_category]
        return (max(values) - min(values)) if values else 0

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "votes": self.votes, "quota": self.quota,
                "missing": max(0, self.quota - self.votes), "left_a": self.left_a, "left_b": self.left_b,
                "left_right_difference": self.left_a - self.left_b, "by_category": dict(self.by_category),
                "category_spread": self.category_spread}


@dataclass(frozen=True)
class ScheduleReport:
    """The schedule's balance: every pair, and the worst deviations over all pairs."""

    pairs: tuple[PairBalance, ...]
    quota: int
    all_quotas_met: bool
    max_vote_spread: int
    max_left_right_difference: int
    max_category_spread: int

    def to_dict(self) -> dict:
        return {"quota": self.quota, "all_quotas_met": self.all_quotas_met,
                "max_vote_spread": self.max_vote_spread,
                "max_left_right_difference": self.max_left_right_difference,
                "max_category_spread": self.max_category_spread,
                "pairs": [p.to_dict() for p in self.pairs]}


def _check_config(entrants: Sequence[str], quota: int, categories: Sequence[str]) -> None:
    if len(set(entrants)) != len(entrants):
        raise InputError("arena entrants must be distinct")
    if len(entrants) < 2:
        raise InputError(f"an arena needs at least two entrants, got {len(entrants)}")
    if quota < 1:
        raise InputError(f"votes wanted per pair must be at least 1, got {quota}")
    if not categories or len(set(categories)) != len(categories):
        raise InputError("arena prompt categories must be a non-empty list of distinct names")


def _choose(candidates: list, rng: np.random.Generator):
    return candidates[int(rng.integers(len(candidates)))] if len(candidates) > 1 else candidates[0]


def next_battle(entrants: Sequence[str], quota: int, categories: Sequence[str], counts: ScheduleCounts,
                rng: np.random.Generator, exclude_pairs: Iterable[tuple[str, str]] = ()) -> Pick:
    """The next battle: the least-served pair relative to its quota (random among ties), the side that has been on
    the left less on the left, and the pair's least-served category.

    Past the quota the same rule keeps pairs, sides and categories balanced. `exclude_pairs` (either order) skips
    pairs that cannot be served now, for example an entrant that is down.
    """
    _check_config(entrants, quota, categories)
    excluded = {pair_key(*p) for p in exclude_pairs}
    pairs = [p for p in combinations(sorted(entrants), 2) if p not in excluded]
    if not pairs:
        raise InputError("every pair of entrants is excluded; no battle can be scheduled")
    fill = {p: counts.pair_total(*p) / quota for p in pairs}
    least = min(fill.values())
    a, b = _choose([p for p in pairs if fill[p] == least], rng)
    left_a, left_b = counts.left_count((a, b), a), counts.left_count((a, b), b)
    if left_a != left_b:
        left, right = (a, b) if left_a < left_b else (b, a)
    else:
        left, right = _choose([(a, b), (b, a)], rng)
    per_cat = {c: counts.category_count((a, b), c) for c in categories}
    fewest = min(per_cat.values())
    category = _choose([c for c in categories if per_cat[c] == fewest], rng)
    return Pick(left=left, right=right, category=category)
