"""Balancing assignments: give every team at least the minimum of non-conflicted experts, spreading the load.

Greedy and deterministic: teams with the fewest experts first, each taking the eligible expert with the lightest
load (ties broken by name), so the same inputs always give the same assignment and the admin can predict it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Balanced:
    """Assignments to add, and the teams that still lack experts (with how many they have)."""

    added: tuple[tuple[str, str], ...]  # (team, expert)
    short: tuple[tuple[str, int], ...]

    def to_dict(self) -> dict:
        return {"added": [{"team": t, "expert": e} for t, e in self.added],
                "short": [{"team": t, "experts": n} for t, n in self.short]}


def balance(teams: Sequence[str], experts: Sequence[str], existing: Iterable[tuple[str, str]],
            conflicted: set[tuple[str, str]], minimum: int) -> Balanced:
    """Assignments (team, expert) to add so each team reaches `minimum` experts where enough are eligible."""
    have: dict[str, set[str]] = {t: set() for t in teams}
    load: dict[str, int] = dict.fromkeys(experts, 0)
    for team, expert in existing:
        if team in have:
            have[team].add(expert)
        if expert in load:
            load[expert] += 1
    added: list[tuple[str, str]] = []
    while True:
        needy = [t for t in teams if len(have[t]) < minimum]
        progress = False
        for team in sorted(needy, key=lambda t: (len(have[t]), t)):
            eligible = [e for e in experts if e not in have[team] and (e, team) not in conflicted]
            if not eligible:
                continue
            pick = min(eligible, key=lambda e: (load[e], e))
            have[team].add(pick)
            load[pick] += 1
            added.append((team, pick))
            progress = True
        if not progress:
            break
    short = tuple((t, len(have[t])) for t in teams if len(have[t]) < minimum)
    return Balanced(added=tuple(added), short=short)
