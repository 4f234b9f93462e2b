"""Deciding a stage from the stored scores and gate results, storing the decision, reading decisions back."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.chain import canonical
from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.program.adjudicate import decide
from simsa.program.explain import decision_dict
from simsa.program.loader import LoadedProgram
from simsa.services import gates as gate_service
from simsa.services import programs
from simsa.services import scores as score_service
from simsa.store.models import Decision


def effective(session: Session, key: str, stage_id: str) -> Decision | None:
    """The stage's decision in force: the newest one that no later decision supersedes."""
    superseded = select(Decision.supersedes_id).where(Decision.supersedes_id.is_not(None))
    return session.execute(select(Decision).where(Decision.program_key == key, Decision.stage_id == stage_id,
                                                  Decision.id.not_in(superseded))
                           .order_by(Decision.id.desc()).limit(1)).scalar_one_or_none()


def chain(session: Session, row: Decision) -> list[Decision]:
    """Earlier decisions this one replaced, newest first."""
    out = []
    cur = row
    while cur.supersedes_id is not None:
        prev = session.get(Decision, cur.supersedes_id)
        if prev is None:
            break
        out.append(prev)
        cur = prev
    return out


def body(row: Decision) -> dict:
    return json.loads(row.body)


def previous_title_holders(session: Session, loaded: LoadedProgram, stage_id: str) -> list[str] | None:
    program = loaded.program
    idx = program.stage_index(stage_id)
    if idx == 0:
        return None
    prev = effective(session, program.program.id, program.stages[idx - 1].id)
    return body(prev)["title_holders"] if prev else None


def compute(session: Session, loaded: LoadedProgram, stage_id: str, at: dt.datetime) -> dict:
    """Evaluate the stage's rules on the current data, without storing anything."""
    program = loaded.program
    try:
        program.stage(stage_id)
    except KeyError:
        raise InputError(f"program {program.program.id!r} has no stage {stage_id!r} "
                         f"(stages: {', '.join(s.id for s in program.stages)})") from None
    key = program.program.id
    decision = decide(program, stage_id, score_service.current(session, key, stage_id),
                      gate_service.current(session, key, stage_id),
                      previous_title_holders(session, loaded, stage_id))
    return decision_dict(decision, decided_at=at, program_sha256=loaded.sha256)


def decide_and_store(session: Session, loaded: LoadedProgram, stage_id: str, actor: str, *,
                     at: dt.datetime | None = None, supersede: bool = False, reason: str | None = None,
                     appeal_id: int | None = None) -> dict:
    """Decide and record the decision; refuses to replace a decision in force unless told why."""
    key = loaded.program.program.id
    version, _ = programs.register(session, loaded, actor)
    existing = effective(session, key, stage_id)
    if existing is not None and not supersede and appeal_id is None:
        raise InputError(f"stage {stage_id!r} already has decision {existing.id}; to replace it, uphold an appeal "
                         f"(`simsa stage appeal resolve`) or pass --supersede with --reason")
    if supersede and appeal_id is None and not (reason and reason.strip()):
        raise InputError("--supersede needs --reason: say why the decision in force is replaced")
    when = at or now_utc()
    result = compute(session, loaded, stage_id, when)
    row = Decision(program_key=key, stage_id=stage_id, program_version_id=version.id, decided_at=when,
                   decided_by=actor, body="{}", supersedes_id=existing.id if existing else None,
                   appeal_id=appeal_id, reason=reason)
    session.add(row)
    session.flush()
    result.update({"decision_id": row.id, "supersedes": row.supersedes_id, "appeal_id": appeal_id})
    row.body = canonical(result)
    append(session, actor=actor, action="decision.supersede" if existing else "decision.record", row=row, at=when,
           details={"advanced": result["advanced"], "eliminated": result["eliminated"]})
    return result


def get(session: Session, key: str, stage_id: str, decision_id: int | None = None) -> Decision:
    if decision_id is not None:
        row = session.get(Decision, decision_id)
        if row is None or row.program_key != key or row.stage_id != stage_id:
            raise InputError(f"no decision {decision_id} for stage {stage_id!r} of program {key!r}")
        return row
    row = effective(session, key, stage_id)
    if row is None:
        raise InputError(f"stage {stage_id!r} of program {key!r} has no decision yet; run `simsa stage decide`")
    return row
