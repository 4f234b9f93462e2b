"""Tensor digests: the shared sha256 scheme every reader's `digest` follows, and the cheap keys of the identity check.

Rounding to bf16 before hashing means a dtype cast cannot hide a copied tensor.
"""


from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from simsa.errors import CheckpointError
from simsa.lineage.formats.dtypes import bf16_bits, round_to_bf16
from simsa.lineage.formats.reader import PRECISIONS, TensorReader

_QUICK_FULL_ELEMENTS = 2 << 20  # tensors up to this many elements are digested whole in the identity check


MIN_DISTINCT_VALUES = 16


# Stored dtypes whose bytes a float32 copy determines, when every value round-trips (see `values_digest`).
_EXACT_FROM_FLOAT32 = ("F32", "F16", "BF16")


def _bf16_hash(values: np.ndarray) -> str:
    rounded = round_to_bf16(np.asarray(values, dtype=np.float32))
    return hashlib.sha256(np.ascontiguousarray(rounded).tobytes()).hexdigest()


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
    informative = np.unique(values).size >= MIN_DISTINCT_VALUES
    return (shape, whole, _bf16_hash(values)), informative, whole
