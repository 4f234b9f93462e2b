"""Writing safetensors files tensor by tensor (numpy only), for the lineage self-test's disguised copies.

The header needs every tensor's dtype, shape and byte offsets before the data, and all of those are known before any
tensor is produced, so a model is written with one tensor in memory at a time. ``safetensors.numpy`` cannot write
bfloat16 or 8-bit floats (numpy has no such dtypes); this writer stores their raw codes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsa.lineage.formats.dtypes import FP8_TABLES, STORAGE, bf16_bits

ALIGN = 8  # the header is padded so tensor data starts 8-byte aligned, as the reference writer does


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # safetensors dtype code, e.g. "BF16"
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * STORAGE[self.dtype].itemsize


def encode(values: np.ndarray, dtype: str) -> np.ndarray:
    """Float32 values as stored elements of ``dtype`` (round to nearest; 8-bit floats saturate at their maximum)."""
    x = np.asarray(values, dtype=np.float32)
    if dtype == "F32":
        return x
    if dtype == "F16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16)
    if dtype == "BF16":
        return bf16_bits(x).astype(np.uint16)
    if dtype in ("F8_E4M3", "F8_E5M2"):
        return _encode_fp8(x, dtype)
    raise ValueError(f"cannot encode {dtype}")


def _encode_fp8(x: np.ndarray, dtype: str) -> np.ndarray:
    """Nearest finite 8-bit float code for each value."""
    table = FP8_TABLES[dtype].astype(np.float64)
    codes = np.arange(256)
    finite = np.isfinite(table)
    order = np.argsort(table[finite], kind="stable")
    values, which = table[finite][order], codes[finite][order]
    values, first = np.unique(values, return_index=True)  # +0 and -0 collapse; keep one code each
    which = which[first]
    flat = np.clip(x.astype(np.float64).ravel(), values[0], values[-1])
    hi = np.clip(np.searchsorted(values, flat), 1, len(values) - 1)
    lo = hi - 1
    pick = np.where(np.abs(flat - values[lo]) <= np.abs(values[hi] - flat), lo, hi)
    return which[pick].astype(np.uint8).reshape(x.shape)


def write_safetensors(path: str | os.PathLike[str], specs: Sequence[TensorSpec],
                      produce: Callable[[TensorSpec], np.ndarray], metadata: dict[str, str] | None = None) -> int:
    """Write ``specs`` in order, asking ``produce`` for each tensor's stored elements; returns the bytes written."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for spec in specs:
        header[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape), "data_offsets": [offset,
                                                                                            offset + spec.nbytes]}
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-(8 + len(raw)) % ALIGN)
    tmp = Path(str(path) + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        for spec in specs:
            data = np.ascontiguousarray(produce(spec))
            if data.dtype != STORAGE[spec.dtype] or tuple(data.shape) != spec.shape:
                raise ValueError(f"{spec.name}: produced {data.dtype}{list(data.shape)}, expected "
                                 f"{STORAGE[spec.dtype]}{list(spec.shape)}")
            fh.write(data.tobytes())
    os.replace(tmp, path)  # a crash leaves a .partial file, never a truncated model
    return 8 + len(raw) + offset
