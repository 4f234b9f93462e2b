"""Request and response bodies of the JSON API (/api/v1), so that its OpenAPI schema documents every endpoint.

Requests are strict (no unknown fields, no strings where numbers belong, no NaN or infinity) and bounded (field
lengths as the store's columns allow, at most MAX_SCORE_ITEMS scores a request). Responses name the fields a
client can rely on; documents with a schema of their own (a decision, the report, stage status, a lineage
comparison) are typed at their top level and carry the rest as they are recorded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_SCORE_ITEMS = 100_000
MAX_GATE_ITEMS = 10_000
MAX_TEXT = 20_000     # evidence, notes, grounds, reasons
ID_TEXT = 64          # stage, team, gate and programme ids (the store's columns)
NAME_TEXT = 128       # sources, raters
TIME_TEXT = 64        # an ISO 8601 date-time

Id = Annotated[str, Field(min_length=1, max_length=ID_TEXT)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Number = Annotated[float, Field(allow_inf_nan=False)]
When = Annotated[str | None, Field(default=None, max_length=TIME_TEXT,
                                   description="ISO 8601 date-time; an offset such as +09:00 is honoured, none "
                                               "means UTC; default now.")]


def check_text(value: object, where: str) -> None:
    """Text the store can keep and the audit log can hash: UTF-8 encodable (no lone surrogates, which JSON's \\u
    escapes can carry) and without NUL characters (PostgreSQL refuses them)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: not valid Unicode text (a lone surrogate)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, where)
            check_text(v, f"{where}.{k}" if isinstance(k, str) and len(k) < 40 else where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_text(v, f"{where}[{i}]")


class _In(BaseModel):
    """Part of a request body: unknown fields and type coercion are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Body(_In):
    """A whole request body: its text (nested parts included) must be storable, checked in one pass over the JSON
    as received."""

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: object) -> object:
        check_text(data, "body")
        return data


class _Out(BaseModel):
    """A response body: the fields a client can rely on (fields a service adds later are left out, not an error)."""


class _Document(BaseModel):
    """A document with its own schema: the fields listed here, and the rest as recorded."""

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- common


class ApiError(_Out):
    """Every error: the CLI's `--json` shape plus the HTTP status."""

    error: str = Field(description="One line saying what is wrong.")
    exit_code: int = Field(description="The CLI's exit code for the same failure: 2 invalid input, 1 a failed "
                                       "check or a server error.")
    status: int


class Account(_Out):
    id: int
    username: str
    display_name: str
    role: Literal["admin", "expert", "rater", "team", "public"]
    program_key: str | None
    team_id: str | None
    active: bool
    activated: bool
    locked_until: str | None
    created_at: str | None
    last_login_at: str | None


# --------------------------------------------------------------------------- programmes


class VersionRef(_Out):
    id: int
    sha256: str
    loaded_at: str
    loaded_by: str


class ProgramSummary(_Out):
    id: str
    name: str
    name_ko: str | None
    timezone: str
    versions: int
    latest: VersionRef


class ProgramList(_Out):
    programs: list[ProgramSummary]


class VersionInfo(_Out):
    id: int
    program: str
    sha256: str
    loaded_at: str
    loaded_by: str
    source_path: str
    decisions: list[int]
    decisions_in_force: list[int]
    used_by_decision: bool


class VersionList(_Out):
    program: str
    versions: list[VersionInfo]


class VersionText(_Out):
    id: int
    program: str
    sha256: str = Field(description="sha256 of `text` encoded as UTF-8.")
    loaded_at: str
    loaded_by: str
    source_path: str
    text: str


class TeamInfo(_Out):
    id: str
    name: str
    name_ko: str | None
    licence: str | None
    joins_at: str | None
    models: list[str]


class CriterionInfo(_Out):
    id: str
    name: str
    name_ko: str | None
    points: float
    parent: str | None
    depth: int
    source: str | None
    normalisation: str | None
    missing: str | None


class GateInfo(_Out):
    id: str
    name: str
    name_ko: str | None
    kind: Literal["recorded", "min_score", "licence"]
    source: str | None
    threshold: float | None


class StageInfo(_Out):
    id: str
    name: str
    name_ko: str | None
    start: str
    end: str
    appeal_days: int
    max_points: float
    criteria: list[CriterionInfo]
    gates: list[GateInfo]
    sources: list[str]
    participants: list[str] | None
    elimination: dict[str, Any]
    tie_breakers: list[str]


class SuiteInfo(_Out):
    id: str
    name: str | None
    limit: int | None
    tasks: list[dict[str, Any]]


class ProgramDetail(_Out):
    id: str
    name: str
    name_ko: str | None
    organiser: str | None
    description: str | None
    timezone: str = Field(description="IANA zone the programme displays times in (stored times are UTC).")
    sha256: str
    version: VersionRef = Field(description="The newest stored version, which this structure is read from.")
    teams: list[TeamInfo]
    stages: list[StageInfo]
    suites: list[SuiteInfo]
    versions: list[VersionInfo]
    definition: dict[str, Any] = Field(description="The whole parsed program file, as the schema reads it.")


class ProgramDiff(_Document):
    """`simsa program diff --json`: each change marked `rules` or `cosmetic`."""

    program: str
    changes: list[dict[str, Any]]


class ProgramIn(_Body):
    text: str = Field(description="The program file (TOML).", min_length=1)
    source_name: str = Field(default="api", min_length=1, max_length=255,
                             description="A name for the file, used in messages and kept with the version.")


class ProgramChecked(_Out):
    valid: bool
    program: str
    name: str
    sha256: str
    warnings: list[dict[str, Any]] = Field(description="Problems that cannot change an outcome.")


class ProgramLoaded(_Out):
    loaded: bool = Field(description="False when this exact version was already stored (nothing written).")
    version_id: int
    program: str
    name: str
    sha256: str
    warnings: list[dict[str, Any]] = Field(description="Problems of the file that cannot change an outcome.")
    decision_warnings: list[dict[str, Any]] = Field(
        description="Decisions in force made under rules this version changes (kept in the audit entry).")


# --------------------------------------------------------------------------- stages


class StageStatus(_Document):
    """`simsa stage status --json`."""

    program: str
    stage: str
    decidable: bool
    blockers: list[dict[str, Any]]
    teams: list[dict[str, Any]]


class CurrentScore(_Out):
    team: str
    source: str
    value: float = Field(description="Mean over the raters' current scores.")
    stderr: float | None
    n: int
    example: bool
    score_ids: list[int]


class ScoreRecord(_Out):
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


class StageScores(_Out):
    program: str
    stage: str
    team: str | None
    current: list[CurrentScore]
    records: list[ScoreRecord] | None = Field(
        description="With history=true: every row, superseded and voided ones included, oldest first.")


class GateRecord(_Out):
    team: str
    gate: str
    passed: bool
    evidence: str
    link: str | None
    example: bool
    record_id: int | None
    grade: str
    override_reason: str | None


class StageGates(_Out):
    program: str
    stage: str
    results: list[GateRecord]


class Decision(_Document):
    """A decision as recorded (`simsa.decision/1`, docs/decision-json.md)."""

    schema_: str = Field(alias="schema")
    stage: str
    decision_id: int | None
    decided_at: str
    advanced: list[str]
    eliminated: list[str]
    title_holders: list[str]
    teams: list[dict[str, Any]]


class DecisionSummary(_Out):
    id: int
    decided_at: str
    decided_by: str
    advanced: list[str]
    eliminated: list[str]
    appeal_id: int | None
    supersedes: int | None
    reason: str | None
    in_force: bool
    imported: bool


class DecisionChain(_Out):
    program: str
    stage: str
    decisions: list[DecisionSummary] = Field(description="The decision in force first, then those it replaced.")


class AppealInfo(_Out):
    id: int
    decision_id: int
    team: str
    grounds: str
    filed_at: str
    status: Literal["pending", "upheld", "rejected"]
    resolved_at: str | None
    resolution: str | None
    new_decision_id: int | None


class StageAppeals(_Out):
    program: str
    stage: str
    appeals: list[AppealInfo]


class ReportJson(_Document):
    """`simsa report --format json`: the decision, its appeals and history, times in UTC."""


class Lineage(_Document):
    """A saved `simsa lineage compare --json` result (docs/lineage.md)."""


# --------------------------------------------------------------------------- writes


class ScoreIn(_In):
    stage: Id
    team: Id
    source: str = Field(min_length=1, max_length=NAME_TEXT)
    value: Number
    stderr: Number | None = None
    rater: str = Field(default="", max_length=NAME_TEXT)
    run_id: str | None = Field(default=None, max_length=256)
    evidence: Text | None = None
    note: Text | None = None
    example: bool = False


class ScoresIn(_Body):
    scores: list[ScoreIn] = Field(min_length=1, max_length=MAX_SCORE_ITEMS)
    batch: bool = Field(default=False, description="Record as one import with a batch id (undoable as a whole), "
                                                   "as `simsa score import`.")
    replace_batch: str | None = Field(default=None, max_length=64,
                                      description="With batch: this import replaces that earlier one whole.")
    source_name: str = Field(default="api", min_length=1, max_length=255,
                             description="With batch: the name the import is audited under.")


class RecordedScore(_Out):
    id: int
    stage: str
    team: str
    source: str
    rater: str
    supersedes: int | None


class ScoresRecorded(_Out):
    recorded: list[RecordedScore]
    batch_id: str | None
    voided: list[int] = Field(description="With replace_batch: the scores of the replaced import this one lacks.")
    decision_warnings: list[dict[str, Any]]


class GateIn(_Body):
    stage: Id
    team: Id
    gate: Id
    passed: bool
    evidence: Text
    link: str | None = Field(default=None, max_length=2048)
    example: bool = False
    grade: Literal["cryptographic", "statistical", "declared", "heuristic"] = "declared"
    override_reason: Text | None = None


class GatesIn(_Body):
    gates: list[GateIn] = Field(min_length=1, max_length=MAX_GATE_ITEMS)
    source_name: str = Field(default="api", min_length=1, max_length=255)


class GateRecorded(_Out):
    id: int
    stage: str
    team: str
    gate: str
    passed: bool | None
    evidence: str
    link: str | None
    supersedes: int | None
    grade: str
    override_reason: str | None


class GatesImported(_Out):
    batch_id: str
    imported: int
    superseded: int
    results: list[dict[str, Any]]


class LineageIn(_Body):
    stage: Id
    team: Id
    gate: Id = "originality"
    lineage: dict[str, Any] = Field(description="The `simsa lineage compare --json` result.")
    override: Literal["pass", "fail"] | None = Field(default=None, description="Record this after review, "
                                                                               "whatever the recommendation.")
    reason: Text | None = None
    link: str | None = Field(default=None, max_length=2048, description="Where the lineage report is published.")
    example: bool = False


class LineageRecorded(_Out):
    recorded: GateRecorded | None = Field(description="None for a dry run.")
    summary: dict[str, Any]
    lineage_sha256: str = Field(description="sha256 of the lineage document in canonical JSON.")


class DecideIn(_Body):
    at: When = None
    supersede: bool = Field(default=False, description="Replace the decision in force (needs reason).")
    reason: Text | None = None


class AppealIn(_Body):
    team: Id
    grounds: Text
    at: When = None


class AppealFiled(_Out):
    appeal_id: int
    decision_id: int
    team: str
    status: Literal["pending"]
    filed_at: str


class ResolveIn(_Body):
    outcome: Literal["upheld", "rejected"]
    reason: Text
    at: When = None


class AppealResolved(_Out):
    appeal_id: int
    status: Literal["upheld", "rejected"]
    new_decision: Decision | None = Field(description="The decision an upheld appeal made.")


class VoidIn(_Body):
    reason: Text


class ScoreVoided(_Out):
    id: int
    voids: int
    team: str
    source: str
    rater: str
    reason: str | None


class GateVoided(_Out):
    id: int
    voids: int
    team: str
    gate: str
    reason: str


class ImportUndone(_Out):
    batch_id: str
    restored: list[dict[str, Any]]
    voided: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


# --------------------------------------------------------------------------- audit


class AuditEntry(_Out):
    seq: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: int | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    sealed: str | None = Field(default=None, description="Set when the entry's content is withheld for now (an "
                                                          "expert panel before its stage's decision): why, and when "
                                                          "it is published. Its hash still links the chain.")


class AuditPage(_Out):
    entries: list[AuditEntry]
    next: int | None = Field(description="Pass as `after` for the next page; null on the last page.")
    head: str | None = Field(description="Hash of the newest entry of the whole log.")


class Verification(_Out):
    ok: bool
    entries: int
    head: str
    problems: list[dict[str, Any]]


class AuditExport(_Out):
    schema_: str = Field(alias="schema")
    head: str
    sealed: int = Field(default=0, description="How many entries are sealed (content withheld for now).")
    entries: list[AuditEntry]


class TrailEntry(_Out):
    seq: int
    at: str
    time: str
    actor: str
    action: str
    entity: str
    entity_id: int | None
    summary: str
    hash: str


class Trail(_Out):
    entries: list[TrailEntry]
    shown: int
    matched: int
    total: int
    tz: str
