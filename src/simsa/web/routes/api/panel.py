"""A stage's expert panel over the API: its state as the caller may see it, its result (published with the decision),
an expert's locked reviews, and the admin's assignments and steps.

Visibility is the panel's security core: before the stage's decision only the admin sees aggregates (and the full
state); an expert sees their own assignments by blind code and their own reviews, and a submission they are not
assigned to (or are conflicted with) does not exist for them (404); everyone else is refused (403). After the
decision anyone reads the stored anonymised result.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

import simsa.web.api_panel_models as m
from simsa.accounts import Role
from simsa.errors import NotFound
from simsa.services import panel, panel_admin_views, panel_results, panel_steps
from simsa.services.panel import CALIBRATION, PanelContext
from simsa.web.deps import ReadSession, Refused, Viewer, ViewerDep, require_writer
from simsa.web.routes.api.common import DOCUMENT_TOKEN, ERRORS, Admin, BoundedRoute, actor, writing

router = APIRouter(route_class=BoundedRoute, tags=["panel"], responses=ERRORS, dependencies=DOCUMENT_TOKEN)
PANEL = "/programs/{key}/stages/{stage}/panel"
Expert = Annotated[Viewer, Depends(require_writer(Role.EXPERT))]
BEFORE_DECISION = ("the panel's result is published with the stage's decision; until then only the secretariat "
                   "sees it")


def _is_expert(who: Viewer) -> bool:
    return who.account is not None and who.account.role == Role.EXPERT


@router.get(PANEL, response_model=m.PanelState, summary="The panel's state, as the caller may see it")
def state(key: str, stage: str, who: ViewerDep, session: ReadSession) -> dict:
    """An admin sees the steps, what blocks the next one, coverage, assignments, calibration and progress; an
    expert their own assignments (by blind code), the step and their own locked reviews; anyone else only the
    stored result, after the decision (403 before it)."""
    ctx = panel.context(session, key, stage)
    if who.is_admin:
        return panel_admin_views.admin_state(session, ctx).to_dict()
    public = panel_admin_views.public_view(session, ctx)
    if _is_expert(who):
        assert who.account is not None
        out = panel_admin_views.expert_state(session, ctx, who.account.username).to_dict()
        out["result"] = None if public is None else public.result
        return out
    if public is None:
        raise Refused(403, "forbidden", f"the panel of {stage!r} is shown to the secretariat and its experts; "
                                        + BEFORE_DECISION)
    return public.to_dict()


@router.get(PANEL + "/result", response_model=m.PanelResult, summary="The panel's result")
def result(key: str, stage: str, who: ViewerDep, session: ReadSession) -> dict:
    """After the decision, for anyone: the anonymised result document stored with it. Before it: computed from
    the locked reviews for the admin only; everyone else is refused (403)."""
    ctx = panel.context(session, key, stage)
    public = panel_admin_views.public_view(session, ctx)
    if public is not None:
        if public.result is None:
            raise NotFound(f"the decision of {stage!r} was made without a panel result (the panel never ran)")
        return public.result
    if not who.is_admin:
        raise Refused(403, "forbidden", BEFORE_DECISION)
    return panel_results.compute(session, ctx).to_dict()


def _subject(session: Session, ctx: PanelContext, expert: str, body: m.ReviewIn) -> str:
    """The team or anchor a review is of, as the expert may name it; anything not theirs is 404 with one message,
    so the answer does not tell an unassigned or conflicted expert whether the submission exists."""
    if body.round == CALIBRATION:
        assert body.anchor is not None
        if body.anchor not in ctx.anchors or expert not in panel.assigned_experts(session, ctx):
            raise NotFound(f"no calibration anchor {body.anchor!r} for you in stage {ctx.stage.id!r}")
        return body.anchor
    assert body.submission is not None
    missing = NotFound(f"no submission {body.submission!r} assigned to you in stage {ctx.stage.id!r}")
    try:
        team = panel.team_by_code(session, ctx, body.submission)
    except NotFound:
        raise missing from None
    if (team, expert) not in panel.assignments(session, ctx):
        raise missing
    return team


@router.post(PANEL + "/reviews", response_model=m.ReviewLocked, status_code=201,
             summary="Lock a review (the expert)")
def submit_review(request: Request, key: str, stage: str, body: m.ReviewIn, who: Expert) -> dict:
    """Score a submission (round 1, or its revision in round 2) or a calibration anchor: a level per criterion,
    the justifications the rubric requires and, under blinding, whether you could identify the team. Submitting
    locks the review; a second one for the same round and subject is refused."""
    assert who.account is not None
    expert = who.account.username
    with writing(request) as session:
        ctx = panel.context(session, key, stage)
        subject = _subject(session, ctx, expert, body)
        locked = panel.submit_review(session, ctx, expert, subject, body.round, body.scores, body.justifications,
                                     identified=body.identified, identified_as=body.identified_as)
        return panel_admin_views.own_review(session, ctx, locked)


def _assignment(session: Session, ctx: PanelContext, team: str, expert: str, assigned: bool) -> dict:
    count = next(n for t, n in panel.coverage(session, ctx) if t.id == team)
    return {"team": team, "expert": expert, "assigned": assigned, "experts": count,
            "min_experts": ctx.panel.min_experts}


@router.post(PANEL + "/assignments", response_model=m.AssignmentDone, status_code=201,
             summary="Assign an expert to a team (admin)")
def assign(request: Request, key: str, stage: str, body: m.AssignmentIn, who: Admin) -> dict:
    """Refused (400, naming the conflict) for an expert whose declaration conflicts with the team."""
    with writing(request) as session:
        ctx = panel.context(session, key, stage)
        panel.assign(session, ctx, body.team, body.expert, actor(who))
        return _assignment(session, ctx, body.team, body.expert, True)


@router.post(PANEL + "/assignments/remove", response_model=m.AssignmentDone, status_code=201,
             summary="Remove an assignment (admin)")
def unassign(request: Request, key: str, stage: str, body: m.AssignmentIn, who: Admin) -> dict:
    """Refused once the expert locked a review of the team (a locked review stays in the panel)."""
    with writing(request) as session:
        ctx = panel.context(session, key, stage)
        panel.unassign(session, ctx, body.team, body.expert, actor(who))
        return _assignment(session, ctx, body.team, body.expert, False)


@router.post(PANEL + "/assignments/balance", response_model=m.Balanced, status_code=201,
             summary="Balance the assignments (admin)")
def balance(request: Request, key: str, stage: str, who: Admin) -> dict:
    """Assign non-conflicted experts until every team has the minimum, spreading the load; says what it added and
    which teams stay short."""
    with writing(request) as session:
        ctx = panel.context(session, key, stage)
        return panel.auto_assign(session, ctx, actor(who)).to_dict()


@router.post(PANEL + "/advance", response_model=m.PhaseChanged, status_code=201,
             summary="Move the panel to its next step (admin)")
def advance(request: Request, key: str, stage: str, body: m.AdvanceIn, who: Admin) -> dict:
    """Refused (400, with every reason) while the step is blocked: documents or calibration missing, agreement
    below the threshold, the deadline not passed, a team short of experts, reviews not locked."""
    with writing(request) as session:
        ctx = panel.context(session, key, stage)
        return panel_steps.advance(session, ctx, body.to, actor(who)).to_dict()
