"""Signing in and out, and activating an account from its one-time invitation link."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from simsa import accounts
from simsa.errors import InputError
from simsa.web.deps import SESSION_COOKIE, ViewerDep, check_csrf, store
from simsa.web.render import finish, page, redirect, secure_cookies

if TYPE_CHECKING:
    from simsa.web.throttle import AttemptLimiter

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would let a phishing link borrow our sign-in page."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _limiter(request: Request) -> AttemptLimiter:
    from simsa.web.throttle import AttemptLimiter

    app = request.app
    if getattr(app.state, "login_limiter", None) is None:
        app.state.login_limiter = AttemptLimiter(app.state.settings.login_rate)
    return app.state.login_limiter


@router.get("/login")
def login_form(request: Request, who: ViewerDep, next: str | None = None) -> Response:
    return page(request, "login.html.j2", next=_safe_next(next), error=None, username="")


@router.post("/login")
def login(request: Request, who: ViewerDep, username: Annotated[str, Form(max_length=200)] = "",
          password: Annotated[str, Form(max_length=1000)] = "",
          csrf_token: Annotated[str | None, Form()] = None, next: Annotated[str | None, Form()] = None) -> Response:
    check_csrf(request, who, csrf_token)
    target = _safe_next(next)
    client = request.client.host if request.client else "unknown"
    if not _limiter(request).allow(client):
        return page(request, "login.html.j2", status_code=429, next=target, username=username,
                    error=("login_throttled", {}))
    with store(request).session() as session:
        outcome = accounts.authenticate(session, username.strip(), password)
        token = None
        if outcome.account is not None:
            token, _ = accounts.open_session(session, outcome.account.id)
    if token is None:
        minutes = int(accounts.LOCK_FOR.total_seconds() // 60)
        error = {"locked": ("login_locked", {"minutes": minutes}),
                 "inactive": ("login_inactive", {})}.get(outcome.refused or "", ("login_failed", {}))
        return page(request, "login.html.j2", status_code=401, next=target, username=username, error=error)
    response = redirect(request, target)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
                        httponly=True, samesite="lax", secure=secure_cookies(request), path="/")
    return response


@router.post("/logout")
def logout(request: Request, who: ViewerDep, csrf_token: Annotated[str | None, Form()] = None) -> Response:
    check_csrf(request, who, csrf_token)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with store(request).session() as session:
            accounts.close_session(session, token)
    response = redirect(request, "/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/invite/{token}")
def invitation_form(request: Request, who: ViewerDep, token: str) -> Response:
    with store(request).session(readonly=True) as session:
        account = accounts.invitation_account(session, token)
    return page(request, "invite.html.j2", account=account, token=token, error=None,
                min_length=accounts.MIN_PASSWORD_LENGTH)


@router.post("/invite/{token}")
def accept_invitation(request: Request, who: ViewerDep, token: str,
                      password: Annotated[str, Form(max_length=1000)] = "",
                      password_again: Annotated[str, Form(max_length=1000)] = "",
                      csrf_token: Annotated[str | None, Form()] = None) -> Response:
    check_csrf(request, who, csrf_token)
    with store(request).session(readonly=True) as session:
        account = accounts.invitation_account(session, token)
    error: str | None = None
    if password != password_again:
        error = "invite_mismatch"
    else:
        try:
            with store(request).session() as session:
                accounts.accept_invitation(session, token, password)
        except InputError as exc:
            error = str(exc)
    if error is not None:
        return page(request, "invite.html.j2", status_code=400, account=account, token=token, error=error,
                    min_length=accounts.MIN_PASSWORD_LENGTH)
    return finish(request, redirect(request, "/login", done="done_activated"))
