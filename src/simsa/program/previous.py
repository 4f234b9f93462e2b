"""A previous stage's published decision, made elsewhere, read and checked against what the programme declares.

A later stage can be judged by an agency whose previous stage was judged by another: the programme pins the
earlier decision's file by sha256 (`[stages.previous_decision]`), and this module reads such a file (size-capped,
regular files only), checks its hash and its shape (this programme, the stage before, title holders that are
teams of this programme and had joined by then) and yields its title holders. Recording it in a store is the
decision service's job; this module does no database work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsa.files import FileReadError, read_limited
from simsa.program.crossref import Issue
from simsa.program.schema import PreviousDecision, Program

MAX_DECISION_BYTES = 20_000_000
DECISION_SCHEMA = "simsa.decision/1"


class DecisionFileError(Exception):
    """A previous-decision file that cannot be used, as one line without the path."""


@dataclass(frozen=True)
class ImportedDecision:
    """A verified previous decision: whose it is, which stage it feeds, and the published JSON itself."""

    stage_id: str          # the stage the decision decided
    for_stage: str         # the stage that declares it as its previous decision
    file: str              # as the programme declares it (relative to the program file)
    sha256: str
    body: dict[str, Any]   # the decision object (from a `stage show --json` file or a report JSON's "decision")
    title_holders: tuple[str, ...]
    decided_at: dt.datetime  # when it was decided there (UTC)


def declared(program: Program) -> list[tuple[int, PreviousDecision]]:
    """(index of the declaring stage, declaration) for every stage that imports its previous decision."""
    return [(i, s.previous_decision) for i, s in enumerate(program.stages) if s.previous_decision is not None]


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON can carry")


def parse_decision(program: Program, stage_index: int, data: bytes) -> dict[str, Any]:
    """The decision object in `data`, checked to be stage_index − 1's decision of this programme."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise DecisionFileError(f"not valid UTF-8 (byte at offset {exc.start})") from None
    except RecursionError:
        raise DecisionFileError("not a decision: JSON nested too deeply") from None
    except ValueError as exc:
        raise DecisionFileError(f"not valid JSON: {exc}") from None
    if isinstance(doc, dict) and doc.get("schema") != DECISION_SCHEMA and isinstance(doc.get("decision"), dict):
        doc = doc["decision"]  # a report JSON carries the decision under "decision"
    if not isinstance(doc, dict) or doc.get("schema") != DECISION_SCHEMA:
        raise DecisionFileError(f"not a simsa decision (expected an object with schema {DECISION_SCHEMA!r}, as "
                                "`simsa stage show --json` writes)")
    prog = doc.get("program")
    key = prog.get("id") if isinstance(prog, dict) else None
    if key != program.program.id:
        raise DecisionFileError(f"is a decision of programme {key!r}, not {program.program.id!r}")
    previous = program.stages[stage_index - 1].id
    stage = program.stages[stage_index].id
    if doc.get("stage") != previous:
        raise DecisionFileError(f"decides stage {doc.get('stage')!r}, but stage {stage!r} continues from "
                                f"{previous!r}")
    if decided_at(doc) is None:
        raise DecisionFileError(f"has no decided_at date-time (got {doc.get('decided_at')!r})")
    holders = doc.get("title_holders")
    if not isinstance(holders, list) or not all(isinstance(t, str) for t in holders):
        raise DecisionFileError("has no title_holders list of team ids")
    teams = {t.id: t for t in program.teams}
    order = {s.id: i for i, s in enumerate(program.stages)}
    for tid in holders:
        if tid not in teams:
            raise DecisionFileError(f"names title holder {tid!r}, which is not a team of programme "
                                    f"{program.program.id!r}")
        joins = teams[tid].joins_at
        if joins is not None and order[joins] >= stage_index:
            raise DecisionFileError(f"names title holder {tid!r}, which joins_at {joins!r}, after {previous!r}")
    if len(set(holders)) != len(holders):
        raise DecisionFileError("lists a title holder twice")
    return doc


def decided_at(doc: dict[str, Any]) -> dt.datetime | None:
    """The decision's `decided_at` as an aware UTC instant (None when absent or not ISO 8601)."""
    value = doc.get("decided_at")
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def read_previous_decision(program: Program, path: str | Path) -> ImportedDecision:
    """Read the file at `path` and match it, by sha256, to a stage's declared previous decision.

    Raises DecisionFileError naming the file's hash and every declared one when none matches.
    """
    try:
        data = read_limited(path, MAX_DECISION_BYTES, "decision files")
    except FileReadError as exc:
        raise DecisionFileError(str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    decl = declared(program)
    if not decl:
        raise DecisionFileError(f"programme {program.program.id!r} declares no previous_decision on any stage; "
                                "add [stages.previous_decision] with file and sha256 to the stage that continues "
                                "from it")
    hits = [(i, spec) for i, spec in decl if spec.sha256 == digest]
    if not hits:
        wanted = "; ".join(f"stage {program.stages[i].id!r} declares {spec.sha256} ({spec.file})" for i, spec in decl)
        raise DecisionFileError(f"has sha256 {digest}, which no stage declares ({wanted}); import the exact file "
                                "the programme names, or correct its sha256")
    index, spec = hits[0]
    body = parse_decision(program, index, data)
    return ImportedDecision(stage_id=program.stages[index - 1].id, for_stage=program.stages[index].id,
                            file=spec.file, sha256=digest, body=body, title_holders=tuple(body["title_holders"]),
                            decided_at=decided_at(body) or dt.datetime.now(dt.UTC))


def check_files(program: Program, base: Path) -> list[Issue]:
    """Check each declared previous-decision file beside the program file (`program check`).

    A file that is not there is a warning (the import may already be recorded in the store, or be done later);
    one whose hash or content does not fit the declaration is an error.
    """
    issues: list[Issue] = []
    for index, spec in declared(program):
        loc = ("stages", index, "previous_decision")
        try:
            data = read_limited(base / spec.file, MAX_DECISION_BYTES, "decision files")
        except FileReadError as exc:
            if exc.problem == "missing":
                issues.append(Issue((*loc, "file"), "warning",
                                    f"{spec.file} is not beside the program file; `simsa stage import-decision` "
                                    "needs it unless the import is already recorded"))
            else:
                issues.append(Issue((*loc, "file"), "error", f"{spec.file}: {exc}"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            issues.append(Issue((*loc, "sha256"), "error",
                                f"{spec.file} has sha256 {digest}, but the programme declares {spec.sha256}"))
            continue
        try:
            parse_decision(program, index, data)
        except DecisionFileError as exc:
            issues.append(Issue((*loc, "file"), "error", f"{spec.file} {exc}"))
    return issues
