"""Database tables. Every domain table is insert-only: corrections are new rows that point at what they
supersede, so the history of every score and decision stays in the database and in the audit log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An instant stored as UTC on every backend and read back as an aware UTC datetime.

    SQLite keeps no offset: an aware value was written as its local clock time and read back as if it were UTC,
    so a time given in Korean time moved by nine hours between the audit log and the row. Converting at the
    column makes every write UTC whatever the caller passed (a naive value is taken to be UTC already).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# Rows are chained per key: a new row for a key supersedes the key's current row, and `supersedes_id` is unique, so
# no row is superseded twice. These partial indexes forbid the other fork: two first rows for one key. Together they
# make each key's rows one line, so exactly one row per key is current — enforced by the database, not by luck.
NO_PREDECESSOR = text("supersedes_id IS NULL")


def _one_root(name: str, *columns: str) -> Index:
    return Index(name, *columns, unique=True, sqlite_where=NO_PREDECESSOR, postgresql_where=NO_PREDECESSOR)


class ProgramVersion(Base):
    """The exact text of each program file version that was loaded."""

    __tablename__ = "program_versions"
    __table_args__ = (UniqueConstraint("program_key", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    source_path: Mapped[str] = mapped_column(String(1024))
    text: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    loaded_by: Mapped[str] = mapped_column(String(128))


class Score(Base):
    """One recorded score with its provenance; a later row with `supersedes_id` replaces it.

    A correction never deletes: `voided` rows supersede a score and leave its key without a value (value NULL,
    `reason` saying why); `batch_id` names the import a row came from, so a whole import can be undone.
    """

    __tablename__ = "scores"
    __table_args__ = (
        _one_root("uq_scores_first_per_key", "program_key", "stage_id", "team_id", "source", "rater"),
        Index("ix_scores_key", "program_key", "stage_id", "team_id", "source", "rater"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(128))
    rater: Mapped[str] = mapped_column(String(128), default="")
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    evidence: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    example: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(128))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("scores.id"), nullable=True, unique=True)
    voided: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    grade: Mapped[str | None] = mapped_column(String(16), nullable=True)  # NULL: the grade its source implies


class GateResult(Base):
    """A recorded gate outcome for a team (e.g. originality from a lineage check) with its evidence.

    A voided row (`passed` NULL, `evidence` the reason) supersedes a result and leaves the gate without one.
    """

    __tablename__ = "gate_results"
    __table_args__ = (_one_root("uq_gate_results_first_per_key", "program_key", "stage_id", "team_id", "gate_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    gate_id: Mapped[str] = mapped_column(String(64))
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    evidence: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    example: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(128))
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("gate_results.id"), nullable=True, unique=True
    )
    voided: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("evidence_documents.id"), nullable=True)
    grade: Mapped[str | None] = mapped_column(String(16), nullable=True)  # NULL (older rows): declared
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class EvidenceDocument(Base):
    """A document a record rests on (a `lineage compare` result behind an originality gate), stored once by the
    sha256 of its bytes, so the published evidence can be read and re-hashed by anyone."""

    __tablename__ = "evidence_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    stored_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    stored_by: Mapped[str] = mapped_column(String(128))


class Decision(Base):
    """A stage decision: the full decision JSON as published, and what it replaced."""

    __tablename__ = "decisions"
    __table_args__ = (_one_root("uq_decisions_first_per_stage", "program_key", "stage_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    program_version_id: Mapped[int] = mapped_column(ForeignKey("program_versions.id"))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), nullable=True, unique=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id", use_alter=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Appeal(Base):
    """An appeal filed by a team against a decision, within the stage's appeal window."""

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    team_id: Mapped[str] = mapped_column(String(64))
    grounds: Mapped[str] = mapped_column(Text)
    filed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    filed_by: Mapped[str] = mapped_column(String(128))


class AppealResolution(Base):
    """How an appeal was resolved; an upheld appeal links to the new decision it produced."""

    __tablename__ = "appeal_resolutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id"), unique=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str] = mapped_column(String(128))
    new_decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), nullable=True)


# The expert panel. Contents an observer must not read before the decision (review scores and justifications,
# discussion, which blind code a team has) are kept as bytes: the audit log records a byte column as the sha256 of
# its bytes, so the chain pins every locked score without publishing it, and any edit fails `audit verify`.
class PanelBlob(Base):
    """A submitted file's bytes, stored once by sha256 (content-addressed)."""

    __tablename__ = "panel_blobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    stored_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    stored_by: Mapped[str] = mapped_column(String(128))


class PanelDocument(Base):
    """A document in a stage's panel: a team's submission (`team_id`) or a calibration anchor (`anchor_id`).

    Withdrawing adds a row with `withdrawn` that supersedes the document; nothing is deleted.
    """

    __tablename__ = "panel_documents"
    __table_args__ = (
        CheckConstraint("(team_id IS NULL) <> (anchor_id IS NULL)", name="owner"),
        Index("ix_panel_documents_stage", "program_key", "stage_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    anchor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    purpose: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(256))
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("panel_blobs.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    uploaded_by: Mapped[str] = mapped_column(String(128))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("panel_documents.id"), nullable=True, unique=True)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)


class PanelDeclaration(Base):
    """What an expert declared: affiliations, relations, and teams they know they are conflicted with (JSON
    lists). The newest row per expert is in force; earlier ones stay as history."""

    __tablename__ = "panel_declarations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    expert: Mapped[str] = mapped_column(String(64), index=True)
    affiliations: Mapped[str] = mapped_column(Text)
    relations: Mapped[str] = mapped_column(Text)
    conflicts: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PanelAssignment(Base):
    """An expert assigned to review a team in a stage; a later row (`removed`) supersedes it."""

    __tablename__ = "panel_assignments"
    __table_args__ = (_one_root("uq_panel_assignments_first_per_key", "program_key", "stage_id", "team_id", "expert"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    expert: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    assigned_by: Mapped[str] = mapped_column(String(128))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("panel_assignments.id"), nullable=True, unique=True)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)


class PanelCode(Base):
    """The blind code a team goes by in a stage's panel; `content` holds the code with a random nonce, so the
    log's sha256 of it does not reveal which team has which code."""

    __tablename__ = "panel_codes"
    __table_args__ = (UniqueConstraint("program_key", "stage_id", "team_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class PanelReview(Base):
    """An expert's locked scores for one subject (a team, or a calibration anchor) in one round.

    Unique per (stage, round, subject, expert): submitting locks, and a second submission is refused by the
    database. `content` is the canonical JSON of the scores, justifications and the identification answer.
    """

    __tablename__ = "panel_reviews"
    __table_args__ = (UniqueConstraint("program_key", "stage_id", "round", "subject", "expert"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    round: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    expert: Mapped[str] = mapped_column(String(64))
    rubric_sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PanelComment(Base):
    """A message in a team's discussion thread (round 2). A moderator hides one by adding a row that names it
    (`hides_id`, `reason`); the hidden message stays in the store."""

    __tablename__ = "panel_comments"
    __table_args__ = (Index("ix_panel_comments_thread", "program_key", "stage_id", "team_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    posted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    hides_id: Mapped[int | None] = mapped_column(ForeignKey("panel_comments.id"), nullable=True, unique=True)


class PanelEvent(Base):
    """A step of a stage's panel: opening calibration, round 1, round 2, closing; `details` holds the evidence
    the step was taken on (e.g. the calibration α)."""

    __tablename__ = "panel_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    by: Mapped[str] = mapped_column(String(128))


class ArenaSegment(Base):
    """A frozen set of arena entrants: each team's endpoint identity or weights digest, the system prompt and the
    decoding settings, hashed (`manifest_sha256`) into the audit chain before voting. A change opens a new
    segment, reported separately; votes belong to the segment their battle was started in."""

    __tablename__ = "arena_segments"
    __table_args__ = (UniqueConstraint("program_key", "stage_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[str] = mapped_column(String(128))


class ArenaBattle(Base):
    """One blind battle the schedule gave a rater: which entrant is on the left and on the right (or, for an
    attention check, which side holds the good answer). `token` is the battle's unguessable public id."""

    __tablename__ = "arena_battles"
    __table_args__ = (Index("ix_arena_battles_stage", "program_key", "stage_id"),
                      Index("ix_arena_battles_rater", "rater", "started_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    program_key: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    segment_id: Mapped[int] = mapped_column(ForeignKey("arena_segments.id"))
    rater: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # entrants | gold
    left_team: Mapped[str] = mapped_column(String(64))
    right_team: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    gold_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ArenaTurn(Base):
    """One prompt of a battle and the two answers to it, with each answer's measured latency and speed. Prompt
    and answers are kept as bytes so the audit chain pins them by hash without publishing raters' text."""

    __tablename__ = "arena_turns"
    __table_args__ = (UniqueConstraint("battle_id", "turn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    battle_id: Mapped[int] = mapped_column(ForeignKey("arena_battles.id"))
    turn: Mapped[int] = mapped_column(Integer)
    prompt_source: Mapped[str] = mapped_column(String(80))  # rater | curated:<id> | gold:<id>
    prompt: Mapped[bytes] = mapped_column(LargeBinary)
    prompt_key: Mapped[str] = mapped_column(Text)  # normalised sha256 and minhash signature (JSON)
    answer_left: Mapped[bytes] = mapped_column(LargeBinary)
    answer_right: Mapped[bytes] = mapped_column(LargeBinary)
    stats: Mapped[str] = mapped_column(Text)  # per side: latency, tokens, tokens/s, finish reason (JSON)
    answered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ArenaVote(Base):
    """A rater's verdict on a battle, once: unique per battle. `status` is counted, void (with the reason, e.g.
    an answer named its team) or, for attention checks, gold_pass / gold_fail. Nothing is ever deleted."""

    __tablename__ = "arena_votes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    battle_id: Mapped[int] = mapped_column(ForeignKey("arena_battles.id"), unique=True)
    rater: Mapped[str] = mapped_column(String(64))
    choice: Mapped[str] = mapped_column(String(16))  # left | right | tie | both_bad
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    dwell_seconds: Mapped[float] = mapped_column(Float)
    voted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ArenaRating(Base):
    """A rater's optional ratings of one answer after the vote (usefulness, cost efficiency; 1–5)."""

    __tablename__ = "arena_ratings"
    __table_args__ = (UniqueConstraint("battle_id", "side"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    battle_id: Mapped[int] = mapped_column(ForeignKey("arena_battles.id"))
    side: Mapped[str] = mapped_column(String(8))
    usefulness: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_efficiency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ArenaExclusion(Base):
    """The secretariat's decision on a flagged rater or a single vote: `exclude` (the votes stay, marked, and stop
    counting) or `keep` (the flag was looked at and the votes count), with the reason and the evidence shown."""

    __tablename__ = "arena_exclusions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    rater: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vote_id: Mapped[int | None] = mapped_column(ForeignKey("arena_votes.id"), nullable=True)
    decision: Mapped[str] = mapped_column(String(16))  # exclude | keep
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str] = mapped_column(String(128))


class Commitment(Base):
    """What a team committed to at a stage's start (seed, data manifest, tokenizer, step-0 weights, entrant weights),
    as digests only: `sha256` over the content, and for a directory each file's in `files` (JSON). A changed
    commitment is a new row superseding the old one, with the reason; nothing is overwritten."""

    __tablename__ = "commitments"
    __table_args__ = (_one_root("uq_commitments_first_per_key", "program_key", "stage_id", "team_id", "kind",
                                "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))  # file | tree | weights
    files: Mapped[str] = mapped_column(Text)  # JSON [[path, sha256, bytes], ...]; [] for a single file
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(128))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("commitments.id"), nullable=True, unique=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEntry(Base):
    """One link of the hash chain: what was written, by whom, and the hash binding it to all before it."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)



# Accounts of the web platform. Unlike the domain tables these rows change (a password is set, a login counted, a
# session ends), so the audit log records what was done to them as `details` and never a row snapshot: they are not
# in DOMAIN_TABLES, and no password, hash or token ever goes into the log.
ROLES = ("admin", "expert", "rater", "team", "public")  # simsa.accounts.Role; a new role needs a migration


class Account(Base):
    """A person (or a team) who signs in; `password_hash` stays NULL until the invitation is accepted."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role"),
        CheckConstraint("(role = 'team' AND program_key IS NOT NULL AND team_id IS NOT NULL) "
                        "OR (role <> 'team' AND team_id IS NULL)", name="team_scope"),
        CheckConstraint("username = lower(username)", name="username_lower"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    program_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    team_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Invitation(Base):
    """A one-time link that lets an invited account set its password; only the token's sha256 is kept."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))


class ApiToken(Base):
    """A bearer token for the JSON API; `prefix` (the token's first characters) lets its owner recognise it."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebSession(Base):
    """A signed-in browser: the cookie's token is kept as its sha256, with the session's CSRF token."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# Columns added by later migrations, with the value rows written before them hold (audit snapshots of those rows
# lack the column).
ADDED_COLUMNS: dict[str, dict[str, object]] = {
    "scores": {"voided": False, "reason": None, "batch_id": None, "grade": None},
    "gate_results": {"voided": False, "batch_id": None, "document_id": None, "grade": None, "override_reason": None},
}

DOMAIN_TABLES: dict[str, type[Base]] = {
    cls.__tablename__: cls
    for cls in (ProgramVersion, Score, GateResult, Decision, Appeal, AppealResolution, EvidenceDocument,
                PanelBlob, PanelDocument, PanelDeclaration, PanelAssignment, PanelCode, PanelReview, PanelComment,
                PanelEvent, ArenaSegment, ArenaBattle, ArenaTurn, ArenaVote, ArenaRating, ArenaExclusion, Commitment)
}


# Ecosystem signals (hub downloads, likes, derivatives): the hub's raw answers, stored once by sha256 like panel blobs
# (the audit log records their bytes by hash), and the snapshots parsed from them, replayable offline.
class EcosystemAnswer(Base):
    """One raw answer of a model hub, its bytes stored once by sha256, with the first request that returned it."""

    __tablename__ = "ecosystem_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(String(128))
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status: Mapped[int] = mapped_column(Integer)
    library_version: Mapped[str] = mapped_column(String(128))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class EcosystemSnapshot(Base):
    """A programme's hub signals at one time: `body` is the snapshot JSON (schema simsa.ecosystem.snapshot/1),
    naming every answer it was parsed from by sha256; `sha256` is the body's."""

    __tablename__ = "ecosystem_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    endpoint: Mapped[str] = mapped_column(String(1024))
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    taken_by: Mapped[str] = mapped_column(String(128))


DOMAIN_TABLES.update({cls.__tablename__: cls for cls in (EcosystemAnswer, EcosystemSnapshot)})
