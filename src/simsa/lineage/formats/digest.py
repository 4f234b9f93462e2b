"""Tensor digests: the shared sha256 scheme every reader's `digest` follows, and the cheap keys of the identity check.

Rounding to bf16 before hashing means a dtype cast cannot hide a copied tensor.
"""


from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from simsa.errors import CheckpointError
from simsa.lineage.formats.dtypes import bf16_bits, round_to_bf16
from simsa.lineage.formats.reader import PRECISIONS, TensorReader

_QUICK_FULL_ELEMENTS = 2 << 20  # tensors up to this many elements are digested whole in the identity check


MIN_DISTINCT_VALUES = 16


# Stored dtypes whose bytes a float32 copy determines, when every value round-trips (see `values_digest`).
_EXACT_FROM_FLOAT32 = ("F32", "F16", "BF16")


def _bf16_hash(values: np.ndarray) -> str:
    rounded = np.ascontiguousarray(round_to_bf16(np.asarray(values, dtype=np.float32)))
    return hashlib.sha256(rounded.data).hexdigest()  # the array's bytes, without copying them


def _stored_bytes(values: np.ndarray, dtype: str) -> bytes | None:
    """The bytes a tensor of `dtype` holding these float32 values has on disk, or None when they do not fit it."""
    if dtype == "F32":
        return values.astype("<f4").tobytes()
    if dtype == "F16":
        half = values.astype("<f2")
        same = np.array_equal(half.astype(np.float32), values, equal_nan=True)
        return half.tobytes() if same else None
    if dtype == "BF16":
        same = np.array_equal(round_to_bf16(values), values, equal_nan=True)
        return bf16_bits(values).tobytes() if same else None
    return None


def values_digest(label: str, values: np.ndarray, dtype: str, precision: str = "exact") -> str:
    """`TensorReader.digest` of a tensor held in memory as float32, for readers that keep values, not bytes.

    "bf16" hashes the shape and the values rounded to bfloat16, as every reader does. "exact" needs the stored bytes,
    which float32 values determine only for F32, F16 and BF16 tensors whose values all fit that dtype; anything else
    is refused (`CheckpointError`) rather than answered with a digest that could not match the original.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    values = np.ascontiguousarray(values, dtype=np.float32)
    h = hashlib.sha256()
    if precision == "bf16":
        h.update(b"simsa-bf16-v1\0" + json.dumps(list(values.shape)).encode() + b"\0")
        h.update(bf16_bits(values.reshape(-1)).tobytes())
        return h.hexdigest()
    stored = _stored_bytes(values, dtype) if dtype in _EXACT_FROM_FLOAT32 else None
    if stored is None:
        raise CheckpointError(f"{label}: the exact digest of a {dtype} tensor cannot be rebuilt from its float32 "
                              "values; only the bf16 digest is available")
    h.update(b"simsa-exact-v1\0" + json.dumps([dtype, list(values.shape)]).encode() + b"\0")
    h.update(stored)
    return h.hexdigest()


QUICK_KEY_THREADS = 2  # tensors keyed at once: reading, decoding and hashing release the GIL


def quick_keys(ckpt: TensorReader, names: Sequence[str]) -> Iterator[tuple[tuple, bool, bool]]:
    """`quick_key` of each name, in order, computed on a few threads.

    The identity check and a fingerprint key every small tensor whole (all the experts of a MoE: 31 GB read and
    hashed for a 30B), so the work is spread over the cores; the order of the results does not depend on timing. A
    remote reader keys one tensor at a time, so that two threads never fetch the same block.
    """
    if ckpt.io_stats().remote:  # over HTTP, neighbouring small tensors share cached blocks: one at a time, in order
        yield from (quick_key(ckpt, name) for name in names)
        return
    pool = ThreadPoolExecutor(max_workers=QUICK_KEY_THREADS, thread_name_prefix="simsa-digest")
    try:
        yield from pool.map(lambda name: quick_key(ckpt, name), names)
    finally:  # a failed tensor (or a caller that stops early) cancels what has not started
        pool.shutdown(wait=True, cancel_futures=True)


def quick_key(ckpt: TensorReader, name: str) -> tuple[tuple, bool, bool]:
    """Shape plus a bf16-precision digest of the tensor or of a few rows; informative; whether it was whole.

    Equal keys are necessary for identical tensors and cheap to compute; for a tensor digested whole they are also
    sufficient. Whether to digest whole depends on the shape only, so a tensor and its dtype cast take the same path.
    A tensor with fewer than ``MIN_DISTINCT_VALUES`` distinct values in the sample (zeros, ones, an untouched bias) is
    equal in unrelated models too, so its identity is no evidence of copying.
    """
    shape = tuple(ckpt.shape(name))
    whole = math.prod(shape) <= _QUICK_FULL_ELEMENTS or len(shape) not in (2, 3)
    if whole:
        values = ckpt.read(name, allow_integer=True)
    else:
        expert = 0 if len(shape) == 3 else None
        n_rows = shape[1] if expert is not None else shape[0]
        rows = np.unique(np.linspace(0, n_rows - 1, 8).astype(np.int64))
        values = ckpt.read_index(name, rows, axis=0, expert=expert, allow_integer=True)
    return (shape, whole, _bf16_hash(values)), _informative(values), whole


def _informative(values: np.ndarray) -> bool:
    """Whether the values hold at least ``MIN_DISTINCT_VALUES`` distinct numbers.

    A prefix with that many settles it (the whole has at least as many as any part), so sorting all of a tensor is
    needed only for the rare degenerate one; sorting every expert of a large MoE whole cost minutes.
    """
    flat = values.reshape(-1)
    if np.unique(flat[:4096]).size >= MIN_DISTINCT_VALUES:
        return True
    return bool(np.unique(flat).size >= MIN_DISTINCT_VALUES)
