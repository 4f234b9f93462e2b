"""Conflicts of interest: an expert's declared affiliations and relations against a team's consortium.

Matching is deliberately generous (case, spacing and punctuation ignored; one name inside the other counts), since a
missed conflict taints a score while a false one only costs an assignment, which the admin can see and discuss.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from simsa.program.schema import Team

MIN_MATCH = 4  # shorter names ("AI", "Lab") would match nearly everything


@dataclass(frozen=True)
class Declaration:
    """What an expert declared: organisations they belong to or belonged to, people or organisations they are
    related to, and teams ("program/team" or "team") they know they are conflicted with."""

    expert: str
    affiliations: tuple[str, ...] = ()
    relations: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"expert": self.expert, "affiliations": list(self.affiliations), "relations": list(self.relations),
                "conflicts": list(self.conflicts)}


@dataclass(frozen=True)
class Conflict:
    expert: str
    team: str
    reason: str

    def to_dict(self) -> dict:
        return {"expert": self.expert, "team": self.team, "reason": self.reason}


def normalise(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    text = re.sub(r"[\W_]+", " ", text)
    return " ".join(text.split())


def team_names(team: Team) -> list[str]:
    """Every name a team is known by: id, names, consortium members and models."""
    return [n for n in (team.id, team.name, team.name_ko, *team.members, *team.models) if n]


def _matches(declared: str, name: str) -> bool:
    a, b = normalise(declared), normalise(name)
    if not a or not b:
        return False
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return len(short) >= MIN_MATCH and f" {short} " in f" {long} "


def conflicts_with(decl: Declaration, program_key: str, team: Team) -> list[Conflict]:
    """Why `decl`'s expert may not review `team` (empty when nothing conflicts)."""
    out: list[Conflict] = []
    for item in decl.conflicts:
        target = item.strip()
        if target in (team.id, f"{program_key}/{team.id}"):
            out.append(Conflict(decl.expert, team.id, f"declared a conflict with team {team.id}"))
    for kind, items in (("affiliation", decl.affiliations), ("relation", decl.relations)):
        for item in items:
            for name in team_names(team):
                if _matches(item, name):
                    out.append(Conflict(decl.expert, team.id, f"declared {kind} {item!r} matches {name!r}"))
                    break
    return out


def conflict_map(decls: Iterable[Declaration], program_key: str, teams: Sequence[Team]) -> dict[tuple[str, str],
                                                                                                 list[Conflict]]:
    """(expert, team) → conflicts, for every pair that has one."""
    out: dict[tuple[str, str], list[Conflict]] = {}
    for decl in decls:
        for team in teams:
            found = conflicts_with(decl, program_key, team)
            if found:
                out[(decl.expert, team.id)] = found
    return out
