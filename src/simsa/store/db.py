"""Opening the store: URL resolution, engine set-up and migrations to the current schema."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from simsa.errors import InputError

if TYPE_CHECKING:
    import sqlite3

    from alembic.config import Config

DEFAULT_URL = "sqlite:///simsa.db"
ENV_VAR = "SIMSA_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 60_000  # how long a writer waits for another writer before giving up


def resolve_url(url: str | None) -> str:
    """Explicit URL, else $SIMSA_DATABASE_URL, else a SQLite file in the current directory."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("simsa.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def _revision_ids() -> list[str]:
    """Migration revision ids, oldest first, read from the file names (importing Alembic costs ~0.3 s a command)."""
    names = [p.name for p in (files("simsa.store") / "migrations" / "versions").iterdir()]
    return sorted(n.split("_", 1)[0] for n in names if n.endswith(".py") and n[:4].isdigit())


def head_revision() -> str:
    return _revision_ids()[-1]


def current_revision(engine: Engine) -> str | None:
    """The schema version the database says it is at; one clear error when that is not a single known version."""
    with engine.connect() as conn:
        return _revision_on(conn)


def _revision_on(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None  # a new database
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    known = _revision_ids()
    if len(rows) != 1 or rows[0] not in known:
        raise InputError(f"the database's schema version {rows!r} is not one this simsa knows ({', '.join(known)}): "
                         "the alembic_version table was altered, or the database belongs to a newer simsa")
    return rows[0]


class Store:
    """A database connection pool plus a session factory, migrated to the current schema on open."""

    def __init__(self, url: str | None = None, *, migrate: bool = True, pool_size: int | None = None) -> None:
        """`pool_size`: connections kept open, and as many again on demand (a server sizes it to its threads;
        the default, 5 + 10, suits one command)."""
        self.url = resolve_url(url)
        pooling = {} if pool_size is None or ":memory:" in self.url else {"pool_size": pool_size,
                                                                          "max_overflow": pool_size}
        try:
            self.engine = create_engine(self.url, future=True, **pooling)
        except (ArgumentError, ValueError) as exc:
            raise InputError(f"invalid database URL {self.url!r}: {exc}") from None
        except ModuleNotFoundError as exc:
            raise InputError(f"database driver for {self.url.split(':', 1)[0]!r} is not installed "
                             f"({exc.name}); for PostgreSQL install simsa[postgres]") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
            database = self.engine.url.database
            if database and database != ":memory:":
                parent = Path(database).parent
                if not parent.exists():
                    raise InputError(f"database directory {str(parent)!r} does not exist")
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.engine.execution_options(simsa_readonly=True), expire_on_commit=False)
        if migrate:
            self.upgrade()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (no-op when current)."""
        try:
            if current_revision(self.engine) == head_revision():
                return
            from alembic import command

            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    # SQLite migrations copy tables (batch mode); foreign keys must be off while the old table is
                    # dropped, and can only be switched off outside a transaction. They are checked after.
                    _driver_execute(conn, "PRAGMA foreign_keys=OFF")
                try:
                    with conn.begin():
                        if self.dialect == "postgresql":
                            conn.execute(text("SELECT pg_advisory_xact_lock(7273)"))  # one migrator at a time
                        if _revision_on(conn) == head_revision():
                            return  # another process migrated while this one waited
                        cfg = _alembic_config(self.engine)
                        cfg.attributes["connection"] = conn
                        command.upgrade(cfg, "head")
                        if self.dialect == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                            raise RuntimeError("cannot upgrade: the database has rows whose references point "
                                               "nowhere (PRAGMA foreign_key_check)")
                finally:
                    if self.dialect == "sqlite":
                        _driver_execute(conn, "PRAGMA foreign_keys=ON")
        except RuntimeError as exc:  # a migration that refuses to run says why
            raise InputError(str(exc)) from None
        except OperationalError as exc:
            raise InputError(f"cannot open database {self.engine.url.render_as_string(hide_password=True)}: "
                             f"{str(exc.orig).strip().splitlines()[0]}") from None

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back on any error.

        Writers are serialised on both backends, from the first statement on, so what a writer reads (the current
        score, the decision in force, the last audit entry) cannot change before it commits: PostgreSQL locks the
        audit table, SQLite begins IMMEDIATE. `readonly` sessions take no write lock (and must not write).
        """
        factory = self.read_sessions if readonly else self.sessions
        with factory() as session, session.begin():
            if self.dialect == "postgresql" and not readonly:
                session.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _driver_execute(conn: Connection, sql: str) -> None:
    """Run `sql` on the driver's own connection, outside SQLAlchemy's transaction handling."""
    driver = conn.connection.driver_connection
    assert driver is not None  # only a closed or invalidated connection has none; `conn` is open and checked out
    driver.execute(sql)


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # The driver's own transaction handling would begin DEFERRED, too late to stop two writers reading the same
    # state; turn it off and begin ourselves (`_sqlite_begin`).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    readonly = conn.get_execution_options().get("simsa_readonly", False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
