"""The audit log: a hash chain over every write (chain, log), signed checkpoints that anchor it outside the
database (checkpoint, keys, merkle) and the readable trail (trail).

Names load on first use, so code that only appends to the log (every write command) does not pay for importing
the cryptography package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_SOURCES = {
    "GENESIS": "chain", "Entry": "chain", "Problem": "chain", "canonical": "chain", "entry_hash": "chain",
    "verify_chain": "chain",
    "merkle_root": "merkle", "entries_root": "merkle", "leaf_hash": "merkle", "node_hash": "merkle",
    "PublicKey": "keys", "fingerprint": "keys", "generate_key": "keys", "public_key_of": "keys",
    "load_private_key": "keys", "write_private_key": "keys", "write_public_key": "keys", "read_pin": "keys",
    "parse_public_key": "keys", "parse_pin": "keys",
    "SCHEMA": "checkpoint", "Checkpoint": "checkpoint", "CheckpointCheck": "checkpoint",
    "make_checkpoint": "checkpoint", "parse_checkpoint": "checkpoint", "read_checkpoint": "checkpoint",
    "check_checkpoint": "checkpoint",
    "Trail": "trail", "TrailFilter": "trail", "TrailItem": "trail", "build_trail": "trail", "summarise": "trail",
    "parse_instant": "trail", "zone": "trail",
}

__all__ = [
    "GENESIS", "SCHEMA", "Checkpoint", "CheckpointCheck", "Entry", "Problem", "PublicKey", "Trail", "TrailFilter",
    "TrailItem", "build_trail", "canonical", "check_checkpoint", "entries_root", "entry_hash", "fingerprint",
    "generate_key", "leaf_hash", "load_private_key", "make_checkpoint", "merkle_root", "node_hash",
    "parse_checkpoint", "parse_instant", "parse_pin", "parse_public_key", "public_key_of", "read_checkpoint",
    "read_pin", "summarise", "verify_chain", "write_private_key", "write_public_key", "zone",
]


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from simsa.audit.chain import GENESIS, Entry, Problem, canonical, entry_hash, verify_chain
    from simsa.audit.checkpoint import (
        SCHEMA,
        Checkpoint,
        CheckpointCheck,
        check_checkpoint,
        make_checkpoint,
        parse_checkpoint,
        read_checkpoint,
    )
    from simsa.audit.keys import (
        PublicKey,
        fingerprint,
        generate_key,
        load_private_key,
        parse_pin,
        parse_public_key,
        public_key_of,
        read_pin,
        write_private_key,
        write_public_key,
    )
    from simsa.audit.merkle import entries_root, leaf_hash, merkle_root, node_hash
    from simsa.audit.trail import Trail, TrailFilter, TrailItem, build_trail, parse_instant, summarise, zone
