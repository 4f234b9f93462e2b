"""Shared pytest fixtures.

Database tests take the ``db_url`` fixture and run once per backend:

* ``sqlite``   -- a fresh database file under the test's ``tmp_path``;
* ``postgres`` -- a fresh database on the PostgreSQL test server named by
  ``SIMSA_TEST_POSTGRES_URL`` (start one with ``scripts/pg-test-server start``;
  ``make test`` does this for you).

Without ``SIMSA_TEST_POSTGRES_URL`` the postgres variants are skipped, unless
``SIMSA_REQUIRE_POSTGRES=1`` is set, in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

POSTGRES_URL_ENV = "SIMSA_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "SIMSA_REQUIRE_POSTGRES"
PER_TEST_DB_PREFIX = "simsa_t_"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _render(url: URL) -> str:
    """URL as a string, password included (``str(url)`` masks it)."""
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- postgres server


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """Admin URL of the PostgreSQL test server, from ``SIMSA_TEST_POSTGRES_URL``.

    Skips when the variable is unset (fails instead under ``SIMSA_REQUIRE_POSTGRES=1``);
    fails when the server does not answer.
    """
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        reason = f"PostgreSQL tests need a server: set {POSTGRES_URL_ENV} or run `make test`"
        if _truthy(os.environ.get(REQUIRE_POSTGRES_ENV)):
            pytest.fail(f"{reason} ({REQUIRE_POSTGRES_ENV} is set, so this is not skipped)", pytrace=False)
        pytest.skip(reason)
    engine = create_engine(url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.fail(
            f"cannot connect to {POSTGRES_URL_ENV}={make_url(url)!s}: {exc.orig}\n"
            "start the server with `scripts/pg-test-server start`",
            pytrace=False,
        )
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def pg_admin_engine(pg_admin_url: str) -> Iterator[Engine]:
    """AUTOCOMMIT engine on the admin database, for CREATE/DROP DATABASE and similar."""
    engine = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pg_database_url(pg_admin_url: str, pg_admin_engine: Engine) -> Iterator[str]:
    """URL of a fresh, uniquely named PostgreSQL database, dropped after the test."""
    name = f"{PER_TEST_DB_PREFIX}{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _render(make_url(pg_admin_url).set(database=name))
    finally:
        # FORCE ends connections the test left open (PostgreSQL 13+).
        with pg_admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --------------------------------------------------------------------------- any backend


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite database file under the test's ``tmp_path``."""
    return f"sqlite:///{tmp_path / 'simsa.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """URL of an empty database, once per backend (ids ``sqlite`` and ``postgres``)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_database_url")


# --------------------------------------------------------------------------- lineage zoo


@pytest.fixture(scope="session")
def lineage_zoo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Tiny models trained on CPU (hard negatives and derived models), built once per test session."""
    from lineage_zoo import build_zoo, zoo_root

    return build_zoo(zoo_root(tmp_path_factory.getbasetemp()))


# --------------------------------------------------------------------------- lineage derivations


@pytest.fixture(scope="session")
def lineage_derivations(lineage_zoo, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Width/depth-changed, upcycled, re-tokenised, merged and multimodal models built on the zoo, once per session.

    Kept under ``$SIMSA_LINEAGE_DERIVATIONS_DIR`` when set (reused across sessions), else in the session's basetemp.
    """
    from lineage_derivations import build_derivations, derivations_root

    return build_derivations(derivations_root(tmp_path_factory.getbasetemp()), lineage_zoo)


# --------------------------------------------------------------------------- demo


@pytest.fixture(scope="session", autouse=True)
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo's tiny team models and benchmark runs, built on first use and shared by every demo in the session.

    Set through $SIMSA_DEMO_CACHE (which `simsa demo` subprocesses inherit); a value already set is kept.
    """
    previous = os.environ.get("SIMSA_DEMO_CACHE")
    path = Path(previous) if previous else tmp_path_factory.getbasetemp() / "demo-cache"
    os.environ["SIMSA_DEMO_CACHE"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("SIMSA_DEMO_CACHE", None)


# --------------------------------------------------------------------------- web


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """Argon2 with test-sized parameters (production parameters cost ~50 ms a hash; tests hash hundreds)."""
    previous = os.environ.get("SIMSA_ARGON2_FAST")
    os.environ["SIMSA_ARGON2_FAST"] = "1"
    yield
    if previous is None:
        os.environ.pop("SIMSA_ARGON2_FAST", None)


@pytest.fixture
def live_site(db_url: str):  # type: ignore[no-untyped-def]
    """A fresh database (once per backend) served by `simsa web` on loopback."""
    from web_support import LiveSite

    site = LiveSite(db_url).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def sqlite_site(sqlite_url: str):  # type: ignore[no-untyped-def]
    """Like `live_site`, on SQLite only (for tests whose subject is not the backend)."""
    from web_support import LiveSite

    site = LiveSite(sqlite_url).start()
    try:
        yield site
    finally:
        site.stop()


# --------------------------------------------------------------------------- browser

# Debian's chromium driven by Playwright (tests/browser.py): `browser` is one per test module; `shot(page, name)` keeps
# a full-page screenshot of each page a test visits.
from browser import browser, playwright_driver, shot  # noqa: E402, F401
