"""Evidence beyond weights: what a team commits to at a stage's start, checked against what it submits later."""

from simsa.evidence.commitments import (
    KINDS,
    CheckLine,
    Committed,
    Digest,
    FileDigest,
    Spec,
    check,
    check_one,
    digest,
    parse_spec,
    total_bytes,
    tree_sha256,
)

__all__ = [
    "KINDS",
    "CheckLine",
    "Committed",
    "Digest",
    "FileDigest",
    "Spec",
    "check",
    "check_one",
    "digest",
    "parse_spec",
    "total_bytes",
    "tree_sha256",
]
