"""Opening the store: URL resolution, engine set-up and migrations to the current schema."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from simsa.errors import InputError

DEFAULT_URL = "sqlite:///simsa.db"
ENV_VAR = "SIMSA_DATABASE_URL"


def resolve_url(url: str | None) -> str:
    """Explicit URL, else $SIMSA_DATABASE_URL, else a SQLite file in the current directory."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("simsa.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("simsa.store") / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class Store:
    """A database connection pool plus a session factory, migrated to the current schema on open."""

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = resolve_url(url)
        try:
            self.engine = create_engine(self.url, future=True)
        except (ArgumentError, ValueError) as exc:
            raise InputError(f"invalid database URL {self.url!r}: {exc}") from None
        except ModuleNotFoundError as exc:
            raise InputError(f"database driver for {self.url.split(':', 1)[0]!r} is not installed "
                             f"({exc.name}); for PostgreSQL install simsa[postgres]") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            database = self.engine.url.database
            if database and database != ":memory:":
                parent = Path(database).parent
                if not parent.exists():
                    raise InputError(f"database directory {str(parent)!r} does not exist")
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.upgrade()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (no-op when current)."""
        try:
            with self.engine.begin() as conn:
                if current_revision(self.engine) == head_revision():
                    return
                cfg = _alembic_config(self.engine)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise InputError(f"cannot open database {self.engine.url.render_as_string(hide_password=True)}: "
                             f"{str(exc.orig).strip().splitlines()[0]}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back on any error."""
        with self.sessions() as session, session.begin():
            if self.dialect == "postgresql":
                # one writer at a time keeps the audit chain linear
                session.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
