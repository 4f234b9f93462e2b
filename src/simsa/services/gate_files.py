"""Bulk gate results: a .csv or .json file of results for gates of kind `recorded`, imported all or nothing.

Read with the same defences as score files (regular files only, size cap, CP949/UTF-16 recognised, every bad row
named), validated whole before anything is written, then recorded through the same audited path as `gate record`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from simsa.audit.log import append, now_utc
from simsa.errors import InputError, collect
from simsa.program.grades import Grade, check_grade
from simsa.services import gates as gate_service
from simsa.services import programs
from simsa.services.corrections import new_batch_id
from simsa.services.programs import ProgramRef, VersionWarning
from simsa.services.score_files import (
    check_mapping,
    csv_records,
    decode,
    flag,
    json_records,
    read_capped,
    shown,
)
from simsa.store.models import GateResult

FIELDS = ("stage", "team", "gate", "passed", "evidence", "link", "example", "grade", "override_reason")
REQUIRED = ("stage", "team", "gate", "passed", "evidence")
MAX_GATE_IMPORT_BYTES = 10_000_000


@dataclass(frozen=True)
class GateInput:
    stage: str
    team: str
    gate: str
    passed: bool
    evidence: str
    link: str | None = None
    example: bool = False
    grade: Grade = "declared"
    override_reason: str | None = None
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class ParsedGates:
    items: list[GateInput]
    notices: list[str] = field(default_factory=list)


def _passed(value: object, where: str) -> bool:
    text = str(value).strip().lower() if value is not None else ""
    if isinstance(value, bool):
        return value
    if text in ("pass", "passed", "true", "yes", "1"):
        return True
    if text in ("fail", "failed", "false", "no", "0"):
        return False
    raise InputError(f"{where}: passed must be pass/fail (or true/false), got {shown(value)}")


def _from_mapping(rec: dict[str, Any], where: str) -> GateInput:
    check_mapping(rec, where, FIELDS, ("stage", "team", "gate", "evidence"))
    link = str(rec.get("link") or "").strip() or None
    try:
        grade = check_grade(str(rec.get("grade") or "declared").strip())
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    return GateInput(stage=str(rec["stage"]).strip(), team=str(rec["team"]).strip(), gate=str(rec["gate"]).strip(),
                     passed=_passed(rec.get("passed"), where), evidence=str(rec["evidence"]).strip(), link=link,
                     example=flag(rec.get("example"), where), grade=grade,
                     override_reason=str(rec.get("override_reason") or "").strip() or None, where=where)


def read_gate_file(path: str | Path) -> ParsedGates:
    """Gate results from a .csv (header row) or .json (a list of objects, or {"gates": [...]}) file."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InputError(f"{path}: unsupported gate file type {suffix or '(none)'!r}; use .csv or .json")
    text, _encoding, notices = decode(read_capped(path, MAX_GATE_IMPORT_BYTES), path)
    items = (csv_records(text, path, FIELDS, REQUIRED, _from_mapping) if suffix == ".csv"
             else json_records(text, path, "gates", _from_mapping))
    if not items:
        raise InputError(f"{path}: contains no gate results")
    return ParsedGates(items=items, notices=notices)


@dataclass(frozen=True)
class GateImport:
    batch_id: str
    rows: list[GateResult]
    warnings: tuple[VersionWarning, ...] = ()  # what registering the program version warned about

    def to_dict(self) -> dict:
        return {"batch_id": self.batch_id, "imported": len(self.rows),
                "superseded": sum(1 for r in self.rows if r.supersedes_id),
                "results": [{"id": r.id, "stage": r.stage_id, "team": r.team_id, "gate": r.gate_id,
                             "passed": r.passed, "supersedes": r.supersedes_id} for r in self.rows]}


def import_gates(session: Session, program_ref: ProgramRef, items: list[GateInput], actor: str, *, source_name: str,
                 at: dt.datetime | None = None) -> GateImport:
    """Validate every result (as `read_gate_file` reads them; every bad one named), then record them all against a
    program (a .toml path or a loaded program's id) as one audited batch, registering its version first if new."""
    target = programs.for_writing(session, program_ref, actor)
    version, program = target.version, target.program
    seen: dict[tuple[str, str, str], str] = {}

    def check(item: GateInput) -> GateInput:
        try:
            gate_service.check_result(program, stage_id=item.stage, team_id=item.team, gate_id=item.gate,
                                      evidence=item.evidence, link=item.link, passed=item.passed,
                                      grade=item.grade, override_reason=item.override_reason)
        except InputError as exc:
            raise InputError(f"{item.where}: {exc}") from None
        key = (item.stage, item.team, item.gate)
        if key in seen:
            raise InputError(f"{item.where}: a second result for stage {item.stage!r}, team {item.team!r}, gate "
                             f"{item.gate!r} (first at {seen[key]})")
        seen[key] = item.where
        return item

    collect(partial(check, item) for item in items)
    when = at or now_utc()
    batch_id = new_batch_id(when)
    rows = [gate_service.record(session, version, program, stage_id=i.stage, team_id=i.team, gate_id=i.gate,
                                passed=i.passed, evidence=i.evidence, link=i.link, actor=actor, example=i.example,
                                batch_id=batch_id, grade=i.grade, override_reason=i.override_reason) for i in items]
    append(session, actor=actor, action="gate.import", entity="batch", at=when,
           details={"batch_id": batch_id, "file": source_name, "rows": len(rows)})
    session.flush()  # the rows' ids
    return GateImport(batch_id=batch_id, rows=rows, warnings=target.warnings)
