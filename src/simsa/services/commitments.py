"""Recording a team's pre-registered commitments in the audit chain, and checking later submissions against them.

`record` writes one row per commitment (digests only) and one audit entry each. Committing the same content again
changes nothing; different content for a kind and label already committed is refused unless a reason is given, and
then supersedes the old row (both stay, and the chain says when and why). A stage already decided takes no new
commitment. `check` reads the current commitments and compares submitted files with them, naming each that differs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from simsa.audit.log import Write, append_many, now_utc, utc_iso
from simsa.errors import InputError
from simsa.evidence import CheckLine, Committed, Digest, FileDigest, check
from simsa.program.schema import Program, Stage
from simsa.services import programs
from simsa.services.programs import ProgramRef
from simsa.store.models import Commitment, Decision
from simsa.timeutil import as_utc, display_zone, format_local

MAX_REASON = 2000


def _stage_and_team(program: Program, stage_id: str | None, team_id: str, today: dt.date) -> Stage:
    try:
        program.team(team_id)
    except KeyError:
        raise InputError(f"unknown team {team_id!r} (teams: {', '.join(t.id for t in program.teams)})") from None
    if stage_id:
        try:
            return program.stage(stage_id)
        except KeyError:
            raise InputError(f"unknown stage {stage_id!r} (stages: {', '.join(s.id for s in program.stages)})"
                             ) from None
    return current_stage(program, today)


def current_stage(program: Program, today: dt.date) -> Stage:
    """The stage running on ``today`` (the programme's date), else the next to start; the last one after all ended."""
    for stage in program.stages:
        if today <= stage.end:
            return stage
    return program.stages[-1]


def _today(program: Program, now: dt.datetime) -> dt.date:
    return as_utc(now).astimezone(display_zone(program.program.timezone)).date()


def _decided(session: Session, key: str, stage_id: str) -> bool:
    return session.execute(select(exists().where(Decision.program_key == key, Decision.stage_id == stage_id))
                           ).scalar_one()


def current_rows(session: Session, key: str, stage_id: str, team_id: str | None = None) -> list[Commitment]:
    """The current commitment of every (team, kind, label) of a stage, in that order."""
    later = aliased(Commitment)
    query = select(Commitment).where(Commitment.program_key == key, Commitment.stage_id == stage_id,
                                     ~exists().where(later.supersedes_id == Commitment.id))
    if team_id is not None:
        query = query.where(Commitment.team_id == team_id)
    return list(session.execute(query.order_by(Commitment.team_id, Commitment.kind, Commitment.label)).scalars())


def committed(row: Commitment) -> Committed:
    files = tuple(FileDigest(str(p), str(s), int(b)) for p, s, b in json.loads(row.files))
    return Committed(kind=row.kind, label=row.label, sha256=row.sha256, bytes=int(row.bytes), method=row.method,
                     files=files, recorded_at=utc_iso(row.recorded_at), id=row.id)


@dataclass(frozen=True)
class RecordedCommitment:
    id: int | None  # None: unchanged, nothing written
    kind: str
    label: str
    sha256: str
    bytes: int
    method: str
    status: str  # recorded | amended | unchanged
    supersedes: int | None
    recorded_at: str  # UTC
    before_stage_start: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "label": self.label, "sha256": self.sha256, "bytes": self.bytes,
                "method": self.method, "status": self.status, "supersedes": self.supersedes,
                "recorded_at": self.recorded_at, "before_stage_start": self.before_stage_start}


@dataclass(frozen=True)
class Recording:
    program: str
    stage: str
    team: str
    stage_start: str  # the stage's first day, in the programme's time zone
    items: tuple[RecordedCommitment, ...]

    def to_dict(self) -> dict:
        return {"program": self.program, "stage": self.stage, "team": self.team, "stage_start": self.stage_start,
                "commitments": [i.to_dict() for i in self.items]}


def record(session: Session, ref: ProgramRef, *, team: str, digests: Sequence[Digest], actor: str,
           stage: str | None = None, reason: str = "", now: dt.datetime | None = None) -> Recording:
    """Record each digest as the team's commitment for the stage (see the module docstring for the rules)."""
    when = as_utc(now) if now else now_utc()
    writable = programs.for_writing(session, ref, actor)
    program, key = writable.program, writable.key
    st = _stage_and_team(program, stage, team, _today(program, when))
    if _decided(session, key, st.id):
        raise InputError(f"stage {st.id!r} is already decided: a commitment is made before a stage is judged")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is longer than {MAX_REASON} characters")
    labels = [(d.kind, d.label) for d in digests]
    twice = next((k for k in labels if labels.count(k) > 1), None)
    if twice:
        raise InputError(f"{twice[0]}:{twice[1]} is given twice; one file or directory per kind and label")
    current = {(r.kind, r.label): r for r in current_rows(session, key, st.id, team)}
    changed = [d for d in digests if (d.kind, d.label) in current and current[(d.kind, d.label)].sha256 != d.sha256]
    if changed and not reason:
        first = current[(changed[0].kind, changed[0].label)]
        raise InputError(f"team {team!r} already committed {first.kind}:{first.label} (#{first.id}, recorded "
                         f"{utc_iso(first.recorded_at)}, sha256 {first.sha256}); changing a commitment needs "
                         "--reason, and the change is recorded beside the original")
    before_start = _today(program, when) < st.start
    items: list[RecordedCommitment] = []
    writes: list[Write] = []
    for d in digests:
        previous = current.get((d.kind, d.label))
        if previous is not None and previous.sha256 == d.sha256:
            items.append(RecordedCommitment(None, d.kind, d.label, d.sha256, d.bytes, d.method, "unchanged",
                                            None, utc_iso(previous.recorded_at),
                                            _today(program, previous.recorded_at) < st.start))
            continue
        row = Commitment(program_key=key, stage_id=st.id, team_id=team, kind=d.kind, label=d.label,
                         sha256=d.sha256, bytes=d.bytes, method=d.method,
                         files=json.dumps([f.to_list() for f in d.files], separators=(",", ":")),
                         recorded_at=when, recorded_by=actor, supersedes_id=previous.id if previous else None,
                         reason=reason or None)
        session.add(row)
        session.flush()
        writes.append(Write("commitment.amend" if previous else "commitment.record", row=row))
        items.append(RecordedCommitment(row.id, d.kind, d.label, d.sha256, d.bytes, d.method,
                                        "amended" if previous else "recorded", previous.id if previous else None,
                                        utc_iso(when), before_start))
    append_many(session, actor=actor, writes=writes, at=when)
    return Recording(key, st.id, team, st.start.isoformat(), tuple(items))


@dataclass(frozen=True)
class CheckReport:
    program: str
    stage: str
    team: str
    lines: tuple[CheckLine, ...]

    @property
    def ok(self) -> bool:
        return not any(line.failed for line in self.lines)

    def to_dict(self) -> dict:
        return {"program": self.program, "stage": self.stage, "team": self.team, "ok": self.ok,
                "checks": [line.to_dict() for line in self.lines]}


def check_submission(session: Session, ref: ProgramRef, *, team: str, digests: Sequence[Digest],
                     stage: str | None = None, now: dt.datetime | None = None) -> CheckReport:
    """Submitted files against the team's current commitments for the stage (reads only)."""
    program = programs.resolve(session, ref).program
    key = program.program.id
    st = _stage_and_team(program, stage, team, _today(program, as_utc(now) if now else now_utc()))
    rows = current_rows(session, key, st.id, team)
    if not rows:
        raise InputError(f"team {team!r} has no commitment for stage {st.id!r}; nothing to check against")
    return CheckReport(key, st.id, team, tuple(check([committed(r) for r in rows], digests)))


def listing(session: Session, ref: ProgramRef, *, stage: str | None = None, team: str | None = None,
            now: dt.datetime | None = None) -> dict:
    """Every current commitment of a stage (optionally one team's), with local and UTC times and amendments."""
    program = programs.resolve(session, ref).program
    key = program.program.id
    today = _today(program, as_utc(now) if now else now_utc())
    if team is not None:
        st = _stage_and_team(program, stage, team, today)
    elif stage:
        st = _stage_and_team(program, stage, program.teams[0].id, today)
    else:
        st = current_stage(program, today)
    zone = program.program.timezone
    rows = current_rows(session, key, st.id, team)
    return {"program": key, "stage": st.id, "stage_start": st.start.isoformat(), "timezone": zone,
            "commitments": [{"id": r.id, "team": r.team_id, "kind": r.kind, "label": r.label, "sha256": r.sha256,
                             "bytes": int(r.bytes), "method": r.method, "files": len(json.loads(r.files)),
                             "recorded_at": utc_iso(r.recorded_at),
                             "recorded_at_local": format_local(r.recorded_at, zone),
                             "before_stage_start": _today(program, r.recorded_at) < st.start,
                             "recorded_by": r.recorded_by, "supersedes": r.supersedes_id, "reason": r.reason}
                            for r in rows]}


def entrant_commitments(session: Session, key: str, stage_id: str) -> dict[str, Committed]:
    """Each team's current ``entrant`` commitment for a stage (the weights its arena entrant must serve)."""
    return {r.team_id: committed(r) for r in current_rows(session, key, stage_id) if r.kind == "entrant"}


def team_commitments(session: Session, ref: ProgramRef, *, team: str, stage: str | None = None,
                     now: dt.datetime | None = None) -> list[Committed]:
    """A team's current commitments for a stage (default: the one running), for `evidence verify`."""
    program = programs.resolve(session, ref).program
    st = _stage_and_team(program, stage, team, _today(program, as_utc(now) if now else now_utc()))
    return [committed(r) for r in current_rows(session, program.program.id, st.id, team)]
