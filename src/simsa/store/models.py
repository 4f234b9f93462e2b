"""Database tables. Every domain table is insert-only: corrections are new rows that point at what they
supersede, so the history of every score and decision stays in the database and in the audit log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
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


UTCDateTime = DateTime(timezone=True)


class ProgramVersion(Base):
    """The exact text of each program file version that was loaded."""

    __tablename__ = "program_versions"
    __table_args__ = (UniqueConstraint("program_key", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    source_path: Mapped[str] = mapped_column(String(1024))
    text: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    loaded_by: Mapped[str] = mapped_column(String(128))


class Score(Base):
    """One recorded score with its provenance; a later row with `supersedes_id` replaces it."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(128))
    rater: Mapped[str] = mapped_column(String(128), default="")
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    evidence: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    example: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(128))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("scores.id"), nullable=True, unique=True)


class GateResult(Base):
    """A recorded gate outcome for a team (e.g. originality from a lineage check) with its evidence."""

    __tablename__ = "gate_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64))
    gate_id: Mapped[str] = mapped_column(String(64))
    passed: Mapped[bool] = mapped_column(Boolean)
    evidence: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    example: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(128))
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("gate_results.id"), nullable=True, unique=True
    )


class Decision(Base):
    """A stage decision: the full decision JSON as published, and what it replaced."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_key: Mapped[str] = mapped_column(String(64), index=True)
    stage_id: Mapped[str] = mapped_column(String(64))
    program_version_id: Mapped[int] = mapped_column(ForeignKey("program_versions.id"))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
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
    filed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    filed_by: Mapped[str] = mapped_column(String(128))


class AppealResolution(Base):
    """How an appeal was resolved; an upheld appeal links to the new decision it produced."""

    __tablename__ = "appeal_resolutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id"), unique=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str] = mapped_column(String(128))
    new_decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), nullable=True)


class AuditEntry(Base):
    """One link of the hash chain: what was written, by whom, and the hash binding it to all before it."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


DOMAIN_TABLES: dict[str, type[Base]] = {
    cls.__tablename__: cls
    for cls in (ProgramVersion, Score, GateResult, Decision, Appeal, AppealResolution)
}
