"""Password hashing (argon2id) and the password policy.

Hashes are argon2-cffi's `PasswordHasher` with its defaults (Argon2id, RFC 9106 low-memory profile). Setting
SIMSA_ARGON2_FAST=1 makes hashing cheap (time_cost=1, memory_cost=8 MiB) so that tests run quickly: it is for tests
only and must never be set on a server. A hash made under other parameters still verifies, and is replaced at the next
successful login (`needs_rehash`), so parameters can change without a migration.
"""

from __future__ import annotations

import os
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from simsa.errors import InputError

FAST_ENV = "SIMSA_ARGON2_FAST"  # tests only: cheap hashing parameters
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # a sanity bound on what is accepted as a new password; argon2 itself takes any length


def _fast() -> bool:
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@cache
def _hasher(fast: bool) -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8192) if fast else PasswordHasher()


def hasher() -> PasswordHasher:
    """The hasher for new hashes: argon2-cffi's defaults, or the cheap test parameters under SIMSA_ARGON2_FAST=1."""
    return _hasher(_fast())


@cache
def _dummy_hash(fast: bool) -> str:
    return _hasher(fast).hash("simsa: no account has this password")


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Whether the password matches the stored hash; a malformed hash never matches."""
    try:
        return hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_time(password: str) -> None:
    """Verify against a hash no password matches, so that an unknown username takes as long as a wrong password."""
    verify_password(_dummy_hash(_fast()), password)


def needs_rehash(stored: str) -> bool:
    """Whether the hash was made with other parameters than the hasher's now."""
    try:
        return hasher().check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def check_policy(password: str, username: str) -> None:
    """A new password must be long, not one repeated character, and not the username; InputError says which."""
    if not isinstance(password, str) or not password:
        raise InputError("a password is required")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password is too short: it needs at least {MIN_PASSWORD_LENGTH} characters "
                         f"(it has {len(password)})")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters")
    if len(set(password)) == 1:
        raise InputError("the password is one character repeated; choose one that is harder to guess")
    if password.strip().lower() == username.strip().lower():
        raise InputError("the password must not be the username")
