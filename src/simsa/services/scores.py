"""Recording scores with provenance, importing score files, and reading the current value of each source.

Scores are never overwritten: recording a score for the same stage, team, source and rater again adds a row
that supersedes the previous one. The current value of a source is the mean over its raters' current rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.program.adjudicate import SourceScore
from simsa.program.schema import Program
from simsa.store.models import ProgramVersion, Score

MAX_IMPORT_BYTES = 50_000_000
FIELDS = ("stage", "team", "source", "value", "stderr", "rater", "run_id", "evidence", "note", "example")


@dataclass(frozen=True)
class ScoreInput:
    stage: str
    team: str
    source: str
    value: float
    stderr: float | None = None
    rater: str = ""
    run_id: str | None = None
    evidence: str | None = None
    note: str | None = None
    example: bool = False
    where: str = field(default="", compare=False)


def validate(program: Program, item: ScoreInput) -> None:
    """Refuse scores the program cannot use: unknown stage/team/source, non-finite or out-of-range values."""
    at = f"{item.where}: " if item.where else ""
    try:
        stage = program.stage(item.stage)
    except KeyError:
        raise InputError(f"{at}unknown stage {item.stage!r} (stages: {', '.join(s.id for s in program.stages)})"
                         ) from None
    try:
        program.team(item.team)
    except KeyError:
        raise InputError(f"{at}unknown team {item.team!r} (teams: {', '.join(t.id for t in program.teams)})"
                         ) from None
    sources = stage.score_sources()
    if item.source not in sources:
        raise InputError(f"{at}stage {item.stage!r} has no criterion or gate fed by {item.source!r} "
                         f"(sources: {', '.join(sources)})")
    if not math.isfinite(item.value):
        raise InputError(f"{at}value must be a finite number, got {item.value!r}")
    if item.stderr is not None and (not math.isfinite(item.stderr) or item.stderr < 0):
        raise InputError(f"{at}stderr must be a non-negative number, got {item.stderr!r}")
    for leaf in stage.leaves():
        if leaf.source == item.source and leaf.norm == "absolute":
            low, high = leaf.raw_range or (0.0, 1.0)
            if not low <= item.value <= high:
                raise InputError(f"{at}{item.source} value {item.value:g} is outside the range [{low:g}, {high:g}] "
                                 f"of criterion {leaf.id!r}")
        if leaf.source == item.source and leaf.norm == "relative_to_best" and item.value < 0:
            raise InputError(f"{at}{item.source} value {item.value:g} is negative; relative_to_best needs values ≥ 0")


def _current_row(session: Session, key: str, item: ScoreInput) -> Score | None:
    superseded = select(Score.supersedes_id).where(Score.supersedes_id.is_not(None))
    return session.execute(select(Score).where(
        Score.program_key == key, Score.stage_id == item.stage, Score.team_id == item.team,
        Score.source == item.source, Score.rater == item.rater, Score.id.not_in(superseded),
    ).order_by(Score.id.desc()).limit(1)).scalar_one_or_none()


def add(session: Session, version: ProgramVersion, program: Program, items: list[ScoreInput], actor: str,
        at: dt.datetime | None = None) -> list[Score]:
    """Validate every item first, then record them all (one transaction: all or nothing)."""
    for item in items:
        validate(program, item)
    rows = []
    when = at or now_utc()
    for item in items:
        previous = _current_row(session, version.program_key, item)
        row = Score(program_key=version.program_key, stage_id=item.stage, team_id=item.team, source=item.source,
                    rater=item.rater, value=float(item.value), stderr=item.stderr, run_id=item.run_id,
                    evidence=item.evidence, note=item.note, example=item.example, recorded_at=when,
                    recorded_by=actor, supersedes_id=previous.id if previous else None)
        session.add(row)
        append(session, actor=actor, action="score.supersede" if previous else "score.add", row=row, at=when)
        rows.append(row)
    return rows


def current(session: Session, key: str, stage_id: str) -> dict[str, dict[str, SourceScore]]:
    """team → source → current value (mean over raters; standard error from their spread when n ≥ 2)."""
    superseded = select(Score.supersedes_id).where(Score.supersedes_id.is_not(None))
    rows = session.execute(select(Score).where(Score.program_key == key, Score.stage_id == stage_id,
                                               Score.id.not_in(superseded)).order_by(Score.id)).scalars().all()
    grouped: dict[tuple[str, str], list[Score]] = {}
    for row in rows:
        grouped.setdefault((row.team_id, row.source), []).append(row)
    out: dict[str, dict[str, SourceScore]] = {}
    for (team, source), items in grouped.items():
        values = [r.value for r in items]
        n = len(values)
        mean = math.fsum(values) / n
        if n >= 2:
            var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
            se: float | None = math.sqrt(var / n)
        else:
            se = items[0].stderr
        out.setdefault(team, {})[source] = SourceScore(value=mean, stderr=se, n=n,
                                                       example=any(r.example for r in items),
                                                       score_ids=tuple(r.id for r in items))
    return out


def history(session: Session, key: str, stage_id: str | None = None, team: str | None = None) -> list[Score]:
    query = select(Score).where(Score.program_key == key)
    if stage_id:
        query = query.where(Score.stage_id == stage_id)
    if team:
        query = query.where(Score.team_id == team)
    return list(session.execute(query.order_by(Score.id)).scalars())


def _number(text: str, name: str, where: str, optional: bool) -> float | None:
    text = (text or "").strip()
    if not text:
        if optional:
            return None
        raise InputError(f"{where}: {name} is required")
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: {name} must be a number, got {text!r}") from None


def _flag(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise InputError(f"{where}: example must be true/false, got {value!r}")


def _from_mapping(rec: dict, where: str) -> ScoreInput:
    unknown = sorted(set(rec) - set(FIELDS))
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    for name in ("stage", "team", "source"):
        if not str(rec.get(name) or "").strip():
            raise InputError(f"{where}: {name} is required")

    def num(name: str, optional: bool) -> float | None:
        value = rec.get(name)
        if isinstance(value, bool):
            raise InputError(f"{where}: {name} must be a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        return _number("" if value is None else str(value), name, where, optional)

    def opt(name: str) -> str | None:
        value = rec.get(name)
        return None if value is None or str(value).strip() == "" else str(value).strip()

    value = num("value", False)
    assert value is not None
    return ScoreInput(stage=str(rec["stage"]).strip(), team=str(rec["team"]).strip(),
                      source=str(rec["source"]).strip(), value=value, stderr=num("stderr", True),
                      rater=opt("rater") or "", run_id=opt("run_id"), evidence=opt("evidence"), note=opt("note"),
                      example=_flag(rec.get("example"), where), where=where)


def parse_file(path: str | Path) -> list[ScoreInput]:
    """Read a .csv (header row) or .json (list of objects, or {"scores": [...]}) score file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: file not found")
    if p.stat().st_size > MAX_IMPORT_BYTES:
        raise InputError(f"{path}: file is larger than {MAX_IMPORT_BYTES} bytes")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (offset {exc.start})") from None
    suffix = p.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise InputError(f"{path}: empty CSV file (expected a header row: {', '.join(FIELDS)})")
        items = []
        try:
            for rec in reader:
                where = f"{path}:{reader.line_num}"
                if None in rec:
                    raise InputError(f"{where}: more values than header columns")
                items.append(_from_mapping(rec, where))
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
    elif suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
        records = doc.get("scores") if isinstance(doc, dict) else doc
        if not isinstance(records, list):
            raise InputError(f"{path}: expected a list of score objects or {{\"scores\": [...]}}")
        items = []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InputError(f"{path}: scores[{i}] is not an object")
            items.append(_from_mapping(rec, f"{path}: scores[{i}]"))
    else:
        raise InputError(f"{path}: unsupported score file type {suffix or '(none)'!r}; use .csv or .json")
    if not items:
        raise InputError(f"{path}: contains no scores")
    return items
