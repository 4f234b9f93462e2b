"""What the signed-in web pages ask of the store, shaped for forms and pages: each write a form makes is one call
here (input read from form fields and uploaded bytes, then the CLI's own service), and each page's read model is
one typed result.

Programmes are named by the key under which they are stored, never by a path: a web form must not make the server
read a file of its choosing (`programs.resolve` would, for a reference ending in .toml or naming a file that
exists). Uploaded files are read by the same readers as the CLI's files, so a file the CLI accepts is accepted here
with the same messages (naming the uploaded file, not a temporary path).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa import accounts
from simsa.audit.log import now_utc
from simsa.errors import InputError, NotFound, ProgramFileError, SimsaError
from simsa.program.grades import check_grade
from simsa.program.loader import MAX_PROGRAM_BYTES, LoadedProgram, parse_program
from simsa.program.originality import check_compare_result
from simsa.services import account_admin, appeals, corrections, decisions, programs, status
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.store.models import Account, Appeal, AppealResolution, Decision, GateResult, ProgramVersion, Score
from simsa.timeutil import as_utc, display_zone, utc_text

EXAMPLE_PROGRAM = "k-ai-2026.toml"  # simsa.examples: the built-in example programme
MAX_KEY = 64
MAX_LISTED_SCORES = 500  # rows of current scores a stage page lists (the void form takes any id)
MAX_LISTED_MISSING = 12
MAX_TOKEN_DAYS = 3650
UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._ -]+")




# --------------------------------------------------------------------------- programmes in the store


def stored_version(session: Session, key: str) -> tuple[ProgramVersion, LoadedProgram]:
    """The latest stored version of programme `key` and the programme it holds; NotFound when none is loaded."""
    key = (key or "").strip()
    if not 0 < len(key) <= MAX_KEY:
        raise NotFound(f"no programme {key!r} is loaded")
    return programs.stored_version(session, key)


def stored_program(session: Session, key: str) -> LoadedProgram:
    return stored_version(session, key)[1]


def stored_stage(session: Session, key: str, stage_id: str) -> tuple[ProgramVersion, LoadedProgram]:
    """As `stored_version`, for a stage of it (NotFound for a stage it lacks)."""
    version, loaded = stored_version(session, key)
    if stage_id not in [s.id for s in loaded.program.stages]:
        raise NotFound(f"programme {loaded.program.program.id!r} has no stage {stage_id!r}")
    return version, loaded


def program_keys(session: Session) -> list[str]:
    return list(session.execute(select(ProgramVersion.program_key).distinct().order_by(ProgramVersion.program_key))
                .scalars())


@dataclass(frozen=True)
class TeamChoice:
    program: str
    team: str
    name: str

    def to_dict(self) -> dict:
        return {"program": self.program, "team": self.team, "name": self.name}


def team_choices(session: Session) -> list[TeamChoice]:
    """Every team of every loaded programme (the invitation form's choices)."""
    out: list[TeamChoice] = []
    for key in program_keys(session):
        try:
            loaded = stored_program(session, key)
        except SimsaError:  # a stored version that no longer reads offers no teams
            continue
        out += [TeamChoice(key, t.id, t.name) for t in loaded.program.teams]
    return out


# --------------------------------------------------------------------------- uploads


def upload_name(filename: str | None, default: str) -> str:
    """An uploaded file's name as messages show it: its last component, plain characters only."""
    name = PurePath((filename or "").replace("\\", "/")).name
    name = UPLOAD_NAME.sub("_", name).strip(" .")[:100]
    return name or default


@dataclass(frozen=True)
class ProgramLoad:
    """A programme file loaded through the web: the version it is, and what loading it warns about."""

    program: str
    name: str
    version_id: int
    sha256: str
    created: bool
    teams: int
    stages: tuple[str, ...]
    warnings: tuple[str, ...]
    decision_warnings: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"program": self.program, "name": self.name, "version_id": self.version_id, "sha256": self.sha256,
                "loaded": self.created, "teams": self.teams, "stages": list(self.stages),
                "warnings": list(self.warnings), "decision_warnings": list(self.decision_warnings)}


def read_program_upload(filename: str | None, data: bytes) -> LoadedProgram:
    """An uploaded program file, validated as `simsa program check` validates a file (without the previous-decision
    files it may pin beside it on disk: an upload has no directory)."""
    name = upload_name(filename, "program.toml")
    if len(data) > MAX_PROGRAM_BYTES:
        raise ProgramFileError(name, None, None, f"file is larger than {MAX_PROGRAM_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ProgramFileError(name, line, None, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                                                 f"{exc.start})") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ProgramFileError(name, None, None, "file is empty")
    return parse_program(text, name)


def example_program() -> LoadedProgram:
    """The example programme shipped with simsa (the same text, so the same version, as the file on disk)."""
    from importlib.resources import files

    text = (files("simsa.examples") / EXAMPLE_PROGRAM).read_text(encoding="utf-8").removeprefix("\ufeff")
    return parse_program(text, EXAMPLE_PROGRAM)


def load_program(session: Session, loaded: LoadedProgram, actor: str) -> ProgramLoad:
    """Record a programme version as `simsa program load` does (idempotent; rule changes behind decisions in force
    are warned about)."""
    reg = programs.register_with_warnings(session, loaded, actor)
    session.flush()
    p = loaded.program
    return ProgramLoad(program=p.program.id, name=p.program.name, version_id=reg.version.id, sha256=loaded.sha256,
                       created=reg.created, teams=len(p.teams), stages=tuple(s.id for s in p.stages),
                       warnings=tuple(str(w) for w in loaded.warnings),
                       decision_warnings=tuple(w.message for w in reg.warnings))


def load_program_upload(session: Session, filename: str | None, data: bytes | None, actor: str, *,
                        example: bool = False) -> ProgramLoad:
    """Load an uploaded program file, or (with `example`) the built-in example programme."""
    if example:
        return load_program(session, example_program(), actor)
    if not data:
        raise InputError("choose a program file (.toml) to upload, or load the example programme")
    return load_program(session, read_program_upload(filename, data), actor)


# --------------------------------------------------------------------------- scores and gates


def _number(text: str | None, name: str, optional: bool) -> float | None:
    raw = (text or "").strip()
    if not raw:
        if optional:
            return None
        raise InputError(f"{name} is required")
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {raw[:40]!r}")
    return value


def _optional(text: str | None) -> str | None:
    value = (text or "").strip()
    return value or None


def record_score(session: Session, key: str, stage_id: str, *, team: str, source: str, value: str, actor: str,
                 stderr: str | None = None, rater: str | None = None, evidence: str | None = None,
                 note: str | None = None) -> score_service.RecordedScores:
    """One score from a form, recorded as `simsa score add` records it (superseding the key's current score)."""
    _, loaded = stored_stage(session, key, stage_id)
    number = _number(value, "value", False)
    assert number is not None
    item = score_service.ScoreInput(stage=stage_id, team=(team or "").strip(), source=(source or "").strip(),
                                    value=number, stderr=_number(stderr, "stderr", True),
                                    rater=(rater or "").strip(), evidence=_optional(evidence), note=_optional(note))
    return score_service.record(session, loaded, [item], actor)


@dataclass(frozen=True)
class ScoreUpload:
    """A score file imported through the web: its batch (to undo or replace later) and the reader's notices."""

    file: str
    batch_id: str
    imported: int
    superseded: int
    notices: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"file": self.file, "batch_id": self.batch_id, "imported": self.imported,
                "superseded": self.superseded, "notices": list(self.notices)}


def read_score_upload(filename: str | None, data: bytes) -> tuple[str, list[score_service.ScoreInput], list[str]]:
    """(shown name, scores, notices) of an uploaded .csv or .json score file, read by `simsa score import`'s reader.

    The bytes go to a private temporary file with the upload's suffix; messages name the upload instead.
    """
    from simsa.services.score_files import read_score_file

    name = upload_name(filename, "scores")
    suffix = PurePath(name).suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InputError(f"{name}: unsupported score file type {suffix or '(none)'!r}; use .csv or .json")
    with tempfile.TemporaryDirectory(prefix="simsa-upload-") as tmp:
        path = Path(tmp) / f"scores{suffix}"
        path.write_bytes(data)
        shown = str(path)
        try:
            parsed = read_score_file(path)
        except InputError as exc:
            raise InputError(str(exc).replace(shown, name)) from None
    items = [replace(i, where=i.where.replace(shown, name)) for i in parsed.items]
    return name, items, [n.replace(shown, name) for n in parsed.notices]


def import_score_upload(session: Session, key: str, stage_id: str, filename: str | None, data: bytes | None,
                        actor: str) -> ScoreUpload:
    """Import an uploaded score file into one stage as `simsa score import` does: every row is checked first and
    one bad row records nothing (the error names every bad row)."""
    if not data:
        raise InputError("choose a score file (.csv or .json) to upload")
    name, items, notices = read_score_upload(filename, data)
    others = sorted({i.stage for i in items} - {stage_id})
    if others:
        count = sum(1 for i in items if i.stage != stage_id)
        raise InputError(f"{name}: {count} rows are for other stages ({', '.join(others)}); this form imports scores "
                         f"of stage {stage_id!r} only, nothing recorded")
    _, loaded = stored_stage(session, key, stage_id)
    result = corrections.import_scores(session, loaded, items, actor, source_name=name)
    return ScoreUpload(file=name, batch_id=result.batch_id, imported=len(result.rows),
                       superseded=result.superseded, notices=tuple(notices))


def record_gate(session: Session, key: str, stage_id: str, *, team: str, gate: str, passed: str, evidence: str,
                link: str | None, actor: str, grade: str = "declared",
                override_reason: str | None = None) -> gate_service.GateRecording:
    """A gate result from a form, recorded as `simsa gate record` records it, with its evidence grade (and the
    admin's reason when the evidence is below the gate's bar). A link must be a web address."""
    _, loaded = stored_stage(session, key, stage_id)
    choice = (passed or "").strip().lower()
    if choice not in ("pass", "fail"):
        raise InputError("say whether the team passed the gate (pass or fail)")
    url = _optional(link)
    if url is not None and not url.lower().startswith(("https://", "http://")):
        raise InputError("the link must be a web address starting with https:// or http://")
    return gate_service.record_result(session, loaded, stage_id=stage_id, team_id=(team or "").strip(),
                                      gate_id=(gate or "").strip(), passed=choice == "pass", evidence=evidence or "",
                                      link=url, actor=actor, grade=check_grade((grade or "").strip()),
                                      override_reason=_optional(override_reason))


MAX_FIELD_CHARS = 200     # a team or gate id typed in an upload form
MAX_REASON_CHARS = 4000
MAX_LINK_CHARS = 2048


def lineage_from_bytes(data: bytes, name: str) -> gate_service.LineageFile:
    """An uploaded `simsa lineage compare --json` result, checked as `gate_service.read_lineage_file` checks a file
    (UTF-8, JSON, a lineage result by `check_compare_result`, at most MAX_LINEAGE_BYTES), with the sha256 of the
    uploaded bytes and their text (kept as the gate result's evidence document). Messages name the upload."""
    shown = upload_name(name, "lineage.json")
    if not data:
        raise InputError(f"{shown}: the file is empty")
    if len(data) > gate_service.MAX_LINEAGE_BYTES:
        raise InputError(f"{shown}: larger than {gate_service.MAX_LINEAGE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{shown}: not valid UTF-8 (offset {exc.start})") from None
    try:
        parsed = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{shown}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    except (ValueError, RecursionError):
        raise InputError(f"{shown}: not a readable JSON document") from None
    try:
        check_compare_result(parsed)
    except InputError as exc:
        raise InputError(f"{shown}: {exc}") from None
    return gate_service.LineageFile(data=parsed, sha256=hashlib.sha256(data).hexdigest(), text=text)


def _bounded(text: str | None, name: str, limit: int) -> str:
    value = (text or "").strip()
    if len(value) > limit:
        raise InputError(f"{name} is {len(value)} characters; at most {limit}")
    return value


def record_gate_from_lineage(session: Session, key: str, stage_id: str, *, team: str, gate: str,
                             filename: str | None, data: bytes | None, override: str | None, reason: str | None,
                             link: str | None, actor: str) -> gate_service.LineageGate:
    """A gate decided from an uploaded lineage comparison, as `simsa gate from-lineage` decides it: pass or fail as
    recommended, or (after review) as overridden with a reason; the uploaded file is kept as the result's evidence
    document. A link must be a web address."""
    _, loaded = stored_stage(session, key, stage_id)
    team_id = _bounded(team, "team", MAX_FIELD_CHARS)
    gate_id = _bounded(gate, "gate", MAX_FIELD_CHARS) or "originality"
    choice = _bounded(override, "override", MAX_FIELD_CHARS).lower()
    if choice not in ("", "pass", "fail"):
        raise InputError("the decision is the recommendation, or pass or fail after review")
    why = _bounded(reason, "the reason", MAX_REASON_CHARS) or None
    if why is not None and not choice:
        raise InputError("a reason is recorded with a reviewer's decision: choose pass or fail after review, or "
                         "leave the reason empty")
    url = _bounded(link, "the link", MAX_LINK_CHARS) or None
    if url is not None and not url.lower().startswith(("https://", "http://")):
        raise InputError("the link must be a web address starting with https:// or http://")
    if not data:
        raise InputError("choose a lineage result (.json, as `simsa lineage compare --json` writes it) to upload")
    found = lineage_from_bytes(data, filename or "")
    return gate_service.record_result_from_lineage(
        session, loaded, stage_id=stage_id, team_id=team_id, gate_id=gate_id, lineage=found.data,
        lineage_sha256=found.sha256, lineage_text=found.text, link=url, actor=actor,
        override=None if not choice else choice == "pass", reason=why)


def void_record(session: Session, key: str, stage_id: str, *, kind: str, record_id: str, reason: str,
                actor: str) -> corrections.VoidedScore | corrections.VoidedGate:
    """Void a current score or gate result of this stage, as `simsa score void` / `simsa gate void` do."""
    _, loaded = stored_stage(session, key, stage_id)
    try:
        number = int((record_id or "").strip())
    except ValueError:
        raise InputError(f"the record id must be a whole number, got {(record_id or '')[:40]!r}") from None
    if kind == "score":
        row = session.get(Score, number)
        if row is not None and row.program_key == key and row.stage_id != stage_id:
            raise InputError(f"score {number} belongs to stage {row.stage_id!r}, not {stage_id!r}")
        return corrections.void_score(session, loaded, number, reason, actor)
    if kind == "gate":
        gate_row = session.get(GateResult, number)
        if gate_row is not None and gate_row.program_key == key and gate_row.stage_id != stage_id:
            raise InputError(f"gate result {number} belongs to stage {gate_row.stage_id!r}, not {stage_id!r}")
        return corrections.void_gate(session, loaded, number, reason, actor)
    raise InputError("say what to void: a score or a gate result")


def local_instant(text: str, zone: str, what: str = "decided at") -> dt.datetime:
    """A date-time typed in a form (datetime-local: no offset) read in the programme's time zone, as UTC."""
    raw = (text or "").strip()
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{what}: not a date and time (YYYY-MM-DDTHH:MM): {raw[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise InputError(f"{what}: {raw[:40]!r} is out of range") from None


def decide_stage(session: Session, key: str, stage_id: str, *, decided_at: str | None,
                 actor: str) -> decisions.StageDecision:
    """Decide a stage as `simsa stage decide` does; `decided_at` (optional) is local time in the programme's zone."""
    _, loaded = stored_stage(session, key, stage_id)
    zone = loaded.program.program.timezone
    when = local_instant(decided_at, zone) if decided_at is not None and _optional(decided_at) else None
    return decisions.decide(session, loaded, stage_id, actor, at=when)


def resolve_appeal(session: Session, key: str, stage_id: str, appeal_id: int, *, outcome: str, reason: str,
                   actor: str) -> appeals.ResolvedAppeal:
    """Resolve an appeal of this stage (upheld: the stage is decided again on the data now recorded)."""
    _, loaded = stored_stage(session, key, stage_id)
    choice = (outcome or "").strip().lower()
    if choice not in ("upheld", "rejected"):
        raise InputError("say whether the appeal is upheld or rejected")
    found = session.execute(select(Decision.program_key, Decision.stage_id).join(Appeal, Appeal.decision_id ==
                                                                                  Decision.id)
                            .where(Appeal.id == appeal_id)).first()
    if found is None or tuple(found) != (key, stage_id):
        raise InputError(f"no appeal {appeal_id} against stage {stage_id!r} of {key!r}")
    return appeals.resolve_appeal(session, loaded, appeal_id, choice == "upheld", reason or "", actor)


# --------------------------------------------------------------------------- accounts


def invite_account(session: Session, *, username: str, display_name: str, role: str, program: str | None,
                   team: str | None, actor: str) -> tuple[accounts.AccountView, str]:
    """Invite an account (account_admin.invite); a team account's programme must be one loaded in the store."""
    chosen = (role or "").strip().lower()
    key = _optional(program)
    team_id = _optional(team)
    if chosen != accounts.Role.TEAM.value:
        key = team_id = None  # the form offers a team to every role; only team accounts take one
    elif key is not None:
        stored_program(session, key)
    return account_admin.invite(session, username=username or "", display_name=display_name or "", role=chosen,
                                actor=actor, program_ref=key, team_id=team_id)


def create_token(session: Session, account: accounts.AccountView, *, name: str, expires_days: str | None,
                 now: dt.datetime | None = None) -> tuple[accounts.TokenView, str]:
    """A new API token of the signed-in account, valid for `expires_days` days (none: until revoked)."""
    raw = (expires_days or "").strip()
    until = None
    if raw:
        try:
            days = int(raw)
        except ValueError:
            raise InputError(f"the expiry must be a whole number of days, got {raw[:20]!r}") from None
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise InputError(f"the expiry must be between 1 and {MAX_TOKEN_DAYS} days")
        until = (as_utc(now) if now else now_utc()) + dt.timedelta(days=days)
    return accounts.create_api_token(session, account.id, name or "", actor=account.actor, expires_at=until, now=now)


# --------------------------------------------------------------------------- the secretariat's read models


@dataclass(frozen=True)
class StageSummary:
    id: str
    name: str
    decision_id: int | None
    decided_at: str | None
    scores_recorded: int
    decidable: bool
    missing: tuple[str, ...]        # the first MAX_LISTED_MISSING reasons it cannot be decided
    missing_count: int
    pending_appeals: int
    problem: str | None = None      # the status could not be computed

    @property
    def decided(self) -> bool:
        return self.decision_id is not None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "decided": self.decided, "decision_id": self.decision_id,
                "decided_at": self.decided_at, "scores_recorded": self.scores_recorded, "decidable": self.decidable,
                "missing": list(self.missing), "missing_count": self.missing_count,
                "pending_appeals": self.pending_appeals, "problem": self.problem}


@dataclass(frozen=True)
class ProgramSummary:
    key: str
    name: str
    timezone: str
    versions: int
    sha256: str
    loaded_at: str
    stages: tuple[StageSummary, ...]
    problem: str | None = None

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "timezone": self.timezone, "versions": self.versions,
                "sha256": self.sha256, "loaded_at": self.loaded_at, "stages": [s.to_dict() for s in self.stages],
                "problem": self.problem}


@dataclass(frozen=True)
class PendingAppeal:
    program: str
    stage: str
    id: int
    decision_id: int
    team: str
    filed_at: str

    def to_dict(self) -> dict:
        return {"program": self.program, "stage": self.stage, "id": self.id, "decision_id": self.decision_id,
                "team": self.team, "filed_at": self.filed_at}


@dataclass(frozen=True)
class AdminOverview:
    programs: tuple[ProgramSummary, ...]
    pending_appeals: tuple[PendingAppeal, ...]
    accounts: int
    active_accounts: int

    def to_dict(self) -> dict:
        return {"programs": [p.to_dict() for p in self.programs],
                "pending_appeals": [a.to_dict() for a in self.pending_appeals], "accounts": self.accounts,
                "active_accounts": self.active_accounts}


def _pending(session: Session) -> list[PendingAppeal]:
    resolved = select(AppealResolution.appeal_id)
    rows = session.execute(select(Appeal, Decision.program_key, Decision.stage_id)
                           .join(Decision, Decision.id == Appeal.decision_id)
                           .where(Appeal.id.not_in(resolved)).order_by(Appeal.id)).all()
    return [PendingAppeal(key, stage, a.id, a.decision_id, a.team_id, utc_text(a.filed_at)) for a, key, stage in rows]


def _stage_summary(session: Session, loaded: LoadedProgram, stage_id: str, name: str, pending: int) -> StageSummary:
    key = loaded.program.program.id
    try:
        st = status.stage_status(session, loaded, stage_id)
    except SimsaError as exc:
        return StageSummary(stage_id, name, None, None, 0, False, (), 0, pending, problem=str(exc))
    recorded = sum(1 for r in score_service.current_rows(session, key, [stage_id]).values() if not r.voided)
    messages = tuple(b.message for b in st.blockers)
    return StageSummary(stage_id, name, st.decision.id if st.decision else None,
                        st.decision.decided_at if st.decision else None, recorded, st.decidable,
                        messages[:MAX_LISTED_MISSING], len(messages), pending)


def admin_overview(session: Session) -> AdminOverview:
    """The secretariat's start page: each loaded programme's stages (decided? scores? what is missing?), the
    appeals waiting for a resolution, and how many accounts exist."""
    pending = _pending(session)
    out: list[ProgramSummary] = []
    for key in program_keys(session):
        versions = session.execute(select(ProgramVersion).where(ProgramVersion.program_key == key)
                                   .order_by(ProgramVersion.id)).scalars().all()
        latest = versions[-1]
        try:
            loaded = stored_program(session, key)
        except SimsaError as exc:
            out.append(ProgramSummary(key, key, "UTC", len(versions), latest.sha256, utc_text(latest.loaded_at), (),
                                      problem=str(exc)))
            continue
        p = loaded.program
        stages = tuple(_stage_summary(session, loaded, s.id, s.name,
                                      sum(1 for a in pending if a.program == key and a.stage == s.id))
                       for s in p.stages)
        out.append(ProgramSummary(key, p.program.name, p.program.timezone, len(versions), latest.sha256,
                                  utc_text(latest.loaded_at), stages))
    rows = session.execute(select(Account.active)).scalars().all()
    return AdminOverview(tuple(out), tuple(pending), len(rows), sum(1 for a in rows if a))


@dataclass(frozen=True)
class ScoreRow:
    id: int
    team: str
    source: str
    rater: str
    value: float | None
    stderr: float | None
    state: str                      # current | superseded | void
    recorded_at: str
    recorded_by: str
    evidence: str | None
    note: str | None
    reason: str | None
    batch_id: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "team": self.team, "source": self.source, "rater": self.rater, "value": self.value,
                "stderr": self.stderr, "state": self.state, "recorded_at": self.recorded_at,
                "recorded_by": self.recorded_by, "evidence": self.evidence, "note": self.note,
                "reason": self.reason, "batch_id": self.batch_id}


def _score_row(row: Score, state: str) -> ScoreRow:
    return ScoreRow(row.id, row.team_id, row.source, row.rater, row.value, row.stderr, state,
                    utc_text(row.recorded_at), row.recorded_by, row.evidence, row.note, row.reason, row.batch_id)


@dataclass(frozen=True)
class GateRow:
    id: int
    team: str
    gate: str
    passed: bool
    evidence: str
    link: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "team": self.team, "gate": self.gate, "passed": self.passed,
                "evidence": self.evidence, "link": self.link}


StageAppeal = appeals.AppealRecord


@dataclass(frozen=True)
class StageAdmin:
    """A stage as the secretariat works on it: its status, what can be recorded, what is recorded, its appeals."""

    program: str
    program_name: str
    timezone: str
    stage: str
    stage_name: str
    status: status.StageStatus
    teams: tuple[tuple[str, str], ...]          # (id, name) of every team of the programme
    sources: tuple[str, ...]
    recorded_gates: tuple[str, ...]             # gates of kind `recorded`
    scores: tuple[ScoreRow, ...]                # current scores (at most MAX_LISTED_SCORES)
    scores_total: int
    gate_results: tuple[GateRow, ...]           # current recorded gate results
    appeals: tuple[StageAppeal, ...]
    has_panel: bool = False                     # the stage declares an expert panel

    def to_dict(self) -> dict:
        return {"program": self.program, "program_name": self.program_name, "timezone": self.timezone,
                "stage": self.stage, "stage_name": self.stage_name, "status": self.status.to_dict(),
                "teams": [{"id": i, "name": n} for i, n in self.teams], "sources": list(self.sources),
                "recorded_gates": list(self.recorded_gates), "scores": [s.to_dict() for s in self.scores],
                "scores_total": self.scores_total, "gate_results": [g.to_dict() for g in self.gate_results],
                "appeals": [a.to_dict() for a in self.appeals], "has_panel": self.has_panel}


def stage_admin(session: Session, key: str, stage_id: str) -> StageAdmin:
    """Everything the secretariat's stage page shows (reads only)."""
    _, loaded = stored_stage(session, key, stage_id)
    p = loaded.program
    stage = p.stage(stage_id)
    st = status.stage_status(session, loaded, stage_id)
    current = sorted((r for r in score_service.current_rows(session, key, [stage_id]).values() if not r.voided),
                     key=lambda r: (r.team_id, r.source, r.rater, r.id))
    gates = tuple(GateRow(g.record_id or 0, team, gate_id, g.passed, g.evidence, g.link)
                  for team, results in sorted(gate_service.current(session, key, stage_id).items())
                  for gate_id, g in sorted(results.items()))
    return StageAdmin(
        program=key, program_name=p.program.name, timezone=p.program.timezone, stage=stage_id,
        stage_name=stage.name, status=st, teams=tuple((t.id, t.name) for t in p.teams),
        sources=tuple(stage.score_sources()),
        recorded_gates=tuple(g.id for g in stage.gates if g.kind == "recorded"),
        scores=tuple(_score_row(r, "current") for r in current[:MAX_LISTED_SCORES]), scores_total=len(current),
        gate_results=gates, appeals=tuple(appeals.records(session, key, stage_id)),
        has_panel=stage.expert_panel is not None)


# --------------------------------------------------------------------------- a team's own view


@dataclass(frozen=True)
class TeamCriterion:
    id: str
    name: str
    depth: int
    points: float
    max: float
    raw: float | None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "depth": self.depth, "points": self.points, "max": self.max,
                "raw": self.raw}


@dataclass(frozen=True)
class TeamGate:
    id: str
    name: str
    passed: bool
    evidence: str
    link: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "passed": self.passed, "evidence": self.evidence,
                "link": self.link}


@dataclass(frozen=True)
class TeamResult:
    """The team's own row of a decision: rank, total, points per criterion, gates, status and why."""

    rank: int
    of: int
    total: float
    max_points: float
    status: str
    reason: str
    tie_break: str | None
    criteria: tuple[TeamCriterion, ...]
    gates: tuple[TeamGate, ...]

    def to_dict(self) -> dict:
        return {"rank": self.rank, "of": self.of, "total": self.total, "max_points": self.max_points,
                "status": self.status, "reason": self.reason, "tie_break": self.tie_break,
                "criteria": [c.to_dict() for c in self.criteria], "gates": [g.to_dict() for g in self.gates]}


@dataclass(frozen=True)
class TeamStage:
    id: str
    name: str
    decision_id: int | None
    decided_at: str | None
    appeal_deadline: str | None      # the last day to appeal, in the programme's time zone
    appeal_open: bool
    imported: bool
    result: TeamResult | None        # None: undecided, or the team was not part of the decision
    scores: tuple[ScoreRow, ...]
    appeals: tuple[StageAppeal, ...]

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "decision_id": self.decision_id, "decided_at": self.decided_at,
                "appeal_deadline": self.appeal_deadline, "appeal_open": self.appeal_open, "imported": self.imported,
                "result": self.result.to_dict() if self.result else None,
                "scores": [s.to_dict() for s in self.scores], "appeals": [a.to_dict() for a in self.appeals]}


@dataclass(frozen=True)
class TeamOverview:
    program: str
    program_name: str
    timezone: str
    team: str
    team_name: str
    stages: tuple[TeamStage, ...]
    loaded: bool = True              # False: the account's programme is not (or no longer) in the store

    def to_dict(self) -> dict:
        return {"program": self.program, "program_name": self.program_name, "timezone": self.timezone,
                "team": self.team, "team_name": self.team_name, "loaded": self.loaded,
                "stages": [s.to_dict() for s in self.stages]}


def _team_of(account: accounts.AccountView) -> tuple[str, str]:
    if account.role != accounts.Role.TEAM or not account.program_key or not account.team_id:
        raise InputError(f"account {account.username!r} is not a team account")
    return account.program_key, account.team_id


def _localised(entry: dict, key: str, lang: str) -> str:
    return (entry.get(f"{key}_ko") if lang == "ko" else None) or entry.get(key) or ""


def _team_result(body: dict, team: str, lang: str) -> TeamResult | None:
    row = next((r for r in body.get("teams", ()) if r.get("team") == team), None)
    if row is None:
        return None
    criteria = []
    for c in body.get("criteria", ()):
        entry = row.get("breakdown", {}).get(c["id"], {})
        criteria.append(TeamCriterion(c["id"], _localised(c, "name", lang), int(c.get("depth", 0)),
                                      float(entry.get("points", 0.0)), float(entry.get("max", c.get("points", 0.0))),
                                      entry.get("raw")))
    names = {g["id"]: _localised(g, "name", lang) for g in body.get("gate_definitions", ())}
    gates = [TeamGate(gid, names.get(gid, gid), bool(g.get("passed")), _localised(g, "evidence", lang), g.get("link"))
             for gid, g in row.get("gates", {}).items()]
    return TeamResult(rank=int(row["rank"]), of=len(body.get("teams", ())), total=float(row["total"]),
                      max_points=float(body.get("max_points") or 0.0), status=row["status"],
                      reason=_localised(row, "reason", lang), tie_break=_localised(row, "tie_break", lang) or None,
                      criteria=tuple(criteria), gates=tuple(gates))


def _window_open(body: dict, decided_at: dt.datetime, zone: str, when: dt.datetime) -> bool:
    deadline = body.get("appeal_deadline")
    if not deadline or isinstance(body.get("imported"), dict) or when < as_utc(decided_at):
        return False
    return when.astimezone(display_zone(zone)).date() <= dt.date.fromisoformat(deadline)


def _team_scores(session: Session, key: str, stage_id: str, team: str) -> tuple[ScoreRow, ...]:
    rows = score_service.history(session, key, stage_id, team)
    superseded = {r.supersedes_id for r in rows if r.supersedes_id}
    return tuple(_score_row(r, "void" if r.voided else ("superseded" if r.id in superseded else "current"))
                 for r in rows)


def team_overview(session: Session, account: accounts.AccountView, lang: str = "en",
                  now: dt.datetime | None = None) -> TeamOverview:
    """A team account's own results, scores and appeals, stage by stage (never another team's rows)."""
    key, team = _team_of(account)
    try:
        _, loaded = stored_version(session, key)
    except NotFound:
        return TeamOverview(key, key, "UTC", team, team, (), loaded=False)
    p = loaded.program
    zone = p.program.timezone
    when = as_utc(now) if now else now_utc()
    try:
        team_row = p.team(team)
        team_name = (team_row.name_ko if lang == "ko" else None) or team_row.name
    except KeyError:
        team_name = team
    stages = []
    for stage in p.stages:
        row = decisions.effective(session, key, stage.id)
        body = decisions.body(row) if row is not None else {}
        mine = tuple(a for a in appeals.records(session, key, stage.id) if a.team == team)
        result = _team_result(body, team, lang) if row is not None else None
        stages.append(TeamStage(
            id=stage.id, name=(stage.name_ko if lang == "ko" else None) or stage.name,
            decision_id=row.id if row is not None else None,
            decided_at=utc_text(row.decided_at) if row is not None else None,
            appeal_deadline=body.get("appeal_deadline"),
            appeal_open=row is not None and result is not None and _window_open(body, row.decided_at, zone, when),
            imported=isinstance(body.get("imported"), dict), result=result,
            scores=_team_scores(session, key, stage.id, team), appeals=mine))
    name = (p.program.name_ko if lang == "ko" else None) or p.program.name
    return TeamOverview(key, name, zone, team, team_name, tuple(stages))


@dataclass(frozen=True)
class TeamAppealView:
    program: str
    timezone: str
    stage: str
    appeal: StageAppeal

    def to_dict(self) -> dict:
        return {"program": self.program, "timezone": self.timezone, "stage": self.stage,
                "appeal": self.appeal.to_dict()}


def team_appeal(session: Session, account: accounts.AccountView, appeal_id: int) -> TeamAppealView:
    """One of the team's own appeals; NotFound for any other appeal, whoever's it is."""
    key, team = _team_of(account)
    found = session.execute(select(Appeal, Decision.program_key, Decision.stage_id)
                            .join(Decision, Decision.id == Appeal.decision_id).where(Appeal.id == appeal_id)).first()
    if found is None or found[1] != key or found[0].team_id != team:
        raise NotFound(f"no appeal {appeal_id} of your team")
    stage_id = found[2]
    entry = next(a for a in appeals.records(session, key, stage_id) if a.id == appeal_id)
    try:
        zone = stored_program(session, key).program.program.timezone
    except NotFound:
        zone = "UTC"
    return TeamAppealView(key, zone, stage_id, entry)


def file_team_appeal(session: Session, account: accounts.AccountView, stage_id: str,
                     grounds: str) -> appeals.FiledAppeal:
    """File an appeal for the account's own team (never a team named by the form) against the stage's decision in
    force; the service refuses it outside the appeal window."""
    key, team = _team_of(account)
    _, loaded = stored_stage(session, key, stage_id)
    return appeals.file_appeal(session, loaded, stage_id, team, grounds or "", account.actor)
