"""The typed shape of a ``simsa.decision/1`` object (documented in docs/decision-json.md).

A decision leaves simsa as JSON (``stage decide --json``, reports, the public pages, the audit log), so its type is a
set of ``TypedDict``s: the JSON is exactly what it was, and the type checker sees every key a reader asks for.
Keys a decision gains after adjudication (voids in force, the panel's and the arena's results, warnings, an
imported decision's origin) are ``NotRequired``.
"""

# No ``from __future__ import annotations`` here: TypedDict reads ``NotRequired`` from evaluated annotations.
from typing import Any, Literal, NotRequired, TypedDict

JSONObject = dict[str, Any]


class ProgramRef(TypedDict):
    id: str
    name: str
    name_ko: str | None
    sha256: str


class CriterionEntry(TypedDict):
    """One node of the criteria tree, flattened depth-first."""

    id: str
    name: str
    name_ko: str | None
    points: float
    parent: str | None
    depth: int
    source: str | None
    normalisation: str | None


class GateDefinition(TypedDict):
    id: str
    name: str
    name_ko: str | None
    kind: str


class TeamResult(TypedDict):
    """One team's line: points, rank, the breakdown per criterion, gates, status and the reasons in both languages."""

    team: str
    name: str
    name_ko: str | None
    total: float
    rank: int
    breakdown: dict[str, JSONObject]
    gates: dict[str, JSONObject]
    status: Literal["advanced", "eliminated"]
    reason: str
    reason_ko: str
    tie_break: str | None
    tie_break_ko: str | None


class DecisionDoc(TypedDict):
    """A whole ``simsa.decision/1`` object, in the key order the JSON has."""

    schema: str
    program: ProgramRef
    stage: str
    stage_name: str
    stage_name_ko: str | None
    decision_id: int | None
    supersedes: int | None
    appeal_id: int | None
    decided_at: str
    timezone: str
    appeal_deadline: str
    example_data: bool
    max_points: float
    criteria: list[CriterionEntry]
    gate_definitions: list[GateDefinition]
    teams: list[TeamResult]
    elimination: JSONObject
    tie_breakers: list[str]
    advanced: list[str]
    eliminated: list[str]
    title_holders: list[str]
    robustness: JSONObject
    voided: NotRequired[list[JSONObject]]
    expert_panel: NotRequired[JSONObject]
    expert_panel_sha256: NotRequired[str]
    user_arena: NotRequired[JSONObject]
    user_arena_sha256: NotRequired[str]
    decision_warnings: NotRequired[list[JSONObject]]
    imported: NotRequired[JSONObject]


__all__ = ["CriterionEntry", "DecisionDoc", "GateDefinition", "JSONObject", "ProgramRef", "TeamResult"]
