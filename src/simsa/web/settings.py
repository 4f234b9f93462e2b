"""How `simsa web` is configured: command-line options over environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Literal, TypedDict, Unpack

from simsa.errors import InputError

CookiePolicy = Literal["auto", "always", "never"]
DEFAULT_HOST = "127.0.0.1"  # loopback: exposing the app is a decision made in front of a reverse proxy
DEFAULT_PORT = 8080


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InputError(f"${name} must be true or false, got {raw!r}")


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"${name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InputError(f"${name} must be between {low} and {high}, got {value}")
    return value


class Overrides(TypedDict, total=False):
    """What `WebSettings.with_overrides` accepts: any setting, or None for "not given"."""

    database_url: str | None
    host: str | None
    port: int | None
    secure_cookies: CookiePolicy | None
    public_url: str | None
    default_lang: str | None
    login_rate: int | None
    access_log: bool | None
    max_upload_bytes: int | None
    threads: int | None


@dataclass(frozen=True)
class WebSettings:
    """Everything the app reads at start-up; see docs/web.md for each variable."""

    database_url: str | None = None          # $SIMSA_DATABASE_URL, else the CLI's default SQLite file
    host: str = DEFAULT_HOST                 # $SIMSA_WEB_HOST
    port: int = DEFAULT_PORT                 # $SIMSA_WEB_PORT
    secure_cookies: CookiePolicy = "auto"    # $SIMSA_WEB_SECURE_COOKIES: auto = Secure when the request is HTTPS
    public_url: str | None = None            # $SIMSA_WEB_PUBLIC_URL: base of invitation links (https://judging.example)
    default_lang: str = "ko"                 # $SIMSA_WEB_LANG: language of a first visit without Accept-Language
    login_rate: int = 20                     # $SIMSA_WEB_LOGIN_RATE: login attempts per client address per minute
    access_log: bool = True                  # $SIMSA_WEB_ACCESS_LOG: one JSON line per request on stderr
    max_upload_bytes: int = 50_000_000       # $SIMSA_WEB_MAX_UPLOAD: largest accepted upload (program, scores)
    threads: int = 20                        # $SIMSA_WEB_THREADS: requests a worker process serves at once

    @property
    def pool_size(self) -> int:
        """Database connections per worker: a request may hold two at once (who is asking, and what it reads), so
        the pool holds 2 × (threads + 5) at most and no request can wait on a connection another waiter holds."""
        return self.threads + 5

    @classmethod
    def from_env(cls) -> WebSettings:
        cookies = (os.environ.get("SIMSA_WEB_SECURE_COOKIES") or "auto").strip().lower()
        mapping: dict[str, CookiePolicy] = {"auto": "auto", "true": "always", "always": "always", "1": "always",
                                            "false": "never", "never": "never", "0": "never"}
        if cookies not in mapping:
            raise InputError(f"$SIMSA_WEB_SECURE_COOKIES must be auto, true or false, got {cookies!r}")
        lang = (os.environ.get("SIMSA_WEB_LANG") or "ko").strip()
        if lang not in ("en", "ko"):
            raise InputError(f"$SIMSA_WEB_LANG must be en or ko, got {lang!r}")
        public = (os.environ.get("SIMSA_WEB_PUBLIC_URL") or "").strip().rstrip("/") or None
        if public and not public.startswith(("http://", "https://")):
            raise InputError(f"$SIMSA_WEB_PUBLIC_URL must start with http:// or https://, got {public!r}")
        return cls(
            database_url=os.environ.get("SIMSA_DATABASE_URL") or None,
            host=(os.environ.get("SIMSA_WEB_HOST") or DEFAULT_HOST).strip(),
            port=_int("SIMSA_WEB_PORT", DEFAULT_PORT, 1, 65535),
            secure_cookies=mapping[cookies],
            public_url=public,
            default_lang=lang,
            login_rate=_int("SIMSA_WEB_LOGIN_RATE", 20, 1, 10_000),
            access_log=_flag("SIMSA_WEB_ACCESS_LOG", True),
            max_upload_bytes=_int("SIMSA_WEB_MAX_UPLOAD", 50_000_000, 1_000, 2_000_000_000),
            threads=_int("SIMSA_WEB_THREADS", 20, 1, 1000),
        )

    def with_overrides(self, **changes: Unpack[Overrides]) -> WebSettings:
        """Command-line options win over the environment; None means "not given"."""
        given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}  # a subset of `Overrides`
        return replace(self, **given)
