"""One reading of stored instants (SQLite hands back naive datetimes, PostgreSQL aware ones; all are UTC) and
their display in a programme's time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def as_utc(value: dt.datetime) -> dt.datetime:
    """The instant in UTC (a naive value is taken to be UTC already, as simsa stores it)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def display_zone(name: str | None) -> ZoneInfo:
    """The programme's display zone; a missing or unknown name reads as UTC rather than failing a display."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_instant(value: object) -> dt.datetime | None:
    """A stored instant from a datetime or an ISO string ("Z" or an offset; naive means UTC); else None."""
    if isinstance(value, dt.datetime):
        return as_utc(value)
    if not isinstance(value, str) or ("T" not in value and " " not in value.strip()):
        return None
    try:
        return as_utc(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def utc_offset(stamp: dt.datetime) -> str:
    """The offset of an aware time as "UTC+09:00" or "UTC-03:30"."""
    minutes = int((stamp.utcoffset() or dt.timedelta(0)).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"


def format_local(value: object, zone: str | None) -> str:
    """An instant as readers of the programme see it: "2026-01-15 18:00 KST (UTC+09:00)", or "… 09:00 UTC".

    Stored and hashed times stay UTC; this is display only. Values that are not instants (dates, free text)
    are returned as given.
    """
    instant = parse_instant(value)
    if instant is None:
        return "" if value is None else str(value)
    local = instant.astimezone(display_zone(zone))
    text = local.strftime("%Y-%m-%d %H:%M")
    abbrev = local.tzname() or ""
    if abbrev == "UTC":
        return f"{text} UTC"
    offset = utc_offset(local)
    if not abbrev.isalpha():  # zones without a letter abbreviation report "+09", "-03"
        return f"{text} {offset}"
    return f"{text} {abbrev} ({offset})"


def end_of_day(day: dt.date, zone: str | None) -> dt.datetime:
    """The last minute of a calendar day in a zone: when a window counted in that zone's days closes."""
    return dt.datetime.combine(day, dt.time(23, 59), tzinfo=display_zone(zone))


def utc_text(value: dt.datetime) -> str:
    """An instant as ISO 8601 UTC to the second, e.g. 2026-01-16T00:00:00Z (messages, JSON)."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_user_time(text: str, what: str = "time") -> dt.datetime:
    """An ISO 8601 date-time or date from a user, normalised to UTC at the edge; no offset means UTC.

    Everything stored or hashed is UTC, so this is the one place an offset such as +09:00 is applied.
    """
    from simsa.errors import InputError

    raw = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "Zz" and raw else raw)
    except ValueError:
        raise InputError(f"{what}: not an ISO 8601 date-time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise InputError(f"{what}: {text!r} is out of range once converted to UTC") from None
