"""Inviting accounts: the programme side of account creation (a team account must name a team of a loaded
programme), in front of simsa.accounts, which knows nothing of programmes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from simsa import accounts
from simsa.errors import InputError
from simsa.services import programs


def invite(session: Session, *, username: str, display_name: str, role: str, actor: str,
           program_ref: str | None = None, team_id: str | None = None) -> tuple[accounts.AccountView, str]:
    """Create a not-yet-active account and return it with its one-time invitation token."""
    try:
        wanted = accounts.Role(role)
    except ValueError:
        raise InputError(f"unknown role {role!r} (roles: admin, expert, rater, team)") from None
    program_key = None
    teams = None
    if wanted == accounts.Role.TEAM:
        if not program_ref or not team_id:
            raise InputError("a team account needs a programme and a team")
        loaded = programs.stored(session, program_ref)
        program_key = loaded.program.program.id
        teams = [t.id for t in loaded.program.teams]
    elif team_id:
        raise InputError(f"only team accounts belong to a team; a {wanted} account does not")
    return accounts.invite(session, username=username, display_name=display_name, role=wanted, actor=actor,
                           program_key=program_key, team_id=team_id, teams=teams)
