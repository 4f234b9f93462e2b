"""The per-item result cache: one row per model request, written the moment the request is answered.

A benchmark run is a long list of independent requests (a log-likelihood, a generation). Each answer is stored
under a key that names everything the answer depends on — the model's content hash or pinned revision, the
backend settings that change numbers, the task and its version, the request type and its exact arguments (the
prompt text and generation settings) — so a killed run, restarted, looks every request up first and recomputes
nothing that was answered. Values are JSON (never pickle); `compute_count` records how often a key was computed,
which is how the tests prove that nothing is computed twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    task TEXT,
    value TEXT NOT NULL,
    computed_at REAL NOT NULL,
    compute_count INTEGER NOT NULL DEFAULT 1,
    scope TEXT
);
"""
# `scope` names the model, its numeric settings and the task an answer belongs to, so a shard of a run (one model,
# one task) can be sent every answer it already has without knowing its requests' keys; older files gain it.
SCOPE_INDEX = "CREATE INDEX IF NOT EXISTS items_scope ON items (scope)"
ItemRow = tuple[str, str, "str | None", "str | None", Any]  # key, kind, task, scope, value


def canonical_json(obj: Any) -> str:
    """One spelling per value, so equal requests hash equally (sorted keys, no spaces, non-JSON as str)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def item_key(*parts: Any) -> str:
    """The sha256 of the canonical JSON of everything an answer depends on."""
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()


def item_scope(model_key: str, settings: Any, task: str) -> str:
    """The scope of an answer: one model with its numeric settings on one (leaf) task."""
    return item_key("scope", model_key, settings, task)


class ItemCache:
    """A SQLite file of answered requests; safe across threads of one process and across processes (WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(items)")}
            if "scope" not in columns:
                self._conn.execute("ALTER TABLE items ADD COLUMN scope TEXT")
            self._conn.execute(SCOPE_INDEX)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            from simsa.errors import InputError

            raise InputError(f"{path}: not a simsa item cache ({exc})") from exc

    def get(self, key: str) -> Any | None:
        """The stored answer, or None."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM items WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Stored answers for those keys that have one."""
        found: dict[str, Any] = {}
        keys = list(keys)
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self._conn.execute(f"SELECT key, value FROM items WHERE key IN ({marks})", chunk):
                    found[key] = json.loads(value)
        return found

    def put(self, key: str, value: Any, kind: str = "item", task: str | None = None,
            scope: str | None = None) -> None:
        """Store an answer at once (committed before returning), counting a repeated computation."""
        self.put_many([(key, kind, task, scope, value)])

    def put_many(self, rows: Iterable[ItemRow]) -> int:
        """Store answers (key, kind, task, scope, value) in one transaction, counting repeated computations."""
        now = time.time()
        params = [(key, kind, task, scope, canonical_json(value), now) for key, kind, task, scope, value in rows]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT INTO items (key, kind, task, scope, value, computed_at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at, "
                    "scope = COALESCE(excluded.scope, items.scope), compute_count = items.compute_count + 1",
                    params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return len(params)

    def in_scopes(self, scopes: Iterable[str]) -> list[ItemRow]:
        """Every answer of those scopes, in key order (what a shard is sent so it recomputes none of them)."""
        scopes = sorted(set(scopes))
        rows: list[ItemRow] = []
        with self._lock:
            for start in range(0, len(scopes), 500):
                chunk = scopes[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows += [(key, kind, task, scope, json.loads(value)) for key, kind, task, scope, value in
                         self._conn.execute(f"SELECT key, kind, task, scope, value FROM items WHERE scope IN ({marks})",
                                            chunk)]
        return sorted(rows, key=lambda row: row[0])

    def rows(self) -> list[ItemRow]:
        """Every answer (key, kind, task, scope, value), in key order."""
        with self._lock:
            found = self._conn.execute("SELECT key, kind, task, scope, value FROM items ORDER BY key").fetchall()
        return [(key, kind, task, scope, json.loads(value)) for key, kind, task, scope, value in found]

    def stats(self) -> dict[str, int]:
        """Rows, and rows computed more than once (0 unless something recomputed an answered request)."""
        with self._lock:
            rows, repeated, computations = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(compute_count > 1), 0), COALESCE(SUM(compute_count), 0) FROM items"
            ).fetchone()
        return {"items": int(rows), "recomputed": int(repeated), "computations": int(computations)}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ItemCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
