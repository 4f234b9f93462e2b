"""The versions of a program in the store: which exist, which decisions used each, and what changed between two.

So that nobody has to compare TOML files by eye to learn whether an amendment changed the rules of a stage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.errors import InputError
from simsa.program.diff import ProgramDiff, diff_programs, unified_text
from simsa.program.loader import LoadedProgram, load_program, parse_program
from simsa.services import decision_records
from simsa.services.programs import is_file_ref
from simsa.store.models import Decision, ProgramVersion
from simsa.timeutil import utc_text


@dataclass(frozen=True)
class VersionInfo:
    """One stored version and the decisions made with it (`in_force`: those still in force)."""

    id: int
    program: str
    sha256: str
    loaded_at: str
    loaded_by: str
    source_path: str
    decisions: tuple[int, ...]
    in_force: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"id": self.id, "program": self.program, "sha256": self.sha256, "loaded_at": self.loaded_at,
                "loaded_by": self.loaded_by, "source_path": self.source_path, "decisions": list(self.decisions),
                "decisions_in_force": list(self.in_force), "used_by_decision": bool(self.decisions)}


def list_versions(session: Session, key: str | None = None) -> list[VersionInfo]:
    """Every loaded version (of one program, or of all), oldest first."""
    query = select(ProgramVersion).order_by(ProgramVersion.program_key, ProgramVersion.id)
    if key is not None:
        query = query.where(ProgramVersion.program_key == key)
    rows = session.execute(query).scalars().all()
    used: dict[int, list[int]] = {}
    in_force: set[int] = set()
    decided = session.execute(select(Decision.id, Decision.program_version_id, Decision.program_key,
                                     Decision.stage_id).order_by(Decision.id)).all()
    for d_id, version_id, _, _ in decided:
        used.setdefault(version_id, []).append(d_id)
    for prog, stage in sorted({(p, s) for _, _, p, s in decided}):
        row = decision_records.effective(session, prog, stage)
        if row is not None:
            in_force.add(row.id)
    return [VersionInfo(id=r.id, program=r.program_key, sha256=r.sha256, loaded_at=utc_text(r.loaded_at),
                        loaded_by=r.loaded_by, source_path=r.source_path, decisions=tuple(used.get(r.id, ())),
                        in_force=tuple(d for d in used.get(r.id, ()) if d in in_force)) for r in rows]


@dataclass(frozen=True)
class Side:
    """One side of a diff: a stored version or a file on disk (not loaded yet: `version_id` None)."""

    label: str
    sha256: str
    version_id: int | None
    path: str

    def to_dict(self) -> dict:
        return {"label": self.label, "sha256": self.sha256, "version_id": self.version_id, "path": self.path}


@dataclass(frozen=True)
class VersionDiff:
    program: str
    before: Side
    after: Side
    diff: ProgramDiff
    text: str | None = None

    def to_dict(self) -> dict:
        out = {"program": self.program, "from": self.before.to_dict(), "to": self.after.to_dict(),
               **self.diff.to_dict()}
        if self.text is not None:
            out["text_diff"] = self.text
        return out


def diff_versions(session: Session, program: str, from_ref: str | None = None, to_ref: str | None = None, *,
                  text: bool = False) -> VersionDiff:
    """Compare two versions of a program: by default the previous and the latest loaded one.

    `program` is a loaded program's id or a program file; a file (as `program` or `to_ref`) is compared, unloaded,
    with the latest loaded version. References are version ids, sha256 prefixes or file paths.
    """
    file_program = load_program(program) if is_file_ref(program) else None
    key = file_program.program.program.id if file_program else program
    versions = session.execute(select(ProgramVersion).where(ProgramVersion.program_key == key)
                               .order_by(ProgramVersion.id)).scalars().all()
    if not versions and not (file_program and from_ref and to_ref):
        raise InputError(f"no loaded program with id {key!r}" + ("" if file_program else
                                                                  "; `simsa program list` shows the loaded ones"))
    if to_ref is None and file_program is not None:
        after = _side_of_file(file_program)
    elif to_ref is None:
        after = _side_of_version(versions[-1], key)
    else:
        after = _side(session, key, versions, to_ref)
    if from_ref is not None:
        before = _side(session, key, versions, from_ref)
    else:
        older = [v for v in versions if v.sha256 != after[0].sha256]  # a file already loaded is that version
        if not older:
            raise InputError(f"program {key!r} has only one loaded version ({versions[0].id}); pass --to FILE to "
                             "compare it with a file, or load another version")
        before = _side_of_version(older[-1], key)
    (b_side, b_loaded), (a_side, a_loaded) = before, after
    for side, loaded in ((b_side, b_loaded), (a_side, a_loaded)):
        if loaded.program.program.id != key:
            raise InputError(f"{side.label} is program {loaded.program.program.id!r}, not {key!r}")
    diff = diff_programs(b_loaded.program, a_loaded.program)
    body = unified_text(b_loaded.text, a_loaded.text, b_side.label, a_side.label) if text else None
    return VersionDiff(program=key, before=b_side, after=a_side, diff=diff, text=body)


def _side(session: Session, key: str, versions: Sequence[ProgramVersion], ref: str) -> tuple[Side, LoadedProgram]:
    if is_file_ref(ref):
        return _side_of_file(load_program(ref))
    ref = ref.strip()
    if ref.isdigit():
        hit = [v for v in versions if v.id == int(ref)]
    elif re.fullmatch(r"[0-9a-fA-F]{4,64}", ref):
        hit = [v for v in versions if v.sha256.startswith(ref.lower())]
    else:
        raise InputError(f"{ref!r} is not a version id, a sha256 prefix (4+ hex digits) or a program file")
    if len(hit) != 1:
        known = ", ".join(f"{v.id} ({v.sha256[:12]})" for v in versions) or "none"
        what = "matches several versions" if hit else "is not a loaded version"
        raise InputError(f"{ref!r} {what} of program {key!r} (versions: {known})")
    return _side_of_version(hit[0], key)


def _side_of_version(row: ProgramVersion, key: str) -> tuple[Side, LoadedProgram]:
    label = f"version {row.id} ({row.sha256[:12]})"
    loaded = parse_program(row.text, f"{key} {label}")
    return Side(label=label, sha256=row.sha256, version_id=row.id, path=row.source_path), loaded


def _side_of_file(loaded: LoadedProgram) -> tuple[Side, LoadedProgram]:
    return Side(label=f"{loaded.path} ({loaded.sha256[:12]})", sha256=loaded.sha256, version_id=None,
                path=loaded.path), loaded
