"""Writes, each with an API token and each one transaction audited under the token's account: scores, gate
results (by hand or from a lineage comparison), decisions, appeals and corrections."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

import simsa.web.api_models as m
from simsa.accounts import Role
from simsa.audit.chain import canonical
from simsa.errors import InputError
from simsa.services import api_views, appeals, corrections, gate_files
from simsa.services import decisions as decision_service
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.timeutil import utc_text
from simsa.web.deps import Refused
from simsa.web.routes.api.common import (
    DOCUMENT_TOKEN,
    ERRORS,
    Admin,
    AdminOrTeam,
    BoundedRoute,
    actor,
    parse_at,
    reading,
    writing,
)

router = APIRouter(route_class=BoundedRoute, tags=["writes"], responses=ERRORS, dependencies=DOCUMENT_TOKEN)
STAGE = "/programs/{key}/stages/{stage}"
RecordId = Annotated[int, Path(ge=1, le=api_views.MAX_ID)]
DryRun = Annotated[bool, Query(description="Compute and show; record nothing.")]


def _text(value: str | None) -> str | None:
    value = None if value is None else value.strip()
    return value or None


def _score_input(item: m.ScoreIn) -> score_service.ScoreInput:
    """As a score file's row is read: text trimmed, empty optional text absent."""
    return score_service.ScoreInput(stage=item.stage.strip(), team=item.team.strip(), source=item.source.strip(),
                                    value=float(item.value), stderr=None if item.stderr is None else float(item.stderr),
                                    rater=item.rater.strip(), run_id=_text(item.run_id), evidence=_text(item.evidence),
                                    note=_text(item.note), example=item.example)


@router.post("/programs/{key}/scores", response_model=m.ScoresRecorded, status_code=201,
             summary="Record scores (admin)")
def record_scores(request: Request, key: str, body: m.ScoresIn, who: Admin) -> Response:
    """As `simsa score add` (one or many items) or, with `batch: true`, `simsa score import`: every item is
    validated first and every bad one named in one 400 error, with nothing recorded; otherwise all are recorded in
    one transaction, each superseding its key's current score. At most 100 000 items a request."""
    if body.replace_batch is not None and not body.batch:
        raise InputError("replace_batch needs batch: true")
    items = [_score_input(i) for i in body.scores]
    with writing(request) as session:
        loaded = api_views.stored_program(session, key)
        if body.batch:
            imported = corrections.import_scores(session, loaded, items, actor(who), source_name=body.source_name,
                                                 replace_batch=body.replace_batch)
            rows, batch_id, warnings = imported.rows, imported.batch_id, imported.warnings
            voided = [r.supersedes_id for r in imported.voided]
        else:
            recorded = score_service.record(session, loaded, items, actor(who))
            rows, batch_id, warnings, voided = list(recorded.rows), None, recorded.warnings, []
        out = {"recorded": [{"id": r.id, "stage": r.stage_id, "team": r.team_id, "source": r.source,
                             "rater": r.rater, "supersedes": r.supersedes_id} for r in rows],
               "batch_id": batch_id, "voided": voided, "decision_warnings": [w.to_dict() for w in warnings]}
    return JSONResponse(out, status_code=201)  # documented by the model; 100 000 rows are not re-validated


@router.post("/programs/{key}/gates", response_model=m.GateRecorded, status_code=201,
             summary="Record a gate result (admin)")
def record_gate(request: Request, key: str, body: m.GateIn, who: Admin) -> dict:
    """As `simsa gate record`: a result of a gate of kind `recorded` with its evidence; supersedes the team's
    current result of that gate."""
    with writing(request) as session:
        loaded = api_views.stored_program(session, key)
        return gate_service.record_result(session, loaded, stage_id=body.stage, team_id=body.team, gate_id=body.gate,
                                          passed=body.passed, evidence=body.evidence, link=_text(body.link),
                                          actor=actor(who), example=body.example, grade=body.grade,
                                          override_reason=_text(body.override_reason)).to_dict()


@router.post("/programs/{key}/gates/import", response_model=m.GatesImported, status_code=201,
             summary="Record many gate results (admin)")
def import_gates(request: Request, key: str, body: m.GatesIn, who: Admin) -> dict:
    """As `simsa gate import`: validated whole (every bad result named, nothing recorded on any error), then
    recorded as one audited batch."""
    items = [gate_files.GateInput(stage=g.stage.strip(), team=g.team.strip(), gate=g.gate.strip(), passed=g.passed,
                                  evidence=g.evidence.strip(), link=_text(g.link), example=g.example,
                                  grade=g.grade, override_reason=_text(g.override_reason),
                                  where=f"gates[{i}]") for i, g in enumerate(body.gates)]
    with writing(request) as session:
        loaded = api_views.stored_program(session, key)
        return gate_files.import_gates(session, loaded, items, actor(who), source_name=body.source_name).to_dict()


@router.post("/programs/{key}/gates/lineage", response_model=m.LineageRecorded, status_code=201,
             summary="Decide a gate from a lineage comparison (admin)")
def gate_from_lineage(request: Request, response: Response, key: str, body: m.LineageIn, who: Admin,
                      dry_run: DryRun = False) -> dict:
    """As `simsa gate from-lineage`: the comparison is read against the team's declared borrowed components and
    the gate's originality rules; pass or fail is recorded as recommended (a result that needs review only with
    `override` and `reason`). `dry_run=true` returns the summary and records nothing."""
    digest = hashlib.sha256(canonical(body.lineage).encode("utf-8")).hexdigest()
    decided = None if body.override is None else body.override == "pass"
    if dry_run:
        response.status_code = 200
    with (reading if dry_run else writing)(request) as session:
        loaded = api_views.stored_program(session, key)
        return gate_service.record_result_from_lineage(
            session, loaded, stage_id=body.stage, team_id=body.team, gate_id=body.gate, lineage=body.lineage,
            lineage_sha256=digest, link=_text(body.link), actor=actor(who), override=decided, reason=body.reason,
            example=body.example, dry_run=dry_run).to_dict()


@router.post(STAGE + "/decide", response_model=m.Decision, status_code=201, summary="Decide a stage (admin)")
def decide(request: Request, response: Response, key: str, stage: str, who: Admin,
           body: m.DecideIn | None = None, dry_run: DryRun = False) -> dict:
    """As `simsa stage decide`: apply the stage's rules to the current scores and gate results and record the
    decision (refused while one is in force, unless `supersede` with a `reason`). `dry_run=true` computes it
    without recording anything."""
    body = body or m.DecideIn()
    when = parse_at(body.at)
    if dry_run:
        response.status_code = 200
    with (reading if dry_run else writing)(request) as session:
        loaded = api_views.stored_program(session, key)
        api_views.require_stage(loaded.program, stage)
        return decision_service.decide(session, loaded, stage, actor(who), when, supersede=body.supersede,
                                       reason=body.reason, dry_run=dry_run).to_dict()


@router.post(STAGE + "/appeals", response_model=m.AppealFiled, status_code=201,
             summary="File an appeal (the team itself, or admin)")
def file_appeal(request: Request, key: str, stage: str, body: m.AppealIn, who: AdminOrTeam) -> dict:
    """As `simsa stage appeal file`: against the decision in force, within the stage's appeal window. A team's
    token files for its own team only, and at the time it is sent (only an administrator may give `at`)."""
    assert who.account is not None
    if who.role == Role.TEAM:
        own = who.team_of(key)
        if own != body.team:
            speaks = f"team {own!r}" if own else f"a team of programme {who.account.program_key!r}"
            raise Refused(403, "forbidden", f"account {who.account.username!r} speaks for {speaks}; it cannot "
                                            f"file an appeal for team {body.team!r}")
        if body.at is not None:
            raise Refused(403, "forbidden", "only an administrator may date an appeal (at); a team's appeal is "
                                            "filed when it is sent")
    when = parse_at(body.at)
    with writing(request) as session:
        loaded = api_views.stored_program(session, key)
        api_views.require_stage(loaded.program, stage)
        filed = appeals.file_appeal(session, loaded, stage, body.team, body.grounds, actor(who), when)
        return {**filed.to_dict(), "filed_at": utc_text(filed.filed_at)}


@router.post("/appeals/{appeal_id}/resolve", response_model=m.AppealResolved, status_code=201,
             summary="Resolve an appeal (admin)")
def resolve_appeal(request: Request, appeal_id: RecordId, body: m.ResolveIn, who: Admin) -> dict:
    """As `simsa stage appeal resolve`: reject, or uphold and re-decide the stage on the data recorded now (record
    corrections first); the new decision links to the one it replaces and to the appeal."""
    when = parse_at(body.at)
    with writing(request) as session:
        loaded = api_views.stored_program(session, api_views.appeal_program(session, appeal_id))
        return appeals.resolve_appeal(session, loaded, appeal_id, body.outcome == "upheld", body.reason, actor(who),
                                      when).to_dict()


@router.post("/scores/{score_id}/void", response_model=m.ScoreVoided, status_code=201,
             summary="Void a score (admin)")
def void_score(request: Request, score_id: RecordId, body: m.VoidIn, who: Admin) -> dict:
    """As `simsa score void`: the score's key has no value until a new score is recorded; nothing is deleted."""
    with writing(request) as session:
        loaded = api_views.stored_program(session, api_views.score_program(session, score_id))
        return corrections.void_score(session, loaded, score_id, body.reason, actor(who)).to_dict()


@router.post("/gates/{result_id}/void", response_model=m.GateVoided, status_code=201,
             summary="Void a gate result (admin)")
def void_gate(request: Request, result_id: RecordId, body: m.VoidIn, who: Admin) -> dict:
    """As `simsa gate void`: the gate then has no result for the team until one is recorded."""
    with writing(request) as session:
        loaded = api_views.stored_program(session, api_views.gate_program(session, result_id))
        return corrections.void_gate(session, loaded, result_id, body.reason, actor(who)).to_dict()


@router.post("/programs/{key}/batches/{batch}/undo", response_model=m.ImportUndone, status_code=201,
             summary="Undo a score import (admin)")
def undo_import(request: Request, key: str, batch: str, body: m.VoidIn, who: Admin) -> dict:
    """As `simsa score void --batch`: each of the import's scores still current gives way to the value it
    replaced, or is voided; scores corrected since are left and listed."""
    with writing(request) as session:
        loaded = api_views.stored_program(session, key)
        api_views.require_batch(session, key, batch)
        return corrections.undo_import(session, loaded, batch, body.reason, actor(who)).to_dict()
