"""Program files in the store: each distinct version is recorded once, with its text and hash.

Loading a version that changes the rules of a stage already decided is allowed (a programme may amend its rules),
but never silently: the load says which decisions in force were made under different rules, in its result and in
the audit entry of the load.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import append, now_utc
from simsa.errors import InputError, NotFound, SimsaError
from simsa.program.diff import Change, ProgramDiff, diff_programs
from simsa.program.loader import LoadedProgram, load_program, parse_program
from simsa.program.schema import Program
from simsa.services import decision_records
from simsa.store.models import Decision, ProgramVersion
from simsa.timeutil import as_utc

ProgramRef = str | LoadedProgram  # a .toml path, the id of a loaded program, or a program already loaded in memory
WARNINGS_KEY = "simsa.program_version_warnings"  # Session.info key: warnings of versions registered in a session


@dataclass(frozen=True)
class VersionWarning:
    """A decision in force whose stage's rules differ in the version being loaded."""

    stage: str
    decision_id: int
    decided_at: str
    decision_version_id: int
    changes: tuple[Change, ...] = ()
    problem: str | None = None   # set when the decision's version could not be compared

    @property
    def message(self) -> str:
        head = (f"stage {self.stage!r} has decision {self.decision_id} in force (made {self.decided_at} with program "
                f"version {self.decision_version_id})")
        if self.problem:
            return f"{head}; {self.problem}"
        shown = "; ".join(c.describe() for c in self.changes[:3])
        more = f"; and {len(self.changes) - 3} more" if len(self.changes) > 3 else ""
        return f"{head}; this version changes rules that decided it: {shown}{more}"

    def to_dict(self) -> dict:
        return {"stage": self.stage, "decision_id": self.decision_id, "decided_at": self.decided_at,
                "decision_version_id": self.decision_version_id, "message": self.message, "problem": self.problem,
                "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class Registration:
    """The stored version, whether this call created it, and what loading it puts in question."""

    version: ProgramVersion
    created: bool
    warnings: tuple[VersionWarning, ...] = ()

    def to_dict(self) -> dict:
        return {"version_id": self.version.id, "created": self.created,
                "decision_warnings": [w.to_dict() for w in self.warnings]}


def register_with_warnings(session: Session, loaded: LoadedProgram, actor: str) -> Registration:
    """Record this program version unless it already is, warning about decisions whose rules it changes."""
    key = loaded.program.program.id
    row = session.execute(select(ProgramVersion).where(ProgramVersion.program_key == key,
                                                       ProgramVersion.sha256 == loaded.sha256)).scalar_one_or_none()
    if row is not None:
        return Registration(row, False)
    warnings = tuple(rule_warnings(session, loaded))
    row = ProgramVersion(program_key=key, sha256=loaded.sha256, source_path=loaded.path, text=loaded.text,
                         loaded_at=now_utc(), loaded_by=actor)
    session.add(row)
    details = {"decision_warnings": [_audit_form(w) for w in warnings]} if warnings else None
    append(session, actor=actor, action="program.load", row=row, details=details)
    session.info.setdefault(WARNINGS_KEY, []).extend(warnings)
    return Registration(row, True, warnings)


def register(session: Session, loaded: LoadedProgram, actor: str) -> tuple[ProgramVersion, bool]:
    """Record this program version unless it already is; returns (row, created).

    Warnings are still computed and audited; shells read them with `session_warnings`.
    """
    reg = register_with_warnings(session, loaded, actor)
    return reg.version, reg.created


def session_warnings(session: Session) -> list[VersionWarning]:
    """Warnings of every version registered in this session (for shells that called `register` indirectly)."""
    return list(session.info.get(WARNINGS_KEY, []))


def rule_warnings(session: Session, loaded: LoadedProgram) -> list[VersionWarning]:
    """For each stage with a decision in force made with another version: the rule changes that affect it."""
    key = loaded.program.program.id
    stage_ids = session.execute(select(Decision.stage_id).where(Decision.program_key == key).distinct()
                                ).scalars().all()
    order = [s.id for s in loaded.program.stages]
    stage_ids = sorted(stage_ids, key=lambda s: (order.index(s) if s in order else len(order), s))
    diffs: dict[int, ProgramDiff | str] = {}  # per decision version: its diff, or why it cannot be read
    out: list[VersionWarning] = []
    for stage_id in stage_ids:
        decision = decision_records.effective(session, key, stage_id)
        if decision is None:
            continue
        version = session.get(ProgramVersion, decision.program_version_id)
        if version is None or version.sha256 == loaded.sha256:
            continue
        when = as_utc(decision.decided_at).strftime("%Y-%m-%d %H:%M UTC")
        base = VersionWarning(stage=stage_id, decision_id=decision.id, decided_at=when, decision_version_id=version.id)
        if version.id not in diffs:
            try:
                old = parse_program(version.text, f"{key} (stored version {version.sha256[:12]})")
                diffs[version.id] = diff_programs(old.program, loaded.program)
            except SimsaError as exc:
                diffs[version.id] = str(exc)
        diff = diffs[version.id]
        if isinstance(diff, str):
            out.append(replace(base, problem=f"its version no longer reads, so the rules cannot be compared ({diff})"))
            continue
        changes = diff.affecting(stage_id)
        if changes:
            out.append(replace(base, changes=tuple(changes)))
    return out


def _audit_form(w: VersionWarning) -> dict:
    """What the audit entry keeps: enough to see what changed without copying whole tables into the log."""
    return {"stage": w.stage, "decision_id": w.decision_id, "decision_version_id": w.decision_version_id,
            "message": w.message, "changes": [c.describe() for c in w.changes]}


def latest_version(session: Session, key: str) -> ProgramVersion | None:
    return session.execute(select(ProgramVersion).where(ProgramVersion.program_key == key)
                           .order_by(ProgramVersion.id.desc()).limit(1)).scalar_one_or_none()


@lru_cache(maxsize=64)
def _parse_stored(key: str, sha256: str, text: str) -> LoadedProgram:
    # Versions are content-addressed: the same sha256 always parses to the same programme, so parse it once.
    return parse_program(text, f"{key} (stored version {sha256[:12]})")


def parse_stored(row: ProgramVersion) -> LoadedProgram:
    """What a stored version defines."""
    return _parse_stored(row.program_key, row.sha256, row.text)


def stored_version(session: Session, key: str) -> tuple[ProgramVersion, LoadedProgram]:
    """The newest stored version of programme `key` and what it defines — never a file on disk, so a name that
    arrived over the network cannot make the server read its files."""
    row = latest_version(session, key) if len(key) <= 64 else None
    if row is None:
        shown = key if len(key) <= 70 else key[:67] + "..."
        raise NotFound(f"no programme {shown!r} is loaded")
    return row, parse_stored(row)


def stored(session: Session, key: str) -> LoadedProgram:
    """Programme `key` as its newest stored version defines it (see `stored_version`)."""
    return stored_version(session, key)[1]


def stored_programs(session: Session) -> list[LoadedProgram]:
    """Every programme in the store as its newest version defines it, by id: what the arena and panel lists walk."""
    keys = session.execute(select(ProgramVersion.program_key).distinct()).scalars()
    return [stored(session, key) for key in sorted(keys)]


def is_file_ref(ref: str) -> bool:
    """A reference names a file when the file exists or it ends in .toml (so a typo says "file not found")."""
    return Path(ref).exists() or ref.endswith(".toml")


def resolve(session: Session, ref: ProgramRef) -> LoadedProgram:
    """A program reference is a path to a TOML file, or the id of a program already loaded in the store.

    A program already loaded in memory (`LoadedProgram`) is its own reference.
    """
    if isinstance(ref, LoadedProgram):
        return ref
    if is_file_ref(ref):
        return load_program(ref)
    row = latest_version(session, ref)
    if row is None:
        raise InputError(f"no program file {ref!r} and no loaded program with that id; "
                         f"pass the path of the .toml file")
    return parse_program(row.text, f"{ref} (stored version {row.sha256[:12]})")


@dataclass(frozen=True)
class Writable:
    """A program ready to record against: the program as read, and its stored version (registered if new)."""

    loaded: LoadedProgram
    version: ProgramVersion
    created: bool = False
    warnings: tuple[VersionWarning, ...] = ()

    @property
    def program(self) -> Program:
        return self.loaded.program

    @property
    def key(self) -> str:
        return self.loaded.program.program.id

    def to_dict(self) -> dict:
        return {"program": self.key, "sha256": self.loaded.sha256, "version_id": self.version.id,
                "created": self.created, "decision_warnings": [w.to_dict() for w in self.warnings]}


def for_writing(session: Session, ref: ProgramRef, actor: str) -> Writable:
    """Resolve a program reference and record its version unless it already is: what every write starts with.

    Warnings about decisions whose rules the version changes are in the result, and in `session_warnings`.
    """
    loaded = resolve(session, ref)
    reg = register_with_warnings(session, loaded, actor)
    return Writable(loaded=loaded, version=reg.version, created=reg.created, warnings=reg.warnings)
