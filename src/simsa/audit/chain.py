"""The hash chain itself, free of any database: hashing entries, checking links, replaying recorded state.

Each entry's hash covers the previous entry's hash and the entry's own content, so editing, deleting or
reordering any entry breaks every hash after it. Each entry that records a write carries a snapshot of the row
written, so replaying the log gives the state the database must be in; anything else in the database was not
written through simsa.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64


def canonical(obj: object) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 kept — the form that is hashed."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: int | None
    payload: str
    prev_hash: str
    hash: str
    sealed: str | None = None  # why the content is withheld (see `seal`); None for a published entry

    def to_dict(self) -> dict:
        out = {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action, "entity": self.entity,
               "entity_id": self.entity_id, "payload": json.loads(self.payload), "prev_hash": self.prev_hash,
               "hash": self.hash}
        if self.sealed is not None:
            out["sealed"] = self.sealed
        return out


SEALED_ACTION = "sealed"


def seal(e: Entry, note: str) -> Entry:
    """The entry as published while its content is withheld: its place, time, links and hash stay, so the chain
    still links through it and its hash commits to the content that is published later (commit, then reveal)."""
    return Entry(seq=e.seq, at=e.at, actor="", action=SEALED_ACTION, entity="", entity_id=None,
                 payload=canonical({"sealed": note}), prev_hash=e.prev_hash, hash=e.hash, sealed=note)


def entry_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, entity: str, entity_id: int | None,
               payload: str) -> str:
    body = canonical([prev_hash, seq, at, actor, action, entity, entity_id, payload])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Problem:
    """One finding of a verification, naming the entry or row it concerns."""

    kind: str
    message: str
    seq: int | None = None
    table: str | None = None
    row_id: int | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "seq": self.seq, "table": self.table,
                "row_id": self.row_id}


def verify_chain(entries: Iterable[Entry], expect_head: str | None = None) -> list[Problem]:
    """Check numbering, links and hashes; with `expect_head`, also that the log ends where it was published.

    A sealed entry (content withheld, see `seal`) is checked for its place and links only: its hash cannot be
    recomputed until its content is published.
    """
    problems: list[Problem] = []
    prev = GENESIS
    expected_seq = 1
    last: Entry | None = None
    for e in entries:
        if e.seq != expected_seq:
            kind = "missing" if e.seq > expected_seq else "reordered"
            problems.append(Problem(kind, f"entry {e.seq} found where entry {expected_seq} was expected "
                                          f"(entries deleted or reordered)", seq=e.seq))
        if e.prev_hash != prev:
            message = (f"entry {e.seq} does not link to the entry before it "
                       f"(prev_hash {e.prev_hash[:12]}…, expected {prev[:12]}…)")
            problems.append(Problem("broken_link", message, seq=e.seq))
        recomputed = entry_hash(e.prev_hash, e.seq, e.at, e.actor, e.action, e.entity, e.entity_id, e.payload)
        if e.sealed is None and recomputed != e.hash:
            problems.append(Problem("edited", f"entry {e.seq} ({e.action}) was altered: its content no longer "
                                              f"matches its hash", seq=e.seq))
        prev = e.hash
        expected_seq = e.seq + 1
        last = e
    if expect_head is not None:
        head = last.hash if last else GENESIS
        if head != expect_head:
            problems.append(Problem("head_mismatch", f"the log ends at {head[:12]}… but the published head is "
                                                     f"{expect_head[:12]}… (entries removed from or added to the end)",
                                    seq=last.seq if last else None))
    return problems


def replay(entries: Iterable[Entry]) -> dict[tuple[str, int], tuple[dict, int]]:
    """State recorded by the log: (table, row id) → (row snapshot, seq of the entry that recorded it)."""
    state: dict[tuple[str, int], tuple[dict, int]] = {}
    for e in entries:
        replay_entry(state, e)
    return state


def replay_entry(state: dict[tuple[str, int], tuple[dict, int]], e: Entry) -> None:
    """Apply one entry's row snapshot (if it carries one) to the replayed state."""
    try:
        payload = json.loads(e.payload)
    except json.JSONDecodeError:
        return
    row = payload.get("row") if isinstance(payload, dict) else None
    if isinstance(row, dict) and e.entity_id is not None:
        state[(e.entity, e.entity_id)] = (row, e.seq)


def compare_state(recorded: dict[tuple[str, int], tuple[dict, int]],
                  actual: dict[tuple[str, int], dict],
                  added_columns: dict[str, dict[str, object]] | None = None) -> list[Problem]:
    """Every database row must be exactly as the log recorded it, and every recorded row must exist.

    `added_columns` (table → column → value) names columns that a later schema version added with a default: a
    snapshot taken before they existed lacks them, and the row then must hold exactly that default.
    """
    added_columns = added_columns or {}
    problems: list[Problem] = []
    for key in sorted(set(recorded) | set(actual)):
        table, row_id = key
        if key not in recorded:
            problems.append(Problem("unlogged_row", f"{table} row {row_id} is in the database but no audit entry "
                                                    f"recorded it", table=table, row_id=row_id))
            continue
        row, seq = recorded[key]
        row = {**added_columns.get(table, {}), **row}
        if key not in actual:
            problems.append(Problem("deleted_row", f"{table} row {row_id}, recorded by audit entry {seq}, is "
                                                   f"missing from the database", seq=seq, table=table, row_id=row_id))
            continue
        now = actual[key]
        changed = sorted(c for c in set(row) | set(now) if row.get(c) != now.get(c))
        if changed:
            problems.append(Problem("changed_row", f"{table} row {row_id} differs from audit entry {seq} in "
                                                   f"{', '.join(changed)}", seq=seq, table=table, row_id=row_id))
    return problems
