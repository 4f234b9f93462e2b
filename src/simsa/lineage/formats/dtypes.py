"""Safetensors dtypes decoded to float32 with numpy alone (no torch).

Lineage forensics must read checkpoints from anyone, so decoding does not depend on an ML framework being installed
and every bit pattern is decoded from the published layout: BF16 is the high half of an IEEE float32, the 8-bit float
formats go through 256-entry lookup tables built from their sign/exponent/mantissa layout here (and checked against
torch's own casts in the tests).
"""

from __future__ import annotations

import math

import numpy as np

# Bytes per element of every dtype this reader decodes.
ITEMSIZE: dict[str, int] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "I16": 2,
    "I32": 4,
    "I64": 8,
    "U8": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
    "BOOL": 1,
}

# How the bytes are viewed in numpy (little-endian as the format requires). BF16 and the 8-bit floats have no numpy
# dtype, so they are viewed as unsigned integers and decoded by `decode`. BOOL is viewed as uint8 so that a hostile
# byte other than 0/1 cannot create an invalid numpy bool.
STORAGE: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F8_E4M3": np.dtype("u1"),
    "F8_E5M2": np.dtype("u1"),
    "F8_E4M3FNUZ": np.dtype("u1"),
    "F8_E5M2FNUZ": np.dtype("u1"),
    "F8_E8M0": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"),
    "U16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
    "BOOL": np.dtype("u1"),
}

FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"})
FP8_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"})
INTEGER_DTYPES = frozenset({"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL"})

# Dtypes the safetensors format knows but this reader does not decode (sub-byte packing, complex numbers). They get
# a "not supported" message instead of "unknown".
KNOWN_UNSUPPORTED = frozenset({"F4", "F6_E2M3", "F6_E3M2", "C64", "C128"})


def _fp8_table(exp_bits: int, man_bits: int, bias: int, *, kind: str) -> np.ndarray:
    """Value of every 8-bit code of a sign/exponent/mantissa float, computed from the layout.

    kind: "ieee" (top exponent is inf/NaN, like E5M2), "fn" (no infinities, only S.1111.111 is NaN, like E4M3FN) or
    "fnuz" (no infinities, no negative zero, the code 0x80 is the only NaN).
    """
    table = np.empty(256, dtype=np.float64)
    top = (1 << exp_bits) - 1
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        exponent = (code >> man_bits) & top
        mantissa = code & ((1 << man_bits) - 1)
        if exponent == 0:
            value = sign * mantissa * 2.0 ** (1 - bias - man_bits)
        else:
            value = sign * (1.0 + mantissa / (1 << man_bits)) * 2.0 ** (exponent - bias)
        if kind == "ieee" and exponent == top:
            value = sign * np.inf if mantissa == 0 else math.copysign(math.nan, sign)
        elif kind == "fn" and exponent == top and mantissa == (1 << man_bits) - 1:
            value = math.copysign(math.nan, sign)  # NaN keeps its sign bit, as torch's cast does
        elif kind == "fnuz" and code == 0x80:
            value = math.nan  # the "negative zero" code is the (unsigned) NaN
        table[code] = value
    out = table.astype(np.float32)
    out.flags.writeable = False
    return out


def _e8m0_table() -> np.ndarray:
    """E8M0 (MX scale format): 2**(code-127), 0xFF is NaN; no sign, no zero."""
    table = np.array([2.0 ** (code - 127) for code in range(255)] + [np.nan], dtype=np.float64).astype(np.float32)
    table.flags.writeable = False
    return table


FP8_TABLES: dict[str, np.ndarray] = {
    "F8_E4M3": _fp8_table(4, 3, 7, kind="fn"),
    "F8_E5M2": _fp8_table(5, 2, 15, kind="ieee"),
    "F8_E4M3FNUZ": _fp8_table(4, 3, 8, kind="fnuz"),
    "F8_E5M2FNUZ": _fp8_table(5, 2, 16, kind="fnuz"),
    "F8_E8M0": _e8m0_table(),
}


def decode(raw: np.ndarray, dtype: str, *, out: np.ndarray | None = None, allow_integer: bool = False) -> np.ndarray:
    """Decode an array of stored elements (viewed with `STORAGE[dtype]`) to float32.

    Integer and bool tensors are buffers (position ids, masks), not weights, so converting them is opt-in:
    without `allow_integer` they raise ValueError. `out`, when given, must have raw's shape; it is filled and returned,
    which lets callers decode chunk by chunk into a preallocated result.
    """
    if dtype not in STORAGE:
        raise ValueError(f"unknown dtype {dtype!r}")
    if dtype in INTEGER_DTYPES and not allow_integer:
        raise ValueError(f"dtype {dtype} is an integer type; pass allow_integer=True to convert it to float32")
    raw = np.asarray(raw)
    if raw.dtype != STORAGE[dtype]:
        raise ValueError(f"raw array has numpy dtype {raw.dtype}, expected {STORAGE[dtype]} for {dtype}")
    if out is None:
        out = np.empty(raw.shape, dtype=np.float32)
    elif out.shape != raw.shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 with shape {raw.shape}")
    if dtype in FP8_TABLES:
        np.take(FP8_TABLES[dtype], raw, out=out)
    elif dtype == "BF16":
        if out.flags.c_contiguous:
            bits = out.view(np.uint32)
            bits[...] = raw
            bits <<= 16
        else:
            out[...] = (raw.astype(np.uint32) << 16).view(np.float32)
    elif dtype == "BOOL":
        np.not_equal(raw, 0, out=out, casting="unsafe")
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # F64 beyond float32 range becomes +-inf, as a cast does
            out[...] = raw
    return out


_QUIET_NAN = np.uint32(0x7FC00000)


def round_to_bf16(values: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), returned as float32.

    Used for "equal at bf16 precision" checks: a float32 tensor and its bf16 cast round to the same values. Matches
    torch's float32 -> bfloat16 cast, including overflow to infinity. Every NaN becomes the one quiet NaN 0x7FC00000
    (torch's cast yields other NaN bit patterns), so NaN stays NaN and any two NaNs hash alike.
    """
    x = np.ascontiguousarray(values, dtype=np.float32)
    bits = x.view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    rounded &= np.uint32(0xFFFF0000)
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = _QUIET_NAN
    return rounded.view(np.float32)


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """The 16-bit bfloat16 codes of `round_to_bf16(values)`, little-endian uint16 (for hashing)."""
    rounded = round_to_bf16(values).view(np.uint32)
    return (rounded >> np.uint32(16)).astype("<u2")
