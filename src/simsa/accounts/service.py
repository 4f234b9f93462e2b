"""Accounts, invitations, logins, web sessions and API tokens on the store.

Every function works in the caller's transaction (`Store.session()`); what it writes is committed when that block
ends. Writes that change an account are recorded in the audit log as `details` (the row itself is mutable, so no
snapshot); no password, hash or token is ever written there. Logins, sessions and token look-ups are not audited:
they would bloat the chain that the public verifies.

Secrets: passwords are argon2id hashes (`passwords`); invitation, session and API tokens are 32 random bytes shown
once and stored as their sha256 (`secrets`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from simsa.accounts import passwords
from simsa.accounts import secrets as tokens
from simsa.accounts.roles import Role, parse_role
from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.store.models import Account, ApiToken, Invitation, WebSession
from simsa.timeutil import as_utc, utc_text

MIN_PASSWORD_LENGTH = passwords.MIN_PASSWORD_LENGTH
LOCK_AFTER = 5  # consecutive failed logins
LOCK_FOR = dt.timedelta(minutes=15)
SESSION_LIFETIME = dt.timedelta(hours=12)
INVITATION_LIFETIME = dt.timedelta(days=7)

SYSTEM_ACTOR = "system"  # the audit log's actor for what simsa does on its own (locking after failed logins)
USERNAME_PATTERN = re.compile(r"[a-z0-9._-]{3,64}")
MAX_DISPLAY_NAME = 128
MAX_TOKEN_NAME = 128

# Why a login was refused, and what the login form says. authenticate never answers "not_activated" (an invited
# account that has not set a password reads as "bad_credentials", so nobody learns who was invited); the sentence is
# here for callers that know an account's state already, such as an administrator's view.
REFUSALS = {
    "bad_credentials": "the username or password is wrong",
    "locked": f"too many failed sign-ins: this account is locked for {int(LOCK_FOR.total_seconds() // 60)} minutes "
              "after the last one; try again later or ask an administrator to unlock it",
    "inactive": "this account has been deactivated; ask an administrator",
    "not_activated": "this account has not been activated yet: open the invitation link to set a password",
}


# --------------------------------------------------------------------------- views


def _text(value: dt.datetime | None) -> str | None:
    return utc_text(value) if value is not None else None


@dataclass(frozen=True)
class AccountView:
    """What callers see of an account (never its password hash)."""

    id: int
    username: str
    display_name: str
    role: Role
    program_key: str | None
    team_id: str | None
    active: bool
    activated: bool
    locked_until: dt.datetime | None
    created_at: dt.datetime
    last_login_at: dt.datetime | None

    @property
    def actor(self) -> str:
        """The audit log's actor for writes this account makes."""
        return f"account:{self.username}"

    def locked(self, now: dt.datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > (as_utc(now) if now else now_utc())

    def to_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "display_name": self.display_name, "role": self.role.value,
                "program_key": self.program_key, "team_id": self.team_id, "active": self.active,
                "activated": self.activated, "locked_until": _text(self.locked_until),
                "created_at": _text(self.created_at), "last_login_at": _text(self.last_login_at)}


@dataclass(frozen=True)
class TokenView:
    """An API token as its owner sees it afterwards: name and prefix, never the token."""

    id: int
    account_id: int
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def usable(self, now: dt.datetime | None = None) -> bool:
        when = as_utc(now) if now else now_utc()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > when)

    def to_dict(self) -> dict:
        return {"id": self.id, "account_id": self.account_id, "name": self.name, "prefix": self.prefix,
                "created_at": _text(self.created_at), "expires_at": _text(self.expires_at),
                "revoked_at": _text(self.revoked_at), "last_used_at": _text(self.last_used_at)}


@dataclass(frozen=True)
class LoginOutcome:
    """The result of a login: the account, or why it was refused: "bad_credentials", "locked" or "inactive" (see
    `authenticate`; "not_activated" is a known refusal that authenticate does not give)."""

    account: AccountView | None
    refused: str | None

    @property
    def ok(self) -> bool:
        return self.refused is None

    @property
    def message(self) -> str:
        """A sentence for the login form; the same for an unknown username and a wrong password."""
        return "" if self.refused is None else REFUSALS[self.refused]


@dataclass(frozen=True)
class SessionInfo:
    account: AccountView
    csrf_token: str
    expires_at: dt.datetime


def _view(row: Account) -> AccountView:
    return AccountView(id=row.id, username=row.username, display_name=row.display_name, role=Role(row.role),
                       program_key=row.program_key, team_id=row.team_id, active=bool(row.active),
                       activated=row.activated_at is not None, locked_until=row.locked_until,
                       created_at=row.created_at, last_login_at=row.last_login_at)


def _token_view(row: ApiToken) -> TokenView:
    return TokenView(id=row.id, account_id=row.account_id, name=row.name, prefix=row.prefix,
                     created_at=row.created_at, expires_at=row.expires_at, revoked_at=row.revoked_at,
                     last_used_at=row.last_used_at)


# --------------------------------------------------------------------------- helpers


def _now(now: dt.datetime | None) -> dt.datetime:
    return as_utc(now) if now is not None else now_utc()


def _audit(session: Session, row: Account, action: str, actor: str, when: dt.datetime, **details: object) -> None:
    append(session, actor=actor, action=action, entity="account", entity_id=row.id,
           details={"username": row.username, **details}, at=when)


def normalise_username(username: str) -> str:
    """The stored form of a username (lower case, no surrounding spaces); InputError when it is not a valid one."""
    name = str(username).strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise InputError(f"invalid username {username!r}: 3 to 64 characters, letters a-z, digits, '.', '_' or '-'")
    return name


def _display_name(value: str | None, fallback: str) -> str:
    name = " ".join((value if value is not None else fallback).split())
    if not name:
        raise InputError("a display name is required")
    if len(name) > MAX_DISPLAY_NAME:
        raise InputError(f"the display name is too long: at most {MAX_DISPLAY_NAME} characters")
    return name


def _free_username(session: Session, username: str) -> None:
    if session.execute(select(Account.id).where(Account.username == username)).first() is not None:
        raise InputError(f"username {username!r} is taken")


def _account(session: Session, account_id: int) -> Account:
    row = session.get(Account, account_id)
    if row is None:
        raise InputError(f"no account {account_id}")
    return row


def _lifetime(lifetime: dt.timedelta, what: str) -> dt.timedelta:
    if lifetime <= dt.timedelta(0):
        raise InputError(f"{what} lifetime must be positive")
    return lifetime


def _new_invitation(session: Session, account: Account, actor: str, when: dt.datetime,
                    lifetime: dt.timedelta) -> tuple[Invitation, str]:
    token = tokens.new_token()
    row = Invitation(account_id=account.id, token_hash=tokens.token_hash(token), created_at=when,
                     expires_at=when + _lifetime(lifetime, "an invitation's"), created_by=actor)
    session.add(row)
    session.flush()
    return row, token


# --------------------------------------------------------------------------- creating accounts


def create_admin(session: Session, username: str, password: str, display_name: str | None = None, *, actor: str,
                 now: dt.datetime | None = None) -> AccountView:
    """An administrator who can sign in at once (the first account of a new installation)."""
    when = _now(now)
    name = normalise_username(username)
    _free_username(session, name)
    passwords.check_policy(password, name)
    row = Account(username=name, display_name=_display_name(display_name, name), role=Role.ADMIN.value,
                  password_hash=passwords.hash_password(password), active=True, failed_logins=0,
                  created_at=when, created_by=actor, activated_at=when)
    session.add(row)
    session.flush()
    _audit(session, row, "account.create", actor, when, role=row.role, program=None, team=None, invited=False)
    return _view(row)


def invite(session: Session, *, username: str, display_name: str, role: Role | str, actor: str,
           program_key: str | None = None, team_id: str | None = None, teams: list[str] | None = None,
           lifetime: dt.timedelta = INVITATION_LIFETIME, now: dt.datetime | None = None) -> tuple[AccountView, str]:
    """An account that is not yet activated, and the one-time invitation token (plain, to be shown once).

    A team account needs `program_key` and `team_id`; given `teams` (the programme's team ids), the team must be
    one of them. Other roles may be scoped to a programme but belong to no team.
    """
    when = _now(now)
    name = normalise_username(username)
    chosen = parse_role(role)
    program = (program_key or "").strip() or None
    team = (team_id or "").strip() or None
    if chosen is Role.TEAM:
        if program is None or team is None:
            raise InputError("a team account needs a programme and a team")
        if teams is not None and team not in teams:
            raise InputError(f"unknown team {team!r} in programme {program!r} (teams: {', '.join(teams)})")
    elif team is not None:
        raise InputError(f"only team accounts belong to a team; a {chosen.value} account has no team")
    for value, what in ((program, "programme key"), (team, "team id")):
        if value is not None and len(value) > 64:
            raise InputError(f"the {what} is too long: at most 64 characters")
    _free_username(session, name)
    row = Account(username=name, display_name=_display_name(display_name, ""), role=chosen.value,
                  program_key=program, team_id=team, password_hash=None, active=True, failed_logins=0,
                  created_at=when, created_by=actor)
    session.add(row)
    session.flush()
    invitation, token = _new_invitation(session, row, actor, when, lifetime)
    _audit(session, row, "account.create", actor, when, role=row.role, program=program, team=team, invited=True,
           invitation=invitation.id, invitation_expires_at=utc_text(invitation.expires_at))
    return _view(row), token


def reinvite(session: Session, account_id: int, *, actor: str, lifetime: dt.timedelta = INVITATION_LIFETIME,
             now: dt.datetime | None = None) -> str:
    """A fresh invitation token for an account not yet activated; its earlier unused invitations stop working."""
    when = _now(now)
    row = _account(session, account_id)
    if row.activated_at is not None:
        raise InputError(f"account {row.username!r} is already activated; it signs in with its password")
    if not row.active:
        raise InputError(f"account {row.username!r} is deactivated; reactivate it before inviting it again")
    # Earlier links end now (they read as expired); the rows stay, as a record of what was sent when.
    session.execute(update(Invitation).where(Invitation.account_id == row.id, Invitation.used_at.is_(None),
                                             Invitation.expires_at > when).values(expires_at=when))
    invitation, token = _new_invitation(session, row, actor, when, lifetime)
    _audit(session, row, "account.invite", actor, when, invitation=invitation.id,
           invitation_expires_at=utc_text(invitation.expires_at))
    return token


def _invitation(session: Session, token: str, when: dt.datetime) -> tuple[Invitation, Account]:
    if not tokens.plausible(token):
        raise InputError("this invitation is not valid")
    row = session.execute(select(Invitation).where(Invitation.token_hash == tokens.token_hash(token))
                          ).scalar_one_or_none()
    if row is None:
        raise InputError("this invitation is not valid")
    account = session.get(Account, row.account_id)
    assert account is not None  # a foreign key
    if row.used_at is not None or account.activated_at is not None:
        raise InputError("this invitation was already used; sign in with your password")
    if row.expires_at <= when:
        raise InputError("this invitation has expired; ask an administrator for a new one")
    if not account.active:
        raise InputError("this invitation is not valid: the account was deactivated")
    return row, account


def invitation_account(session: Session, token: str, now: dt.datetime | None = None) -> AccountView:
    """The account an invitation is for, to show on the form that accepts it (reads only)."""
    return _view(_invitation(session, token, _now(now))[1])


def accept_invitation(session: Session, token: str, password: str, now: dt.datetime | None = None) -> AccountView:
    """Set the invited account's password and activate it; the token works once."""
    when = _now(now)
    invitation, row = _invitation(session, token, when)
    passwords.check_policy(password, row.username)
    row.password_hash = passwords.hash_password(password)
    row.activated_at = when
    row.failed_logins = 0
    row.locked_until = None
    invitation.used_at = when
    session.flush()
    _audit(session, row, "account.activate", f"account:{row.username}", when, invitation=invitation.id)
    return _view(row)


# --------------------------------------------------------------------------- logging in


def authenticate(session: Session, username: str, password: str, *, now: dt.datetime | None = None) -> LoginOutcome:
    """Check a username and password; never raises for bad credentials, so the caller commits the failure count.

    An unknown username, an account not yet activated and a wrong password are all "bad_credentials", after the
    same work (a dummy hash is verified), so that neither the answer nor its timing says which usernames exist.
    LOCK_AFTER consecutive failures lock the account for LOCK_FOR (audited, actor "system"); a locked account is
    refused without checking the password, so guessing on while locked learns nothing. A deactivated account is
    refused once the password is right. A successful login resets the count, sets last_login_at and rehashes a
    password hashed under older parameters.
    """
    when = _now(now)
    name = str(username).strip().lower()
    password = password if isinstance(password, str) else ""
    row = None
    if USERNAME_PATTERN.fullmatch(name):
        row = session.execute(select(Account).where(Account.username == name)).scalar_one_or_none()
    if row is None or row.password_hash is None:
        passwords.burn_time(password)
        return LoginOutcome(None, "bad_credentials")
    if row.locked_until is not None and row.locked_until > when:
        return LoginOutcome(None, "locked")
    if not passwords.verify_password(row.password_hash, password):
        row.failed_logins = (row.failed_logins or 0) + 1
        if row.failed_logins >= LOCK_AFTER:
            failures, row.failed_logins = row.failed_logins, 0
            row.locked_until = when + LOCK_FOR
            session.flush()
            _audit(session, row, "account.lock", SYSTEM_ACTOR, when, failed_logins=failures,
                   locked_until=utc_text(row.locked_until))
            return LoginOutcome(None, "locked")
        session.flush()
        return LoginOutcome(None, "bad_credentials")
    if not row.active:
        return LoginOutcome(None, "inactive")
    if passwords.needs_rehash(row.password_hash):
        row.password_hash = passwords.hash_password(password)
    row.failed_logins = 0
    row.locked_until = None
    row.last_login_at = when
    session.flush()
    return LoginOutcome(_view(row), None)


def change_password(session: Session, account_id: int, old: str, new: str, *, now: dt.datetime | None = None,
                    keep_session: str | None = None) -> None:
    """Replace a password, given the current one. Every other signed-in session of the account ends (whoever knew
    the old password is signed out); `keep_session` is the plain token of the session making the change."""
    when = _now(now)
    row = _account(session, account_id)
    if row.password_hash is None or not passwords.verify_password(row.password_hash, old):
        raise InputError("the current password is wrong")
    if new == old:
        raise InputError("the new password is the same as the current one")
    passwords.check_policy(new, row.username)
    row.password_hash = passwords.hash_password(new)
    ending = delete(WebSession).where(WebSession.account_id == row.id)
    if keep_session:
        ending = ending.where(WebSession.token_hash != tokens.token_hash(keep_session))
    session.execute(ending)
    session.flush()
    _audit(session, row, "account.password", f"account:{row.username}", when)


# --------------------------------------------------------------------------- web sessions


def open_session(session: Session, account_id: int, *, now: dt.datetime | None = None,
                 lifetime: dt.timedelta = SESSION_LIFETIME) -> tuple[str, SessionInfo]:
    """A new signed-in session: the plain token (for the cookie; only its sha256 is stored) and its details.

    The account's expired sessions are removed on the way.
    """
    when = _now(now)
    row = _account(session, account_id)
    if not row.active or row.activated_at is None:
        raise InputError(f"account {row.username!r} cannot sign in (deactivated or not yet activated)")
    session.execute(delete(WebSession).where(WebSession.account_id == row.id, WebSession.expires_at <= when))
    token = tokens.new_token()
    web = WebSession(account_id=row.id, token_hash=tokens.token_hash(token), csrf_token=tokens.new_csrf_token(),
                     created_at=when, expires_at=when + _lifetime(lifetime, "a session's"))
    session.add(web)
    session.flush()
    return token, SessionInfo(account=_view(row), csrf_token=web.csrf_token, expires_at=web.expires_at)


def session_info(session: Session, token: str, now: dt.datetime | None = None) -> SessionInfo | None:
    """The session a cookie's token belongs to; None when unknown, expired, or the account is deactivated.

    Reads only. A lock (failed logins by someone else) does not end sessions already open.
    """
    if not tokens.plausible(token):
        return None
    found = session.execute(select(WebSession, Account).join(Account, Account.id == WebSession.account_id)
                            .where(WebSession.token_hash == tokens.token_hash(token))).first()
    if found is None:
        return None
    web, row = found
    if web.expires_at <= _now(now) or not row.active or row.activated_at is None:
        return None
    return SessionInfo(account=_view(row), csrf_token=web.csrf_token, expires_at=web.expires_at)


def close_session(session: Session, token: str) -> None:
    """Sign out: the session's row is removed (an unknown token is no error)."""
    if tokens.plausible(token):
        session.execute(delete(WebSession).where(WebSession.token_hash == tokens.token_hash(token)))


# --------------------------------------------------------------------------- API tokens


def create_api_token(session: Session, account_id: int, name: str, *, actor: str,
                     expires_at: dt.datetime | None = None, now: dt.datetime | None = None) -> tuple[TokenView, str]:
    """A new API token: its view and the plain token "simsa_…" (shown once; only its sha256 is stored)."""
    when = _now(now)
    row = _account(session, account_id)
    if not row.active or row.activated_at is None:
        raise InputError(f"account {row.username!r} is deactivated or not yet activated; it cannot have API tokens")
    label = " ".join(str(name).split())
    if not label:
        raise InputError("an API token needs a name (what it is for)")
    if len(label) > MAX_TOKEN_NAME:
        raise InputError(f"the token name is too long: at most {MAX_TOKEN_NAME} characters")
    until = as_utc(expires_at) if expires_at is not None else None
    if until is not None and until <= when:
        raise InputError(f"the token would expire at {utc_text(until)}, which is not in the future")
    token = tokens.new_api_token()
    api = ApiToken(account_id=row.id, name=label, token_hash=tokens.token_hash(token),
                   prefix=tokens.shown_prefix(token), created_at=when, expires_at=until)
    session.add(api)
    session.flush()
    append(session, actor=actor, action="token.create", entity="api_token", entity_id=api.id,
           details={"account": row.username, "name": label, "prefix": api.prefix, "expires_at": _text(until)},
           at=when)
    return _token_view(api), token


def token_account(session: Session, token: str, now: dt.datetime | None = None) -> AccountView | None:
    """The account an API token acts for; None when the token is unknown, revoked or expired, or the account is
    deactivated. Reads only (last_used_at is not updated), so API reads stay read-only transactions."""
    if not tokens.plausible(token):
        return None
    found = session.execute(select(ApiToken, Account).join(Account, Account.id == ApiToken.account_id)
                            .where(ApiToken.token_hash == tokens.token_hash(token))).first()
    if found is None:
        return None
    api, row = found
    if api.revoked_at is not None or (api.expires_at is not None and api.expires_at <= _now(now)):
        return None
    if not row.active or row.activated_at is None:
        return None
    return _view(row)


def revoke_api_token(session: Session, token_id: int, *, actor: str, account_id: int | None = None,
                     now: dt.datetime | None = None) -> TokenView:
    """Revoke a token at once. With `account_id`, only that account's tokens (another's reads as missing)."""
    when = _now(now)
    api = session.get(ApiToken, token_id)
    if api is None or (account_id is not None and api.account_id != account_id):
        raise InputError(f"no API token {token_id}")
    if api.revoked_at is not None:
        raise InputError(f"API token {token_id} ({api.name}) was already revoked at {utc_text(api.revoked_at)}")
    api.revoked_at = when
    session.flush()
    owner = session.get(Account, api.account_id)
    append(session, actor=actor, action="token.revoke", entity="api_token", entity_id=api.id,
           details={"account": owner.username if owner else None, "name": api.name, "prefix": api.prefix}, at=when)
    return _token_view(api)


def list_tokens(session: Session, account_id: int) -> list[TokenView]:
    _account(session, account_id)
    rows = session.execute(select(ApiToken).where(ApiToken.account_id == account_id).order_by(ApiToken.id)).scalars()
    return [_token_view(r) for r in rows]


# --------------------------------------------------------------------------- administration


def list_accounts(session: Session) -> list[AccountView]:
    return [_view(r) for r in session.execute(select(Account).order_by(Account.username)).scalars()]


def get_account(session: Session, account_id: int) -> AccountView:
    return _view(_account(session, account_id))


def find_account(session: Session, username: str) -> AccountView | None:
    """The account with this username (any case), or None."""
    name = str(username).strip().lower()
    row = session.execute(select(Account).where(Account.username == name)).scalar_one_or_none()
    return _view(row) if row is not None else None


def set_active(session: Session, account_id: int, active: bool, *, actor: str,
               now: dt.datetime | None = None) -> AccountView:
    """Deactivate (its sessions end, its API tokens stop working) or reactivate an account; no change, no entry.

    The last active administrator cannot be deactivated: nobody could manage accounts afterwards.
    """
    when = _now(now)
    row = _account(session, account_id)
    if bool(row.active) == bool(active):
        return _view(row)
    if not active and row.role == Role.ADMIN.value and row.activated_at is not None:
        others = session.execute(select(func.count()).select_from(Account).where(
            Account.role == Role.ADMIN.value, Account.active.is_(True), Account.activated_at.is_not(None),
            Account.id != row.id)).scalar_one()
        if not others:
            raise InputError(f"{row.username!r} is the last active administrator; it cannot be deactivated")
    row.active = bool(active)
    if not active:
        session.execute(delete(WebSession).where(WebSession.account_id == row.id))
    session.flush()
    _audit(session, row, "account.reactivate" if active else "account.deactivate", actor, when)
    return _view(row)


def unlock(session: Session, account_id: int, *, actor: str, now: dt.datetime | None = None) -> AccountView:
    """Lift a lock after failed logins (and reset the count); an account without either is left as it is."""
    when = _now(now)
    row = _account(session, account_id)
    was_locked = row.locked_until is not None and row.locked_until > when
    if row.locked_until is None and not row.failed_logins:
        return _view(row)
    row.locked_until = None
    row.failed_logins = 0
    session.flush()
    _audit(session, row, "account.unlock", actor, when, was_locked=was_locked)
    return _view(row)
