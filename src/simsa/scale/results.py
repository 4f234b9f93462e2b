"""Results kept by their unit's content key, written only by the driver: a rerun (or a driver restarted after it was
killed) finds every finished unit here and recomputes only the rest.

Each result is two files, `<key>.json` (value and provenance) and, when the unit produced a file, `<key>.bin`; both
are written to a temporary name and renamed, the JSON last, so a result is either whole or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from simsa.scale.units import UnitResult

KEY_CHARS = set("0123456789abcdef")


class ResultStore:
    """A directory of finished units' results."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        if len(key) != 64 or not set(key) <= KEY_CHARS:
            raise ValueError(f"not a unit key: {key[:80]!r}")
        return self.root / f"{key}.json", self.root / f"{key}.bin"

    def has(self, key: str) -> bool:
        """Whether a result of `key` is kept (without reading it; `get` still checks it is whole)."""
        return self._paths(key)[0].is_file()

    def get(self, key: str) -> UnitResult | None:
        """The stored result of `key`, or None (also for a result whose file was damaged — cut short, or a byte
        changed, as its sha256 shows: it is recomputed)."""
        meta_path, bin_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            payload = bin_path.read_bytes() if meta.get("bytes") is not None else None
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("key") != key or (
                payload is not None and (len(payload) != meta.get("bytes")
                                         or hashlib.sha256(payload).hexdigest() != meta.get("sha256"))):
            return None
        return UnitResult(key=key, label=str(meta.get("label", "")), ok=True, value=meta.get("value"),
                          payload=payload, seconds=float(meta.get("seconds") or 0.0), cached=True)

    def put(self, result: UnitResult) -> None:
        """Keep a successful result (failures are not kept: the next run tries again)."""
        if not result.ok:
            return
        meta_path, bin_path = self._paths(result.key)
        if result.payload is not None:
            _write_atomic(bin_path, result.payload)
        meta = {"key": result.key, "label": result.label, "value": result.value, "seconds": result.seconds,
                "bytes": None if result.payload is None else len(result.payload),
                "sha256": None if result.payload is None else hashlib.sha256(result.payload).hexdigest()}
        _write_atomic(meta_path, json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)
