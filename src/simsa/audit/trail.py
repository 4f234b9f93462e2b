"""The audit log as a readable trail: who wrote what and when, one line per entry, filtered by time, actor and
action. The entries themselves stay as recorded (UTC); only their display moves to another time zone."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simsa.audit.chain import Entry
from simsa.errors import InputError
from simsa.timeutil import as_utc, utc_text


def parse_instant(value: str, option: str) -> dt.datetime:
    """An ISO 8601 date or date-time as a UTC instant: offsets are converted, a bare date or a time without a
    zone is taken as UTC (a bare date is its midnight)."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        return as_utc(dt.datetime.fromisoformat(text))
    except ValueError:
        raise InputError(f"{option}: not an ISO 8601 date or date-time: {value!r}") from None


def zone(name: str) -> ZoneInfo:
    """An IANA time zone for display, e.g. Asia/Seoul."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"--tz: unknown time zone {name!r} (use an IANA name such as Asia/Seoul or UTC)") from None


def entry_time(entry: Entry) -> dt.datetime:
    return as_utc(dt.datetime.fromisoformat(entry.at.replace("Z", "+00:00")))


def show_time(when: dt.datetime, tz: ZoneInfo | None = None) -> str:
    """UTC with Z to the second, or the local time with its offset when a zone is given."""
    if tz is None:
        return utc_text(when)
    return when.astimezone(tz).isoformat(timespec="seconds")


def _short(value: object, width: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _supersedes(row: dict, what: str) -> str:
    return f"; supersedes {what} {row['supersedes_id']}" if row.get("supersedes_id") is not None else ""


def _program(row: dict, payload: dict) -> str:
    return (f"program {row.get('program_key')} version sha256 {str(row.get('sha256', ''))[:12]}… "
            f"from {_short(row.get('source_path', ''), 80)}")


def _score(row: dict, payload: dict) -> str:
    rater = f" rater {row['rater']}" if row.get("rater") else ""
    what = f"{row.get('stage_id')} {row.get('team_id')} {row.get('source')}{rater}"
    if row.get("voided"):
        return f"void of score {row.get('supersedes_id')} ({what}): {_short(row.get('reason') or '')}"
    err = f" ± {_num(row['stderr'])}" if row.get("stderr") is not None else ""
    run = f"; run {row['run_id']}" if row.get("run_id") else ""
    return f"score {what} = {_num(row.get('value'))}{err}{run}{_supersedes(row, 'score')}"


def _gate(row: dict, payload: dict) -> str:
    what = f"{row.get('gate_id')} {row.get('stage_id')} {row.get('team_id')}"
    if row.get("voided"):
        return f"void of gate result {row.get('supersedes_id')} ({what}): {_short(row.get('evidence') or '')}"
    verdict = "pass" if row.get("passed") else "fail"
    return f"gate {what}: {verdict} — {_short(row.get('evidence', ''), 50)}{_supersedes(row, 'gate result')}"


def _decision(row: dict, payload: dict) -> str:
    lists = payload
    if "advanced" not in payload:  # an imported decision: the lists are in the recorded body
        try:
            lists = json.loads(row.get("body") or "{}")
        except ValueError:
            lists = {}
    if not isinstance(lists, dict):
        lists = {}
    advanced = ", ".join(map(str, lists.get("advanced") or [])) or "none"
    eliminated = ", ".join(map(str, lists.get("eliminated") or [])) or "none"
    appeal = f"; after appeal {row['appeal_id']}" if row.get("appeal_id") is not None else ""
    imported = f"; imported from {payload['file']}" if payload.get("file") else ""
    return (f"decision {row.get('id')} of {row.get('stage_id')}: advanced {advanced}; eliminated {eliminated}"
            f"{_supersedes(row, 'decision')}{appeal}{imported}")


def _appeal(row: dict, payload: dict) -> str:
    return (f"appeal {row.get('id')} by {row.get('team_id')} against decision {row.get('decision_id')}: "
            f"{_short(row.get('grounds', ''))}")


def _resolution(row: dict, payload: dict) -> str:
    new = f" → decision {row['new_decision_id']}" if row.get("new_decision_id") is not None else ""
    return f"appeal {row.get('appeal_id')} {row.get('outcome')}{new}: {_short(row.get('reason', ''))}"


_SUMMARIES: dict[str, Callable[[dict, dict], str]] = {
    "program_versions": _program, "scores": _score, "gate_results": _gate, "decisions": _decision,
    "appeals": _appeal, "appeal_resolutions": _resolution,
}


def _batch(entry: Entry, payload: dict) -> str | None:
    """Entries about a whole import batch, which record no single row."""
    if entry.action == "score.import":
        replaces = f", replacing batch {payload['replaces']}" if payload.get("replaces") else ""
        voided = f", {payload['voided']} voided" if payload.get("voided") else ""
        return (f"import batch {payload.get('batch_id')} from {_short(payload.get('file', ''), 60)}: "
                f"{payload.get('rows')} scores{replaces}{voided}")
    if entry.action == "score.undo_import":
        return (f"undo import batch {payload.get('batch_id')}: {payload.get('restored')} restored, "
                f"{payload.get('voided')} voided, {payload.get('skipped')} skipped — "
                f"{_short(payload.get('reason') or '')}")
    return None


def summarise(entry: Entry) -> str:
    """One line saying what the entry wrote, from the row snapshot it recorded."""
    try:
        payload = json.loads(entry.payload)
    except ValueError:
        return "(payload is not JSON)"
    if not isinstance(payload, dict):
        return _short(payload, 80)
    row = payload.get("row")
    describe = _SUMMARIES.get(entry.entity)
    try:
        if isinstance(row, dict) and describe is not None:
            return describe(row, payload)
        batch = _batch(entry, payload)
        if batch is not None:
            return batch
    except (KeyError, TypeError, ValueError, AttributeError):  # an odd payload still gets the generic line
        pass
    details = ", ".join(f"{k}={_short(v, 30)}" for k, v in sorted(payload.items()) if k != "row")
    what = f"{entry.entity} {entry.entity_id}" if entry.entity_id is not None else entry.entity or entry.action
    return f"{what}{': ' + details if details else ''}"


@dataclass(frozen=True)
class TrailFilter:
    """Which entries to show: [since, until) in UTC, one actor, actions starting with a prefix, the newest `limit`."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    actor: str | None = None
    action: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit: must be at least 1, not {self.limit}")

    def matches(self, entry: Entry) -> bool:
        if self.actor is not None and entry.actor != self.actor:
            return False
        if self.action is not None and not entry.action.startswith(self.action):
            return False
        if self.since is not None or self.until is not None:
            when = entry_time(entry)
            if self.since is not None and when < as_utc(self.since):
                return False
            if self.until is not None and when >= as_utc(self.until):
                return False
        return True


@dataclass(frozen=True)
class TrailItem:
    seq: int
    at: str  # as recorded, UTC
    time: str  # as shown: UTC with Z, or in the zone asked for
    actor: str
    action: str
    entity: str
    entity_id: int | None
    summary: str
    hash: str

    def to_dict(self) -> dict:
        return {"seq": self.seq, "at": self.at, "time": self.time, "actor": self.actor, "action": self.action,
                "entity": self.entity, "entity_id": self.entity_id, "summary": self.summary, "hash": self.hash}


@dataclass(frozen=True)
class Trail:
    items: list[TrailItem]
    matched: int
    total: int
    tz: str

    def to_dict(self) -> dict:
        return {"entries": [i.to_dict() for i in self.items], "shown": len(self.items), "matched": self.matched,
                "total": self.total, "tz": self.tz}


def build_trail(entries: Iterable[Entry], flt: TrailFilter, tz: ZoneInfo | None = None) -> Trail:
    """The matching entries, oldest first; with a limit, the newest `limit` of them (still oldest first)."""
    total = 0
    chosen: list[Entry] = []
    for e in entries:
        total += 1
        if flt.matches(e):
            chosen.append(e)
    matched = len(chosen)
    if flt.limit is not None:
        chosen = chosen[-flt.limit:]
    items = [TrailItem(seq=e.seq, at=e.at, time=show_time(entry_time(e), tz), actor=e.actor, action=e.action,
                       entity=e.entity, entity_id=e.entity_id, summary=summarise(e), hash=e.hash) for e in chosen]
    return Trail(items=items, matched=matched, total=total, tz=str(tz) if tz else "UTC")
