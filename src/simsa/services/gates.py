"""Recorded gate results (e.g. originality), kept with their evidence; a new record supersedes the old."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.program.gates import GateOutcome
from simsa.program.schema import Program
from simsa.store.models import GateResult, ProgramVersion


def record(session: Session, version: ProgramVersion, program: Program, *, stage_id: str, team_id: str,
           gate_id: str, passed: bool, evidence: str, link: str | None, actor: str,
           example: bool = False) -> GateResult:
    try:
        stage = program.stage(stage_id)
        program.team(team_id)
    except KeyError as exc:
        raise InputError(f"unknown stage or team {exc.args[0]!r}") from None
    gate = next((g for g in stage.gates if g.id == gate_id), None)
    if gate is None:
        raise InputError(f"stage {stage_id!r} has no gate {gate_id!r} (gates: "
                         f"{', '.join(g.id for g in stage.gates) or 'none'})")
    if gate.kind != "recorded":
        raise InputError(f"gate {gate_id!r} is of kind {gate.kind}: its result is computed, not recorded")
    if not evidence.strip():
        raise InputError("a gate result needs evidence (what was checked and what was found)")
    previous = _current(session, version.program_key, stage_id).get((team_id, gate_id))
    row = GateResult(program_key=version.program_key, stage_id=stage_id, team_id=team_id, gate_id=gate_id,
                     passed=passed, evidence=evidence.strip(), link=link, example=example, recorded_at=now_utc(),
                     recorded_by=actor, supersedes_id=previous.id if previous else None)
    session.add(row)
    append(session, actor=actor, action="gate.supersede" if previous else "gate.record", row=row)
    return row


def _current(session: Session, key: str, stage_id: str) -> dict[tuple[str, str], GateResult]:
    superseded = select(GateResult.supersedes_id).where(GateResult.supersedes_id.is_not(None))
    rows = session.execute(select(GateResult).where(GateResult.program_key == key, GateResult.stage_id == stage_id,
                                                    GateResult.id.not_in(superseded))
                           .order_by(GateResult.id)).scalars()
    return {(r.team_id, r.gate_id): r for r in rows}


def current(session: Session, key: str, stage_id: str) -> dict[str, dict[str, GateOutcome]]:
    out: dict[str, dict[str, GateOutcome]] = {}
    for (team, gate), row in _current(session, key, stage_id).items():
        out.setdefault(team, {})[gate] = GateOutcome(passed=row.passed, evidence=row.evidence, link=row.link,
                                                     source="recorded", example=row.example, record_id=row.id)
    return out
