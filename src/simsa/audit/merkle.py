"""The Merkle tree hash of RFC 9162 (Certificate Transparency 2.0, section 2.1.1) over the audit entries' hashes.

A checkpoint carries this root beside the head of the hash chain: the chain already binds every entry, but the
root is the form transparency logs publish, so that later tools can prove inclusion and consistency with the
standard O(log n) proofs. Leaves are the entries' SHA-256 hashes as 32 raw bytes, in log order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || d): the 0x00 prefix keeps a leaf from ever equalling an inner node."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 1:
        return leaf_hash(leaves[lo])
    k = _split(n)
    return node_hash(_root(leaves, lo, lo + k), _root(leaves, lo + k, hi))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]): SHA-256 of nothing for no leaves; otherwise the left subtree is the largest power of two."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _root(leaves, 0, len(leaves))


def entries_root(hashes: Sequence[str]) -> str:
    """The root, as hex, over entry hashes given as hex (as the log stores them)."""
    return merkle_root([bytes.fromhex(h) for h in hashes]).hex()
