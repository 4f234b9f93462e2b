"""Cached model calls: every generation and every judge call is looked up before it is made.

A key is the sha256 of a canonical JSON of everything that decides the output: the client's identity (model, weight
hash, endpoint), the messages, the decoding settings and the judge prompt's name, version and hash. A re-run of the
same task therefore recomputes nothing, and any change (a new prompt version, other settings, a retrained model)
misses the cache instead of reusing a stale answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol

from simsa.bench.chat import ChatClient, ChatResult, GenSettings, Messages

KEY_FORMAT = "simsa-judge-call-1"
StageProgress = Callable[[str, int, int], None]


class ItemStore(Protocol):
    """Where call results are kept between runs (the lead's implementation is SQLite)."""

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict, scope: str | None = None) -> None:
        """Keep a call's result; `scope` names the client that made it (see `call_scope`)."""


class MemoryStore:
    """An ItemStore in a dict: caching within one process only."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}
        self.scopes: dict[str, str | None] = {}

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def put(self, key: str, value: dict, scope: str | None = None) -> None:
        self.data[key] = value
        self.scopes[key] = scope


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def call_key(identity: dict[str, Any], messages: Messages, settings: GenSettings,
             prompt: dict[str, Any] | None = None) -> str:
    """The cache key of one call (prompt: the judge prompt's `ref()`, None for answer generation)."""
    body = {"format": KEY_FORMAT, "client": identity, "messages": messages, "settings": settings.to_dict(),
            "prompt": prompt}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def call_scope(identity: dict[str, Any]) -> str:
    """The scope of every call one client makes: what a judge run on another machine is sent so that it remakes
    none of the calls already kept."""
    return hashlib.sha256(canonical_json({"format": KEY_FORMAT, "client": identity}).encode("utf-8")).hexdigest()


class CachedCaller:
    """Makes batches of calls through a store, counting what was computed and what came from the cache.

    Missing calls are made in chunks and stored after each chunk, so an interrupted run keeps what it finished.
    """

    def __init__(self, store: ItemStore, progress: StageProgress | None = None, chunk: int = 32) -> None:
        self.store = store
        self.progress = progress
        self.chunk = max(1, chunk)
        self.computed = 0
        self.cached = 0

    def run(self, client: ChatClient, items: list[Messages], settings: GenSettings,
            prompt: dict[str, Any] | None, stage: str) -> list[ChatResult]:
        identity = client.identity()
        keys = [call_key(identity, m, settings, prompt) for m in items]
        found: dict[str, ChatResult] = {}
        missing: dict[str, Messages] = {}  # key -> messages, duplicates asked once
        for key, messages in zip(keys, items, strict=True):
            if key in found or key in missing:
                continue
            value = self.store.get(key)
            if value is not None:
                found[key] = ChatResult.from_dict(value)
                self.cached += 1
            else:
                missing[key] = messages
        total, done = len(missing), 0
        pending = list(missing.items())
        if self.progress and total:
            self.progress(stage, 0, total)
        for start in range(0, total, self.chunk):
            part = pending[start:start + self.chunk]

            def tick(n: int, _of: int, base: int = done) -> None:
                if self.progress:
                    self.progress(stage, base + n, total)

            results = client.complete_many([m for _, m in part], settings, progress=tick)
            for (key, _), result in zip(part, results, strict=True):
                self.store.put(key, result.to_dict(), scope=call_scope(identity))
                found[key] = result
                self.computed += 1
            done += len(part)
        return [found[k] for k in keys]
