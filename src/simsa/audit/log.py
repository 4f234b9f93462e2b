"""The audit log in the database: append an entry for every write, verify chain and state, export."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, inspect, select, text
from sqlalchemy.orm import Session

from simsa.audit.chain import (
    GENESIS,
    Entry,
    Problem,
    canonical,
    compare_state,
    entry_hash,
    replay_entry,
    verify_chain,
)
from simsa.store.db import head_revision
from simsa.store.models import ADDED_COLUMNS, DOMAIN_TABLES, AuditEntry, Base
from simsa.timeutil import as_utc


def utc_iso(value: dt.datetime) -> str:
    """One text form for instants whatever the backend returns (SQLite drops the zone; values are UTC)."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: object) -> object:
    if isinstance(value, bytes):  # content is logged by its hash: the chain pins it without publishing it
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def plain_values(values: dict) -> dict:
    """Column values as `snapshot` writes them, for rows inserted in bulk from plain dicts."""
    return {k: _plain(v) for k, v in values.items()}


def snapshot(row: Base) -> dict:
    """Column values of a row in a backend-independent form."""
    mapper = inspect(type(row))
    return {col.key: _plain(getattr(row, col.key)) for col in mapper.column_attrs}


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Write:
    """One write to record in the log: the row written (flushed, so it has its id), or for rows inserted in bulk
    without ORM objects, its table, id and `snapshot`; and what to say about it."""

    action: str
    row: Base | None = None
    entity: str | None = None
    entity_id: int | None = None
    details: dict | None = None
    snapshot: dict | None = None


def append(session: Session, *, actor: str, action: str, row: Base | None = None, entity: str | None = None,
           entity_id: int | None = None, details: dict | None = None, at: dt.datetime | None = None) -> int:
    """Add the next link of the chain for a write that was just made in this session; returns its seq."""
    return append_many(session, actor=actor, writes=[Write(action, row, entity, entity_id, details)], at=at)


def append_many(session: Session, *, actor: str, writes: list[Write], at: dt.datetime | None = None) -> int:
    """Links for many writes at once: one flush, one read of the chain's end, one insert (a 100 k-row import).

    The caller holds the store's write lock (Store.session), so the end of the chain cannot move meanwhile.
    Returns the seq of the last entry.
    """
    session.flush()
    last = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
    if not writes:
        return seq
    when = as_utc(at) if at else now_utc()
    at_text = utc_iso(when)
    rows = []
    for w in writes:
        payload: dict = dict(w.details or {})
        entity, entity_id = w.entity or "", w.entity_id
        if w.row is not None:
            entity = w.row.__tablename__
            entity_id = w.row.id  # type: ignore[attr-defined]  # every table a Write names has an integer `id`
            payload["row"] = snapshot(w.row)
        elif w.snapshot is not None:
            payload["row"] = w.snapshot
        seq += 1
        body = canonical(payload)
        digest = entry_hash(prev, seq, at_text, actor, w.action, entity, entity_id, body)
        rows.append({"seq": seq, "at": when, "actor": actor, "action": w.action, "entity": entity,
                     "entity_id": entity_id, "payload": body, "prev_hash": prev, "hash": digest})
        prev = digest
    session.execute(insert(AuditEntry), rows)
    return seq


def iter_entries(session: Session) -> Iterator[Entry]:
    """Entries in storage order (by seq), read in pages; verification then checks that this order is the chain's."""
    t = AuditEntry.__table__.c
    result = session.execute(select(t.seq, t.at, t.actor, t.action, t.entity, t.entity_id, t.payload, t.prev_hash,
                                    t.hash).order_by(t.seq))
    for r in result.yield_per(5000):
        yield Entry(seq=r.seq, at=utc_iso(r.at), actor=r.actor, action=r.action, entity=r.entity,
                    entity_id=r.entity_id, payload=r.payload, prev_hash=r.prev_hash, hash=r.hash)


def load_entries(session: Session) -> list[Entry]:
    """Every entry in storage order."""
    return list(iter_entries(session))


def current_state(session: Session) -> dict[tuple[str, int], dict]:
    """Every domain row as `snapshot` writes it, read as plain rows (ORM objects for 100 k rows cost ~3x the memory)."""
    state: dict[tuple[str, int], dict] = {}
    for name, cls in DOMAIN_TABLES.items():
        keys = [(attr.key, attr.columns[0]) for attr in inspect(cls).column_attrs]
        result = session.execute(select(*(column for _, column in keys)))
        for values in result.yield_per(5000):
            row: dict[str, Any] = {key: _plain(value) for (key, _), value in zip(keys, values, strict=True)}
            state[(name, row["id"])] = row
    return state


@dataclass
class Verification:
    entries: int
    head: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "head": self.head,
                "problems": [p.to_dict() for p in self.problems]}


def verify(session: Session, expect_head: str | None = None) -> Verification:
    """Chain integrity, then database state against the state the log recorded, then the schema version."""
    # One pass over the log, never held whole: the chain is checked while the recorded state is replayed.
    recorded: dict[tuple[str, int], tuple[dict, int]] = {}
    count, head = 0, GENESIS

    def replaying() -> Iterator[Entry]:
        nonlocal count, head
        for e in iter_entries(session):
            replay_entry(recorded, e)
            count += 1
            head = e.hash
            yield e

    problems = verify_chain(replaying(), expect_head)
    problems += compare_state(recorded, current_state(session), ADDED_COLUMNS)
    version = session.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if version != [head_revision()]:
        problems.append(Problem("schema_version", f"alembic_version holds {version}, expected "
                                                  f"[{head_revision()!r}]", table="alembic_version"))
    return Verification(entries=count, head=head, problems=problems)


def export(session: Session, shown: Callable[[Entry], Entry] | None = None) -> dict:
    """The whole log as a publishable document; `head` lets readers detect later truncation. `shown` maps each
    entry to its published form (sealing what the public may not read yet); `sealed` counts those entries."""
    entries = load_entries(session)
    if shown is not None:
        entries = [shown(e) for e in entries]
    doc: dict = {"schema": "simsa.audit/1", "head": entries[-1].hash if entries else GENESIS}
    sealed = sum(1 for e in entries if e.sealed is not None)
    if sealed:
        doc["sealed"] = sealed
    doc["entries"] = [e.to_dict() for e in entries]
    return doc


def entries_from_export(doc: dict) -> list[Entry]:
    """Entries from an exported document, for verifying a published log without the database."""
    out = []
    for item in doc.get("entries", []):
        sealed = item.get("sealed")
        out.append(Entry(seq=item["seq"], at=item["at"], actor=item["actor"], action=item["action"],
                         entity=item["entity"], entity_id=item["entity_id"], payload=canonical(item["payload"]),
                         prev_hash=item["prev_hash"], hash=item["hash"],
                         sealed=str(sealed) if sealed is not None else None))
    return out

