"""Signed checkpoints of the audit log, as transparency logs (Certificate Transparency, Sigstore Rekor) publish them.

The hash chain shows that entries were not edited one by one, but whoever can write the database can re-write
the whole history and recompute every hash after the change: the result is again a valid chain. A checkpoint
fixes the log's size and head hash at a moment, signed with a key kept off the database host, and is published
elsewhere. A later log must *extend* every earlier checkpoint — same first `size` entries, so the same hash at
entry `size` — which a re-written history cannot do without the signing key. Nothing here touches the database.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from simsa.audit.chain import Entry, Problem, canonical, verify_chain
from simsa.audit.files import read_capped
from simsa.audit.keys import b64_bytes, fingerprint, public_key_of
from simsa.audit.merkle import entries_root
from simsa.errors import InputError
from simsa.timeutil import utc_text

SCHEMA = "simsa.audit-checkpoint/1"
CHECKPOINT_FILE_LIMIT = 64 * 1024
SIGNATURE_BYTES = 64
_FIELDS = {"schema", "size", "head", "merkle_root", "time", "public_key", "signature"}
_HASH = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


@dataclass(frozen=True)
class Checkpoint:
    """The signed head of the log: its first `size` entries end at `head` (and hash to `merkle_root`)."""

    size: int
    head: str
    merkle_root: str | None
    time: str
    public_key: bytes
    signature: bytes
    schema: str = SCHEMA

    def body(self) -> dict:
        """Every field but the signature: what the signature covers."""
        out: dict = {"schema": self.schema, "size": self.size, "head": self.head, "time": self.time,
                     "public_key": base64.b64encode(self.public_key).decode("ascii")}
        if self.merkle_root is not None:
            out["merkle_root"] = self.merkle_root
        return out

    def message(self) -> bytes:
        """The signed bytes: the body in simsa's canonical JSON."""
        return canonical(self.body()).encode("utf-8")

    @property
    def key_fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def signature_valid(self) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(self.signature, self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict:
        return {**self.body(), "signature": base64.b64encode(self.signature).decode("ascii")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def make_checkpoint(entries: Sequence[Entry], key: Ed25519PrivateKey, at: dt.datetime) -> Checkpoint:
    """Sign the head of `entries`, which the caller has verified (a checkpoint vouches for the log it covers)."""
    if not entries:
        raise InputError("the audit log is empty: there is nothing to checkpoint yet")
    public = public_key_of(key).raw
    unsigned = Checkpoint(size=len(entries), head=entries[-1].hash, merkle_root=entries_root([e.hash for e in entries]),
                          time=utc_text(at), public_key=public, signature=b"")
    return Checkpoint(size=unsigned.size, head=unsigned.head, merkle_root=unsigned.merkle_root, time=unsigned.time,
                      public_key=public, signature=key.sign(unsigned.message()))


def _b64(value: object, length: int, what: str, source: str) -> bytes:
    raw = b64_bytes(value)
    if len(raw) != length:
        raise InputError(f"{source}: {what} is not {length} bytes in base64")
    return raw


def parse_checkpoint(data: bytes, source: str) -> Checkpoint:
    """A checkpoint from its JSON; malformed input is an input error, a wrong signature is not checked here."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{source}: not a simsa audit checkpoint (not JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{source}: not a simsa audit checkpoint (not a JSON object)")
    if doc.get("schema") != SCHEMA:
        raise InputError(f"{source}: not a simsa audit checkpoint (schema {doc.get('schema')!r}, expected {SCHEMA!r})")
    unknown = sorted(set(doc) - _FIELDS)
    missing = sorted(_FIELDS - {"merkle_root"} - set(doc))
    if unknown or missing:
        what = "; ".join(part for part in (f"unknown fields {', '.join(unknown)}" if unknown else "",
                                           f"missing {', '.join(missing)}" if missing else "") if part)
        raise InputError(f"{source}: malformed checkpoint ({what})")
    size = doc["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InputError(f"{source}: malformed checkpoint (size {size!r} is not a positive integer)")
    for name in ("head", "merkle_root"):
        value = doc.get(name)
        if not (value is None and name == "merkle_root") and not (isinstance(value, str) and _HASH.fullmatch(value)):
            raise InputError(f"{source}: malformed checkpoint ({name} is not 64 lowercase hex digits)")
    when = doc["time"]
    if not isinstance(when, str) or not _TIME.fullmatch(when):
        raise InputError(f"{source}: malformed checkpoint (time {when!r} is not UTC ISO 8601 ending in Z)")
    try:
        dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{source}: malformed checkpoint (time {when!r} is not a date-time)") from None
    return Checkpoint(size=size, head=doc["head"], merkle_root=doc.get("merkle_root"), time=when,
                      public_key=_b64(doc["public_key"], 32, "public_key", source),
                      signature=_b64(doc["signature"], SIGNATURE_BYTES, "signature", source))


@dataclass
class CheckpointCheck:
    """Whether a log extends one checkpoint: signature, key, size, head, Merkle root; problems name the file."""

    source: str
    size: int
    head: str
    time: str
    key_fingerprint: str
    pinned: bool | None  # None: no trusted key was given, so the reader must compare the fingerprint
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"checkpoint": self.source, "ok": self.ok, "size": self.size, "head": self.head, "time": self.time,
                "key_fingerprint": self.key_fingerprint, "pinned": self.pinned,
                "problems": [p.to_dict() for p in self.problems]}


def check_checkpoint(cp: Checkpoint, entries: Sequence[Entry], source: str,
                     pins: Collection[str] = ()) -> CheckpointCheck:
    """Does the log `entries` extend `cp`? Signed by its key (and by a pinned one when `pins` are given), at least
    `size` entries, and the first `size` of them a valid chain ending at the checkpoint's head and Merkle root."""
    fp = cp.key_fingerprint
    check = CheckpointCheck(source=source, size=cp.size, head=cp.head, time=cp.time, key_fingerprint=fp,
                            pinned=(fp in pins) if pins else None)
    where = f"checkpoint {source}"

    def problem(kind: str, message: str) -> None:
        check.problems.append(Problem(kind, f"{where}: {message}", seq=cp.size))

    if not cp.signature_valid():
        problem("checkpoint_signature", "the signature does not verify: the file was altered after signing "
                                        "(size, head, time…) or was not signed by the key it names")
        return check
    if pins and not check.pinned:
        problem("checkpoint_key", f"signed by key {fp}, which is not a trusted key ({', '.join(sorted(pins))})")
        return check
    of = f"the checkpoint of {cp.time}"
    if len(entries) < cp.size:
        problem("checkpoint_truncated", f"the log has {len(entries)} entries but {of} covers {cp.size}: "
                                        f"entries were removed since")
        return check
    prefix = entries[:cp.size]
    at_size = prefix[-1]
    if at_size.hash != cp.head:
        problem("checkpoint_rewritten", f"entry {cp.size} has hash {at_size.hash[:16]}… but {of} recorded "
                                        f"{cp.head[:16]}…: the log was re-written after the checkpoint")
        return check
    broken = verify_chain(prefix, cp.head)
    if broken:
        problem("checkpoint_chain", f"the first {cp.size} entries end at the checkpoint's head but are not a valid "
                                    f"chain ({broken[0].message})")
        return check
    if cp.merkle_root is not None:
        root = entries_root([e.hash for e in prefix])
        if root != cp.merkle_root:
            problem("checkpoint_merkle", f"the Merkle root of the first {cp.size} entries is {root[:16]}… but {of} "
                                         f"recorded {cp.merkle_root[:16]}…")
    return check


def read_checkpoint(path: str | Path) -> Checkpoint:
    return parse_checkpoint(read_capped(path, CHECKPOINT_FILE_LIMIT, "checkpoint file"), str(path))

