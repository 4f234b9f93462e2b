"""The secretariat's pages (role admin): the state of every programme, accounts and invitations, loading programme
files, and working on a stage (scores, score files, gate results, voids, the decision, appeals).

Each form post: the session's CSRF token, one service call as the signed-in account, then a redirect (or, where a
secret is shown once, the page showing it); a refused input shows the same page again with the message and what
was typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa import accounts
from simsa.errors import SimsaError
from simsa.services import gates as gate_service
from simsa.services import web_forms
from simsa.web.deps import Admin, ReadSession, Refused, WriteSession, settings
from simsa.web.render import page, redirect
from simsa.web.routes.account import Csrf, RowId, Short, Text, after_refusal, form_post

router = APIRouter(prefix="/admin", include_in_schema=False)

UPLOAD_FIELD = "file"
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small fields around an upload
ROLES = ("team", "expert", "rater", "admin")


# --------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class Upload:
    """A multipart form with at most one file, read within the configured size limit."""

    fields: dict[str, str]
    filename: str | None
    data: bytes | None


async def read_upload(request: Request) -> Upload:
    """The form of an upload, refused before it is parsed when it declares more than the limit (and cut off at the
    limit whatever it declares)."""
    limit = settings(request).max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is None or not declared.strip().isdigit():
        raise Refused(411, "upload_length", "an upload must say its length (Content-Length)")
    if int(declared) > limit + FORM_OVERHEAD:
        raise Refused(413, "upload_too_large", f"the upload is larger than the limit of {limit} bytes")
    form = await request.form(max_files=1, max_fields=20, max_part_size=FORM_OVERHEAD)
    try:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        upload = next((v for k, v in form.multi_items() if k == UPLOAD_FIELD and not isinstance(v, str)), None)
        data = await upload.read(limit + 1) if upload is not None else None
        filename = upload.filename if upload is not None else None
    finally:
        await form.close()
    if data is not None and len(data) > limit:
        raise Refused(413, "upload_too_large", f"the upload is larger than the limit of {limit} bytes")
    return Upload(fields, filename, data or None)


UploadForm = Annotated[Upload, Depends(read_upload)]


def _stage_url(key: str, stage: str) -> str:
    return f"/admin/programs/{quote(key, safe='')}/stages/{quote(stage, safe='')}"


def _invitation_link(request: Request, token: str) -> str:
    base = settings(request).public_url or str(request.base_url).rstrip("/")
    return f"{base}/invite/{token}"


# --------------------------------------------------------------------------- the start page


@router.get("")
def dashboard(request: Request, who: Admin, session: ReadSession) -> Response:
    return page(request, "admin_dashboard.html.j2", overview=web_forms.admin_overview(session))


# --------------------------------------------------------------------------- accounts


def _accounts_page(request: Request, session: Session, *, error: str | None = None, kept: dict | None = None,
                   status_code: int = 200) -> Response:
    return page(request, "admin_accounts.html.j2", status_code=status_code, accounts=accounts.list_accounts(session),
                choices=web_forms.team_choices(session), programs=web_forms.program_keys(session), roles=ROLES,
                error=error, kept=kept or {})


@router.get("/accounts")
def account_list(request: Request, who: Admin, session: ReadSession) -> Response:
    return _accounts_page(request, session)


@router.post("/accounts/invite")
def invite(request: Request, who: Admin, session: WriteSession, username: Short = "", display_name: Short = "",
           role: Short = "", program: Short = "", team: Short = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        account, token = web_forms.invite_account(session, username=username, display_name=display_name, role=role,
                                                  program=program, team=team, actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            kept = {"username": username, "display_name": display_name, "role": role, "program": program, "team": team}
            return _accounts_page(request, reading, error=str(exc), kept=kept, status_code=400)
    return page(request, "admin_invitation.html.j2", account=account, link=_invitation_link(request, token),
                days=accounts.INVITATION_LIFETIME.days)


@router.post("/accounts/{account_id}/active")
def set_active(request: Request, who: Admin, session: WriteSession, account_id: RowId, active: Short = "",
               csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        accounts.set_active(session, account_id, active == "1", actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _accounts_page(request, reading, error=str(exc), status_code=400)
    return redirect(request, "/admin/accounts", done="done_account_activated" if active == "1"
                    else "done_account_deactivated")


@router.post("/accounts/{account_id}/unlock")
def unlock(request: Request, who: Admin, session: WriteSession, account_id: RowId, csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        accounts.unlock(session, account_id, actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _accounts_page(request, reading, error=str(exc), status_code=400)
    return redirect(request, "/admin/accounts", done="done_account_unlocked")


@router.post("/accounts/{account_id}/reinvite")
def reinvite(request: Request, who: Admin, session: WriteSession, account_id: RowId,
             csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        token = accounts.reinvite(session, account_id, actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _accounts_page(request, reading, error=str(exc), status_code=400)
    return page(request, "admin_invitation.html.j2", account=accounts.get_account(session, account_id),
                link=_invitation_link(request, token), days=accounts.INVITATION_LIFETIME.days)


# --------------------------------------------------------------------------- programmes


@router.get("/programs/load")
def load_form(request: Request, who: Admin) -> Response:
    return page(request, "admin_program_load.html.j2", error=None, limit=settings(request).max_upload_bytes)


@router.post("/programs/load")
def load_program(request: Request, who: Admin, upload: UploadForm, session: WriteSession) -> Response:
    form_post(request, who, upload.fields.get("csrf_token"))
    assert who.account is not None
    try:
        result = web_forms.load_program_upload(session, upload.filename, upload.data, who.account.actor,
                                               example=upload.fields.get("example") == "1")
    except SimsaError as exc:
        session.rollback()
        return page(request, "admin_program_load.html.j2", status_code=400, error=str(exc),
                    limit=settings(request).max_upload_bytes)
    return page(request, "admin_program_loaded.html.j2", result=result)


# --------------------------------------------------------------------------- a stage


def _stage_page(request: Request, session: Session, key: str, stage: str, *, error: str | None = None,
                kept: dict | None = None, status_code: int = 200) -> Response:
    view = web_forms.stage_admin(session, key, stage)
    limit = settings(request).max_upload_bytes
    return page(request, "admin_stage.html.j2", status_code=status_code, view=view, error=error, kept=kept or {},
                stage_url=_stage_url(key, stage), limit=limit,
                lineage_limit=min(limit, gate_service.MAX_LINEAGE_BYTES))


@router.get("/programs/{key}/stages/{stage}")
def stage_page(request: Request, who: Admin, session: ReadSession, key: str, stage: str) -> Response:
    return _stage_page(request, session, key, stage)


@router.post("/programs/{key}/stages/{stage}/scores")
def record_score(request: Request, who: Admin, session: WriteSession, key: str, stage: str, team: Short = "",
                 source: Short = "", rater: Annotated[str, Form(max_length=128)] = "", value: Short = "",
                 stderr: Short = "", evidence: Text = "", note: Text = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        web_forms.record_score(session, key, stage, team=team, source=source, value=value, stderr=stderr,
                               rater=rater, evidence=evidence, note=note, actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            kept = {"score": {"team": team, "source": source, "rater": rater, "value": value, "stderr": stderr,
                              "evidence": evidence, "note": note}}
            return _stage_page(request, reading, key, stage, error=str(exc), kept=kept, status_code=400)
    return redirect(request, _stage_url(key, stage), done="done_score_recorded")


@router.post("/programs/{key}/stages/{stage}/scores/import")
def import_scores(request: Request, who: Admin, upload: UploadForm, session: WriteSession, key: str,
                  stage: str) -> Response:
    form_post(request, who, upload.fields.get("csrf_token"))
    assert who.account is not None
    try:
        web_forms.import_score_upload(session, key, stage, upload.filename, upload.data, who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _stage_page(request, reading, key, stage, error=str(exc), status_code=400)
    return redirect(request, _stage_url(key, stage), done="done_scores_imported")


@router.post("/programs/{key}/stages/{stage}/gates")
def record_gate(request: Request, who: Admin, session: WriteSession, key: str, stage: str, team: Short = "",
                gate: Short = "", passed: Short = "", evidence: Text = "",
                link: Annotated[str, Form(max_length=2048)] = "", grade: Short = "declared",
                override_reason: Text = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        web_forms.record_gate(session, key, stage, team=team, gate=gate, passed=passed, evidence=evidence, link=link,
                              actor=who.account.actor, grade=grade, override_reason=override_reason)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            kept = {"gate": {"team": team, "gate": gate, "passed": passed, "evidence": evidence, "link": link,
                             "grade": grade, "override_reason": override_reason}}
            return _stage_page(request, reading, key, stage, error=str(exc), kept=kept, status_code=400)
    return redirect(request, _stage_url(key, stage), done="done_gate_recorded")


@router.post("/programs/{key}/stages/{stage}/gates/lineage")
def record_gate_from_lineage(request: Request, who: Admin, upload: UploadForm, session: WriteSession, key: str,
                             stage: str) -> Response:
    form_post(request, who, upload.fields.get("csrf_token"))
    assert who.account is not None
    fields = {name: upload.fields.get(name, "") for name in ("team", "gate", "override", "reason", "link")}
    try:
        web_forms.record_gate_from_lineage(session, key, stage, filename=upload.filename, data=upload.data,
                                           actor=who.account.actor, **fields)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _stage_page(request, reading, key, stage, error=str(exc), kept={"lineage": fields},
                               status_code=400)
    return redirect(request, _stage_url(key, stage), done="done_gate_lineage_recorded")


@router.post("/programs/{key}/stages/{stage}/void")
def void(request: Request, who: Admin, session: WriteSession, key: str, stage: str, kind: Short = "",
         record_id: Short = "", reason: Text = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        web_forms.void_record(session, key, stage, kind=kind, record_id=record_id, reason=reason,
                              actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            kept = {"void": {"kind": kind, "record_id": record_id, "reason": reason}}
            return _stage_page(request, reading, key, stage, error=str(exc), kept=kept, status_code=400)
    return redirect(request, _stage_url(key, stage), done="done_voided")


@router.post("/programs/{key}/stages/{stage}/decide")
def decide(request: Request, who: Admin, session: WriteSession, key: str, stage: str, decided_at: Short = "",
           csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        web_forms.decide_stage(session, key, stage, decided_at=decided_at, actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _stage_page(request, reading, key, stage, error=str(exc),
                               kept={"decide": {"decided_at": decided_at}}, status_code=400)
    return redirect(request, f"/programs/{quote(key, safe='')}/stages/{quote(stage, safe='')}", done="done_decided")


@router.post("/programs/{key}/stages/{stage}/appeals/{appeal_id}/resolve")
def resolve_appeal(request: Request, who: Admin, session: WriteSession, key: str, stage: str, appeal_id: RowId,
                   outcome: Short = "", reason: Text = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        web_forms.resolve_appeal(session, key, stage, appeal_id, outcome=outcome, reason=reason,
                                 actor=who.account.actor)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            kept = {f"appeal-{appeal_id}": {"outcome": outcome, "reason": reason}}
            return _stage_page(request, reading, key, stage, error=str(exc), kept=kept, status_code=400)
    return redirect(request, _stage_url(key, stage), done="done_appeal_resolved")
