"""The audit chain: any edit, deletion or reordering of entries — and any change to any row of any table of the
demo database — makes verification fail, naming what changed. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Connection, DateTime, Float, Integer, LargeBinary, inspect, text
from sqlalchemy.exc import IntegrityError

from simsa.audit import log as audit_log
from simsa.audit.chain import verify_chain
from simsa.demo import run_demo
from simsa.store.db import Store
from simsa.store.models import DOMAIN_TABLES


@pytest.fixture
def demo_store(db_url: str, tmp_path: Path):
    run_demo(tmp_path, database_url=db_url)
    store = Store(db_url)
    yield store
    store.dispose()


def _verify(store: Store) -> audit_log.Verification:
    with store.session() as s:
        return audit_log.verify(s)


def _changed(value: object, column) -> object:  # type: ignore[no-untyped-def]
    """A different value of the same column type."""
    kind = getattr(column.type, "impl", column.type)  # a decorated type (the UTC column) by what it stores
    if isinstance(kind, Boolean):
        return not value
    if isinstance(kind, DateTime):
        if isinstance(value, str):  # SQLite hands raw SQL its text form
            value = dt.datetime.fromisoformat(value)
        return (value or dt.datetime(2026, 1, 1)) + dt.timedelta(seconds=1)
    if isinstance(kind, Integer):
        return (value or 0) + 1
    if isinstance(kind, Float):
        return (value or 0.0) + 0.001
    if isinstance(kind, LargeBinary):  # contents the log records by sha256 (panel reviews, files)
        return bytes(value or b"") + b"x"
    text_value = str(value or "")
    return text_value[:-1] + ("y" if text_value.endswith("x") else "x")  # same length: fits any VARCHAR


@contextmanager
def _unchecked(store: Store) -> Iterator[Connection]:
    """A connection that bypasses foreign-key checks, as someone editing the database by hand could."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            # on the driver's connection, before SQLAlchemy begins a transaction, so that it takes effect
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        else:
            conn.exec_driver_sql("SET session_replication_role = replica")
        try:
            yield conn
            conn.commit()
        finally:
            if store.dialect == "sqlite":
                conn.rollback()
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
            else:
                conn.exec_driver_sql("SET session_replication_role = DEFAULT")
                conn.commit()


def _tamper(store: Store, table: str, column: str, row_id: int) -> None:
    """Change one cell directly in the database, bypassing simsa, then check verification names it."""
    col = inspect(DOMAIN_TABLES[table]).columns[column]
    with _unchecked(store) as conn:
        old = conn.execute(text(f"SELECT {column} FROM {table} WHERE id = :i"), {"i": row_id}).scalar_one()
        if col.foreign_keys:
            new = (None if col.nullable else old + 1000) if old is not None else row_id
        else:
            new = _changed(old, col)
        try:
            conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE id = :i"), {"v": new, "i": row_id})
        except IntegrityError as exc:  # a CHECK constraint refuses the edit itself: nothing to detect
            if "check" not in str(exc.orig).lower():
                raise
            conn.rollback()
            return
    result = _verify(store)
    assert not result.ok, f"changing {table}.{column} of row {row_id} went unnoticed"
    assert any(p.table == table and p.row_id == row_id and column in p.message for p in result.problems), \
        result.problems
    with _unchecked(store) as conn:
        conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE id = :i"), {"v": old, "i": row_id})


def test_demo_database_verifies(demo_store: Store) -> None:
    result = _verify(demo_store)
    assert result.ok, result.problems
    assert result.entries > 300


def test_changing_any_column_of_any_table_fails_verification(demo_store: Store) -> None:
    with demo_store.session() as s:
        ids = {name: s.execute(text(f"SELECT id FROM {name} ORDER BY id")).scalars().all() for name in DOMAIN_TABLES}
    for name, cls in DOMAIN_TABLES.items():
        if not ids[name]:
            continue
        for column in inspect(cls).columns:
            if column.primary_key:
                continue
            for row_id in sorted({ids[name][0], ids[name][-1]}):
                _tamper(demo_store, name, column.name, row_id)
    assert _verify(demo_store).ok


def test_deleted_inserted_and_schema_rows_fail_verification(demo_store: Store) -> None:
    with demo_store.engine.begin() as conn:
        conn.execute(text("DELETE FROM scores WHERE id = (SELECT MAX(id) FROM scores)"))
    result = _verify(demo_store)
    assert [p.kind for p in result.problems] == ["deleted_row"]
    assert "scores row" in result.problems[0].message and "missing" in result.problems[0].message


def test_unlogged_row_fails_verification(demo_store: Store) -> None:
    with demo_store.engine.begin() as conn:
        conn.execute(text("INSERT INTO scores (program_key, stage_id, team_id, source, rater, value, example, "
                          "recorded_at, recorded_by) VALUES ('k-ai-2026', 'stage-1', 'taebaek', 'panel:expert', "
                          "'ghost', 100.0, false, :t, 'nobody')"), {"t": dt.datetime(2026, 1, 1)})
    result = _verify(demo_store)
    assert [p.kind for p in result.problems] == ["unlogged_row"]


def test_schema_version_row_is_checked(demo_store: Store) -> None:
    with demo_store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'forged'"))
    result = _verify(demo_store)
    assert [p.kind for p in result.problems] == ["schema_version"]


@pytest.mark.parametrize("column", ["actor", "action", "payload", "at", "entity_id"])
def test_edited_audit_entry_is_named(demo_store: Store, column: str) -> None:
    with demo_store.engine.begin() as conn:
        if column == "payload":
            conn.execute(text("UPDATE audit_log SET payload = replace(payload, 'Team', 'Tean') WHERE seq = 1"))
        elif column == "at":
            conn.execute(text("UPDATE audit_log SET at = :t WHERE seq = 5"), {"t": dt.datetime(2020, 1, 1)})
        elif column == "entity_id":
            conn.execute(text("UPDATE audit_log SET entity_id = entity_id WHERE seq = 5"))
            conn.execute(text("UPDATE audit_log SET entity_id = NULL WHERE seq = 5"))
        else:
            conn.execute(text(f"UPDATE audit_log SET {column} = 'mallory' WHERE seq = 5"))
    result = _verify(demo_store)
    seq = 1 if column == "payload" else 5
    assert any(p.kind == "edited" and p.seq == seq for p in result.problems), result.problems


def test_deleted_and_reordered_entries_fail(demo_store: Store) -> None:
    with demo_store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 10"))
    result = _verify(demo_store)
    kinds = {p.kind for p in result.problems}
    assert {"missing", "broken_link", "unlogged_row"} <= kinds
    assert any(p.seq == 11 for p in result.problems)


def test_reordered_entries_fail(demo_store: Store) -> None:
    with demo_store.engine.begin() as conn:  # swap the positions of entries 20 and 21
        conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = 20"))
        conn.execute(text("UPDATE audit_log SET seq = 20 WHERE seq = 21"))
        conn.execute(text("UPDATE audit_log SET seq = 21 WHERE seq = -1"))
    result = _verify(demo_store)
    assert any(p.kind in ("broken_link", "edited") and p.seq in (20, 21) for p in result.problems)


def test_truncated_tail_detected_by_published_head(demo_store: Store) -> None:
    with demo_store.session() as s:
        doc = audit_log.export(s)
    head = doc["head"]
    entries = audit_log.entries_from_export(json.loads(json.dumps(doc)))
    assert verify_chain(entries, head) == []
    assert [p.kind for p in verify_chain(entries[:-1], head)] == ["head_mismatch"]
    edited = json.loads(json.dumps(doc))
    edited["entries"][3]["payload"]["row"]["value"] = 1.0
    assert any(p.kind == "edited" and p.seq == 4 for p in verify_chain(audit_log.entries_from_export(edited), head))
