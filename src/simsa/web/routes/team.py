"""A participating team's pages (role team): its own results, scores and appeals, and filing an appeal while the
window is open. The team is always the signed-in account's own; no page takes a team from the URL or the form."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa.accounts import Role
from simsa.errors import NotFound, SimsaError
from simsa.services import web_forms
from simsa.web.deps import ReadSession, Viewer, WriteSession, require
from simsa.web.render import page, redirect
from simsa.web.routes.account import Csrf, RowId, Text, after_refusal, form_post

router = APIRouter(prefix="/team", include_in_schema=False)

TeamMember = Annotated[Viewer, Depends(require(Role.TEAM))]


def _overview(request: Request, session: Session, who: Viewer, *, error: str | None = None,
              kept: dict | None = None, status_code: int = 200) -> Response:
    assert who.account is not None
    view = web_forms.team_overview(session, who.account, who.lang)
    return page(request, "team_overview.html.j2", status_code=status_code, view=view, error=error, kept=kept or {})


@router.get("")
def overview(request: Request, who: TeamMember, session: ReadSession) -> Response:
    return _overview(request, session, who)


@router.post("/stages/{stage}/appeal")
def file_appeal(request: Request, who: TeamMember, session: WriteSession, stage: str, grounds: Text = "",
                csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        web_forms.file_team_appeal(session, who.account, stage, grounds)
    except NotFound:
        raise  # a stage the programme lacks: 404, not the form again
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _overview(request, reading, who, error=str(exc), kept={stage: grounds}, status_code=400)
    return redirect(request, "/team", done="done_appeal_filed")


@router.get("/appeals/{appeal_id}")
def appeal(request: Request, who: TeamMember, session: ReadSession, appeal_id: RowId) -> Response:
    assert who.account is not None
    return page(request, "team_appeal.html.j2", view=web_forms.team_appeal(session, who.account, appeal_id))
