"""The ``db_url`` fixture gives every test a fresh database on each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    select,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetime stored as UTC; SQLite keeps no offset, PostgreSQL uses timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def test_roundtrip_unicode_float_aware_datetime(db_url: str) -> None:
    metadata = MetaData()
    probe = Table(
        "fixture_probe",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("label", String(64), nullable=False),
        Column("score", Float, nullable=False),
        Column("at", UTCDateTime, nullable=False),
    )
    label = "독자성"
    score = 0.1 + 0.2
    at = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=timezone(timedelta(hours=9)))

    engine = create_engine(db_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(probe.insert().values(id=1, label=label, score=score, at=at))
        with engine.connect() as conn:
            row = conn.execute(select(probe.c.label, probe.c.score, probe.c.at)).one()
    finally:
        engine.dispose()

    assert row.label == label
    assert row.score == score
    assert row.at == at
    assert row.at.tzinfo is not None
    assert row.at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("round_", [1, 2])
def test_database_is_fresh(db_url: str, round_: int) -> None:
    """Each round finds an empty database and leaves a table behind for the next one to (not) see."""
    engine = create_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []
        metadata = MetaData()
        Table("leftover", metadata, Column("id", Integer, primary_key=True))
        metadata.create_all(engine)
        assert inspect(engine).has_table("leftover")
    finally:
        engine.dispose()
