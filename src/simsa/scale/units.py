"""Work units: one idempotent piece of work (a fingerprint of one checkpoint, a benchmark shard), keyed by its
content so a rerun or a retried task recomputes nothing already stored.

A unit names a function by its import path (so any worker that has simsa installed can run it), carries plain
arguments, and declares what it needs from the machine that runs it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from simsa import __version__


@dataclass(frozen=True)
class Resources:
    """What a unit asks of the node that runs it: CPUs, memory in bytes (a scheduling hint, as Ray reads it) and
    GPUs (a vLLM shard asks for its tensor-parallel size)."""

    cpus: float = 1.0
    memory: int = 0
    gpus: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"cpus": self.cpus, "memory": self.memory, "gpus": self.gpus}


@dataclass(frozen=True)
class WorkUnit:
    """One unit of work: `function` ("module:name") called with `args`; `key` is the sha256 of what decides its
    result (kind, content digests, settings, simsa's version), never of where or when it runs. `local_paths` are
    files or folders it reads that must lie on the node that runs it."""

    kind: str
    label: str
    function: str
    args: dict[str, Any]
    key: str
    resources: Resources = field(default_factory=Resources)
    local_paths: tuple[str, ...] = ()


def unit_key(kind: str, **content: Any) -> str:
    """The content key of a unit: sha256 of its kind, simsa's version and `content` as canonical JSON."""
    doc = {"kind": kind, "simsa": __version__, **content}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UnitResult:
    """What became of one unit: its value (JSON-able data and, for files, bytes) or the error it ended with after
    `attempts` tries. `cached` results were found in the result store and not recomputed."""

    key: str
    label: str
    ok: bool
    value: dict[str, Any] | None = None
    payload: bytes | None = None
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    cached: bool = False
    payload_bytes: int | None = None  # the payload's size, kept once the driver has let the payload go

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "ok": self.ok, "value": self.value, "error": self.error,
                "attempts": self.attempts, "seconds": self.seconds, "cached": self.cached,
                "bytes": self.payload_bytes if self.payload is None else len(self.payload)}
