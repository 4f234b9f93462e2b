"""Recorded gate results (e.g. originality), kept with their evidence; a new record supersedes the old.

An originality gate can also be decided from a saved lineage comparison (`record_from_lineage`): the result is read
against the team's declaration and the gate's rules, and recorded through the same audited path as a hand-written
result, with the summary as evidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.files import FileReadError, read_limited
from simsa.program.gates import GateOutcome, originality_from_lineage
from simsa.program.grades import Grade, check_grade, refusal
from simsa.program.originality import (
    check_compare_result,
    check_verification,
    evidence_text,
    summary_grade,
    with_training_evidence,
)
from simsa.program.schema import Gate, Program, Team
from simsa.services import evidence_docs, programs
from simsa.services.programs import ProgramRef, VersionWarning
from simsa.store.models import GateResult, ProgramVersion

MAX_LINEAGE_BYTES = 64 << 20
MAX_LINK_CHARS = 2048  # the column's width


def recorded_gate(program: Program, stage_id: str, team_id: str, gate_id: str) -> tuple[Gate, Team]:
    """The stage's gate of kind `recorded` and the team, or a one-line error naming what is wrong."""
    try:
        stage = program.stage(stage_id)
        team = program.team(team_id)
    except KeyError as exc:
        raise InputError(f"unknown stage or team {exc.args[0]!r}") from None
    gate = next((g for g in stage.gates if g.id == gate_id), None)
    if gate is None:
        raise InputError(f"stage {stage_id!r} has no gate {gate_id!r} (gates: "
                         f"{', '.join(g.id for g in stage.gates) or 'none'})")
    if gate.kind != "recorded":
        raise InputError(f"gate {gate_id!r} is of kind {gate.kind}: its result is computed, not recorded")
    return gate, team


def record(session: Session, version: ProgramVersion, program: Program, *, stage_id: str, team_id: str,
           gate_id: str, passed: bool, evidence: str, link: str | None, actor: str,
           example: bool = False, batch_id: str | None = None, document_id: int | None = None,
           grade: Grade = "declared", override_reason: str | None = None) -> GateResult:
    check_result(program, stage_id=stage_id, team_id=team_id, gate_id=gate_id, evidence=evidence, link=link,
                 passed=passed, grade=grade, override_reason=override_reason)
    previous = _current(session, version.program_key, stage_id).get((team_id, gate_id))
    row = GateResult(program_key=version.program_key, stage_id=stage_id, team_id=team_id, gate_id=gate_id,
                     passed=passed, evidence=evidence.strip(), link=link, example=example, recorded_at=now_utc(),
                     recorded_by=actor, supersedes_id=previous.id if previous else None, voided=False,
                     batch_id=batch_id, document_id=document_id, grade=check_grade(grade),
                     override_reason=(override_reason or "").strip() or None)
    session.add(row)
    append(session, actor=actor, action="gate.supersede" if previous else "gate.record", row=row)
    return row


@dataclass(frozen=True)
class RecordedGate:
    """A gate result as recorded, and the result it superseded (None for the team's first result for the gate)."""

    id: int
    stage: str
    team: str
    gate: str
    passed: bool
    evidence: str
    link: str | None
    supersedes: int | None
    grade: Grade = "declared"
    override_reason: str | None = None

    @classmethod
    def of(cls, row: GateResult) -> RecordedGate:
        return cls(id=row.id, stage=row.stage_id, team=row.team_id, gate=row.gate_id, passed=bool(row.passed),
                   evidence=row.evidence, link=row.link, supersedes=row.supersedes_id, grade=row_grade(row),
                   override_reason=row.override_reason)

    def to_dict(self) -> dict:
        return {"id": self.id, "stage": self.stage, "team": self.team, "gate": self.gate, "passed": self.passed,
                "evidence": self.evidence, "link": self.link, "supersedes": self.supersedes, "grade": self.grade,
                "override_reason": self.override_reason}


def row_grade(row: GateResult) -> Grade:
    """A gate result's grade: as recorded, or declared for results recorded before grades (an admin's record)."""
    return check_grade(row.grade) if row.grade else "declared"


@dataclass(frozen=True)
class GateRecording:
    """One gate result recorded through `record_result`, with what registering the program version warned about."""

    recorded: RecordedGate
    warnings: tuple[VersionWarning, ...] = ()

    def to_dict(self) -> dict:
        return self.recorded.to_dict()


def record_result(session: Session, program_ref: ProgramRef, *, stage_id: str, team_id: str, gate_id: str,
                  passed: bool, evidence: str, actor: str, link: str | None = None,
                  example: bool = False, grade: Grade = "declared",
                  override_reason: str | None = None) -> GateRecording:
    """Record a gate result against a program (a .toml path or a loaded program's id), superseding the team's
    current result for that gate; the program's version is registered first if it is new.

    `grade` is how strong the evidence is; a result below the gate's `min_grade`, or a failure on heuristic
    evidence only, is refused unless `override_reason` records why an admin lets it stand."""
    target = programs.for_writing(session, program_ref, actor)
    row = record(session, target.version, target.program, stage_id=stage_id, team_id=team_id, gate_id=gate_id,
                 passed=passed, evidence=evidence, link=link, actor=actor, example=example, grade=grade,
                 override_reason=override_reason)
    session.flush()  # the row's id
    return GateRecording(RecordedGate.of(row), target.warnings)


def check_result(program: Program, *, stage_id: str, team_id: str, gate_id: str, evidence: str,
                 link: str | None, passed: bool = True, grade: Grade = "declared",
                 override_reason: str | None = None) -> None:
    """Refuse a gate result that cannot be recorded: not a recorded gate, no evidence, an oversized link, or
    evidence too weak for the gate with no admin's reason on the record."""
    gate, _team = recorded_gate(program, stage_id, team_id, gate_id)
    if not evidence.strip():
        raise InputError("a gate result needs evidence (what was checked and what was found)")
    if link is not None and len(link) > MAX_LINK_CHARS:
        raise InputError(f"--link is {len(link)} characters; at most {MAX_LINK_CHARS}")
    why = refusal(passed=passed, grade=check_grade(grade), minimum=gate.min_grade,
                  what=f"this {'pass' if passed else 'failure'} of gate {gate_id!r}")
    if why is not None and not (override_reason or "").strip():
        raise InputError(f"{why}; nothing recorded — record it on stronger evidence, or give the admin's reason "
                         "with --override-reason TEXT")


# --- originality from a lineage comparison


@dataclass(frozen=True)
class LineageFile:
    """A saved `simsa lineage compare --json` result: its data, the sha256 of the file's bytes, and its text (kept
    in the store as the gate's evidence document, so anyone can re-hash it)."""

    data: dict
    sha256: str
    text: str


def read_lineage_result(path: str | Path) -> tuple[dict, str]:
    """A saved `simsa lineage compare --json` result, validated, and the sha256 of the file's bytes."""
    found = read_lineage_file(path)
    return found.data, found.sha256


def _read_json_file(path: str | Path, what: str, check: Callable[[object], object]) -> LineageFile:
    """A saved JSON result, checked by ``check``, with the sha256 of its bytes and its text."""
    try:
        raw = read_limited(path, MAX_LINEAGE_BYTES, what)
    except FileReadError as exc:
        raise InputError(f"{path}: {exc}") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    except (ValueError, RecursionError):
        raise InputError(f"{path}: not a readable JSON document") from None
    try:
        check(data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return LineageFile(data=data, sha256=hashlib.sha256(raw).hexdigest(), text=raw.decode("utf-8"))


def read_lineage_file(path: str | Path) -> LineageFile:
    """Like `read_lineage_result`, keeping the file's text."""
    return _read_json_file(path, "lineage results", check_compare_result)


def read_training_evidence_file(path: str | Path) -> LineageFile:
    """A saved `simsa evidence verify --json` result, with its sha256 and text."""
    return _read_json_file(path, "training evidence results", check_verification)


def lineage_summary(program: Program, *, stage_id: str, team_id: str, gate_id: str, lineage: dict,
                    training: LineageFile | None = None) -> dict:
    """The originality summary of a lineage result for one team and gate, with the team's verified training
    evidence when given (nothing is written)."""
    gate, team = recorded_gate(program, stage_id, team_id, gate_id)
    summary = originality_from_lineage(gate, team, lineage)
    return summary if training is None else with_training_evidence(summary, training.data, training.sha256)


def lineage_decision(summary: dict, *, lineage_sha256: str | None, override: bool | None,
                     reason: str | None) -> tuple[bool, str]:
    """(passed, evidence) to record: the recommendation, or a reviewer's decision with its reason.

    "needs review" is never turned into a pass or fail silently; a person decides, and the evidence says so.
    """
    text = evidence_text(summary, lineage_sha256)
    if override is None:
        if summary["passed"] is None:
            first = summary["reasons"][0] if summary["reasons"] else "see the summary"
            raise InputError(f"the lineage evidence needs review ({first}); nothing recorded — decide after review "
                             "with --override pass|fail --reason TEXT")
        return bool(summary["passed"]), text
    why = (reason or "").strip()
    if not why:
        raise InputError("--override needs --reason (why the reviewer decided as they did)")
    decided = "PASS" if override else "FAIL"
    return override, (f"Decided {decided} after review: {why} (lineage recommendation: "
                      f"{summary['recommendation']}). {text}")


def record_from_lineage(session: Session, version: ProgramVersion, program: Program, *, stage_id: str, team_id: str,
                        gate_id: str, lineage: dict, lineage_sha256: str | None, link: str | None, actor: str,
                        override: bool | None = None, reason: str | None = None,
                        example: bool = False, lineage_text: str | None = None,
                        training: LineageFile | None = None) -> tuple[GateResult, dict]:
    """Decide a recorded gate from a lineage result and record it (audited, superseding the previous result).

    The comparison itself is stored as the result's evidence document: `lineage_text` (a file's exact text) or,
    for data that came without a file, its canonical JSON — whose sha256 the evidence then names.
    """
    summary = lineage_summary(program, stage_id=stage_id, team_id=team_id, gate_id=gate_id, lineage=lineage,
                              training=training)
    if training is not None:  # published beside the comparison, so anyone can re-hash what the gate read
        evidence_docs.store_document(session, training.text, kind=evidence_docs.TRAINING_EVIDENCE_KIND, actor=actor)
    text = lineage_text if lineage_text is not None else evidence_docs.lineage_text(lineage)
    if lineage_sha256 is None:
        lineage_sha256 = evidence_docs.digest(text)
    passed, evidence = lineage_decision(summary, lineage_sha256=lineage_sha256, override=override, reason=reason)
    document = evidence_docs.store_document(session, text, kind=evidence_docs.LINEAGE_KIND, actor=actor)
    row = record(session, version, program, stage_id=stage_id, team_id=team_id, gate_id=gate_id, passed=passed,
                 evidence=evidence, link=link, actor=actor, example=example, document_id=document.id,
                 grade=summary_grade(summary, passed), override_reason=reason if override is not None else None)
    return row, summary


@dataclass(frozen=True)
class LineageGate:
    """A gate decided from a lineage comparison: the originality summary, the result recorded (None on a dry run),
    and the sha256 of the comparison file."""

    summary: dict
    lineage_sha256: str | None
    recorded: RecordedGate | None = None
    warnings: tuple[VersionWarning, ...] = ()

    def to_dict(self) -> dict:
        return {"recorded": None if self.recorded is None else self.recorded.to_dict(), "summary": self.summary,
                "lineage_sha256": self.lineage_sha256}


def record_result_from_lineage(session: Session, program_ref: ProgramRef, *, stage_id: str, team_id: str,
                               gate_id: str, lineage: dict, lineage_sha256: str | None, link: str | None, actor: str,
                               override: bool | None = None, reason: str | None = None, example: bool = False,
                               dry_run: bool = False, lineage_text: str | None = None,
                               training: LineageFile | None = None) -> LineageGate:
    """Decide a recorded gate from a lineage result (as `read_lineage_result` reads it) and record it.

    With `dry_run` only the summary is computed: nothing is written and the program's version is not registered.
    """
    if dry_run:
        loaded = programs.resolve(session, program_ref)
        summary = lineage_summary(loaded.program, stage_id=stage_id, team_id=team_id, gate_id=gate_id,
                                  lineage=lineage, training=training)
        return LineageGate(summary=summary, lineage_sha256=lineage_sha256)
    target = programs.for_writing(session, program_ref, actor)
    row, summary = record_from_lineage(session, target.version, target.program, stage_id=stage_id, team_id=team_id,
                                       gate_id=gate_id, lineage=lineage, lineage_sha256=lineage_sha256, link=link,
                                       actor=actor, override=override, reason=reason, example=example,
                                       lineage_text=lineage_text, training=training)
    session.flush()  # the row's id
    return LineageGate(summary=summary, lineage_sha256=lineage_sha256, recorded=RecordedGate.of(row),
                       warnings=target.warnings)


# --- reading


def _current(session: Session, key: str, stage_id: str) -> dict[tuple[str, str], GateResult]:
    superseded = select(GateResult.supersedes_id).where(GateResult.supersedes_id.is_not(None))
    rows = session.execute(select(GateResult).where(GateResult.program_key == key, GateResult.stage_id == stage_id,
                                                    GateResult.id.not_in(superseded))
                           .order_by(GateResult.id)).scalars()
    return {(r.team_id, r.gate_id): r for r in rows}


def current(session: Session, key: str, stage_id: str) -> dict[str, dict[str, GateOutcome]]:
    """team → gate → the current recorded result (voided results count as none)."""
    out: dict[str, dict[str, GateOutcome]] = {}
    for (team, gate), row in _current(session, key, stage_id).items():
        if row.voided:  # a voided result leaves the gate without one
            continue
        out.setdefault(team, {})[gate] = GateOutcome(passed=bool(row.passed), evidence=row.evidence, link=row.link,
                                                     source="recorded", example=row.example, record_id=row.id,
                                                     grade=row_grade(row), override_reason=row.override_reason)
    return out
