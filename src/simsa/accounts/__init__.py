"""Accounts and roles of the web platform: invitations, password logins, web sessions and API tokens.

Names load on first use (like `simsa.audit`), so importing `Role` does not import SQLAlchemy or argon2.

Tests may set SIMSA_ARGON2_FAST=1 for cheap password hashing (see `simsa.accounts.passwords`); never on a server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_SOURCES = {
    "Role": "roles", "parse_role": "roles",
    "AccountView": "service", "TokenView": "service", "LoginOutcome": "service", "SessionInfo": "service",
    "MIN_PASSWORD_LENGTH": "service", "LOCK_AFTER": "service", "LOCK_FOR": "service", "SESSION_LIFETIME": "service",
    "INVITATION_LIFETIME": "service", "REFUSALS": "service", "SYSTEM_ACTOR": "service",
    "create_admin": "service", "invite": "service", "reinvite": "service", "invitation_account": "service",
    "accept_invitation": "service", "authenticate": "service", "open_session": "service", "session_info": "service",
    "close_session": "service", "create_api_token": "service", "token_account": "service",
    "revoke_api_token": "service", "list_accounts": "service", "get_account": "service", "find_account": "service",
    "list_tokens": "service", "set_active": "service", "unlock": "service", "change_password": "service",
    "normalise_username": "service",
}

__all__ = [
    "INVITATION_LIFETIME", "LOCK_AFTER", "LOCK_FOR", "MIN_PASSWORD_LENGTH", "REFUSALS", "SESSION_LIFETIME",
    "SYSTEM_ACTOR", "AccountView", "LoginOutcome", "Role", "SessionInfo", "TokenView", "accept_invitation",
    "authenticate", "change_password", "close_session", "create_admin", "create_api_token", "find_account",
    "get_account", "invitation_account", "invite", "list_accounts", "list_tokens", "normalise_username",
    "open_session", "parse_role", "reinvite", "revoke_api_token", "session_info", "set_active", "token_account",
    "unlock",
]


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from simsa.accounts.roles import Role, parse_role
    from simsa.accounts.service import (
        INVITATION_LIFETIME,
        LOCK_AFTER,
        LOCK_FOR,
        MIN_PASSWORD_LENGTH,
        REFUSALS,
        SESSION_LIFETIME,
        SYSTEM_ACTOR,
        AccountView,
        LoginOutcome,
        SessionInfo,
        TokenView,
        accept_invitation,
        authenticate,
        change_password,
        close_session,
        create_admin,
        create_api_token,
        find_account,
        get_account,
        invitation_account,
        invite,
        list_accounts,
        list_tokens,
        normalise_username,
        open_session,
        reinvite,
        revoke_api_token,
        session_info,
        set_active,
        token_account,
        unlock,
    )
