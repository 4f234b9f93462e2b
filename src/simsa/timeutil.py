"""One reading of stored instants: SQLite hands back naive datetimes, PostgreSQL aware ones; all are UTC."""

from __future__ import annotations

import datetime as dt


def as_utc(value: dt.datetime) -> dt.datetime:
    """The instant in UTC (a naive value is taken to be UTC already, as simsa stores it)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
