"""Cheap tensor digests for the identity check: shape plus a bf16-precision hash of the tensor or of a few rows.

Rounding to bf16 before hashing means a dtype cast cannot hide a copied tensor.
"""


from __future__ import annotations

import hashlib
import math

import numpy as np

from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.dtypes import round_to_bf16

_QUICK_FULL_ELEMENTS = 2 << 20  # tensors up to this many elements are digested whole in the identity check


MIN_DISTINCT_VALUES = 16


def _bf16_hash(values: np.ndarray) -> str:
    rounded = round_to_bf16(np.asarray(values, dtype=np.float32))
    return hashlib.sha256(np.ascontiguousarray(rounded).tobytes()).hexdigest()


def quick_key(ckpt: Checkpoint, name: str) -> tuple[tuple, bool, bool]:
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
