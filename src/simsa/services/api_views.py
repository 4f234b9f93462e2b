"""Read models the JSON API needs beyond what the other services return: programmes as stored (never a file path
from a request), score and gate records, the chain of decisions, pages of the audit log, and which programme a
record belongs to. Everything here reads; nothing writes.

Programme references from requests are only ever looked up in the store: `programs.resolve` would also read a
file named like the reference, which a web request must never be able to ask for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from simsa.audit.chain import Entry
from simsa.audit.log import utc_iso
from simsa.errors import InputError, NotFound
from simsa.program.diff import diff_programs, unified_text
from simsa.program.loader import LoadedProgram
from simsa.program.schema import ID_PATTERN, Gate, Program, Stage, Team
from simsa.services import decision_records, program_versions, programs
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.services.audit_seal import PUBLISHED, Sealer
from simsa.store.models import Appeal, AuditEntry, Decision, GateResult, ProgramVersion, Score
from simsa.timeutil import utc_text

MAX_ID = 2**31 - 1            # ids are 32-bit integers on PostgreSQL; larger ones name nothing
MAX_AUDIT_PAGE = 1000
BATCH_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_ID = re.compile(ID_PATTERN)




def _shown(value: str) -> str:
    """A reference as an error message quotes it: short, whatever was sent."""
    return repr(value if len(value) <= 70 else value[:67] + "...")


# --------------------------------------------------------------------------- programmes as stored


def stored_version(session: Session, key: str) -> tuple[ProgramVersion, LoadedProgram]:
    """The newest stored version of programme `key` and what it defines (what writes record against); NotFound
    for anything else, malformed keys included."""
    if not _ID.fullmatch(key):
        raise NotFound(f"no programme {_shown(key)} (GET /api/v1/programs lists them)")
    try:
        return programs.stored_version(session, key)
    except NotFound:
        raise NotFound(f"no programme {_shown(key)} (GET /api/v1/programs lists them)") from None


def latest_row(session: Session, key: str) -> ProgramVersion:
    return stored_version(session, key)[0]


def stored_program(session: Session, key: str) -> LoadedProgram:
    """Programme `key` as its newest stored version defines it (what the CLI resolves a loaded id to)."""
    return stored_version(session, key)[1]


def require_stage(program: Program, stage_id: str) -> Stage:
    try:
        return program.stage(stage_id)
    except KeyError:
        raise NotFound(f"programme {program.program.id!r} has no stage {_shown(stage_id)} (stages: "
                            f"{', '.join(s.id for s in program.stages)})") from None


def require_team(program: Program, team_id: str) -> Team:
    try:
        return program.team(team_id)
    except KeyError:
        raise NotFound(f"programme {program.program.id!r} has no team {_shown(team_id)} (teams: "
                            f"{', '.join(t.id for t in program.teams)})") from None


def require_gate(stage: Stage, gate_id: str) -> Gate:
    gate = next((g for g in stage.gates if g.id == gate_id), None)
    if gate is None:
        raise NotFound(f"stage {stage.id!r} has no gate {_shown(gate_id)} (gates: "
                            f"{', '.join(g.id for g in stage.gates) or 'none'})")
    return gate


@dataclass(frozen=True)
class VersionRef:
    id: int
    sha256: str
    loaded_at: str
    loaded_by: str

    @classmethod
    def of(cls, row: ProgramVersion) -> VersionRef:
        return cls(id=row.id, sha256=row.sha256, loaded_at=utc_text(row.loaded_at), loaded_by=row.loaded_by)

    def to_dict(self) -> dict:
        return {"id": self.id, "sha256": self.sha256, "loaded_at": self.loaded_at, "loaded_by": self.loaded_by}


@dataclass(frozen=True)
class ProgramSummary:
    """A programme in the store: its name (from its newest version), its time zone and its newest version."""

    id: str
    name: str
    name_ko: str | None
    timezone: str
    versions: int
    latest: VersionRef

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "name_ko": self.name_ko, "timezone": self.timezone,
                "versions": self.versions, "latest": self.latest.to_dict()}


def program_summaries(session: Session) -> list[ProgramSummary]:
    """Every programme in the store, by id."""
    counts = dict(session.execute(select(ProgramVersion.program_key, func.count())
                                  .group_by(ProgramVersion.program_key)).all())
    out = []
    for key in sorted(counts):
        row = programs.latest_version(session, key)
        assert row is not None
        info = programs.parse_stored(row).program.program
        out.append(ProgramSummary(id=key, name=info.name, name_ko=info.name_ko, timezone=info.timezone,
                                  versions=int(counts[key]), latest=VersionRef.of(row)))
    return out


def _stage_dict(stage: Stage) -> dict:
    return {
        "id": stage.id, "name": stage.name, "name_ko": stage.name_ko, "start": stage.start.isoformat(),
        "end": stage.end.isoformat(), "appeal_days": stage.appeal_days, "max_points": stage.max_points,
        "criteria": [{"id": c.id, "name": c.name, "name_ko": c.name_ko, "points": c.points, "parent": parent,
                      "depth": depth, "source": c.source, "normalisation": c.norm if c.is_leaf else None,
                      "missing": c.missing if c.is_leaf else None} for c, depth, parent in stage.walk()],
        "gates": [{"id": g.id, "name": g.name, "name_ko": g.name_ko, "kind": g.kind, "source": g.source,
                   "threshold": g.threshold} for g in stage.gates],
        "sources": stage.score_sources(),
        "participants": list(stage.participants) if stage.participants is not None else None,
        "elimination": stage.elimination.model_dump(mode="json"),
        "tie_breakers": list(stage.tie_breakers),
    }


@dataclass(frozen=True)
class ProgramDetail:
    """A programme's structure as its newest version defines it, and every stored version."""

    loaded: LoadedProgram
    latest: VersionRef
    versions: tuple[program_versions.VersionInfo, ...]

    def to_dict(self) -> dict:
        p = self.loaded.program
        return {
            "id": p.program.id, "name": p.program.name, "name_ko": p.program.name_ko,
            "organiser": p.program.organiser, "description": p.program.description, "timezone": p.program.timezone,
            "sha256": self.loaded.sha256, "version": self.latest.to_dict(),
            "teams": [{"id": t.id, "name": t.name, "name_ko": t.name_ko, "licence": t.licence,
                       "joins_at": t.joins_at, "models": list(t.models)} for t in p.teams],
            "stages": [_stage_dict(s) for s in p.stages],
            "suites": [{"id": s.id, "name": s.name, "limit": s.limit, "tasks": [t.model_dump(mode="json")
                                                                                for t in s.tasks]}
                       for s in p.suites],
            "versions": [v.to_dict() for v in self.versions],
            "definition": p.model_dump(mode="json"),
        }


def program_detail(session: Session, key: str) -> ProgramDetail:
    row = latest_row(session, key)
    return ProgramDetail(loaded=programs.parse_stored(row), latest=VersionRef.of(row),
                         versions=tuple(program_versions.list_versions(session, key)))


@dataclass(frozen=True)
class VersionText:
    """One stored version with its exact text (what its sha256 is the hash of)."""

    id: int
    program: str
    sha256: str
    loaded_at: str
    loaded_by: str
    source_path: str
    text: str

    def to_dict(self) -> dict:
        return {"id": self.id, "program": self.program, "sha256": self.sha256, "loaded_at": self.loaded_at,
                "loaded_by": self.loaded_by, "source_path": self.source_path, "text": self.text}


def version_text(session: Session, key: str, version_id: int) -> VersionText:
    latest_row(session, key)
    row = session.get(ProgramVersion, version_id) if 1 <= version_id <= MAX_ID else None
    if row is None or row.program_key != key:
        raise NotFound(f"programme {key!r} has no version {version_id}")
    return VersionText(id=row.id, program=row.program_key, sha256=row.sha256, loaded_at=utc_text(row.loaded_at),
                       loaded_by=row.loaded_by, source_path=row.source_path, text=row.text)


def _version_ref(versions: list[ProgramVersion], key: str, ref: str) -> ProgramVersion:
    """A stored version by id or sha256 prefix (4+ hex digits); never a file."""
    ref = ref.strip()
    if ref.isdigit() and len(ref) <= 10:
        hit = [v for v in versions if v.id == int(ref)]
    elif re.fullmatch(r"[0-9a-fA-F]{4,64}", ref):
        hit = [v for v in versions if v.sha256.startswith(ref.lower())]
    else:
        raise InputError(f"{_shown(ref)} is not a version id or a sha256 prefix (4+ hex digits)")
    if len(hit) != 1:
        known = ", ".join(f"{v.id} ({v.sha256[:12]})" for v in versions)
        what = "matches several versions" if hit else "is not a version"
        raise NotFound(f"{_shown(ref)} {what} of programme {key!r} (versions: {known})")
    return hit[0]


def version_diff(session: Session, key: str, from_ref: str | None = None, to_ref: str | None = None, *,
                 text: bool = False) -> program_versions.VersionDiff:
    """What changed between two stored versions (default: the previous and the newest), as `program diff`."""
    latest_row(session, key)
    versions = list(session.execute(select(ProgramVersion).where(ProgramVersion.program_key == key)
                                    .order_by(ProgramVersion.id)).scalars())
    after = _version_ref(versions, key, to_ref) if to_ref is not None else versions[-1]
    if from_ref is not None:
        before = _version_ref(versions, key, from_ref)
    else:
        older = [v for v in versions if v.id < after.id and v.sha256 != after.sha256]
        if not older:
            raise InputError(f"programme {key!r} has no version before version {after.id}; give from=VERSION")
        before = older[-1]
    sides = []
    for row in (before, after):
        label = f"version {row.id} ({row.sha256[:12]})"
        sides.append((program_versions.Side(label=label, sha256=row.sha256, version_id=row.id,
                                            path=row.source_path), programs.parse_stored(row)))
    (b_side, b_loaded), (a_side, a_loaded) = sides
    body = unified_text(b_loaded.text, a_loaded.text, b_side.label, a_side.label) if text else None
    return program_versions.VersionDiff(program=key, before=b_side, after=a_side,
                                        diff=diff_programs(b_loaded.program, a_loaded.program), text=body)


# --------------------------------------------------------------------------- scores and gate results


@dataclass(frozen=True)
class ScoreRecord:
    """One stored score row with its provenance; `current` when no later row supersedes it."""

    id: int
    stage: str
    team: str
    source: str
    rater: str
    value: float | None
    stderr: float | None
    run_id: str | None
    evidence: str | None
    note: str | None
    example: bool
    recorded_at: str
    recorded_by: str
    supersedes: int | None
    voided: bool
    reason: str | None
    batch_id: str | None
    current: bool

    @classmethod
    def of(cls, row: Any, current: bool) -> ScoreRecord:
        return cls(id=row.id, stage=row.stage_id, team=row.team_id, source=row.source, rater=row.rater,
                   value=row.value, stderr=row.stderr, run_id=row.run_id, evidence=row.evidence, note=row.note,
                   example=bool(row.example), recorded_at=utc_text(row.recorded_at), recorded_by=row.recorded_by,
                   supersedes=row.supersedes_id, voided=bool(row.voided), reason=row.reason,
                   batch_id=row.batch_id, current=current)

    def to_dict(self) -> dict:
        return {"id": self.id, "stage": self.stage, "team": self.team, "source": self.source, "rater": self.rater,
                "value": self.value, "stderr": self.stderr, "run_id": self.run_id, "evidence": self.evidence,
                "note": self.note, "example": self.example, "recorded_at": self.recorded_at,
                "recorded_by": self.recorded_by, "supersedes": self.supersedes, "voided": self.voided,
                "reason": self.reason, "batch_id": self.batch_id, "current": self.current}


@dataclass(frozen=True)
class CurrentScore:
    """The current value of one team's source: the mean over its raters' current scores."""

    team: str
    source: str
    value: float
    stderr: float | None
    n: int
    example: bool
    score_ids: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"team": self.team, "source": self.source, "value": self.value, "stderr": self.stderr, "n": self.n,
                "example": self.example, "score_ids": list(self.score_ids)}


def current_scores(session: Session, key: str, stage_id: str, team: str | None = None) -> list[CurrentScore]:
    out = []
    for team_id, sources in sorted(score_service.current(session, key, stage_id).items()):
        if team is not None and team_id != team:
            continue
        for source, s in sorted(sources.items()):
            out.append(CurrentScore(team=team_id, source=source, value=s.value, stderr=s.stderr, n=s.n,
                                    example=s.example, score_ids=tuple(s.score_ids)))
    return out


def score_records(session: Session, key: str, stage_id: str, team: str | None = None) -> list[ScoreRecord]:
    """Every row of the stage (superseded and voided ones included), oldest first."""
    rows = score_service.history(session, key, stage_id, team)
    superseded = {r.supersedes_id for r in rows if r.supersedes_id}
    return [ScoreRecord.of(r, r.id not in superseded) for r in rows]


@dataclass(frozen=True)
class GateRecord:
    """A team's current result of a recorded gate, with the id of the record it comes from."""

    team: str
    gate: str
    passed: bool
    evidence: str
    link: str | None
    example: bool
    record_id: int | None
    grade: str = "declared"
    override_reason: str | None = None

    def to_dict(self) -> dict:
        return {"team": self.team, "gate": self.gate, "passed": self.passed, "evidence": self.evidence,
                "link": self.link, "example": self.example, "record_id": self.record_id, "grade": self.grade,
                "override_reason": self.override_reason}


def current_gates(session: Session, key: str, stage_id: str, team: str | None = None) -> list[GateRecord]:
    out = []
    for team_id, gates in sorted(gate_service.current(session, key, stage_id).items()):
        if team is not None and team_id != team:
            continue
        for gate_id, g in sorted(gates.items()):
            out.append(GateRecord(team=team_id, gate=gate_id, passed=bool(g.passed), evidence=g.evidence,
                                  link=g.link, example=g.example, record_id=g.record_id, grade=g.grade,
                                  override_reason=g.override_reason))
    return out


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class DecisionSummary:
    """One decision of a stage's chain: when, whom it advanced and eliminated, what caused and replaced it."""

    id: int
    decided_at: str
    decided_by: str
    advanced: tuple[str, ...]
    eliminated: tuple[str, ...]
    appeal_id: int | None
    supersedes: int | None
    reason: str | None
    in_force: bool
    imported: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "decided_at": self.decided_at, "decided_by": self.decided_by,
                "advanced": list(self.advanced), "eliminated": list(self.eliminated), "appeal_id": self.appeal_id,
                "supersedes": self.supersedes, "reason": self.reason, "in_force": self.in_force,
                "imported": self.imported}


def decision_row(session: Session, key: str, stage_id: str, decision_id: int | None = None) -> Decision:
    """The stage's decision in force, or decision `decision_id` of the stage; NotFound when there is none."""
    if decision_id is not None:
        row = session.get(Decision, decision_id) if 1 <= decision_id <= MAX_ID else None
        if row is None or row.program_key != key or row.stage_id != stage_id:
            raise NotFound(f"no decision {decision_id} for stage {stage_id!r} of programme {key!r}")
        return row
    row = decision_records.effective(session, key, stage_id)
    if row is None:
        raise NotFound(f"stage {stage_id!r} of programme {key!r} has no decision yet")
    return row


def decision_chain(session: Session, key: str, stage_id: str) -> list[DecisionSummary]:
    """The decision in force and every decision it replaced, newest first (empty when undecided)."""
    head = decision_records.effective(session, key, stage_id)
    if head is None:
        return []
    out = []
    for row in [head, *decision_records.chain(session, head)]:
        body = decision_records.body(row)
        out.append(DecisionSummary(id=row.id, decided_at=utc_text(row.decided_at), decided_by=row.decided_by,
                                   advanced=tuple(body.get("advanced", ())),
                                   eliminated=tuple(body.get("eliminated", ())), appeal_id=row.appeal_id,
                                   supersedes=row.supersedes_id, reason=row.reason, in_force=row is head,
                                   imported=isinstance(body.get("imported"), dict)))
    return out


# --------------------------------------------------------------------------- owners of records


def appeal_program(session: Session, appeal_id: int) -> str:
    """The programme an appeal belongs to."""
    appeal = session.get(Appeal, appeal_id) if 1 <= appeal_id <= MAX_ID else None
    decision = session.get(Decision, appeal.decision_id) if appeal is not None else None
    if decision is None:
        raise NotFound(f"no appeal {appeal_id}")
    return decision.program_key


def score_program(session: Session, score_id: int) -> str:
    row = session.get(Score, score_id) if 1 <= score_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"no score {score_id}")
    return row.program_key


def gate_program(session: Session, result_id: int) -> str:
    row = session.get(GateResult, result_id) if 1 <= result_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"no gate result {result_id}")
    return row.program_key


def require_batch(session: Session, key: str, batch_id: str) -> str:
    """A score import of the programme, by batch id."""
    found = None
    if BATCH_PATTERN.fullmatch(batch_id):
        found = session.execute(select(Score.id).where(Score.program_key == key, Score.batch_id == batch_id)
                                .limit(1)).first()
    if found is None:
        raise NotFound(f"no score import {_shown(batch_id)} in programme {key!r}")
    return batch_id


# --------------------------------------------------------------------------- the audit log


@dataclass(frozen=True)
class AuditPage:
    """Entries after `after` in chain order, at most `limit`; `next` is the cursor of the following page."""

    entries: list[Entry]
    next: int | None
    head: str | None

    def to_dict(self) -> dict:
        return {"entries": [e.to_dict() for e in self.entries], "next": self.next, "head": self.head}


def _entry(r: Any) -> Entry:
    return Entry(seq=r.seq, at=utc_iso(r.at), actor=r.actor, action=r.action, entity=r.entity,
                 entity_id=r.entity_id, payload=r.payload, prev_hash=r.prev_hash, hash=r.hash)


def _entry_columns() -> tuple:
    t = AuditEntry.__table__.c
    return (t.seq, t.at, t.actor, t.action, t.entity, t.entity_id, t.payload, t.prev_hash, t.hash)


def audit_page(session: Session, after: int = 0, limit: int = MAX_AUDIT_PAGE, sealer: Sealer = PUBLISHED
               ) -> AuditPage:
    if not 1 <= limit <= MAX_AUDIT_PAGE:
        raise InputError(f"limit must be between 1 and {MAX_AUDIT_PAGE}, got {limit}")
    t = AuditEntry.__table__.c
    rows = session.execute(select(*_entry_columns()).where(t.seq > after).order_by(t.seq).limit(limit + 1)).all()
    entries = [sealer.shown(_entry(r)) for r in rows[:limit]]
    head = session.execute(select(t.hash).order_by(t.seq.desc()).limit(1)).scalar_one_or_none()
    return AuditPage(entries=entries, next=entries[-1].seq if len(rows) > limit else None, head=head)


def audit_entry(session: Session, seq: int, sealer: Sealer = PUBLISHED) -> Entry:
    t = AuditEntry.__table__.c
    row = session.execute(select(*_entry_columns()).where(t.seq == seq)).first() if 1 <= seq <= MAX_ID else None
    if row is None:
        raise NotFound(f"no audit entry {seq}")
    return sealer.shown(_entry(row))
