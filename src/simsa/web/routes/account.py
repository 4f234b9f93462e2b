"""One's own account, whatever the role: who you are, your password, your API tokens (shown once when made).

Also the checks every signed-in form post shares (`form_post`), used by the team and administration pages too.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from simsa import accounts
from simsa.errors import InputError, SimsaError
from simsa.services import web_forms
from simsa.web.deps import SESSION_COOKIE, ReadSession, Refused, SignedIn, Viewer, WriteSession, check_csrf, store
from simsa.web.render import page, redirect

router = APIRouter(prefix="/account", include_in_schema=False)

Text = Annotated[str, Form(max_length=4000)]
Short = Annotated[str, Form(max_length=200)]
Secret = Annotated[str, Form(max_length=1000)]
Csrf = Annotated[str | None, Form(max_length=200)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # a database id (larger would overflow PostgreSQL's integer)


def form_post(request: Request, who: Viewer, csrf_token: str | None) -> None:
    """Before a page form writes anything: the form's CSRF token must be this session's, and the writer a browser
    session (an API token writes through the API, where it cannot mint tokens or change passwords)."""
    check_csrf(request, who, csrf_token)
    if who.via_token:
        raise Refused(403, "forbidden", "pages' forms are for signed-in browsers; with an API token use /api/v1")


def after_refusal(request: Request, session: Session) -> AbstractContextManager[Session]:
    """A service refused a form's input: undo whatever it began writing, and read the page again in a read-only
    transaction of its own (the form's transaction is over)."""
    session.rollback()
    return store(request).session(readonly=True)


def _page(request: Request, session: Session, who: Viewer, *, error: str | None = None,
          kept: dict | None = None, status_code: int = 200) -> Response:
    assert who.account is not None
    return page(request, "account_page.html.j2", status_code=status_code, account=who.account,
                tokens=accounts.list_tokens(session, who.account.id), error=error, kept=kept or {},
                min_length=accounts.MIN_PASSWORD_LENGTH)


@router.get("")
def account_page(request: Request, who: SignedIn, session: ReadSession) -> Response:
    return _page(request, session, who)


@router.post("/password")
def change_password(request: Request, who: SignedIn, session: WriteSession, old: Secret = "", new: Secret = "",
                    new_again: Secret = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        if new != new_again:
            raise InputError("the two new passwords differ")
        accounts.change_password(session, who.account.id, old, new,
                                 keep_session=request.cookies.get(SESSION_COOKIE))
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _page(request, reading, who, error=str(exc), status_code=400)
    return redirect(request, "/account", done="done_password_changed")


@router.post("/tokens")
def create_token(request: Request, who: SignedIn, session: WriteSession, name: Short = "",
                 expires_days: Short = "", csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        view, token = web_forms.create_token(session, who.account, name=name, expires_days=expires_days)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _page(request, reading, who, error=str(exc), kept={"name": name, "expires_days": expires_days},
                         status_code=400)
    return page(request, "account_token.html.j2", token=token, view=view)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(request: Request, who: SignedIn, session: WriteSession, token_id: RowId,
                 csrf_token: Csrf = None) -> Response:
    form_post(request, who, csrf_token)
    assert who.account is not None
    try:
        accounts.revoke_api_token(session, token_id, actor=who.account.actor, account_id=who.account.id)
    except SimsaError as exc:
        with after_refusal(request, session) as reading:
            return _page(request, reading, who, error=str(exc), status_code=400)
    return redirect(request, "/account", done="done_token_revoked")
