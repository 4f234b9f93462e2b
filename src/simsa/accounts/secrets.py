"""Random tokens for invitations, API access and web sessions, and the digests under which they are stored.

A token is shown once and never stored: the database keeps its sha256, and a presented token is found by looking up
its digest (no comparison of secrets in Python, so no timing to measure). 32 random bytes make guessing hopeless,
which is why a fast unsalted hash is enough here, unlike for passwords.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32          # secrets.token_urlsafe(32): 43 URL-safe characters
API_TOKEN_PREFIX = "simsa_"
SHOWN_PREFIX_LENGTH = len(API_TOKEN_PREFIX) + 8  # "simsa_" and 8 random characters, shown to recognise a token
MAX_TOKEN_LENGTH = 256    # a longer presented token is not one of ours; not even hashed


def new_token() -> str:
    """A fresh random token (invitations, web sessions)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_api_token() -> str:
    """A fresh API token: "simsa_" and 43 URL-safe characters, so a leaked one is recognisable by secret scanners."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def new_csrf_token() -> str:
    """A session's CSRF token (sent back in forms and headers, compared with `same`)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def shown_prefix(token: str) -> str:
    """What a user sees of an API token afterwards, to tell their tokens apart."""
    return token[:SHOWN_PREFIX_LENGTH]


def token_hash(token: str) -> str:
    """The digest a token is stored and looked up under: sha256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def plausible(token: object) -> bool:
    """Whether a presented value could be a token at all (a string of sensible length), before it is hashed."""
    return isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_LENGTH


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets (a CSRF token against the session's)."""
    return secrets.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
