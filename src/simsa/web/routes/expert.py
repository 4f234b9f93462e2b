"""An expert's pages (role expert): the declaration of affiliations and relations, the panels they sit on, the
calibration anchors and the submissions assigned to them, read blind and scored against the rubric.

Who may see what is decided in `simsa.services.panel_views`; a submission the expert is not assigned to (or is
conflicted with) answers exactly as a code that does not exist. Each post: the session's CSRF token, one service
call as the signed-in expert, then a redirect; a refusal shows the page again with the message and what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict, Unpack

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa.accounts import Role
from simsa.errors import NotFound, SimsaError
from simsa.services import panel_views
from simsa.web.deps import ReadSession, Refused, Viewer, WriteSession, require
from simsa.web.render import page, redirect
from simsa.web.routes.account import Csrf, RowId, Text, after_refusal, form_post

router = APIRouter(prefix="/expert", include_in_schema=False)

Expert = Annotated[Viewer, Depends(require(Role.EXPERT))]
Code = Annotated[str, Path(min_length=1, max_length=8)]
PageNo = Annotated[int, Path(ge=1, le=10_000)]
MAX_FORM_FIELDS = 200
MAX_FIELD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Posted:
    """A form's text fields: the first value of each name, and every value of repeated ones (checkboxes)."""

    fields: dict[str, str]
    many: dict[str, tuple[str, ...]]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


async def form_fields(request: Request) -> Posted:
    """A form whose field names depend on the rubric (`score_<criterion>`, `just_<criterion>`), read within
    bounds (no files, at most 200 fields of 64 KiB)."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except Exception as exc:  # Starlette's MultiPartException and friends: a malformed or oversized form
        raise Refused(400, "error_title", f"the form could not be read: {exc}") from None
    fields: dict[str, str] = {}
    many: dict[str, list[str]] = {}
    for k, v in form.multi_items():
        if isinstance(v, str):
            fields.setdefault(k, v)
            many.setdefault(k, []).append(v)
    return Posted(fields, {k: tuple(v) for k, v in many.items()})


Fields = Annotated[Posted, Depends(form_fields)]


def _name(who: Viewer) -> str:
    assert who.account is not None
    return who.account.username


# --------------------------------------------------------------------------- dashboard and declaration


def _dashboard(request: Request, session: Session, who: Viewer, *, error: str | None = None,
               kept: dict | None = None, status_code: int = 200) -> Response:
    view = panel_views.expert_dashboard(session, _name(who), who.lang)
    return page(request, "expert_dashboard.html.j2", status_code=status_code, view=view, error=error,
                kept=kept or {})


@router.get("")
def dashboard(request: Request, who: Expert, session: ReadSession) -> Response:
    return _dashboard(request, session, who)


@router.post("/declaration")
def declare(request: Request, who: Expert, session: WriteSession, fields: Fields) -> Response:
    form_post(request, who, fields.get("csrf_token"))
    assert who.account is not None
    conflicts = list(fields.many.get("conflicts", ()))
    affiliations, relations = fields.get("affiliations", ""), fields.get("relations", "")
    try:
        panel_views.declare_from_form(session, who.account, affiliations, relations, conflicts)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            kept = {"affiliations": affiliations, "relations": relations, "conflicts": conflicts}
            return _dashboard(request, reading, who, error=str(exc), kept=kept, status_code=400)
    return redirect(request, "/expert", done="done_pn_declared")


# --------------------------------------------------------------------------- submissions


class _PageOptions(TypedDict, total=False):
    """What a review page may be shown with besides its view: the refusal, the form as sent, the status."""

    error: str | None
    kept: dict | None
    status_code: int


def _review_page(request: Request, session: Session, who: Viewer, view: panel_views.ReviewPage, *,
                 error: str | None = None, kept: dict | None = None, status_code: int = 200) -> Response:
    return page(request, "expert_review.html.j2", status_code=status_code, view=view, error=error, kept=kept or {},
                dashboard="/expert")


def _submission(request: Request, session: Session, who: Viewer, key: str, stage: str, code: str,
                **extra: Unpack[_PageOptions]) -> Response:
    view = panel_views.submission_page(session, key, stage, code, _name(who), who.lang)
    return _review_page(request, session, who, view, **extra)


@router.get("/panels/{key}/{stage}/submissions/{code}")
def submission(request: Request, who: Expert, session: ReadSession, key: str, stage: str, code: Code) -> Response:
    return _submission(request, session, who, key, stage, code)


@router.get("/panels/{key}/{stage}/submissions/{code}/documents/{document_id}/pages/{number}.png")
def submission_page_image(who: Expert, session: ReadSession, key: str, stage: str, code: Code, document_id: RowId,
                          number: PageNo) -> Response:
    png = panel_views.submission_page_png(session, key, stage, code, document_id, number, _name(who))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=600"})


def _post_review(request: Request, who: Viewer, session: Session, key: str, stage: str, code: str, rnd: str,
                 fields: Posted) -> Response:
    form_post(request, who, fields.get("csrf_token"))
    try:
        panel_views.submit_submission_review(session, key, stage, code, _name(who), rnd, fields.fields)
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _submission(request, reading, who, key, stage, code, error=str(exc), kept=fields.fields,
                               status_code=400)
    view_url = f"{panel_views.panel_url(key, stage)}/submissions/{code}"
    return redirect(request, view_url, done="done_pn_locked" if rnd == "1" else "done_pn_revised")


@router.post("/panels/{key}/{stage}/submissions/{code}/review")
def review(request: Request, who: Expert, session: WriteSession, key: str, stage: str, code: Code,
           fields: Fields) -> Response:
    return _post_review(request, who, session, key, stage, code, "1", fields)


@router.post("/panels/{key}/{stage}/submissions/{code}/revise")
def revise(request: Request, who: Expert, session: WriteSession, key: str, stage: str, code: Code,
           fields: Fields) -> Response:
    return _post_review(request, who, session, key, stage, code, "2", fields)


@router.post("/panels/{key}/{stage}/submissions/{code}/comments")
def comment(request: Request, who: Expert, session: WriteSession, key: str, stage: str, code: Code, body: Text = "",
            csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    try:
        panel_views.post_submission_comment(session, key, stage, code, _name(who), body)
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _submission(request, reading, who, key, stage, code, error=str(exc), kept={"comment": body},
                               status_code=400)
    return redirect(request, f"{panel_views.panel_url(key, stage)}/submissions/{code}",
                    done="done_pn_posted")


# --------------------------------------------------------------------------- calibration anchors


def _anchor(request: Request, session: Session, who: Viewer, key: str, stage: str, anchor: str,
            **extra: Unpack[_PageOptions]) -> Response:
    view = panel_views.anchor_page(session, key, stage, anchor, _name(who), who.lang)
    return _review_page(request, session, who, view, **extra)


@router.get("/panels/{key}/{stage}/anchors/{anchor}")
def anchor_page(request: Request, who: Expert, session: ReadSession, key: str, stage: str, anchor: str) -> Response:
    return _anchor(request, session, who, key, stage, anchor)


@router.get("/panels/{key}/{stage}/anchors/{anchor}/documents/{document_id}/pages/{number}.png")
def anchor_page_image(who: Expert, session: ReadSession, key: str, stage: str, anchor: str, document_id: RowId,
                      number: PageNo) -> Response:
    png = panel_views.anchor_page_png(session, key, stage, anchor, document_id, number, _name(who))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=600"})


@router.post("/panels/{key}/{stage}/anchors/{anchor}/review")
def anchor_review(request: Request, who: Expert, session: WriteSession, key: str, stage: str, anchor: str,
                  fields: Fields) -> Response:
    form_post(request, who, fields.get("csrf_token"))
    try:
        panel_views.submit_anchor_review(session, key, stage, anchor, _name(who), fields.fields)
    except NotFound:
        raise
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _anchor(request, reading, who, key, stage, anchor, error=str(exc), kept=fields.fields,
                           status_code=400)
    return redirect(request, f"{panel_views.panel_url(key, stage)}/anchors/{anchor}", done="done_pn_locked")
