"""A team's submission to the expert panel (role team): per stage with a panel, the deadline in the programme's
time zone, uploads of reports and training logs, and withdrawals until the deadline; after it, the frozen set.

The team is always the signed-in account's own; no page takes a team from the URL or the form, and blind codes are
never shown to teams. An upload is read within the site's limit; a refused file (wrong type behind its name, too
large, unreadable) shows the page again with one message and stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa.accounts import Role
from simsa.errors import NotFound, SimsaError
from simsa.services import panel_views
from simsa.web.deps import ReadSession, Refused, Viewer, WriteSession, require
from simsa.web.render import page, redirect
from simsa.web.routes.account import Csrf, RowId, after_refusal, form_post
from simsa.web.routes.admin import Upload, read_upload

router = APIRouter(prefix="/team/panel", include_in_schema=False)

TeamMember = Annotated[Viewer, Depends(require(Role.TEAM))]


@dataclass(frozen=True)
class PanelUpload:
    """The upload form as read, or why it was refused before it was read (over the size limit)."""

    upload: Upload | None
    refused: str | None
    status: int = 400


async def read_panel_upload(request: Request) -> PanelUpload:
    try:
        return PanelUpload(await read_upload(request), None)
    except Refused as exc:
        if exc.status_code in (411, 413):
            return PanelUpload(None, str(exc.detail), exc.status_code)
        raise


PanelUploadForm = Annotated[PanelUpload, Depends(read_panel_upload)]


def _page(request: Request, session: Session, who: Viewer, *, error: str | None = None, error_stage: str | None = None,
          kept: dict | None = None, status_code: int = 200) -> Response:
    assert who.account is not None
    view = panel_views.team_panel(session, who.account, who.lang)
    return page(request, "team_panel.html.j2", status_code=status_code, view=view, error=error,
                error_stage=error_stage, kept=kept or {})


@router.get("")
def overview(request: Request, who: TeamMember, session: ReadSession) -> Response:
    return _page(request, session, who)


@router.post("/stages/{stage}/documents")
def upload(request: Request, who: TeamMember, form: PanelUploadForm, session: WriteSession, stage: str) -> Response:
    assert who.account is not None
    if form.upload is None:  # refused before reading: nothing to store, so no CSRF to check either
        with after_refusal(request, session) as reading:
            return _page(request, reading, who, error=form.refused, error_stage=stage, status_code=form.status)
    fields = form.upload.fields
    form_post(request, who, fields.get("csrf_token"))
    purpose = fields.get("purpose", "")
    try:
        panel_views.upload_team_document(session, who.account, stage, purpose, form.upload.filename,
                                         form.upload.data)
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _page(request, reading, who, error=str(exc), error_stage=stage, kept={"purpose": purpose},
                         status_code=400)
    return redirect(request, "/team/panel", done="done_pn_uploaded")


@router.post("/stages/{stage}/documents/{document_id}/withdraw")
def withdraw(request: Request, who: TeamMember, session: WriteSession, stage: str, document_id: RowId,
             csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        panel_views.withdraw_team_document(session, who.account, stage, document_id)
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _page(request, reading, who, error=str(exc), error_stage=stage, status_code=400)
    return redirect(request, "/team/panel", done="done_pn_withdrawn")
