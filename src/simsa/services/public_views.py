"""What the public pages (and the public API) show: programmes, stages, decisions, gate results, the audit log and
the files anyone may download, read from the store without writing.

Every identifier that arrives from a URL is checked here against the shape the program file allows (ids) or as a
bounded whole number, and an unknown one is `NotFound` (a 404, never a 500). Programmes are read from the versions
stored in the database only: a URL never names a file on the server.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from simsa.audit.chain import SEALED_ACTION, Entry
from simsa.audit.log import export, utc_iso, verify
from simsa.audit.trail import summarise
from simsa.errors import InputError, NotFound
from simsa.program.loader import LoadedProgram
from simsa.program.schema import ID_PATTERN, Stage
from simsa.report.formats import csv_cell
from simsa.services import decision_records, evidence_docs, program_versions, programs
from simsa.services import gates as gate_service
from simsa.services.appeals import AppealRecord
from simsa.services.appeals import records as appeal_records
from simsa.services.audit_seal import PUBLISHED, Sealer
from simsa.services.status import StageStatus, stage_status
from simsa.store.models import AuditEntry, Decision, EvidenceDocument, GateResult, ProgramVersion, Score
from simsa.timeutil import utc_text

if TYPE_CHECKING:  # the reports module is imported when a report is rendered
    from simsa.services.reports import ReportFormat

AUDIT_PAGE_SIZE = 50
MAX_ID = 2**63 - 1
_ID = re.compile(ID_PATTERN)
_NUMBER = re.compile(r"[0-9]{1,19}")
_ACTION_PREFIX = re.compile(r"[a-z0-9_.]{0,64}")
REPORT_MEDIA: dict[ReportFormat, str] = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8",
                                         "json": "application/json"}
REPORT_FORMATS: tuple[ReportFormat, ...] = tuple(REPORT_MEDIA)




# ---------------------------------------------------------------- checking what a URL says


def check_id(value: str, what: str) -> str:
    """A programme, stage, team or gate id as program files spell them; anything else cannot exist."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise NotFound(f"no {what} with that id")
    return value


def parse_number(value: str | int, what: str) -> int:
    """A positive whole number as a URL carries it (decimal digits only, at most 2^63 − 1)."""
    text = str(value)
    if not _NUMBER.fullmatch(text) or not 0 < int(text) <= MAX_ID:
        raise NotFound(f"no {what} {text[:40]!r}")
    return int(text)


def http_url(link: str | None) -> str | None:
    """The link itself when a browser may follow it safely (http or https with a host); else None."""
    if not link:
        return None
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return link.strip()


# ---------------------------------------------------------------- programmes


def stored_program(session: Session, key: str) -> LoadedProgram:
    """The latest stored version of programme `key` (never a file on disk)."""
    return programs.stored(session, check_id(key, "programme"))


@dataclass(frozen=True)
class TeamRef:
    id: str
    name: str
    name_ko: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "name_ko": self.name_ko}


@dataclass(frozen=True)
class TeamInfo:
    id: str
    name: str
    name_ko: str | None
    members: tuple[str, ...]
    models: tuple[str, ...]
    licence: str | None
    joins_at: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "name_ko": self.name_ko, "members": list(self.members),
                "models": list(self.models), "licence": self.licence, "joins_at": self.joins_at}


@dataclass(frozen=True)
class DecisionSummary:
    """A decision in a list: when, by whom, who advanced."""

    id: int
    decided_at: str  # UTC
    decided_by: str
    advanced: tuple[str, ...]
    eliminated: tuple[str, ...]
    title_holders: tuple[str, ...]
    appeal_id: int | None
    supersedes: int | None
    imported: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "decided_at": self.decided_at, "decided_by": self.decided_by,
                "advanced": list(self.advanced), "eliminated": list(self.eliminated),
                "title_holders": list(self.title_holders), "appeal_id": self.appeal_id,
                "supersedes": self.supersedes, "imported": self.imported}


@dataclass(frozen=True)
class StageSummary:
    id: str
    name: str
    name_ko: str | None
    start: str
    end: str
    appeal_days: int
    decision: DecisionSummary | None  # the decision in force
    decisions: int                    # how many decisions the stage has had
    appeals_pending: int

    @property
    def decided(self) -> bool:
        return self.decision is not None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "name_ko": self.name_ko, "start": self.start, "end": self.end,
                "appeal_days": self.appeal_days, "decided": self.decided,
                "decision_in_force": self.decision.to_dict() if self.decision else None,
                "decisions": self.decisions, "appeals_pending": self.appeals_pending}


@dataclass(frozen=True)
class VersionRef:
    id: int
    sha256: str
    loaded_at: str  # UTC
    loaded_by: str
    file_name: str  # the file's name only: where it lay on the loading machine is nobody's business
    decisions: tuple[int, ...]
    in_force: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"id": self.id, "sha256": self.sha256, "loaded_at": self.loaded_at, "loaded_by": self.loaded_by,
                "file_name": self.file_name, "decisions": list(self.decisions),
                "decisions_in_force": list(self.in_force)}


@dataclass(frozen=True)
class ProgramSummary:
    key: str
    name: str
    name_ko: str | None
    timezone: str
    stages: int
    decided_stages: int
    teams: tuple[TeamRef, ...]

    def to_dict(self) -> dict:
        return {"id": self.key, "name": self.name, "name_ko": self.name_ko, "timezone": self.timezone,
                "stages": self.stages, "decided_stages": self.decided_stages,
                "teams": [t.to_dict() for t in self.teams]}


@dataclass(frozen=True)
class ProgramOverview:
    key: str
    name: str
    name_ko: str | None
    organiser: str | None
    description: str | None
    timezone: str
    sha256: str  # the latest version
    teams: tuple[TeamInfo, ...]
    stages: tuple[StageSummary, ...]
    versions: tuple[VersionRef, ...]

    def to_dict(self) -> dict:
        return {"id": self.key, "name": self.name, "name_ko": self.name_ko, "organiser": self.organiser,
                "description": self.description, "timezone": self.timezone, "sha256": self.sha256,
                "teams": [t.to_dict() for t in self.teams], "stages": [s.to_dict() for s in self.stages],
                "versions": [v.to_dict() for v in self.versions]}


def _body(row: Decision) -> dict:
    try:
        body = json.loads(row.body)
    except ValueError:
        raise InputError(f"decision {row.id} as stored is not JSON; the database was altered "
                         "(/audit/verify names the row)") from None
    if not isinstance(body, dict):
        raise InputError(f"decision {row.id} as stored is not a JSON object; the database was altered")
    return body


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _decision_summary(row: Decision) -> DecisionSummary:
    body = _body(row)
    return DecisionSummary(id=row.id, decided_at=utc_text(row.decided_at), decided_by=row.decided_by,
                           advanced=_ids(body.get("advanced")), eliminated=_ids(body.get("eliminated")),
                           title_holders=_ids(body.get("title_holders")), appeal_id=row.appeal_id,
                           supersedes=row.supersedes_id, imported=isinstance(body.get("imported"), dict))


def list_programs(session: Session) -> list[ProgramSummary]:
    """Every programme in the store (its latest version), by id."""
    latest = session.execute(select(func.max(ProgramVersion.id)).group_by(ProgramVersion.program_key)).scalars()
    rows = [session.get(ProgramVersion, i) for i in latest]
    decided = {key: count for key, count in session.execute(
        select(Decision.program_key, func.count(func.distinct(Decision.stage_id))).group_by(Decision.program_key))}
    out = []
    for row in sorted((r for r in rows if r is not None), key=lambda r: r.program_key):
        program = programs.parse_stored(row).program
        out.append(ProgramSummary(
            key=row.program_key, name=program.program.name, name_ko=program.program.name_ko,
            timezone=program.program.timezone, stages=len(program.stages),
            decided_stages=int(decided.get(row.program_key, 0)),
            teams=tuple(TeamRef(t.id, t.name, t.name_ko) for t in program.teams)))
    return out


def _stage_summary(session: Session, key: str, stage: Stage) -> StageSummary:
    row = decision_records.effective(session, key, stage.id)
    count = session.execute(select(func.count()).select_from(Decision)
                            .where(Decision.program_key == key, Decision.stage_id == stage.id)).scalar_one()
    pending = sum(1 for a in appeal_records(session, key, stage.id) if a.status == "pending")
    return StageSummary(id=stage.id, name=stage.name, name_ko=stage.name_ko, start=stage.start.isoformat(),
                        end=stage.end.isoformat(), appeal_days=stage.appeal_days,
                        decision=_decision_summary(row) if row is not None else None, decisions=int(count),
                        appeals_pending=pending)


def program_overview(session: Session, key: str) -> ProgramOverview:
    """A programme as its latest version defines it, with each stage's state and every version loaded."""
    loaded = stored_program(session, key)
    program = loaded.program
    info = program.program
    teams = tuple(TeamInfo(id=t.id, name=t.name, name_ko=t.name_ko, members=tuple(t.members),
                           models=tuple(t.models), licence=t.licence, joins_at=t.joins_at) for t in program.teams)
    stages = tuple(_stage_summary(session, info.id, s) for s in program.stages)
    versions = tuple(VersionRef(id=v.id, sha256=v.sha256, loaded_at=v.loaded_at, loaded_by=v.loaded_by,
                                file_name=PurePath(v.source_path.replace("\\", "/")).name,
                                decisions=v.decisions, in_force=v.in_force)
                     for v in program_versions.list_versions(session, info.id))
    return ProgramOverview(key=info.id, name=info.name, name_ko=info.name_ko, organiser=info.organiser,
                           description=info.description, timezone=info.timezone, sha256=loaded.sha256,
                           teams=teams, stages=stages, versions=versions)


# ---------------------------------------------------------------- a stage and its decisions


@dataclass(frozen=True)
class ProgramHead:
    key: str
    name: str
    name_ko: str | None
    timezone: str

    def to_dict(self) -> dict:
        return {"id": self.key, "name": self.name, "name_ko": self.name_ko, "timezone": self.timezone}


@dataclass(frozen=True)
class HistoryItem:
    """A decision the shown one replaced, in the shape the report renderer reads."""

    decision_id: int
    decided_at: str
    advanced: tuple[str, ...]
    eliminated: tuple[str, ...]
    appeal_id: int | None

    def to_dict(self) -> dict:
        return {"decision_id": self.decision_id, "decided_at": self.decided_at, "advanced": list(self.advanced),
                "eliminated": list(self.eliminated), "appeal_id": self.appeal_id}


AppealItem = AppealRecord  # an appeal as the stage page shows it


@dataclass(frozen=True)
class DecisionDoc:
    """One stored decision: its JSON as recorded, and where it stands in the stage's chain of decisions."""

    id: int
    decided_at: str
    decided_by: str
    reason: str | None
    supersedes: int | None
    superseded_by: int | None  # None while in force
    appeal_id: int | None
    body: dict = field(compare=False)

    @property
    def in_force(self) -> bool:
        return self.superseded_by is None

    def to_dict(self) -> dict:
        return {"id": self.id, "decided_at": self.decided_at, "decided_by": self.decided_by, "reason": self.reason,
                "supersedes": self.supersedes, "superseded_by": self.superseded_by, "appeal_id": self.appeal_id,
                "in_force": self.in_force, "decision": self.body}


@dataclass(frozen=True)
class StagePage:
    """A stage: its decision in force (or the decision asked for) with appeals and history, or, while nothing is
    decided, what is recorded and missing."""

    program: ProgramHead
    stage: StageSummary
    decision: DecisionDoc | None
    appeals: tuple[AppealItem, ...]
    history: tuple[HistoryItem, ...]   # decisions the shown one replaced, oldest first
    status: StageStatus | None         # only while the stage has no decision
    gates: tuple[str, ...]             # the stage's gate ids, in file order
    teams: tuple[TeamRef, ...] = ()    # the programme's teams, for names

    def team(self, team_id: str) -> TeamRef:
        """The team's names (an id the programme no longer lists is its own name)."""
        return next((t for t in self.teams if t.id == team_id), TeamRef(team_id, team_id))

    def to_dict(self) -> dict:
        return {"program": self.program.to_dict(), "stage": self.stage.to_dict(),
                "decision": self.decision.to_dict() if self.decision else None,
                "appeals": [a.to_dict() for a in self.appeals], "history": [h.to_dict() for h in self.history],
                "status": self.status.to_dict() if self.status else None, "gates": list(self.gates)}


def _head(loaded: LoadedProgram) -> ProgramHead:
    info = loaded.program.program
    return ProgramHead(key=info.id, name=info.name, name_ko=info.name_ko, timezone=info.timezone)


def _stage_of(session: Session, loaded: LoadedProgram, stage_id: str) -> Stage:
    check_id(stage_id, "stage")
    try:
        return loaded.program.stage(stage_id)
    except KeyError:
        raise NotFound(f"programme {loaded.program.program.id!r} has no stage {stage_id!r}") from None


def _decision_row(session: Session, key: str, stage_id: str, decision_id: int | None) -> Decision | None:
    if decision_id is None:
        return decision_records.effective(session, key, stage_id)
    row = session.get(Decision, decision_id)
    if row is None or row.program_key != key or row.stage_id != stage_id:
        raise NotFound(f"no decision {decision_id} of stage {stage_id!r}")
    return row


def _doc(session: Session, row: Decision) -> DecisionDoc:
    later = session.execute(select(Decision.id).where(Decision.supersedes_id == row.id)).scalar_one_or_none()
    return DecisionDoc(id=row.id, decided_at=utc_text(row.decided_at), decided_by=row.decided_by, reason=row.reason,
                       supersedes=row.supersedes_id, superseded_by=later, appeal_id=row.appeal_id, body=_body(row))


def _history(session: Session, row: Decision) -> tuple[HistoryItem, ...]:
    out = []
    for old in decision_records.chain(session, row):
        body = _body(old)
        out.append(HistoryItem(decision_id=old.id, decided_at=str(body.get("decided_at") or utc_text(old.decided_at)),
                               advanced=_ids(body.get("advanced")), eliminated=_ids(body.get("eliminated")),
                               appeal_id=old.appeal_id))
    return tuple(sorted(out, key=lambda h: h.decision_id))


def _appeals(session: Session, key: str, stage_id: str) -> tuple[AppealItem, ...]:
    return tuple(appeal_records(session, key, stage_id))


def stage_page(session: Session, key: str, stage_id: str, decision_id: str | int | None = None) -> StagePage:
    """The stage with its decision in force, or with decision `decision_id` (a past one) when given."""
    loaded = stored_program(session, key)
    stage = _stage_of(session, loaded, stage_id)
    program_key = loaded.program.program.id
    number = parse_number(decision_id, "decision") if decision_id is not None else None
    row = _decision_row(session, program_key, stage.id, number)
    status = stage_status(session, loaded, stage.id) if row is None else None
    return StagePage(program=_head(loaded), stage=_stage_summary(session, program_key, stage),
                     decision=_doc(session, row) if row is not None else None,
                     appeals=_appeals(session, program_key, stage.id),
                     history=_history(session, row) if row is not None else (), status=status,
                     gates=tuple(g.id for g in stage.gates),
                     teams=tuple(TeamRef(t.id, t.name, t.name_ko) for t in loaded.program.teams))


# ---------------------------------------------------------------- one gate result


@dataclass(frozen=True)
class GateRecord:
    """One recorded gate result (or a void of one), as stored."""

    id: int
    passed: bool | None
    voided: bool
    evidence: str
    link: str | None
    example: bool
    recorded_at: str  # UTC
    recorded_by: str
    supersedes: int | None
    batch: str | None
    current: bool
    grade: str = "declared"
    override_reason: str | None = None

    @property
    def href(self) -> str | None:
        """The link as a browser may follow it (http/https only)."""
        return http_url(self.link)

    def to_dict(self) -> dict:
        return {"id": self.id, "passed": self.passed, "voided": self.voided, "evidence": self.evidence,
                "link": self.link, "example": self.example, "recorded_at": self.recorded_at,
                "recorded_by": self.recorded_by, "supersedes": self.supersedes, "batch": self.batch,
                "current": self.current, "grade": self.grade, "override_reason": self.override_reason}


@dataclass(frozen=True)
class EvidenceRef:
    """The stored document a gate result was decided from (a lineage comparison): its sha256 and size, which
    anyone can check against the download and against the hash the evidence text names."""

    id: int
    kind: str
    sha256: str
    bytes: int
    media_type: str
    stored_at: str  # UTC
    stored_by: str

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "sha256": self.sha256, "bytes": self.bytes,
                "media_type": self.media_type, "stored_at": self.stored_at, "stored_by": self.stored_by}


def _evidence_ref(doc: EvidenceDocument) -> EvidenceRef:
    return EvidenceRef(id=doc.id, kind=doc.kind, sha256=doc.sha256, bytes=len(doc.content.encode("utf-8")),
                       media_type=doc.media_type, stored_at=utc_text(doc.stored_at), stored_by=doc.stored_by)


@dataclass(frozen=True)
class GatePage:
    program: ProgramHead
    stage: StageSummary
    team: TeamRef
    gate: str
    gate_name: str
    gate_name_ko: str | None
    kind: str
    description: str | None
    records: tuple[GateRecord, ...]   # newest first; the first is current unless the gate is computed
    in_decision: dict | None          # the gate's result for the team in the decision in force
    decision_id: int | None
    # The lineage comparison behind the current result, as data (an empty dict when the stored document no longer
    # reads as one: the page then says it cannot be shown and offers the download), and the document itself.
    lineage: dict | None = field(default=None, compare=False)
    document: EvidenceRef | None = None

    @property
    def current(self) -> GateRecord | None:
        return next((r for r in self.records if r.current), None)

    def to_dict(self) -> dict:
        return {"program": self.program.to_dict(), "stage": self.stage.to_dict(), "team": self.team.to_dict(),
                "gate": self.gate, "gate_name": self.gate_name, "gate_name_ko": self.gate_name_ko,
                "kind": self.kind, "description": self.description, "records": [r.to_dict() for r in self.records],
                "in_decision": self.in_decision, "decision_id": self.decision_id,
                "lineage_attached": self.document is not None,
                "document": self.document.to_dict() if self.document is not None else None}


def _lineage(session: Session, key: str, stage_id: str, team_id: str,
             gate_id: str) -> tuple[EvidenceRef | None, dict | None]:
    """The stored lineage document behind the gate's current result and its data ({} when it no longer parses)."""
    doc = evidence_docs.document_for_gate(session, key, stage_id, team_id, gate_id)
    if doc is None:
        return None, None
    try:
        data = evidence_docs.lineage_of(doc)
    except InputError:
        data = {}
    return _evidence_ref(doc), data


def gate_page(session: Session, key: str, stage_id: str, team_id: str, gate_id: str) -> GatePage:
    """One team's result of one gate in full: every record (superseded and voided ones too), the decision's view
    of it, and the lineage comparison behind it when one is attached."""
    loaded = stored_program(session, key)
    program = loaded.program
    stage = _stage_of(session, loaded, stage_id)
    check_id(team_id, "team")
    check_id(gate_id, "gate")
    try:
        team = program.team(team_id)
    except KeyError:
        raise NotFound(f"programme {program.program.id!r} has no team {team_id!r}") from None
    gate = next((g for g in stage.gates if g.id == gate_id), None)
    if gate is None:
        raise NotFound(f"stage {stage.id!r} has no gate {gate_id!r}")
    pkey = program.program.id
    rows = session.execute(select(GateResult).where(GateResult.program_key == pkey, GateResult.stage_id == stage.id,
                                                    GateResult.team_id == team.id, GateResult.gate_id == gate.id)
                           .order_by(GateResult.id.desc())).scalars().all()
    superseded = {r.supersedes_id for r in rows if r.supersedes_id is not None}
    records = tuple(GateRecord(id=r.id, passed=r.passed, voided=bool(r.voided), evidence=r.evidence, link=r.link,
                               example=bool(r.example), recorded_at=utc_text(r.recorded_at),
                               recorded_by=r.recorded_by, supersedes=r.supersedes_id, batch=r.batch_id,
                               current=r.id not in superseded, grade=gate_service.row_grade(r),
                               override_reason=r.override_reason) for r in rows)
    in_force = decision_records.effective(session, pkey, stage.id)
    document, lineage = _lineage(session, pkey, stage.id, team.id, gate.id)
    in_decision = None
    if in_force is not None:
        for entry in _body(in_force).get("teams") or []:
            if isinstance(entry, dict) and entry.get("team") == team.id:
                listed = entry.get("gates")
                gates = listed if isinstance(listed, dict) else {}
                found = gates.get(gate.id)
                in_decision = found if isinstance(found, dict) else None
    return GatePage(program=_head(loaded), stage=_stage_summary(session, pkey, stage),
                    team=TeamRef(team.id, team.name, team.name_ko), gate=gate.id, gate_name=gate.name,
                    gate_name_ko=gate.name_ko, kind=gate.kind, description=gate.description, records=records,
                    in_decision=in_decision, decision_id=in_force.id if in_force is not None else None,
                    lineage=lineage, document=document)


# ---------------------------------------------------------------- the audit log


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: str  # UTC, as recorded
    actor: str
    action: str
    entity: str
    entity_id: int | None
    summary: str
    hash: str

    def to_dict(self) -> dict:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action, "entity": self.entity,
                "entity_id": self.entity_id, "summary": self.summary, "hash": self.hash}


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...]  # newest first
    page: int
    pages: int
    matched: int
    total: int
    action: str
    actor: str
    per_page: int = AUDIT_PAGE_SIZE

    def to_dict(self) -> dict:
        return {"entries": [r.to_dict() for r in self.rows], "page": self.page, "pages": self.pages,
                "matched": self.matched, "total": self.total, "per_page": self.per_page,
                "filter": {"action": self.action, "actor": self.actor}}


def _entry(r: Any) -> Entry:
    return Entry(seq=r.seq, at=utc_iso(r.at), actor=r.actor, action=r.action, entity=r.entity,
                 entity_id=r.entity_id, payload=r.payload, prev_hash=r.prev_hash, hash=r.hash)


def _row(r: Any, sealer: Sealer = PUBLISHED) -> AuditRow:
    e = sealer.shown(_entry(r))
    summary = e.sealed if e.sealed is not None else summarise(e)
    return AuditRow(seq=r.seq, at=utc_text(r.at), actor=e.actor, action=e.action, entity=e.entity,
                    entity_id=e.entity_id, summary=summary, hash=r.hash)


def audit_filter(action: str | None, actor: str | None) -> tuple[str, str]:
    """The audit list's filters, refused (400) unless they could name an action prefix and an actor."""
    action = (action or "").strip()
    actor = (actor or "").strip()
    if not _ACTION_PREFIX.fullmatch(action):
        raise InputError("action: an action prefix is lower-case letters, digits, '_' and '.' (e.g. score.)")
    if len(actor) > 128 or any(ord(c) < 32 or c == "\x7f" for c in actor):
        raise InputError("actor: at most 128 printable characters")
    return action, actor


def audit_page(session: Session, page: str | int | None = None, action: str | None = None,
               actor: str | None = None, per_page: int = AUDIT_PAGE_SIZE, sealer: Sealer = PUBLISHED) -> AuditPage:
    """One page of the log, newest first, optionally only actions starting with `action` and entries of `actor`;
    entries `sealer` withholds are shown sealed (and never matched by a filter on what they withhold).

    Reads one page of entries (LIMIT/OFFSET on the primary key), never the whole log.
    """
    action, actor = audit_filter(action, actor)
    if page is None or page == "":
        number = 1
    else:
        text = str(page)
        if not _NUMBER.fullmatch(text) or not 0 < int(text) <= 10**9:
            raise InputError("page: a whole number from 1")
        number = int(text)
    t = AuditEntry.__table__.c
    where = []
    if action:
        where.append(t.action.startswith(action, autoescape=True))
    if actor:
        where.append(t.actor == actor)
    total = int(session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())
    matched = total if not where else int(session.execute(select(func.count()).select_from(AuditEntry)
                                                          .where(*where)).scalar_one())
    pages = max(1, -(-matched // per_page))
    if number > pages:
        raise NotFound(f"the audit log has {pages} page(s) for this filter")
    result = session.execute(select(t.seq, t.at, t.actor, t.action, t.entity, t.entity_id, t.payload, t.prev_hash,
                                    t.hash).where(*where).order_by(t.seq.desc())
                             .limit(per_page).offset((number - 1) * per_page))
    rows = tuple(_row(r, sealer) for r in result)
    if action or actor:  # a filter must not reveal what a sealed entry withholds
        rows = tuple(r for r in rows if r.action != SEALED_ACTION)
    return AuditPage(rows=rows, page=number, pages=pages, matched=matched, total=total, action=action, actor=actor,
                     per_page=per_page)


@dataclass(frozen=True)
class AuditEntryView:
    row: AuditRow
    prev_hash: str
    payload: str          # pretty-printed JSON (or the stored text when it is not JSON)
    payload_is_json: bool
    previous: int | None  # neighbouring seqs
    next: int | None

    def to_dict(self) -> dict:
        return {**self.row.to_dict(), "prev_hash": self.prev_hash, "payload": self.payload,
                "payload_is_json": self.payload_is_json, "previous": self.previous, "next": self.next}


def audit_entry(session: Session, seq: str | int, sealer: Sealer = PUBLISHED) -> AuditEntryView:
    number = parse_number(seq, "audit entry")
    t = AuditEntry.__table__.c
    r = session.execute(select(t.seq, t.at, t.actor, t.action, t.entity, t.entity_id, t.payload, t.prev_hash, t.hash)
                        .where(t.seq == number)).first()
    if r is None:
        raise NotFound(f"no audit entry {number}")
    entry = sealer.shown(_entry(r))
    try:
        payload, is_json = json.dumps(json.loads(entry.payload), ensure_ascii=False, indent=2, sort_keys=True), True
    except ValueError:
        payload, is_json = entry.payload, False
    previous = session.execute(select(func.max(t.seq)).where(t.seq < number)).scalar_one_or_none()
    following = session.execute(select(func.min(t.seq)).where(t.seq > number)).scalar_one_or_none()
    return AuditEntryView(row=_row(r, sealer), prev_hash=entry.prev_hash, payload=payload, payload_is_json=is_json,
                          previous=previous, next=following)


@dataclass(frozen=True)
class VerifyProblem:
    kind: str
    message: str
    seq: int | None
    table: str | None
    row: int | None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "seq": self.seq, "table": self.table, "row": self.row}


@dataclass(frozen=True)
class VerifyView:
    ok: bool
    entries: int
    head: str
    problems: tuple[VerifyProblem, ...]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "head": self.head,
                "problems": [p.to_dict() for p in self.problems]}


def audit_verification(session: Session) -> VerifyView:
    """`simsa audit verify` on the live database: the chain, every domain row against the log, the schema."""
    result = verify(session)
    problems = tuple(VerifyProblem(kind=p.kind, message=p.message, seq=p.seq, table=p.table, row=p.row_id)
                     for p in result.problems)
    return VerifyView(ok=result.ok, entries=result.entries, head=result.head, problems=problems)


# ---------------------------------------------------------------- downloads


@dataclass(frozen=True)
class Download:
    filename: str
    media_type: str
    content: bytes = field(repr=False)

    def to_dict(self) -> dict:
        return {"filename": self.filename, "media_type": self.media_type, "bytes": len(self.content)}


def audit_export(session: Session, sealer: Sealer = PUBLISHED) -> Download:
    try:
        doc = export(session, sealer.shown)
    except ValueError:
        raise InputError("an audit entry's payload is not JSON: the log was altered (/audit/verify names it)"
                         ) from None
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    return Download("simsa-audit.json", "application/json", text.encode("utf-8"))


def _stage_decision(session: Session, key: str, stage_id: str, decision_id: str | int | None,
                    ) -> tuple[LoadedProgram, Decision]:
    loaded = stored_program(session, key)
    pkey = loaded.program.program.id
    check_id(stage_id, "stage")
    number = parse_number(decision_id, "decision") if decision_id not in (None, "") else None
    if number is None:
        _stage_of(session, loaded, stage_id)
    row = _decision_row(session, pkey, stage_id, number)
    if row is None:
        raise NotFound(f"stage {stage_id!r} of programme {pkey!r} has no decision yet")
    return loaded, row


def decision_download(session: Session, key: str, stage_id: str, decision_id: str | int | None = None) -> Download:
    """The decision JSON exactly as stored (the decision in force, or decision `decision_id`)."""
    loaded, row = _stage_decision(session, key, stage_id, decision_id)
    name = f"{loaded.program.program.id}-{row.stage_id}-decision-{row.id}.json"
    return Download(name, "application/json", row.body.encode("utf-8"))


def report_download(session: Session, key: str, stage_id: str, fmt: str, lang: str | None = "both",
                    decision_id: str | int | None = None) -> Download:
    """The stage report (as `simsa report` writes it) in `fmt` and `lang` (en, ko or both)."""
    from simsa.services import reports

    if fmt not in REPORT_FORMATS:
        raise NotFound(f"no report format {fmt[:20]!r}")
    language = lang or "both"
    if language not in ("en", "ko", "both"):
        raise InputError("lang: en, ko or both")
    loaded, row = _stage_decision(session, key, stage_id, decision_id)
    # The stored programme itself is the reference: a URL's words never reach the file system.
    text = reports.render(session, loaded, row.stage_id, fmt, language,
                          decision_id=None if decision_id in (None, "") else row.id)
    suffix = "" if decision_id in (None, "") else f"-decision-{row.id}"
    name = f"{row.program_key}-{row.stage_id}-report{suffix}-{language}.{fmt}"
    return Download(name, REPORT_MEDIA[fmt], text.encode("utf-8"))


SCORE_COLUMNS = ("id", "stage", "team", "source", "rater", "value", "stderr", "run_id", "evidence", "note",
                 "example", "recorded_at_utc", "recorded_by", "supersedes", "voided", "reason", "batch", "current")




def scores_csv(session: Session, key: str, stage_id: str) -> Download:
    """Every score row of the stage, superseded and voided ones included, oldest first, in the columns of
    SCORE_COLUMNS (the header row); UTF-8 with a byte-order mark so spreadsheets read Korean text."""
    loaded = stored_program(session, key)
    stage = _stage_of(session, loaded, stage_id)
    pkey = loaded.program.program.id
    rows = session.execute(select(Score).where(Score.program_key == pkey, Score.stage_id == stage.id)
                           .order_by(Score.id)).scalars().all()
    superseded = {r.supersedes_id for r in rows if r.supersedes_id is not None}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SCORE_COLUMNS)
    for r in rows:
        writer.writerow([csv_cell(v) for v in (
            r.id, r.stage_id, r.team_id, r.source, r.rater, r.value, r.stderr, r.run_id, r.evidence, r.note,
            bool(r.example), utc_text(r.recorded_at), r.recorded_by, r.supersedes_id, bool(r.voided), r.reason,
            r.batch_id, r.id not in superseded)])
    return Download(f"{pkey}-{stage.id}-scores.csv", "text/csv; charset=utf-8",
                    ("\ufeff" + out.getvalue()).encode("utf-8"))


def version_text(session: Session, key: str, version_id: str | int) -> Download:
    """The exact text of one stored version of a programme."""
    check_id(key, "programme")
    number = parse_number(version_id, "programme version")
    row = session.get(ProgramVersion, number)
    if row is None or row.program_key != key:
        raise NotFound(f"programme {key!r} has no version {number}")
    return Download(f"{key}-v{row.id}-{row.sha256[:12]}.toml", "application/toml; charset=utf-8",
                    row.text.encode("utf-8"))


def lineage_download(session: Session, key: str, stage_id: str, team_id: str, gate_id: str) -> Download:
    """The lineage comparison the gate's current result was decided from, byte for byte as stored (the file that
    was recorded, or the canonical JSON of data sent without a file); its sha256 is in the file name."""
    loaded = stored_program(session, key)
    stage = _stage_of(session, loaded, stage_id)
    pkey = loaded.program.program.id
    check_id(team_id, "team")
    check_id(gate_id, "gate")
    doc = evidence_docs.document_for_gate(session, pkey, stage.id, team_id, gate_id)
    if doc is None:
        raise NotFound("no lineage comparison is attached to this gate result")
    name = f"{pkey}-{stage.id}-{team_id}-{gate_id}-lineage-{doc.sha256}.json"
    return Download(name, doc.media_type, doc.content.encode("utf-8"))
