"""What every route may ask for: the store, who is asking (session cookie or API token), their language, and the
checks that guard writes (role, CSRF). Routes stay thin: they take these, call one service, and render."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from simsa.accounts import AccountView, Role, SessionInfo, session_info, token_account
from simsa.store.db import Store
from simsa.web.i18n import LANG_COOKIE, pick_lang
from simsa.web.settings import WebSettings

SESSION_COOKIE = "simsa_session"
CSRF_COOKIE = "simsa_csrf"  # double-submit token for forms shown before signing in (sign-in, invitation)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class Refused(HTTPException):
    """A request the viewer may not make; pages show `label`, the API returns the CLI's error shape."""

    def __init__(self, status: int, label: str, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.label = label


def settings(request: Request) -> WebSettings:
    return request.app.state.settings


def store(request: Request) -> Store:
    return request.app.state.store


def read_session(request: Request) -> Iterator[Session]:
    """A read-only transaction for the request (no write lock: pages and API reads never wait for writers)."""
    with store(request).session(readonly=True) as session:
        yield session


def write_session(request: Request) -> Iterator[Session]:
    """A write transaction: committed when the route returns normally, rolled back on any error."""
    with store(request).session() as session:
        yield session


# scope="function": the transaction ends when the route returns, before the response is sent, so a redirect's
# target sees what was written and a failed commit is never answered as a success.
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page and in which language; `account` is None for the public."""

    lang: str
    account: AccountView | None = None
    csrf_token: str = ""
    session_expires: object = None
    via_token: bool = False

    @property
    def role(self) -> Role:
        return self.account.role if self.account else Role.PUBLIC

    @property
    def is_admin(self) -> bool:
        return self.account is not None and self.account.role == Role.ADMIN

    def team_of(self, program_key: str) -> str | None:
        """The team this viewer speaks for in a programme (team accounts only)."""
        acc = self.account
        if acc is not None and acc.role == Role.TEAM and acc.program_key == program_key:
            return acc.team_id
        return None


def _session_of(request: Request) -> SessionInfo | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    with store(request).session(readonly=True) as session:
        return session_info(session, token)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def viewer(request: Request) -> Viewer:
    """The viewer of this request, computed once and kept on the request."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    lang = pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                     request.headers.get("accept-language"), settings(request).default_lang)
    token = bearer_token(request)
    if token is not None:
        if len(token) > 200:
            raise Refused(401, "login_required", "invalid API token")
        with store(request).session(readonly=True) as session:
            account = token_account(session, token)
        if account is None:
            raise Refused(401, "login_required", "invalid, expired or revoked API token")
        result = Viewer(lang=lang, account=account, via_token=True)
    else:
        info = _session_of(request)
        if info is not None:
            result = Viewer(lang=lang, account=info.account, csrf_token=info.csrf_token,
                            session_expires=info.expires_at)
        else:
            csrf = request.cookies.get(CSRF_COOKIE) or ""
            if not (16 <= len(csrf) <= 100):
                csrf = secrets.token_urlsafe(32)
                request.state.new_csrf_cookie = csrf
            result = Viewer(lang=lang, csrf_token=csrf)
    request.state.viewer = result
    if result.account is not None:
        request.state.actor = result.account.username
    return result


ViewerDep = Annotated[Viewer, Depends(viewer)]


def check_csrf(request: Request, who: Viewer, submitted: str | None) -> None:
    """A form (or a script's request) must carry the token this viewer was given; API tokens need none."""
    if who.via_token:
        return
    given = submitted or request.headers.get(CSRF_HEADER) or ""
    if not who.csrf_token or not hmac.compare_digest(given.encode(), who.csrf_token.encode()):
        raise Refused(403, "csrf_failed", "missing or wrong CSRF token")


def require(*roles: Role) -> Callable[[Viewer], Viewer]:
    """A dependency admitting signed-in viewers with one of `roles` (any role when none are named)."""

    def dependency(who: ViewerDep) -> Viewer:
        if who.account is None:
            raise Refused(401, "login_required", "sign in (or send an API token) first")
        if roles and who.account.role not in roles:
            raise Refused(403, "forbidden", f"this needs the role {' or '.join(roles)}; "
                                            f"account {who.account.username!r} is {who.account.role}")
        return who

    return dependency


def require_writer(*roles: Role) -> Callable[..., Viewer]:
    """Like `require`, for API writes: only an API token may write through the API (a browser cookie may not,
    so no other site can make a signed-in browser write)."""
    base = require(*roles)

    def dependency(who: ViewerDep) -> Viewer:
        base(who)
        if not who.via_token:
            raise Refused(401, "login_required", "API writes need an API token (Authorization: Bearer …)")
        return who

    return dependency


Admin = Annotated[Viewer, Depends(require(Role.ADMIN))]
SignedIn = Annotated[Viewer, Depends(require())]
