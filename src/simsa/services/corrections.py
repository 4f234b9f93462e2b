"""Corrections without deletion: voiding a score or gate result, undoing or replacing a whole score import.

Every correction is a new, audited row that supersedes what it corrects; nothing is updated or deleted, so the
history of a disputed score stays in the database and in the audit log. A voided key has no current value (a
decision then refuses or counts zero, as the criterion says) until a new score is recorded for it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import Write, append, append_many, now_utc
from simsa.errors import InputError
from simsa.services import programs
from simsa.services import scores as score_service
from simsa.services.programs import ProgramRef, VersionWarning
from simsa.store.models import GateResult, Score
from simsa.timeutil import utc_text

MAX_REASON_CHARS = 4000


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InputError("a correction needs --reason: say why the record is voided")
    if len(text) > MAX_REASON_CHARS:
        raise InputError(f"--reason is {len(text)} characters; at most {MAX_REASON_CHARS}")
    return text


def new_batch_id(when: dt.datetime) -> str:
    """A readable, unique import id: when it was made and a random tail (e.g. imp-20260116T000000Z-3fa9c2)."""
    return f"imp-{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ImportResult:
    """What one `score import` did: its batch id, the rows recorded, and the rows a replaced batch lost."""

    batch_id: str
    rows: list[score_service.RecordedScore]
    voided: list[Score] = field(default_factory=list)
    warnings: tuple[VersionWarning, ...] = ()  # what registering the program version warned about

    @property
    def superseded(self) -> int:
        return sum(1 for r in self.rows if r.supersedes_id)

    def to_dict(self) -> dict:
        return {"batch_id": self.batch_id, "imported": len(self.rows), "superseded": self.superseded,
                "score_ids": [r.id for r in self.rows], "voided": [r.supersedes_id for r in self.voided]}


def _void_row(previous: Score, reason: str, actor: str, when: dt.datetime, batch_id: str | None = None) -> Score:
    return Score(program_key=previous.program_key, stage_id=previous.stage_id, team_id=previous.team_id,
                 source=previous.source, rater=previous.rater, value=None, stderr=None, run_id=None, evidence=None,
                 note=None, example=previous.example, recorded_at=when, recorded_by=actor,
                 supersedes_id=previous.id, voided=True, reason=reason, batch_id=batch_id)


def import_scores(session: Session, program_ref: ProgramRef, items: list[score_service.ScoreInput], actor: str, *,
                  source_name: str, replace_batch: str | None = None, at: dt.datetime | None = None) -> ImportResult:
    """Record a file's scores (as `score_files.read_score_file` reads them) against a program (a .toml path or a
    loaded program's id) as one batch; with `replace_batch`, the file replaces that earlier import whole.

    The program's version is registered first if it is new.

    Replacing: every key the file has supersedes its current row as usual, and every row of the old batch that is
    still current and whose key the new file lacks is voided — so the result is as if the old file had been this
    one. Rows of the old batch already corrected by later writes are left alone.
    """
    target = programs.for_writing(session, program_ref, actor)
    version, program = target.version, target.program
    when = at or now_utc()
    if replace_batch is not None:
        old = _batch_rows(session, version.program_key, replace_batch)
        if not old:
            raise InputError(f"no score import {replace_batch!r} in program {version.program_key!r} "
                             "(see `simsa score list` or `simsa audit log --action score.import`)")
    batch_id = new_batch_id(when)
    rows = score_service.add(session, version, program, items, actor, at=when, batch_id=batch_id)
    voided: list[Score] = []
    if replace_batch is not None:
        kept = {(i.stage, i.team, i.source, i.rater) for i in items}
        current = score_service.current_rows(session, version.program_key, _stages(old))
        reason = f"import {replace_batch} replaced by import {batch_id} ({source_name}), which lacks this score"
        for row in old:
            key = score_service.score_key(row)
            if key not in kept and current.get(key) is row and not row.voided:
                voided.append(_void_row(row, reason, actor, when, batch_id))
        session.add_all(voided)
        append_many(session, actor=actor, at=when, writes=[Write("score.void", r) for r in voided])
    append(session, actor=actor, action="score.import", entity="batch", at=when,
           details={"batch_id": batch_id, "file": source_name, "rows": len(rows), "replaces": replace_batch,
                    "voided": len(voided)})
    return ImportResult(batch_id=batch_id, rows=rows, voided=voided, warnings=target.warnings)


def _stages(rows: list[Score]) -> list[str]:
    """The stages a batch touched: only their current rows need reading."""
    return sorted({r.stage_id for r in rows})


def _batch_rows(session: Session, key: str, batch_id: str) -> list[Score]:
    return list(session.execute(select(Score).where(Score.program_key == key, Score.batch_id == batch_id,
                                                    Score.voided.is_(False)).order_by(Score.id)).scalars())


@dataclass(frozen=True)
class VoidedScore:
    """A score voided: the void's own record id, the score it voids, and the key that has no value now."""

    id: int
    voids: int
    team: str
    source: str
    rater: str
    reason: str

    def to_dict(self) -> dict:
        return {"id": self.id, "voids": self.voids, "team": self.team, "source": self.source, "rater": self.rater,
                "reason": self.reason}


def _key(session: Session, program_ref: ProgramRef) -> str:
    return programs.resolve(session, program_ref).program.program.id


def void_score(session: Session, program_ref: ProgramRef, score_id: int, reason: str, actor: str) -> VoidedScore:
    """Void a current score of a program (a .toml path or a loaded program's id): its key then has no value until a
    new score is recorded."""
    key = _key(session, program_ref)
    reason = _reason(reason)
    row = session.get(Score, score_id)
    if row is None or row.program_key != key:
        raise InputError(f"no score {score_id} in program {key!r}")
    if row.voided:
        raise InputError(f"score {score_id} is itself a void (of score {row.supersedes_id}); record a new score "
                         "to give the key a value again")
    later = session.execute(select(Score).where(Score.supersedes_id == score_id)).scalar_one_or_none()
    if later is not None:
        what = "voided" if later.voided else "superseded"
        raise InputError(f"score {score_id} is not current: {what} by score {later.id} on "
                         f"{utc_text(later.recorded_at)}")
    void = _void_row(row, reason, actor, now_utc())
    session.add(void)
    append(session, actor=actor, action="score.void", row=void, at=void.recorded_at)
    session.flush()  # the void's id
    return VoidedScore(id=void.id, voids=score_id, team=void.team_id, source=void.source, rater=void.rater,
                       reason=reason)


@dataclass(frozen=True)
class UndoResult:
    """An import undone: keys given back their value from before the import, keys voided, rows changed since."""

    batch_id: str
    restored: list[Score]
    voided: list[Score]
    skipped: list[Score]

    def to_dict(self) -> dict:
        return {"batch_id": self.batch_id,
                "restored": [{"id": r.id, "supersedes": r.supersedes_id} for r in self.restored],
                "voided": [{"id": r.id, "supersedes": r.supersedes_id} for r in self.voided],
                "skipped": [{"id": r.id, "reason": "corrected after the import"} for r in self.skipped]}


def undo_import(session: Session, program_ref: ProgramRef, batch_id: str, reason: str, actor: str) -> UndoResult:
    """Undo a whole score import of a program (a .toml path or a loaded program's id): each of its rows still
    current gives way to the value it replaced, or to a void.

    A row already superseded by a later write is skipped (the later write stands) and reported.
    """
    key = _key(session, program_ref)
    reason = _reason(reason)
    rows = _batch_rows(session, key, batch_id)
    if not rows:
        raise InputError(f"no score import {batch_id!r} in program {key!r}")
    current = score_service.current_rows(session, key, _stages(rows))
    when = now_utc()
    note = f"undo of import {batch_id}: {reason}"
    restored, voided, skipped = [], [], []
    for row in rows:
        if current.get(score_service.score_key(row)) is not row:
            skipped.append(row)
            continue
        before = session.get(Score, row.supersedes_id) if row.supersedes_id else None
        if before is None or before.voided:
            voided.append(_void_row(row, note, actor, when))
            continue
        restored.append(Score(program_key=key, stage_id=row.stage_id, team_id=row.team_id, source=row.source,
                              rater=row.rater, value=before.value, stderr=before.stderr, run_id=before.run_id,
                              evidence=before.evidence, note=before.note, example=before.example, recorded_at=when,
                              recorded_by=actor, supersedes_id=row.id, voided=False, reason=note,
                              batch_id=before.batch_id, grade=before.grade))
    session.add_all(restored + voided)
    append_many(session, actor=actor, at=when, writes=[Write("score.restore", r) for r in restored]
                + [Write("score.void", r) for r in voided])
    append(session, actor=actor, action="score.undo_import", entity="batch", at=when,
           details={"batch_id": batch_id, "reason": reason, "restored": len(restored), "voided": len(voided),
                    "skipped": len(skipped)})
    session.flush()  # the new rows' ids
    return UndoResult(batch_id=batch_id, restored=restored, voided=voided, skipped=skipped)


@dataclass(frozen=True)
class VoidedGate:
    """A gate result voided: the void's own record id, the result it voids, and the team and gate left without one."""

    id: int
    voids: int
    team: str
    gate: str
    reason: str

    def to_dict(self) -> dict:
        return {"id": self.id, "voids": self.voids, "team": self.team, "gate": self.gate, "reason": self.reason}


def void_gate(session: Session, program_ref: ProgramRef, result_id: int, reason: str, actor: str) -> VoidedGate:
    """Void a current gate result of a program (a .toml path or a loaded program's id): the gate then has no result
    for the team (a decision refuses until one is recorded)."""
    key = _key(session, program_ref)
    reason = _reason(reason)
    row = session.get(GateResult, result_id)
    if row is None or row.program_key != key:
        raise InputError(f"no gate result {result_id} in program {key!r}")
    if row.voided:
        raise InputError(f"gate result {result_id} is itself a void (of result {row.supersedes_id})")
    later = session.execute(select(GateResult).where(GateResult.supersedes_id == result_id)).scalar_one_or_none()
    if later is not None:
        raise InputError(f"gate result {result_id} is not current: {'voided' if later.voided else 'superseded'} by "
                         f"result {later.id}")
    when = now_utc()
    void = GateResult(program_key=key, stage_id=row.stage_id, team_id=row.team_id, gate_id=row.gate_id, passed=None,
                      evidence=reason, link=None, example=row.example, recorded_at=when, recorded_by=actor,
                      supersedes_id=row.id, voided=True)
    session.add(void)
    append(session, actor=actor, action="gate.void", row=void, at=when)
    session.flush()  # the void's id
    return VoidedGate(id=void.id, voids=result_id, team=void.team_id, gate=void.gate_id, reason=reason)


@dataclass(frozen=True)
class VoidedRecord:
    """A void in force, for decisions and reports: what was voided, when, by whom and why."""

    kind: str  # "score" | "gate"
    id: int
    voids: int
    team: str
    what: str  # the score source or the gate
    rater: str  # the score's rater ("" for gates and sources without raters)
    reason: str
    at: str
    by: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "voids": self.voids, "team": self.team, "what": self.what,
                "rater": self.rater, "reason": self.reason, "at": self.at, "by": self.by}


def voided_in_force(session: Session, key: str, stage_id: str) -> list[VoidedRecord]:
    """The stage's keys whose current record is a void (a later record would have given them a value again)."""
    out: list[VoidedRecord] = []
    for row in score_service.current_rows(session, key, [stage_id]).values():
        if row.voided:
            out.append(VoidedRecord("score", row.id, row.supersedes_id or 0, row.team_id, row.source, row.rater,
                                    row.reason or "", utc_text(row.recorded_at), row.recorded_by))
    superseded = select(GateResult.supersedes_id).where(GateResult.supersedes_id.is_not(None))
    gates = session.execute(select(GateResult).where(GateResult.program_key == key, GateResult.stage_id == stage_id,
                                                     GateResult.voided.is_(True), GateResult.id.not_in(superseded)))
    for gate in gates.scalars():
        out.append(VoidedRecord("gate", gate.id, gate.supersedes_id or 0, gate.team_id, gate.gate_id, "", gate.evidence,
                                utc_text(gate.recorded_at), gate.recorded_by))
    return sorted(out, key=lambda v: (v.kind, v.id))
