"""A stage, read: its status before deciding, scores, gate results, decisions, appeals, report and the lineage
evidence behind an originality gate."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

import simsa.web.api_models as m
from simsa.errors import NotFound
from simsa.program.loader import LoadedProgram
from simsa.services import api_views, evidence_docs, reports
from simsa.services import appeals as appeal_service
from simsa.services.status import stage_status
from simsa.web.deps import ReadSession
from simsa.web.routes.api.common import READ_ERRORS, BoundedRoute

router = APIRouter(route_class=BoundedRoute, tags=["stages"])
STAGE = "/programs/{key}/stages/{stage}"
MEDIA = {"json": "application/json", "md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}
TeamFilter = Annotated[str | None, Query(max_length=64, description="Only this team.")]
DecisionId = Annotated[int | None, Query(alias="id", ge=1, le=api_views.MAX_ID,
                                         description="A specific decision (default: the one in force).")]


def _stage(session: ReadSession, key: str, stage: str, team: str | None = None) -> LoadedProgram:
    loaded = api_views.stored_program(session, key)
    api_views.require_stage(loaded.program, stage)
    if team is not None:
        api_views.require_team(loaded.program, team)
    return loaded


@router.get(STAGE + "/status", response_model=m.StageStatus, responses=READ_ERRORS, summary="Stage status")
def status(key: str, stage: str, session: ReadSession) -> dict:
    """As `simsa stage status --json`: participants, each team's scores and gate results, what is missing
    (blocking or counted as zero), whether the stage can be decided now, and the decision in force."""
    return stage_status(session, _stage(session, key, stage), stage).to_dict()


@router.get(STAGE + "/scores", response_model=m.StageScores, responses=READ_ERRORS, summary="Scores of a stage")
def scores(key: str, stage: str, session: ReadSession, team: TeamFilter = None,
           history: Annotated[bool, Query(description="Also every row: superseded and voided ones.")] = False
           ) -> Response:
    """The current value of each team's sources (mean over raters, standard error, n, the rows used); with
    `history=true` also every recorded row with its provenance, as `simsa score list`."""
    _stage(session, key, stage, team)
    out = {"program": key, "stage": stage, "team": team,
           "current": [c.to_dict() for c in api_views.current_scores(session, key, stage, team)],
           "records": [r.to_dict() for r in api_views.score_records(session, key, stage, team)] if history else None}
    return JSONResponse(out)  # documented by the response model; a 100 000-row history is not re-validated


@router.get(STAGE + "/gates", response_model=m.StageGates, responses=READ_ERRORS,
            summary="Recorded gate results of a stage")
def gates(key: str, stage: str, session: ReadSession, team: TeamFilter = None) -> dict:
    """Each team's current result of every recorded gate (e.g. originality), with its evidence and record id."""
    _stage(session, key, stage, team)
    return {"program": key, "stage": stage,
            "results": [g.to_dict() for g in api_views.current_gates(session, key, stage, team)]}


@router.get(STAGE + "/decision", response_model=m.Decision, responses=READ_ERRORS,
            summary="The decision in force (or a given one)")
def decision(key: str, stage: str, session: ReadSession, decision_id: DecisionId = None) -> Response:
    """As `simsa stage show --json`: the decision exactly as recorded."""
    _stage(session, key, stage)
    row = api_views.decision_row(session, key, stage, decision_id)
    return Response(row.body, media_type="application/json")


@router.get(STAGE + "/decisions", response_model=m.DecisionChain, responses=READ_ERRORS,
            summary="The chain of decisions of a stage")
def decisions(key: str, stage: str, session: ReadSession) -> dict:
    """The decision in force and every decision it replaced (after an upheld appeal or a supersession)."""
    _stage(session, key, stage)
    return {"program": key, "stage": stage,
            "decisions": [d.to_dict() for d in api_views.decision_chain(session, key, stage)]}


@router.get(STAGE + "/appeals", response_model=m.StageAppeals, responses=READ_ERRORS, summary="Appeals of a stage")
def appeals(key: str, stage: str, session: ReadSession) -> dict:
    """As `simsa stage appeal list --json`: appeals with their status and resulting decisions."""
    _stage(session, key, stage)
    return {"program": key, "stage": stage, "appeals": appeal_service.listing(session, key, stage)}


@router.get(STAGE + "/report", response_model=m.ReportJson, summary="The stage report",
            responses={**READ_ERRORS, 200: {"description": "JSON, Markdown or self-contained HTML.", "content": {
                "application/json": {}, "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}}}}})
def report(key: str, stage: str, session: ReadSession,
           fmt: Annotated[Literal["json", "md", "html"], Query(alias="format")] = "json",
           lang: Annotated[Literal["en", "ko", "both"], Query(description="Language of md and html.")] = "both",
           decision_id: DecisionId = None) -> Response:
    """As `simsa report`: leaderboard with breakdown, raw scores, gates, decision, robustness, appeals and
    history; times in the programme's time zone (JSON keeps UTC)."""
    loaded = _stage(session, key, stage)
    api_views.decision_row(session, key, stage, decision_id)  # 404 before rendering when there is none
    return Response(reports.render(session, loaded, stage, fmt, lang, decision_id), media_type=MEDIA[fmt])


@router.get(STAGE + "/lineage/{team}/{gate}", response_model=m.Lineage, summary="The lineage comparison behind a "
            "gate result", responses={**READ_ERRORS, 200: {
                "description": "The stored document byte for byte; its sha256 in the X-Content-SHA256 header.",
                "headers": {"X-Content-SHA256": {"description": "sha256 of the body (the hash the gate result's "
                                                                "evidence names)", "schema": {"type": "string"}}}}})
def lineage(key: str, stage: str, team: str, gate: str, session: ReadSession) -> Response:
    """The `simsa lineage compare` result the team's current result of the gate was decided from, exactly as stored
    (the recorded file, or the canonical JSON of data sent to `POST .../gates/lineage`); 404 when the result was
    recorded by hand, voided, or is missing."""
    loaded = _stage(session, key, stage, team)
    api_views.require_gate(loaded.program.stage(stage), gate)
    doc = evidence_docs.document_for_gate(session, key, stage, team, gate)
    if doc is None:
        raise NotFound(f"no lineage comparison is attached to gate {gate!r} of team {team!r} in "
                                      f"stage {stage!r}")
    evidence_docs.lineage_of(doc)  # a document altered into something unreadable is a 400 naming it, not served
    return Response(doc.content.encode("utf-8"), media_type=doc.media_type,
                    headers={"X-Content-SHA256": doc.sha256})
