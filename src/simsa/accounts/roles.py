"""Who may do what on the web platform: the five roles an account can hold."""

from __future__ import annotations

from enum import StrEnum

from simsa.errors import InputError


class Role(StrEnum):
    """An account's role. `team` accounts belong to one team of one programme; the others are not tied to a team."""

    ADMIN = "admin"    # manages accounts and programmes
    EXPERT = "expert"  # expert panel: scores and reviews
    RATER = "rater"    # user-panel rater: scores
    TEAM = "team"      # a participating team: reads its own results, files appeals
    PUBLIC = "public"  # reads what is published


def parse_role(value: Role | str) -> Role:
    """A role from its name (any case, surrounding spaces ignored); InputError naming the roles otherwise."""
    if isinstance(value, Role):
        return value
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        raise InputError(f"unknown role {value!r} (roles: {', '.join(r.value for r in Role)})") from None
