"""Deciding a stage from the stored scores and gate results, storing the decision, reading decisions back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from simsa.audit.chain import canonical
from simsa.audit.log import append, now_utc
from simsa.errors import DataMissingError, InputError
from simsa.program.adjudicate import decide as adjudicate
from simsa.program.decision_schema import DecisionDoc
from simsa.program.explain import decision_dict
from simsa.program.loader import LoadedProgram
from simsa.program.previous import DecisionFileError, read_previous_decision
from simsa.program.schema import Program, Stage, near_names
from simsa.services import arena_results, corrections, panel_results, programs
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.services.decision_records import body, effective
from simsa.services.programs import ProgramRef, VersionWarning
from simsa.store.models import Decision
from simsa.timeutil import as_utc, utc_text


def require_stage(program: Program, stage_id: str) -> Stage:
    """The program's stage `stage_id`, or an input error that lists the stages (a typo is not "no decision yet")."""
    try:
        return program.stage(stage_id)
    except KeyError:
        ids = [s.id for s in program.stages]
        raise InputError(f"program {program.program.id!r} has no stage {stage_id!r} (stages: {', '.join(ids)})"
                         f"{near_names(stage_id, ids)}") from None


def _imported_marker(row: Decision | None) -> dict | None:
    marker = body(row).get("imported") if row is not None else None
    return marker if isinstance(marker, dict) else None


def continuing_teams(session: Session, loaded: LoadedProgram, stage_id: str) -> tuple[list[str] | None, str | None]:
    """Who continues into `stage_id` from earlier stages, and, while that is not known, why and how to fix it.

    (None, None) on the first stage. In order: the stage's declared `participants`; else the title holders of the
    previous stage's decision in force, which must be the declared import when the stage names a
    `previous_decision`.
    """
    program = loaded.program
    idx = program.stage_index(stage_id)
    stage = program.stages[idx]
    if stage.participants is not None:
        return list(stage.participants), None
    if idx == 0:
        return None, None
    prev_id = program.stages[idx - 1].id
    prev = effective(session, program.program.id, prev_id)
    spec = stage.previous_decision
    if spec is None:
        if prev is None:
            return None, f"stage {stage_id!r} follows {prev_id!r}, which has no decision yet; decide {prev_id!r} first"
        return body(prev)["title_holders"], None
    marker = _imported_marker(prev)
    if prev is not None and marker is not None and marker.get("sha256") == spec.sha256:
        return body(prev)["title_holders"], None
    fix = "" if prev is None else " --supersede --reason TEXT"
    if prev is None:
        have = "no decision of it yet"
    elif marker is None:
        have = f"decision {prev.id}, made here"
    else:
        have = f"decision {prev.id}, imported from a file with sha256 {marker.get('sha256')}"
    return None, (f"stage {stage_id!r} continues from the published decision of {prev_id!r} ({spec.file}, sha256 "
                  f"{spec.sha256}), but the store has {have}; record it first: `simsa stage import-decision "
                  f"{program.program.id} {spec.file}{fix}`")


_ASK = object()  # `compute`'s panel argument when the caller has not computed the panel's result already


def compute(session: Session, loaded: LoadedProgram, stage_id: str, at: dt.datetime,
            panel: object = _ASK, arena: object = _ASK) -> DecisionDoc:
    """Evaluate the stage's rules on the current data, without storing anything. `panel` and `arena`: the expert
    panel's and the user arena's results when the caller has them already (None: the stage has none open), so
    they are not computed twice."""
    program = loaded.program
    require_stage(program, stage_id)
    key = program.program.id
    holders, blocker = continuing_teams(session, loaded, stage_id)
    if blocker is not None:
        raise DataMissingError(blocker)
    current = score_service.current(session, key, stage_id, program.imported_suites)
    if panel is _ASK:
        panel = panel_results.for_decision(session, loaded, stage_id)
    if isinstance(panel, panel_results.PanelResult):  # a dry run or the decision itself: the panel's aggregate counts
        current = panel_results.with_panel_scores(current, loaded, stage_id, panel,
                                                  panel_results.corrected_teams(session, key, stage_id))
    if arena is _ASK:
        arena = arena_results.for_decision(session, loaded, stage_id, at)
    if isinstance(arena, arena_results.ArenaResult):  # the arena's strengths are the stage's panel:user scores
        current = arena_results.with_arena_scores(current, arena)
    decision = adjudicate(program, stage_id, current, gate_service.current(session, key, stage_id), holders)
    result = decision_dict(decision, decided_at=at, program_sha256=loaded.sha256)
    # Voided records stay visible: a reader sees that a score or gate result existed and why it no longer counts.
    result["voided"] = [v.to_dict() for v in corrections.voided_in_force(session, key, stage_id)]
    if isinstance(panel, panel_results.PanelResult):  # its anonymised result travels with the decision it fed
        result["expert_panel"] = panel.to_dict()
        result["expert_panel_sha256"] = panel_results.digest(panel)
    if isinstance(arena, arena_results.ArenaResult):
        result["user_arena"] = arena.to_dict()
        result["user_arena_sha256"] = arena_results.digest(arena)
    return result


def decide_and_store(session: Session, loaded: LoadedProgram, stage_id: str, actor: str, *,
                     at: dt.datetime | None = None, supersede: bool = False, reason: str | None = None,
                     appeal_id: int | None = None) -> DecisionDoc:
    """Decide and record the decision; refuses to replace a decision in force unless told why."""
    key = loaded.program.program.id
    version = programs.for_writing(session, loaded, actor).version
    existing = effective(session, key, stage_id)
    if existing is not None and not supersede and appeal_id is None:
        raise InputError(f"stage {stage_id!r} already has decision {existing.id}; to replace it, uphold an appeal "
                         f"(`simsa stage appeal resolve`) or pass --supersede with --reason")
    if supersede and appeal_id is None and not (reason and reason.strip()):
        raise InputError("--supersede needs --reason: say why the decision in force is replaced")
    when = as_utc(at) if at else now_utc()
    if existing is not None and when < as_utc(existing.decided_at):
        raise InputError(f"a decision dated {utc_text(when)} cannot replace decision {existing.id} of "
                         f"{utc_text(existing.decided_at)}: it would be dated before the decision it replaces")
    panel = panel_results.record_for_decision(session, loaded, stage_id, actor, when)
    arena = arena_results.record_for_decision(session, loaded, stage_id, actor, when)
    result = compute(session, loaded, stage_id, when, panel=panel, arena=arena)
    row = Decision(program_key=key, stage_id=stage_id, program_version_id=version.id, decided_at=when,
                   decided_by=actor, body="{}", supersedes_id=existing.id if existing else None,
                   appeal_id=appeal_id, reason=reason)
    session.add(row)
    session.flush()
    result.update({"decision_id": row.id, "supersedes": row.supersedes_id, "appeal_id": appeal_id})
    row.body = canonical(result)
    append(session, actor=actor, action="decision.supersede" if existing else "decision.record", row=row, at=when,
           details={"advanced": result["advanced"], "eliminated": result["eliminated"]})
    return result


@dataclass(frozen=True)
class StageDecision:
    """A stage decided: the decision as recorded (or, on a dry run, as it would be), the programme's display time
    zone, and the warnings about decisions in force whose rules the program version registered here changes."""

    body: DecisionDoc
    timezone: str
    recorded: bool
    warnings: tuple[VersionWarning, ...] = ()

    @property
    def decision_id(self) -> int | None:
        return self.body.get("decision_id")

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON, with the warnings about decisions in force when there are any."""
        if not self.warnings:
            return dict(self.body)
        return {**self.body, "decision_warnings": [w.to_dict() for w in self.warnings]}


def decide(session: Session, program_ref: ProgramRef, stage_id: str, actor: str, at: dt.datetime | None = None, *,
           supersede: bool = False, reason: str | None = None, dry_run: bool = False) -> StageDecision:
    """Decide a stage of a program (a .toml path or a loaded program's id) and record the decision.

    `dry_run` computes the decision as of `at` (default now) and records nothing. Replacing a decision in force
    needs `supersede` and a reason (or an upheld appeal, `appeals.resolve_appeal`).
    """
    loaded = programs.resolve(session, program_ref)
    if dry_run:
        body = compute(session, loaded, stage_id, at or dt.datetime.now(dt.UTC))
    else:
        body = decide_and_store(session, loaded, stage_id, actor, at=at, supersede=supersede, reason=reason)
    return StageDecision(body=body, timezone=loaded.program.program.timezone, recorded=not dry_run,
                         warnings=tuple(programs.session_warnings(session)))


@dataclass(frozen=True)
class ImportedDecision:
    """A previous stage's published decision as recorded here (or found already recorded)."""

    stage: str
    for_stage: str
    file: str
    sha256: str
    title_holders: tuple[str, ...]
    decision_id: int
    recorded: bool  # False when the same file was already imported and is in force
    supersedes: int | None

    def to_dict(self) -> dict:
        return {"stage": self.stage, "for_stage": self.for_stage, "file": self.file, "sha256": self.sha256,
                "title_holders": list(self.title_holders), "decision_id": self.decision_id,
                "recorded": self.recorded, "supersedes": self.supersedes}


def import_decision(session: Session, program_ref: ProgramRef, path: str, actor: str, *,
                    supersede: bool = False, reason: str | None = None) -> ImportedDecision:
    """Record a previous stage's decision published elsewhere, as the programme pins it (file and sha256).

    The row is an ordinary decision of that stage (audited as `decision.import`) whose body is the published JSON
    plus `imported: {sha256, file}`, so deciding the next stage uses it like a decision made here. Importing the
    same file again changes nothing; replacing another decision in force needs `supersede` and a reason.
    """
    loaded = programs.resolve(session, program_ref)
    program = loaded.program
    try:
        imported = read_previous_decision(program, path)
    except DecisionFileError as exc:
        raise InputError(f"{path}: {exc}") from None
    key = program.program.id
    existing = effective(session, key, imported.stage_id)
    marker = _imported_marker(existing)
    summary = partial(ImportedDecision, stage=imported.stage_id, for_stage=imported.for_stage, file=imported.file,
                      sha256=imported.sha256, title_holders=tuple(imported.title_holders))
    if existing is not None and marker is not None and marker.get("sha256") == imported.sha256:
        return summary(decision_id=existing.id, recorded=False, supersedes=existing.supersedes_id)
    if existing is not None and not supersede:
        what = "imported from another file" if marker is not None else "made here"
        raise InputError(f"stage {imported.stage_id!r} already has decision {existing.id} ({what}); to replace it "
                         "with this import pass --supersede with --reason")
    if supersede and not (reason and reason.strip()):
        raise InputError("--supersede needs --reason: say why the decision in force is replaced")
    version = programs.for_writing(session, loaded, actor).version
    content = {**imported.body, "imported": {"sha256": imported.sha256, "file": imported.file}}
    row = Decision(program_key=key, stage_id=imported.stage_id, program_version_id=version.id,
                   decided_at=imported.decided_at, decided_by=actor, body=canonical(content),
                   supersedes_id=existing.id if existing else None, reason=reason)
    session.add(row)
    session.flush()
    append(session, actor=actor, action="decision.import", row=row,
           details={"file": imported.file, "sha256": imported.sha256, "for_stage": imported.for_stage,
                    "title_holders": list(imported.title_holders)})
    return summary(decision_id=row.id, recorded=True, supersedes=row.supersedes_id)
