"""How reports and the command line write numbers and times, so both say "77.40", "18.1%" and
"2026-01-15 18:00 KST (UTC+09:00)" alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

from simsa.timeutil import end_of_day, format_local

DASH = "—"


def num(x: Any) -> float | None:
    """Coerce a JSON number; anything else reads as missing rather than crashing the report."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


def table(x: Any) -> dict:
    """A JSON object, or an empty one for anything else: a section missing from a decision reads as empty."""
    return x if isinstance(x, dict) else {}


def text_or_dash(x: Any) -> str:
    """A value as shown in a cell; missing values read as a dash, never as "None"."""
    return DASH if x is None or x == "" else str(x)


def fmt_points(x: Any) -> str:
    """Points with two decimals, as the published table rounds them."""
    v = num(x)
    return DASH if v is None else f"{v:.2f}"


def fmt_max(x: Any) -> str:
    """A maximum without trailing zeros: 40, 12.5."""
    v = num(x)
    return DASH if v is None else f"{v:.2f}".rstrip("0").rstrip(".")


def fmt_prob(p: Any) -> str:
    """A probability as a percentage that never rounds a real chance down to 0 % or up to 100 %."""
    v = num(p)
    if v is None:
        return DASH
    pct = v * 100
    if 0 < pct < 0.05:
        return "<0.1%"
    if 99.95 < pct < 100:
        return ">99.9%"
    return f"{pct:.1f}%"


def fmt_time(value: Any, zone: str | None = "UTC") -> str:
    """A stored (UTC) instant in the programme's zone, "2026-01-15 18:00 KST (UTC+09:00)"; dates and anything
    unparseable are shown as given."""
    if value is None or value == "":
        return DASH
    return format_local(value, zone)


def fmt_deadline(value: Any, deadline_zone: str | None, zone: str | None) -> str:
    """The last day to appeal, shown as the last minute of that day (a day of `deadline_zone`) in `zone`."""
    if not isinstance(value, str) or not value:
        return text_or_dash(value)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return value
    return format_local(end_of_day(day, deadline_zone), zone)


def _raw_decimals(mean: float) -> int:
    """Three decimals for 0–1 scores (benchmarks), two for 0–100 ones (panels)."""
    return 3 if abs(mean) <= 1.5 else 2


def raw_parts(mean: Any, se: Any, n: Any) -> tuple[str, str]:
    """A raw aggregate as ("79.51", "± 2.20 · n=10") for a cell with a second line."""
    m, s, count = num(mean), num(se), num(n)
    n_text = f"n={int(count)}" if count is not None else ""
    if m is None:
        return DASH, n_text
    d = _raw_decimals(m)
    spread = f"± {s:.{d}f}" if s is not None and s > 0 else ""
    return f"{m:.{d}f}", " · ".join(x for x in (spread, n_text) if x)


def fmt_raw(mean: Any, se: Any, n: Any) -> str:
    """A raw aggregate on one line: "79.51 ± 2.20 (n=10)"; no ± where there is no standard error."""
    m, s, count = num(mean), num(se), num(n)
    if m is None:
        return DASH
    d = _raw_decimals(m)
    spread = f" ± {s:.{d}f}" if s is not None and s > 0 else ""
    return f"{m:.{d}f}{spread} (n={int(count) if count is not None else DASH})"


def fmt_change(pct: Any, sign: str) -> str:
    """A signed weight change in percent."""
    v = num(pct)
    return DASH if v is None else f"{sign}{abs(v):.1f}%"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text rather than runs as a formula.

    Text starting with = + - @ (or a tab or carriage return) gets a leading apostrophe, as OWASP advises; numbers
    are written as numbers, so a negative score stays a number.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
