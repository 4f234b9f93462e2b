"""Appeals: filed within the stage's window against the decision in force; an upheld appeal re-decides."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.program.decision_schema import DecisionDoc
from simsa.program.loader import LoadedProgram
from simsa.services import decision_records, decisions, programs
from simsa.services.programs import ProgramRef
from simsa.store.models import Appeal, AppealResolution, Decision
from simsa.timeutil import as_utc, utc_text


def file(session: Session, loaded: LoadedProgram, stage_id: str, team_id: str, grounds: str, actor: str,
         at: dt.datetime | None = None) -> Appeal:
    key = loaded.program.program.id
    decision = decision_records.get(session, key, stage_id)
    body = decision_records.body(decision)
    if isinstance(body.get("imported"), dict):
        raise InputError(f"decision {decision.id} of stage {stage_id!r} was imported from a published decision "
                         f"({body['imported'].get('file')}); appeals against it go to the body that made it")
    if team_id not in [t["team"] for t in body["teams"]]:
        raise InputError(f"team {team_id!r} did not take part in decision {decision.id} of stage {stage_id!r}")
    if not grounds.strip():
        raise InputError("an appeal needs grounds")
    when = as_utc(at) if at else now_utc()
    if when < as_utc(decision.decided_at):
        raise InputError(f"an appeal filed at {utc_text(when)} would predate decision {decision.id} "
                         f"({utc_text(decision.decided_at)}) that it appeals")
    deadline = dt.date.fromisoformat(body["appeal_deadline"])  # a day in the programme's time zone
    if when.astimezone(ZoneInfo(loaded.program.program.timezone)).date() > deadline:
        raise InputError(f"the appeal window of stage {stage_id!r} closed on {deadline.isoformat()} "
                         f"({loaded.program.stage(stage_id).appeal_days} days after decision {decision.id})")
    row = Appeal(decision_id=decision.id, team_id=team_id, grounds=grounds.strip(), filed_at=when, filed_by=actor)
    session.add(row)
    append(session, actor=actor, action="appeal.file", row=row, at=when)
    return row


def resolve(session: Session, loaded: LoadedProgram, appeal_id: int, upheld: bool, reason: str, actor: str,
            at: dt.datetime | None = None) -> tuple[AppealResolution, DecisionDoc | None]:
    """Reject, or uphold and re-decide the stage on the data now recorded (corrections entered beforehand)."""
    appeal = session.get(Appeal, appeal_id)
    if appeal is None:
        raise InputError(f"no appeal {appeal_id}")
    decision = session.get(Decision, appeal.decision_id)
    assert decision is not None
    if decision.program_key != loaded.program.program.id:
        raise InputError(f"appeal {appeal_id} belongs to program {decision.program_key!r}")
    done = session.execute(select(AppealResolution).where(AppealResolution.appeal_id == appeal_id)).scalar_one_or_none()
    if done is not None:
        raise InputError(f"appeal {appeal_id} was already resolved ({done.outcome}) on {done.resolved_at:%Y-%m-%d}")
    if not reason.strip():
        raise InputError("resolving an appeal needs a reason")
    when = as_utc(at) if at else now_utc()
    if when < as_utc(appeal.filed_at):
        raise InputError(f"a resolution at {utc_text(when)} would predate appeal {appeal_id} "
                         f"(filed {utc_text(appeal.filed_at)})")
    new: DecisionDoc | None = None
    if upheld:
        new = decisions.decide_and_store(session, loaded, decision.stage_id, actor, at=when, appeal_id=appeal_id,
                                         reason=f"appeal {appeal_id} upheld: {reason.strip()}")
    row = AppealResolution(appeal_id=appeal_id, outcome="upheld" if upheld else "rejected", reason=reason.strip(),
                           resolved_at=when, resolved_by=actor,
                           new_decision_id=new["decision_id"] if new else None)
    session.add(row)
    append(session, actor=actor, action="appeal.resolve", row=row, at=when)
    return row, new


@dataclass(frozen=True)
class FiledAppeal:
    """An appeal as filed: pending against the decision in force, and when (UTC) and in which display zone."""

    appeal_id: int
    decision_id: int
    team: str
    filed_at: dt.datetime
    timezone: str
    status: str = "pending"

    def to_dict(self) -> dict:
        return {"appeal_id": self.appeal_id, "decision_id": self.decision_id, "team": self.team,
                "status": self.status}


def file_appeal(session: Session, program_ref: ProgramRef, stage_id: str, team_id: str, grounds: str, actor: str,
                at: dt.datetime | None = None) -> FiledAppeal:
    """File a team's appeal against a stage's decision in force (program: a .toml path or a loaded program's id)."""
    loaded = programs.resolve(session, program_ref)
    row = file(session, loaded, stage_id, team_id, grounds, actor, at)
    session.flush()  # the appeal's id
    return FiledAppeal(appeal_id=row.id, decision_id=row.decision_id, team=row.team_id, filed_at=row.filed_at,
                       timezone=loaded.program.program.timezone)


@dataclass(frozen=True)
class ResolvedAppeal:
    """An appeal resolved: upheld or rejected, and the new decision when upholding it re-decided the stage."""

    appeal_id: int
    status: str  # "upheld" | "rejected"
    new_decision: DecisionDoc | None
    timezone: str

    def to_dict(self) -> dict:
        return {"appeal_id": self.appeal_id, "status": self.status, "new_decision": self.new_decision}


def resolve_appeal(session: Session, program_ref: ProgramRef, appeal_id: int, upheld: bool, reason: str, actor: str,
                   at: dt.datetime | None = None) -> ResolvedAppeal:
    """Reject an appeal, or uphold it and re-decide the stage (program: a .toml path or a loaded program's id)."""
    loaded = programs.resolve(session, program_ref)
    row, new = resolve(session, loaded, appeal_id, upheld, reason, actor, at)
    return ResolvedAppeal(appeal_id=appeal_id, status=row.outcome, new_decision=new,
                          timezone=loaded.program.program.timezone)


@dataclass(frozen=True)
class AppealRecord:
    """An appeal against a decision of a stage, with its resolution (the shape reports and pages read)."""

    id: int
    decision_id: int
    team: str
    grounds: str
    filed_at: str
    status: str                  # pending, upheld or rejected
    resolved_at: str | None
    resolution: str | None
    new_decision_id: int | None

    def to_dict(self) -> dict:
        return {"id": self.id, "decision_id": self.decision_id, "team": self.team, "grounds": self.grounds,
                "filed_at": self.filed_at, "status": self.status, "resolved_at": self.resolved_at,
                "resolution": self.resolution, "new_decision_id": self.new_decision_id}


def records(session: Session, key: str, stage_id: str) -> list[AppealRecord]:
    """Appeals against any decision of the stage, with their resolution, oldest first."""
    rows = session.execute(select(Appeal, AppealResolution).join(Decision, Decision.id == Appeal.decision_id)
                           .outerjoin(AppealResolution, AppealResolution.appeal_id == Appeal.id)
                           .where(Decision.program_key == key, Decision.stage_id == stage_id)
                           .order_by(Appeal.id)).all()
    return [AppealRecord(id=appeal.id, decision_id=appeal.decision_id, team=appeal.team_id, grounds=appeal.grounds,
                         filed_at=utc_text(appeal.filed_at), status=res.outcome if res else "pending",
                         resolved_at=utc_text(res.resolved_at) if res else None,
                         resolution=res.reason if res else None,
                         new_decision_id=res.new_decision_id if res else None)
            for appeal, res in rows]


def listing(session: Session, key: str, stage_id: str) -> list[dict]:
    """`records` as plain dicts, as the report renderer and the decision JSON take them."""
    return [r.to_dict() for r in records(session, key, stage_id)]
