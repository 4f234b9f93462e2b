"""The whole stage before it is decided: who takes part, every score and gate result, and what is still missing.

`stage decide` refuses on the first gap it meets; this answers, in one read and without writing, everything a
programme office must collect first — each missing score or gate result that blocks the decision, each one that
will count as zero, and whether the previous stage has been decided — and whether a decision is already in force.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from simsa.errors import InputError
from simsa.program.arena_schema import ARENA_SOURCE
from simsa.program.gates import GateOutcome, licence_gate, min_score_gate
from simsa.program.loader import LoadedProgram
from simsa.program.schema import PANEL_SOURCE, Program, Stage, Team
from simsa.services import decision_records, decisions
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.store.models import Decision, ProgramVersion
from simsa.timeutil import utc_text

SNIPPET_CHARS = 80
MissingPolicy = Literal["blocks", "zero"]


@dataclass(frozen=True)
class Column:
    """A score source of the stage and what it feeds; a missing score `blocks` unless every use counts it as zero."""

    source: str
    criteria: tuple[str, ...]
    gates: tuple[str, ...]
    missing: MissingPolicy

    @property
    def label(self) -> str:
        return (self.criteria or self.gates)[0]

    def to_dict(self) -> dict:
        return {"source": self.source, "label": self.label, "criteria": list(self.criteria),
                "gates": list(self.gates), "missing": self.missing}


@dataclass(frozen=True)
class Cell:
    """A team's current value of one source; `missing` is set (blocks/zero) when there is none."""

    source: str
    value: float | None = None
    stderr: float | None = None
    n: int = 0
    example: bool = False
    missing: MissingPolicy | None = None
    panel: str | None = None  # the expert panel's step when the stage's panel supplies this source at the decision
    arena: str | None = None  # "voting" or "closed" when the stage's arena supplies this source at the decision

    def to_dict(self) -> dict:
        return {"source": self.source, "value": self.value, "stderr": self.stderr, "n": self.n,
                "example": self.example, "missing": self.missing, "panel": self.panel, "arena": self.arena}


@dataclass(frozen=True)
class GateCell:
    """A team's result of one gate: recorded (with evidence), computed from the file or a score, or missing."""

    gate: str
    kind: str
    state: Literal["passed", "failed", "missing"]
    origin: Literal["recorded", "computed", "missing"]
    evidence: str | None = None
    link: str | None = None
    record_id: int | None = None

    def to_dict(self) -> dict:
        return {"gate": self.gate, "kind": self.kind, "state": self.state, "origin": self.origin,
                "evidence": self.evidence, "link": self.link, "record_id": self.record_id}


@dataclass(frozen=True)
class TeamStatus:
    team: str
    name: str
    basis: str                  # why the team is in this stage's grid
    cells: tuple[Cell, ...]
    gates: tuple[GateCell, ...]

    def to_dict(self) -> dict:
        return {"team": self.team, "name": self.name, "basis": self.basis,
                "scores": {c.source: c.to_dict() for c in self.cells},
                "gates": {g.gate: g.to_dict() for g in self.gates}}


@dataclass(frozen=True)
class Blocker:
    """One reason the stage cannot be decided now."""

    kind: Literal["previous_stage_undecided", "no_participants", "missing_score", "missing_gate", "panel_open",
                  "arena_open"]
    message: str
    team: str | None = None
    source: str | None = None
    gate: str | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "team": self.team, "source": self.source,
                "gate": self.gate}


@dataclass(frozen=True)
class DecisionRef:
    id: int
    stage: str
    decided_at: str
    decided_by: str
    program_version_id: int
    program_sha256: str
    same_program_version: bool   # made with the program version this status was computed with
    advanced: tuple[str, ...]
    eliminated: tuple[str, ...]
    title_holders: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"id": self.id, "stage": self.stage, "decided_at": self.decided_at, "decided_by": self.decided_by,
                "program_version_id": self.program_version_id, "program_sha256": self.program_sha256,
                "same_program_version": self.same_program_version, "advanced": list(self.advanced),
                "eliminated": list(self.eliminated), "title_holders": list(self.title_holders)}


@dataclass(frozen=True)
class StageStatus:
    program: str
    program_name: str
    program_sha256: str
    stage: str
    stage_name: str
    previous_stage: str | None
    previous_decision: DecisionRef | None
    participants_final: bool     # False while the previous stage is undecided: the rows are candidates
    columns: tuple[Column, ...]
    gates: tuple[tuple[str, str], ...]   # (gate id, kind) in file order
    teams: tuple[TeamStatus, ...]
    blockers: tuple[Blocker, ...]
    zero_counted: tuple[str, ...]        # "source of team" scores missing that will count as zero
    decision: DecisionRef | None

    @property
    def decidable(self) -> bool:
        return not self.blockers

    def to_dict(self) -> dict:
        return {
            "program": self.program, "program_name": self.program_name, "program_sha256": self.program_sha256,
            "stage": self.stage, "stage_name": self.stage_name, "previous_stage": self.previous_stage,
            "previous_decision": self.previous_decision.to_dict() if self.previous_decision else None,
            "participants": [t.team for t in self.teams], "participants_final": self.participants_final,
            "columns": [c.to_dict() for c in self.columns],
            "gates": [{"id": g, "kind": k} for g, k in self.gates],
            "teams": [t.to_dict() for t in self.teams],
            "decidable": self.decidable, "blockers": [b.to_dict() for b in self.blockers],
            "zero_counted": list(self.zero_counted),
            "decision_in_force": self.decision.to_dict() if self.decision else None,
        }


def stage_status(session: Session, loaded: LoadedProgram, stage_id: str) -> StageStatus:
    """Everything recorded for a stage and everything still missing before it can be decided (reads only)."""
    program = loaded.program
    try:
        stage = program.stage(stage_id)
    except KeyError:
        raise InputError(f"program {program.program.id!r} has no stage {stage_id!r} "
                         f"(stages: {', '.join(s.id for s in program.stages)})") from None
    key = program.program.id
    idx = program.stage_index(stage_id)
    previous = program.stages[idx - 1].id if idx else None
    prev_row = decision_records.effective(session, key, previous) if previous else None
    prev_ref = _decision_ref(session, prev_row, loaded.sha256) if prev_row else None
    holders, blocker = decisions.continuing_teams(session, loaded, stage_id)
    blockers: list[Blocker] = []
    if blocker is not None:
        blockers.append(Blocker("previous_stage_undecided", blocker))
    teams = _participants(program, idx, holders)
    if not teams and (previous is None or holders is not None):
        blockers.append(Blocker("no_participants", f"stage {stage_id!r} has no participating teams"))
    columns = _columns(stage)
    scores = score_service.current(session, key, stage_id)
    recorded = gate_service.current(session, key, stage_id)
    rows, zero = [], []
    panel_step = None if decision_records.effective(session, key, stage_id) else _panel_step(session, loaded, stage_id)
    if panel_step is not None and panel_step != "closed":
        blockers.append(Blocker("panel_open", f"the expert panel of {stage_id!r} is in {panel_step}; its scores "
                                              "count once it is closed"))
    arena_step = None if decision_records.effective(session, key, stage_id) else _arena_step(session, loaded, stage_id)
    if arena_step is not None and arena_step[0] == "voting":
        blockers.append(Blocker("arena_open", f"the user arena of {stage_id!r} is open until {arena_step[1]}; its "
                                              f"strengths become {ARENA_SOURCE} once it closes"))
    for team, basis in teams:
        cells = []
        for col in columns:
            if panel_step is not None and col.source == PANEL_SOURCE:  # never shown before the decision
                cells.append(Cell(col.source, panel=panel_step))
                continue
            if arena_step is not None and col.source == ARENA_SOURCE:  # nor is the arena's ranking
                cells.append(Cell(col.source, arena=arena_step[0]))
                continue
            got = scores.get(team.id, {}).get(col.source)
            if got is not None:
                cells.append(Cell(col.source, got.value, got.stderr, got.n, got.example))
                continue
            cells.append(Cell(col.source, missing=col.missing))
            if col.missing == "zero":
                zero.append(f"{col.source} of {team.id}")
            else:
                uses = ", ".join([f"criterion {c}" for c in col.criteria] + [f"gate {g}" for g in col.gates])
                blockers.append(Blocker("missing_score", f"missing score {col.source} for team {team.id} "
                                        f"(needed by {uses})", team=team.id, source=col.source))
        gates = [_gate_cell(stage, gate_id, team, scores, recorded) for gate_id, _ in _gates(stage)]
        for g in gates:  # a min_score gate's missing score is already a missing_score blocker
            if g.state == "missing" and g.kind == "recorded":
                blockers.append(Blocker("missing_gate", f"missing gate result {g.gate} for team {team.id}",
                                        team=team.id, gate=g.gate))
        rows.append(TeamStatus(team.id, team.name, basis, tuple(cells), tuple(gates)))
    current = decision_records.effective(session, key, stage_id)
    return StageStatus(
        program=key, program_name=program.program.name, program_sha256=loaded.sha256, stage=stage_id,
        stage_name=stage.name, previous_stage=previous, previous_decision=prev_ref,
        participants_final=not previous or holders is not None, columns=tuple(columns), gates=_gates(stage),
        teams=tuple(rows), blockers=tuple(blockers), zero_counted=tuple(zero),
        decision=_decision_ref(session, current, loaded.sha256) if current else None)


def _arena_step(session: Session, loaded: LoadedProgram, stage_id: str,
                now: dt.datetime | None = None) -> tuple[str, str] | None:
    """("voting" or "closed", its closing time) once the stage's arena is frozen (it then supplies `panel:user`)."""
    from simsa.services import arena_results

    ctx = arena_results.arena_if_open(session, loaded, stage_id)
    if ctx is None:
        return None
    closes = utc_text(ctx.arena.closes)
    return ("voting" if (now or dt.datetime.now(dt.UTC)) < ctx.arena.closes else "closed"), closes


def _panel_step(session: Session, loaded: LoadedProgram, stage_id: str) -> str | None:
    """The step of the stage's expert panel once it has opened (it then supplies `panel:expert`), else None."""
    from simsa.services import panel_results

    ctx = panel_results.panel_context_if_any(session, loaded, stage_id)
    return None if ctx is None else panel_results.panel_service.phase(session, ctx).phase


def _participants(program: Program, idx: int, holders: list[str] | None) -> list[tuple[Team, str]]:
    """As `adjudicate.participants`, with the basis of each; candidates while the previous stage is undecided."""
    out = []
    declared = program.stages[idx].participants
    for team in program.teams:
        joins = program.stage_index(team.joins_at) if team.joins_at else 0
        if declared is not None:
            if team.id in declared:
                out.append((team, f"declared participant of {program.stages[idx].id}"))
        elif joins == idx:
            out.append((team, "first stage" if idx == 0 else f"joins at {program.stages[idx].id}"))
        elif joins < idx:
            if holders is None:
                out.append((team, f"candidate ({program.stages[idx - 1].id} not decided)"))
            elif team.id in holders:
                out.append((team, f"title holder after {program.stages[idx - 1].id}"))
    return out


def _columns(stage: Stage) -> list[Column]:
    out = []
    for source in stage.score_sources():
        leaves = [c for c in stage.leaves() if c.source == source]
        gates = tuple(g.id for g in stage.gates if g.kind == "min_score" and g.source == source)
        zero = not gates and all(c.missing == "zero" for c in leaves)
        out.append(Column(source, tuple(c.id for c in leaves), gates, "zero" if zero else "blocks"))
    return out


def _gates(stage: Stage) -> tuple[tuple[str, str], ...]:
    return tuple((g.id, g.kind) for g in stage.gates)


def _gate_cell(stage: Stage, gate_id: str, team: Team, scores: dict, recorded: dict) -> GateCell:
    gate = next(g for g in stage.gates if g.id == gate_id)
    outcome: GateOutcome | None
    if gate.kind == "licence":
        outcome = licence_gate(gate, team)
    elif gate.kind == "min_score":
        got = scores.get(team.id, {}).get(gate.source or "")
        if got is None:
            return GateCell(gate.id, gate.kind, "missing", "missing", evidence=f"no {gate.source} score")
        outcome = min_score_gate(gate, got.value)
    else:
        outcome = recorded.get(team.id, {}).get(gate.id)
        if outcome is None:
            return GateCell(gate.id, gate.kind, "missing", "missing")
    return GateCell(gate.id, gate.kind, "passed" if outcome.passed else "failed",
                    "recorded" if gate.kind == "recorded" else "computed", evidence=_snippet(outcome.evidence),
                    link=outcome.link, record_id=outcome.record_id)


def _snippet(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SNIPPET_CHARS else line[: SNIPPET_CHARS - 1] + "…"


def _decision_ref(session: Session, row: Decision, sha256: str) -> DecisionRef:
    body = decision_records.body(row)
    version = session.get(ProgramVersion, row.program_version_id)
    version_sha = version.sha256 if version else ""
    return DecisionRef(id=row.id, stage=row.stage_id, decided_at=utc_text(row.decided_at), decided_by=row.decided_by,
                       program_version_id=row.program_version_id, program_sha256=version_sha,
                       same_program_version=version_sha == sha256, advanced=tuple(body.get("advanced", ())),
                       eliminated=tuple(body.get("eliminated", ())),
                       title_holders=tuple(body.get("title_holders", ())))
