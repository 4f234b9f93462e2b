"""Program files in the store: each distinct version is recorded once, with its text and hash."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.program.loader import LoadedProgram, load_program, parse_program
from simsa.store.models import ProgramVersion


def register(session: Session, loaded: LoadedProgram, actor: str) -> tuple[ProgramVersion, bool]:
    """Record this program version unless it already is; returns (row, created)."""
    key = loaded.program.program.id
    row = session.execute(select(ProgramVersion).where(ProgramVersion.program_key == key,
                                                       ProgramVersion.sha256 == loaded.sha256)).scalar_one_or_none()
    if row is not None:
        return row, False
    row = ProgramVersion(program_key=key, sha256=loaded.sha256, source_path=loaded.path, text=loaded.text,
                         loaded_at=now_utc(), loaded_by=actor)
    session.add(row)
    append(session, actor=actor, action="program.load", row=row)
    return row, True


def latest_version(session: Session, key: str) -> ProgramVersion | None:
    return session.execute(select(ProgramVersion).where(ProgramVersion.program_key == key)
                           .order_by(ProgramVersion.id.desc()).limit(1)).scalar_one_or_none()


def resolve(session: Session, ref: str) -> LoadedProgram:
    """A program reference is a path to a TOML file, or the id of a program already loaded in the store."""
    if Path(ref).exists() or ref.endswith(".toml"):
        return load_program(ref)
    row = latest_version(session, ref)
    if row is None:
        raise InputError(f"no program file {ref!r} and no loaded program with that id; "
                         f"pass the path of the .toml file")
    return parse_program(row.text, f"{ref} (stored version {row.sha256[:12]})")
