"""A registry of reference fingerprints: a directory an agency keeps, exports as one file, and others import.

Layout: ``registry.json`` (the index: name, file, digest, size, model type, parameters, source) beside one
``NAME.simsa-fp`` file per reference. Export writes a tar archive of exactly those files; import checks every member
before extracting anything (plain files only, known names, digests that match the index), so a hostile archive can
neither write outside the registry nor smuggle in a file that is not a fingerprint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from simsa.errors import CheckpointError
from simsa.lineage.formats.fingerprint import SUFFIX, Fingerprint
from simsa.timeutil import utc_text

INDEX = "registry.json"
SCHEMA = "simsa.lineage.registry/1"
DEFAULT_ENV = "SIMSA_LINEAGE_REGISTRY"
MAX_MEMBER_BYTES = 4 << 30
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")


def default_registry() -> Path:
    """``$SIMSA_LINEAGE_REGISTRY``, else the user cache directory."""
    if os.environ.get(DEFAULT_ENV):
        return Path(os.environ[DEFAULT_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "simsa" / "lineage-registry"


def safe_name(name: str) -> str:
    """A registry entry name, also its file stem: letters, digits and ``._@+-``; ``org/name`` becomes ``org--name``."""
    cleaned = name.strip().replace("/", "--")
    if not _NAME.match(cleaned) or cleaned in (".", ".."):
        raise CheckpointError(f"invalid registry name {name!r}: use letters, digits and . _ @ + - (and / for org/name)")
    return cleaned


def _member_bytes(archive: str | Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A regular member's contents (members are checked to be plain files before this is asked)."""
    handle = tar.extractfile(member)
    if handle is None:
        raise CheckpointError(f"{archive}: member {member.name!r} is not a regular file")
    with handle:
        return handle.read()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Registry:
    root: Path
    entries: dict[str, dict]

    @classmethod
    def open(cls, root: str | Path, *, create: bool = False, label: str | None = None) -> Registry:
        root = Path(root)
        index = root / INDEX
        where = label or str(index)
        if not index.exists():
            if not create:
                raise CheckpointError(f"{root}: no fingerprint registry here (no {INDEX}); create one with "
                                      "'simsa lineage fingerprint MODEL --registry PATH'")
            root.mkdir(parents=True, exist_ok=True)
            return cls(root, {})
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{where}: unreadable registry index: {_one_line(exc)}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("entries"), list):
            raise CheckpointError(f"{where}: not a {SCHEMA} index")
        entries: dict[str, dict] = {}
        for e in data["entries"]:
            if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not isinstance(e.get("file"), str):
                raise CheckpointError(f"{where}: malformed entry {str(e)[:80]!r}")
            try:
                valid = safe_name(e["name"]) == e["name"]
            except CheckpointError:
                valid = False
            if not valid:
                raise CheckpointError(f"{where}: invalid entry name {e['name'][:80]!r}")
            if e["file"] != f"{e['name']}{SUFFIX}":
                raise CheckpointError(f"{where}: entry {e['name']!r} must be stored as {e['name']}{SUFFIX}, not "
                                      f"{e['file'][:80]!r}")
            if e["name"] in entries:
                raise CheckpointError(f"{where}: entry {e['name']!r} listed twice")
            entries[e["name"]] = e
        return cls(root, entries)

    def _write_index(self) -> None:
        tmp = self.root / (INDEX + ".partial")
        tmp.write_text(json.dumps({"schema": SCHEMA, "entries": sorted(self.entries.values(),
                                                                        key=lambda e: e["name"])},
                                  ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.root / INDEX)

    def add(self, fp: Fingerprint, name: str | None = None, *, replace: bool = True) -> dict:
        """Store a fingerprint under ``name`` (default: its own name)."""
        key = safe_name(name or fp.name)
        if key in self.entries and not replace:
            raise CheckpointError(f"registry already holds {key!r}")
        fp.meta["name"] = key
        path = self.root / f"{key}{SUFFIX}"
        size = fp.save(path)
        return self._index(key, fp, path, size)

    def add_bytes(self, name: str, payload: bytes, *, replace: bool = True) -> dict:
        """Store a fingerprint file's bytes (built elsewhere: a worker of a cluster) under ``name``, after checking
        them in full as a fingerprint named so; the bytes are kept as they are."""
        key = safe_name(name)
        if key in self.entries and not replace:
            raise CheckpointError(f"registry already holds {key!r}")
        tmp = self.root / f".{key}.{os.getpid()}.partial"
        tmp.write_bytes(payload)
        try:
            fp = Fingerprint.load(tmp, verify=True)
            if fp.meta.get("name") != key:
                raise CheckpointError(f"fingerprint for {key!r} is named {fp.meta.get('name')!r}")
            path = self.root / f"{key}{SUFFIX}"
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return self._index(key, fp, path, len(payload))

    def _index(self, key: str, fp: Fingerprint, path: Path, size: int) -> dict:
        entry = {"name": key, "file": path.name, "sha256": _sha256(path), "bytes": size,
                 "model_type": fp.meta.get("model_type"), "parameters": fp.meta.get("parameters"),
                 "source": fp.meta.get("source"), "added": utc_text(dt.datetime.now(dt.UTC)),
                 "stacks": fp.meta.get("stacks")}
        self.entries[key] = entry
        self._write_index()
        return entry

    def remove(self, name: str) -> None:
        key = safe_name(name)
        entry = self.entries.pop(key, None)
        if entry is None:
            raise CheckpointError(f"registry holds no {name!r}")
        (self.root / entry["file"]).unlink(missing_ok=True)
        self._write_index()

    def load(self, name: str, *, verify: bool = False) -> Fingerprint:
        entry = self.entries.get(name)
        if entry is None:
            raise CheckpointError(f"{self.root}: registry holds no {name!r}")
        path = self.root / entry["file"]
        if verify and _sha256(path) != entry.get("sha256"):
            raise CheckpointError(f"{path}: does not match the digest in the registry index (changed or corrupted)")
        # Imported fingerprints were verified in full; added ones were written here. Read lazily unless asked.
        return Fingerprint.load(path, verify=verify)

    def export(self, out: str | Path) -> int:
        """Write the whole registry as one tar file; returns the number of fingerprints."""
        with tarfile.open(out, "w") as tar:
            tar.add(self.root / INDEX, arcname=INDEX)
            for e in self.entries.values():
                tar.add(self.root / e["file"], arcname=e["file"])
        return len(self.entries)

    def import_archive(self, archive: str | Path, *, replace: bool = False) -> list[str]:
        """Merge an exported registry into this one after checking every member; returns the names added."""
        try:
            tar = tarfile.open(archive, "r:*")  # noqa: SIM115 -- closed by the with-block below
        except (OSError, tarfile.TarError) as exc:
            raise CheckpointError(f"{archive}: not a readable registry archive ({_one_line(exc)})") from None
        with tar:
            members = {m.name: m for m in tar.getmembers()}
            for m in members.values():
                if not m.isfile() or Path(m.name).name != m.name or m.name.startswith("."):
                    raise CheckpointError(f"{archive}: refused member {m.name!r} (only plain files at the top level)")
                if m.size > MAX_MEMBER_BYTES:
                    raise CheckpointError(f"{archive}: member {m.name!r} is too large ({m.size} bytes)")
            if INDEX not in members:
                raise CheckpointError(f"{archive}: no {INDEX} in the archive")
            index_bytes = _member_bytes(archive, tar, members[INDEX])
            tmp_root = self.root / f".import-{os.getpid()}-{int(time.time())}"
            tmp_root.mkdir(parents=True)
            try:
                (tmp_root / INDEX).write_bytes(index_bytes)
                incoming = Registry.open(tmp_root, label=f"{archive}: {INDEX}")
                listed = {INDEX} | {e["file"] for e in incoming.entries.values()}
                unlisted = sorted(set(members) - listed)
                if unlisted:
                    raise CheckpointError(f"{archive}: members not listed in its index: {', '.join(unlisted)[:200]}")
                for e in incoming.entries.values():
                    if e["file"] not in members:
                        raise CheckpointError(f"{archive}: index lists {e['file']!r}, which the archive lacks")
                    data = _member_bytes(archive, tar, members[e["file"]])
                    if hashlib.sha256(data).hexdigest() != e.get("sha256"):
                        raise CheckpointError(f"{archive}: {e['file']!r} does not match its digest in the index")
                    (tmp_root / e["file"]).write_bytes(data)
                    Fingerprint.load(tmp_root / e["file"])  # a real fingerprint, or refused here
                added = []
                for e in incoming.entries.values():
                    if e["name"] in self.entries and not replace:
                        continue
                    os.replace(tmp_root / e["file"], self.root / e["file"])
                    self.entries[e["name"]] = e
                    added.append(e["name"])
                self._write_index()
                return added
            finally:
                for p in tmp_root.iterdir():
                    p.unlink()
                tmp_root.rmdir()


def registry_bytes(registry: Registry) -> int:
    return sum(int(e.get("bytes") or 0) for e in registry.entries.values())

