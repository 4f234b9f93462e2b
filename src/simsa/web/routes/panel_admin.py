"""The secretariat's pages of the expert panels (role admin): every stage's panel, and one panel's work — its
steps, calibration anchors, experts' declarations and conflicts, assignments, submissions, calibration agreement,
progress of the rounds, the discussion's moderation and a preview of the result.

Each form post: the session's CSRF token, one service call as the signed-in account, then a redirect (the
balancing shows the page with what it did); a refused input shows the page again with the message and what was
typed.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa.errors import InputError, SimsaError
from simsa.panel.balance import Balanced
from simsa.panel.files import Purpose
from simsa.services import panel, panel_admin_views, panel_documents, panel_steps
from simsa.web.deps import Admin, ReadSession, WriteSession, settings
from simsa.web.render import page, redirect
from simsa.web.routes.account import Csrf, RowId, Short, Text, after_refusal, form_post
from simsa.web.routes.admin import UploadForm

router = APIRouter(prefix="/admin/panels", include_in_schema=False)

PURPOSES: tuple[Purpose, ...] = ("report", "log")
Name = Annotated[str, Form(max_length=64)]


def panel_url(key: str, stage: str) -> str:
    return f"/admin/panels/{quote(key, safe='')}/{quote(stage, safe='')}"


def _page(request: Request, session: Session, key: str, stage: str, *, error: str | None = None,
          kept: dict | None = None, balanced: Balanced | None = None, status_code: int = 200) -> Response:
    view = panel_admin_views.panel_admin(session, key, stage)
    return page(request, "admin_panel.html.j2", status_code=status_code, view=view, error=error, kept=kept or {},
                balanced=balanced, url=panel_url(key, stage), limit=settings(request).max_upload_bytes,
                stage_admin_url=f"/admin/programs/{quote(key, safe='')}/stages/{quote(stage, safe='')}")


def _refused(request: Request, session: Session, key: str, stage: str, exc: SimsaError,
             kept: dict | None = None) -> Response:
    with after_refusal(request, session) as reading:
        return _page(request, reading, key, stage, error=str(exc), kept=kept, status_code=400)


@router.get("")
def panel_list(request: Request, who: Admin, session: ReadSession) -> Response:
    return page(request, "admin_panels.html.j2", panels=panel_admin_views.panel_summaries(session), url_of=panel_url)


@router.get("/{key}/{stage}")
def panel_page(request: Request, who: Admin, session: ReadSession, key: str, stage: str) -> Response:
    return _page(request, session, key, stage)


@router.post("/{key}/{stage}/advance")
def advance(request: Request, who: Admin, session: WriteSession, key: str, stage: str, to: Short = "",
            csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        ctx = panel.context(session, key, stage)
        panel_steps.advance(session, ctx, to, who.account.actor)
    except SimsaError as exc:
        return _refused(request, session, key, stage, exc)
    return redirect(request, panel_url(key, stage), done="done_pa_closed" if to == "closed" else "done_pa_advanced")


@router.post("/{key}/{stage}/anchors")
def upload_anchor(request: Request, who: Admin, upload: UploadForm, session: WriteSession, key: str,
                  stage: str) -> Response:
    form_post(request, who, upload.fields.get("csrf_token"))
    assert who.account is not None
    anchor = upload.fields.get("anchor", "")
    purpose = upload.fields.get("purpose", "report")
    try:
        if purpose not in PURPOSES:
            raise InputError(f"a document is a report or a log, not {purpose[:40]!r}")
        if upload.data is None:
            raise InputError("choose a file to upload")
        ctx = panel.context(session, key, stage)
        panel_documents.upload(session, ctx, upload.data, upload.filename or "document", purpose,
                               who.account.actor, anchor_id=anchor)
    except SimsaError as exc:
        return _refused(request, session, key, stage, exc, kept={"anchor": {"anchor": anchor, "purpose": purpose}})
    return redirect(request, panel_url(key, stage), done="done_pa_anchor_uploaded")


@router.post("/{key}/{stage}/anchors/{document_id}/withdraw")
def withdraw_anchor(request: Request, who: Admin, session: WriteSession, key: str, stage: str, document_id: RowId,
                    csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        ctx = panel.context(session, key, stage)
        panel_documents.withdraw(session, ctx, document_id, who.account.actor, team_id=None)
    except SimsaError as exc:
        return _refused(request, session, key, stage, exc)
    return redirect(request, panel_url(key, stage), done="done_pa_anchor_withdrawn")


@router.post("/{key}/{stage}/assign")
def assign(request: Request, who: Admin, session: WriteSession, key: str, stage: str, team: Name = "",
           expert: Name = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        ctx = panel.context(session, key, stage)
        panel.assign(session, ctx, team, expert, who.account.actor)
    except SimsaError as exc:
        return _refused(request, session, key, stage, exc, kept={"assign": {"team": team, "expert": expert}})
    return redirect(request, panel_url(key, stage) + "#assignments", done="done_pa_assigned")


@router.post("/{key}/{stage}/unassign")
def unassign(request: Request, who: Admin, session: WriteSession, key: str, stage: str, team: Name = "",
             expert: Name = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        ctx = panel.context(session, key, stage)
        panel.unassign(session, ctx, team, expert, who.account.actor)
    except SimsaError as exc:
        return _refused(request, session, key, stage, exc)
    return redirect(request, panel_url(key, stage) + "#assignments", done="done_pa_unassigned")


@router.post("/{key}/{stage}/balance")
def balance(request: Request, who: Admin, session: WriteSession, key: str, stage: str,
            csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        ctx = panel.context(session, key, stage)
        done = panel.auto_assign(session, ctx, who.account.actor)
    except SimsaError as exc:
        return _refused(request, session, key, stage, exc)
    session.flush()
    return _page(request, session, key, stage, balanced=done)


@router.post("/{key}/{stage}/comments/{comment_id}/hide")
def hide_comment(request: Request, who: Admin, session: WriteSession, key: str, stage: str, comment_id: RowId,
                 reason: Text = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        ctx = panel.context(session, key, stage)
        panel.hide_comment(session, ctx, comment_id, reason, who.account.actor)
    except SimsaError as exc:
        return _refused(request, session, key, stage, exc, kept={f"hide-{comment_id}": {"reason": reason}})
    return redirect(request, panel_url(key, stage) + "#discussion", done="done_pa_hidden")
