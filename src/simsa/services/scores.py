"""Recording scores with provenance, importing score files, and reading the current value of each source.

Scores are never overwritten: recording a score for the same stage, team, source and rater again adds a row
that supersedes the previous one. The current value of a source is the mean over its raters' current rows.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, TypedDict, cast

from sqlalchemy import Table, exists, func, insert, select, text
from sqlalchemy.orm import Session, aliased

from simsa.audit.log import Write, append_many, now_utc, plain_values
from simsa.errors import InputError, collect
from simsa.program.grades import Grade, check_grade, source_grade, weakest
from simsa.program.schema import Criterion, Program, Stage
from simsa.services import programs
from simsa.services.programs import ProgramRef, VersionWarning
from simsa.store.models import ProgramVersion, Score

if TYPE_CHECKING:  # the adjudication module loads numpy; `score add` does not need it
    from simsa.program.adjudicate import SourceScore
from simsa.timeutil import as_utc

MAX_IMPORT_BYTES = 50_000_000
MAX_SCORE_MAGNITUDE = 1e12  # any real score or standard error is far smaller; larger ones are typos or attacks
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


@dataclass(frozen=True)
class _StageRules:
    """What `validate` checks a stage's scores against, computed once per stage rather than once per row."""

    sources: tuple[str, ...]
    leaves: dict[str, Criterion]  # source → leaf criterion


def _stage_rules(stage: Stage) -> _StageRules:
    return _StageRules(sources=tuple(stage.score_sources()),
                       leaves={leaf.source: leaf for leaf in stage.leaves() if leaf.source})


def validate(program: Program, item: ScoreInput, rules: dict[str, _StageRules] | None = None) -> None:
    """Refuse scores the program cannot use: unknown stage/team/source, non-finite or out-of-range values.

    `rules` caches each stage's sources and leaves across the items of one import.
    """
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
    rules = {} if rules is None else rules
    stage_rules = rules.get(stage.id) or rules.setdefault(stage.id, _stage_rules(stage))
    if item.source not in stage_rules.sources:
        raise InputError(f"{at}stage {item.stage!r} has no criterion or gate fed by {item.source!r} "
                         f"(sources: {', '.join(stage_rules.sources)})")
    if not math.isfinite(item.value) or abs(item.value) > MAX_SCORE_MAGNITUDE:
        raise InputError(f"{at}value must be a finite number of magnitude at most {MAX_SCORE_MAGNITUDE:g}, "
                         f"got {item.value!r}")
    if item.stderr is not None and (not math.isfinite(item.stderr) or not 0 <= item.stderr <= MAX_SCORE_MAGNITUDE):
        raise InputError(f"{at}stderr must be a non-negative number of at most {MAX_SCORE_MAGNITUDE:g}, "
                         f"got {item.stderr!r}")
    leaf = stage_rules.leaves.get(item.source)
    if leaf is not None and leaf.norm == "absolute":
        low, high = leaf.raw_range or (0.0, 1.0)
        if not low <= item.value <= high:
            raise InputError(f"{at}{item.source} value {item.value:g} is outside the range [{low:g}, {high:g}] "
                             f"of criterion {leaf.id!r}")
    if leaf is not None and leaf.norm == "relative_to_best" and item.value < 0:
        raise InputError(f"{at}{item.source} value {item.value:g} is negative; relative_to_best needs values ≥ 0")
    if item.source.startswith("panel:") and not item.rater.strip():
        raise InputError(f"{at}{item.source} scores need a rater (each panel member's score counts once; a blank "
                         "rater would be counted as one more member)")


def validate_all(program: Program, items: list[ScoreInput]) -> None:
    """Validate every item and name every bad one in one error, so a file is fixed in one pass."""
    rules: dict[str, _StageRules] = {}
    first_at: dict[tuple[str, str, str, str], str] = {}

    def check(i: int, item: ScoreInput) -> None:
        if not item.where and len(items) > 1:
            item = replace(item, where=f"score {i + 1} ({item.team}, {item.source})")
        validate(program, item, rules)
        key = (item.stage, item.team, item.source, item.rater)
        if key in first_at:
            raise InputError(f"{item.where + ': ' if item.where else ''}a second score for stage {item.stage!r}, "
                             f"team {item.team!r}, source {item.source!r}, rater {item.rater!r} "
                             f"(first at {first_at[key] or 'an earlier item'}); one score per key per import")
        first_at[key] = item.where

    collect((partial(check, i, item) for i, item in enumerate(items)),
            what="invalid scores, nothing recorded")


def score_key(row: Score) -> tuple[str, str, str, str]:
    return (row.stage_id, row.team_id, row.source, row.rater)


def current_rows(session: Session, key: str, stage_ids: list[str] | None = None) -> dict[tuple[str, str, str, str],
                                                                                          Score]:
    """(stage, team, source, rater) → the key's current row (voided ones included), in one query."""
    later = aliased(Score)
    query = select(Score).where(Score.program_key == key,
                                ~exists().where(later.supersedes_id == Score.id))
    if stage_ids is not None:
        query = query.where(Score.stage_id.in_(stage_ids))
    return {score_key(r): r for r in session.execute(query).scalars()}


@dataclass(frozen=True)
class RecordedScore:
    """A score row as written by a bulk insert (the same attributes as the `Score` model, without ORM cost)."""

    id: int
    program_key: str
    stage_id: str
    team_id: str
    source: str
    rater: str
    value: float | None
    stderr: float | None
    run_id: str | None
    evidence: str | None
    note: str | None
    example: bool
    recorded_at: dt.datetime
    recorded_by: str
    supersedes_id: int | None
    voided: bool
    reason: str | None
    batch_id: str | None
    grade: str | None = None

    def to_dict(self) -> dict:
        return score_dict(self)


class _ScoreValues(TypedDict):
    """A score row's column values but its id, as a bulk insert writes them (the fields of `RecordedScore`)."""

    program_key: str
    stage_id: str
    team_id: str
    source: str
    rater: str
    value: float | None
    stderr: float | None
    run_id: str | None
    evidence: str | None
    note: str | None
    example: bool
    recorded_at: dt.datetime
    recorded_by: str
    supersedes_id: int | None
    voided: bool
    reason: str | None
    batch_id: str | None
    grade: str


def score_dict(row: Score | RecordedScore) -> dict:
    """A score row as the shells show it (JSON), with the stage, team and superseded row by their short names."""
    return {"id": row.id, "stage": row.stage_id, "team": row.team_id, "source": row.source, "rater": row.rater,
            "value": row.value, "stderr": row.stderr, "run_id": row.run_id, "evidence": row.evidence,
            "note": row.note, "example": row.example, "recorded_at": row.recorded_at.isoformat(),
            "recorded_by": row.recorded_by, "supersedes": row.supersedes_id, "voided": row.voided,
            "reason": row.reason, "batch_id": row.batch_id, "grade": row.grade}


@dataclass(frozen=True)
class RecordedScores:
    """Scores recorded by one call: the rows written, and what registering the program version warned about."""

    program: str
    version_id: int
    rows: tuple[RecordedScore, ...]
    warnings: tuple[VersionWarning, ...] = ()

    def to_dict(self) -> dict:
        return {"recorded": [r.to_dict() for r in self.rows]}


def record(session: Session, program_ref: ProgramRef, items: list[ScoreInput], actor: str,
           at: dt.datetime | None = None) -> RecordedScores:
    """Record scores against a program (a .toml path or a loaded program's id): all validated, then all recorded.

    The program's version is registered first if it is new; each item supersedes its key's current row.
    """
    target = programs.for_writing(session, program_ref, actor)
    rows = add(session, target.version, target.program, items, actor, at=at)
    return RecordedScores(program=target.key, version_id=target.version.id, rows=tuple(rows),
                          warnings=target.warnings)


def add(session: Session, version: ProgramVersion, program: Program, items: list[ScoreInput], actor: str,
        at: dt.datetime | None = None, batch_id: str | None = None) -> list[RecordedScore]:
    """Validate every item first, then record them all (one transaction: all or nothing).

    Each item supersedes its key's current row. The current rows are read once, the rows inserted in one statement
    and their audit entries appended in one batch, so an import costs the same per row whatever its size.
    """
    validate_all(program, items)
    when = as_utc(at) if at else now_utc()
    current = current_rows(session, version.program_key, sorted({i.stage for i in items}))
    values: list[_ScoreValues] = []
    for item in items:
        previous = current.get((item.stage, item.team, item.source, item.rater))
        values.append({"program_key": version.program_key, "stage_id": item.stage, "team_id": item.team,
                       "source": item.source, "rater": item.rater, "value": float(item.value),
                       "stderr": None if item.stderr is None else float(item.stderr), "run_id": item.run_id,
                       "evidence": item.evidence, "note": item.note, "example": bool(item.example),
                       "recorded_at": when, "recorded_by": actor, "supersedes_id": previous.id if previous else None,
                       "voided": False, "reason": None, "batch_id": batch_id,
                       "grade": source_grade(item.source, imported_suites=program.imported_suites)})
    ids = _insert_scores(session, values)
    rows = [RecordedScore(id=i, **v) for i, v in zip(ids, values, strict=True)]
    append_many(session, actor=actor, at=when, writes=[
        Write("score.supersede" if r.supersedes_id else "score.add", entity="scores", entity_id=r.id,
              snapshot=plain_values({"id": r.id, **v})) for r, v in zip(rows, values, strict=True)])
    return rows


def _insert_scores(session: Session, values: list[_ScoreValues]) -> list[int]:
    """Insert rows in bulk and return their ids in order.

    Returning the ids of a multi-row insert in order is slow (SQLite inserts one row per statement to do it), so
    the ids are assigned first: on SQLite after the largest, as the session holds the write lock (BEGIN
    IMMEDIATE); on PostgreSQL from the id sequence.
    """
    session.flush()
    if session.get_bind().dialect.name == "sqlite":
        start = (session.execute(select(func.max(Score.id))).scalar() or 0) + 1
        ids = list(range(start, start + len(values)))
    else:  # PostgreSQL: draw the ids from the column's sequence in one statement
        ids = list(session.execute(text("SELECT nextval(pg_get_serial_sequence('scores', 'id')) "
                                        "FROM generate_series(1, :n)"), {"n": len(values)}).scalars())
    table = cast(Table, Score.__table__)  # a declarative class's table; the stubs say only FromClause
    session.execute(insert(table), [{"id": i, **v} for i, v in zip(ids, values, strict=True)])
    return ids


def row_grade(row: Score, imported_suites: frozenset[str] = frozenset()) -> Grade:
    """A score row's evidence grade: as recorded, or (rows from before grades) the one its source implies."""
    if row.grade:
        return check_grade(row.grade)
    return source_grade(row.source, imported_suites=imported_suites)


def current(session: Session, key: str, stage_id: str,
            imported_suites: frozenset[str] = frozenset()) -> dict[str, dict[str, SourceScore]]:
    """team → source → current value (mean over raters; standard error from their spread when n ≥ 2), as strong
    as its weakest row's evidence.

    A key whose current row is a void has no value.
    """
    from simsa.program.adjudicate import SourceScore

    rows = sorted((r for r in current_rows(session, key, [stage_id]).values() if not r.voided), key=lambda r: r.id)
    grouped: dict[tuple[str, str], list[Score]] = {}
    for row in rows:
        grouped.setdefault((row.team_id, row.source), []).append(row)
    out: dict[str, dict[str, SourceScore]] = {}
    for (team, source), items in grouped.items():
        values = [float(r.value) for r in items if r.value is not None]
        n = len(values)
        mean = math.fsum(values) / n
        if n >= 2:
            var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
            se: float | None = math.sqrt(var / n)
        else:
            se = items[0].stderr
        out.setdefault(team, {})[source] = SourceScore(value=mean, stderr=se, n=n,
                                                       example=any(r.example for r in items),
                                                       score_ids=tuple(r.id for r in items),
                                                       grade=weakest([row_grade(r, imported_suites)
                                                                      for r in items]))
    return out


def history(session: Session, key: str, stage_id: str | None = None, team: str | None = None) -> list[Score]:
    query = select(Score).where(Score.program_key == key)
    if stage_id:
        query = query.where(Score.stage_id == stage_id)
    if team:
        query = query.where(Score.team_id == team)
    return list(session.execute(query.order_by(Score.id)).scalars())
