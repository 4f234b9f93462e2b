"""Pre-registered commitments: the sha256 of what a team commits to at a stage's start, and later checks against it.

A team commits at the start of a stage to what it will build with: the seed, the data manifest, the tokenizer, the
step-0 weights, the weights its arena entrant will serve. Only digests are recorded (a seed stays secret until it is
revealed), so a later submission can be checked byte for byte without anyone holding the files in the meantime.

Pure apart from reading the files it is given: the store, the audit chain and the shells live elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simsa.bench.identity import weights_digest
from simsa.errors import InputError

# What each kind of commitment holds, as `simsa commit --help` and the docs list them.
KINDS: dict[str, str] = {
    "seed": "the random seed, as a text file (only its digest is recorded until it is revealed)",
    "data-manifest": "the training data manifest (the list of sources and their hashes)",
    "tokenizer": "the tokenizer: tokenizer.json, or its directory",
    "step0": "the step-0 (initial) weights: a checkpoint file or directory",
    "entrant": "the weights the arena entrant will serve: the *.safetensors of a directory, digested as the "
               "entrant's endpoint reports them",
    "file": "any other file or directory (give it a label: file:LABEL=PATH)",
}
MAX_FILES = 100_000  # files in one committed directory
MAX_LABEL = 64
_LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_CHUNK = 4 << 20

Progress = Callable[[int], None]  # bytes hashed since the last call


@dataclass(frozen=True)
class Spec:
    """One thing to commit or check: ``KIND=PATH``, ``KIND:LABEL=PATH`` or a bare ``PATH`` (kind ``file``)."""

    kind: str
    label: str
    path: Path


@dataclass(frozen=True)
class FileDigest:
    path: str  # relative to the committed directory, with forward slashes ("" for a single file)
    sha256: str
    bytes: int

    def to_list(self) -> list:
        return [self.path, self.sha256, self.bytes]


@dataclass(frozen=True)
class Digest:
    """What is recorded for one commitment: one sha256 over the content, and for a directory each file's."""

    kind: str
    label: str
    sha256: str
    bytes: int
    method: str  # "file" (the bytes), "tree" (every file under a directory), "weights" (the served-weights digest)
    files: tuple[FileDigest, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "label": self.label, "sha256": self.sha256, "bytes": self.bytes,
                "method": self.method, "files": [f.to_list() for f in self.files]}


def parse_spec(text: str) -> Spec:
    """``KIND[:LABEL]=PATH``, or a bare path (kind ``file``, labelled by the file name)."""
    head, sep, tail = text.partition("=")
    if sep and re.fullmatch(r"[a-z0-9-]+(:[^=/\\]*)?", head):
        kind, _, label = head.partition(":")
        path = tail
    else:
        kind, label, path = "file", "", text
    if kind not in KINDS:
        raise InputError(f"unknown commitment kind {kind!r} in {text[:80]!r}; kinds: {', '.join(KINDS)}")
    if not path:
        raise InputError(f"{text[:80]!r} names no file")
    p = Path(path)
    label = label or (kind if kind != "file" else p.name.lower())
    if not _LABEL.match(label):
        raise InputError(f"commitment label {label[:80]!r} must be 1-{MAX_LABEL} lower-case letters, digits and "
                         ". _ - (give one with KIND:LABEL=PATH)")
    return Spec(kind, label, p)


def _file_sha256(path: Path, progress: Progress | None) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest(), size


def _tree_files(root: Path) -> list[Path]:
    """Regular files under ``root`` (symbolic links to files followed, hidden names skipped), in path order."""
    found: list[Path] = []
    for base, dirs, files in os.walk(root):  # links to directories are not followed: no loops, nothing outside
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            p = Path(base) / name
            if name.startswith(".") or not p.is_file():
                continue
            found.append(p)
            if len(found) > MAX_FILES:
                raise InputError(f"{root}: more than {MAX_FILES} files; commit the directory that holds just the "
                                 "files meant")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def tree_sha256(files: Sequence[FileDigest]) -> str:
    """One digest over a directory's files: sha256 of its canonical ``[[path, sha256, bytes], ...]`` JSON."""
    listing = [f.to_list() for f in sorted(files, key=lambda f: f.path)]
    return hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode()).hexdigest()


def total_bytes(spec: Spec) -> int:
    """Bytes `digest` will read, for a progress bar."""
    p = spec.path
    if p.is_file():
        return p.stat().st_size
    if p.is_dir():
        files = sorted(p.glob("*.safetensors")) if spec.kind == "entrant" else _tree_files(p)
        return sum(f.stat().st_size for f in files if f.is_file())
    return 0


def digest(spec: Spec, progress: Progress | None = None) -> Digest:
    """The digest of one committed (or submitted) file or directory; a clear error for what cannot be read."""
    p = spec.path
    try:
        if spec.kind == "entrant":
            return _weights(spec, progress)
        if p.is_file():
            sha, size = _file_sha256(p, progress)
            return Digest(spec.kind, spec.label, sha, size, "file")
        if p.is_dir():
            files = tuple(FileDigest(f.relative_to(p).as_posix(), *_file_sha256(f, progress)) for f in _tree_files(p))
            if not files:
                raise InputError(f"{p}: an empty directory; there is nothing to commit")
            return Digest(spec.kind, spec.label, tree_sha256(files), sum(f.bytes for f in files), "tree", files)
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    raise InputError(f"{p}: no such file or directory")


def _weights(spec: Spec, progress: Progress | None) -> Digest:
    """An entrant's weights, digested as `simsa serve-model` and the in-process clients report them."""
    p = spec.path
    files = sorted(p.glob("*.safetensors")) if p.is_dir() else [p] if p.suffix == ".safetensors" else []
    files = [f for f in files if f.is_file()]
    if not files:
        raise InputError(f"{p}: no *.safetensors weights; an entrant commitment digests the weights its endpoint "
                         "serves")
    per_file = tuple(FileDigest(f.name, *_file_sha256(f, progress)) for f in files)
    return Digest(spec.kind, spec.label, weights_digest(files), sum(f.bytes for f in per_file), "weights", per_file)


# ---------------------------------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Committed:
    """A recorded commitment, as a check reads it back."""

    kind: str
    label: str
    sha256: str
    bytes: int
    method: str
    files: tuple[FileDigest, ...]
    recorded_at: str  # UTC, ISO 8601
    id: int | None = None


@dataclass(frozen=True)
class CheckLine:
    """One commitment against what was submitted: ``matches``, ``differs``, ``not submitted`` or ``not committed``."""

    kind: str
    label: str
    status: str
    committed_sha256: str | None
    submitted_sha256: str | None
    changed: tuple[str, ...] = ()  # files of a directory that differ
    added: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    commitment_id: int | None = None
    recorded_at: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("differs", "not committed")

    def message(self) -> str:
        name = f"{self.kind}:{self.label}" if self.label != self.kind else self.kind
        where = f"commitment {name}" + (f" (#{self.commitment_id}, recorded {self.recorded_at})"
                                         if self.commitment_id else "")
        if self.status == "matches":
            return f"{where}: matches (sha256 {self.committed_sha256})"
        if self.status == "not submitted":
            return f"{where}: nothing submitted to check against it"
        if self.status == "not committed":
            return f"{name}: submitted, but the team committed to no {name} (sha256 {self.submitted_sha256})"
        parts = [f"{where}: DIFFERS — committed sha256 {self.committed_sha256}, submitted {self.submitted_sha256}"]
        for label, items in (("changed", self.changed), ("added", self.added), ("missing", self.missing)):
            if items:
                parts.append(f"{label}: {', '.join(items[:10])}" + (f" and {len(items) - 10} more"
                                                                    if len(items) > 10 else ""))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "label": self.label, "status": self.status, "failed": self.failed,
                "committed_sha256": self.committed_sha256, "submitted_sha256": self.submitted_sha256,
                "changed": list(self.changed), "added": list(self.added), "missing": list(self.missing),
                "commitment_id": self.commitment_id, "recorded_at": self.recorded_at, "message": self.message()}


def check_one(committed: Committed, submitted: Digest) -> CheckLine:
    """A submission against its commitment, naming the files of a directory that changed, appeared or went."""
    before = {f.path: f.sha256 for f in committed.files}
    after = {f.path: f.sha256 for f in submitted.files}
    same = committed.sha256 == submitted.sha256
    return CheckLine(committed.kind, committed.label, "matches" if same else "differs", committed.sha256,
                     submitted.sha256,
                     changed=() if same else tuple(sorted(k for k in before.keys() & after.keys()
                                                          if before[k] != after[k])),
                     added=() if same else tuple(sorted(after.keys() - before.keys())),
                     missing=() if same else tuple(sorted(before.keys() - after.keys())),
                     commitment_id=committed.id, recorded_at=committed.recorded_at)


def check(committed: Sequence[Committed], submitted: Sequence[Digest]) -> list[CheckLine]:
    """Every submitted item against the commitment of the same kind and label, and every commitment left over."""
    by_key = {(c.kind, c.label): c for c in committed}
    seen: set[tuple[str, str]] = set()
    lines = []
    for s in submitted:
        key = (s.kind, s.label)
        seen.add(key)
        c = by_key.get(key)
        lines.append(check_one(c, s) if c is not None else CheckLine(
            s.kind, s.label, "not committed", None, s.sha256))
    lines += [CheckLine(c.kind, c.label, "not submitted", c.sha256, None, commitment_id=c.id,
                        recorded_at=c.recorded_at) for key, c in sorted(by_key.items()) if key not in seen]
    return lines
