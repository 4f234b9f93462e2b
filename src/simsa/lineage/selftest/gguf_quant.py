"""A numpy encoder for ggml's Q4_K blocks, which the `gguf` package can decode but not produce.

The lineage self-test and the GGUF tests need Q4_K files (the most common llama.cpp quantisation) without llama.cpp.
Scale choice is the simple one: per 32-value sub-block, a min/max affine map onto 0..15 (the minimum clamped to at
most zero, as ggml does), the eight sub-block scales and offsets quantised to 6 bits against the block's fp16 ``d``
and ``dmin``. ggml's optimised search gives slightly smaller errors; the byte layout is exactly ``block_q4_K``.
"""

from __future__ import annotations

import numpy as np

QK_K = 256  # values per super-block
SUB = 32  # values per sub-block
Q4_K_BLOCK_BYTES = 144  # 2 (d) + 2 (dmin) + 12 (scales) + 128 (4-bit quants)


def pack_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Pack [n, 8] 6-bit scales and mins into ggml's 12-byte ``scales`` field (see ``get_scale_k4``)."""
    sc = sc.astype(np.uint8)
    mn = mn.astype(np.uint8)
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 0x3F) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (mn[:, 0:4] & 0x3F) | ((mn[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mn[:, 4:8] & 0x0F) << 4)
    return out


def quantize_q4_k(values: np.ndarray) -> np.ndarray:
    """Q4_K bytes of a float array whose last axis is a multiple of 256: shape ``[..., last / 256 * 144]`` uint8."""
    x = np.asarray(values, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] % QK_K:
        raise ValueError(f"Q4_K needs a last axis that is a multiple of {QK_K}, got shape {list(x.shape)}")
    lead = x.shape[:-1]
    blocks = x.reshape(-1, QK_K // SUB, SUB)  # [n, 8, 32]
    n = blocks.shape[0]
    lo = np.minimum(blocks.min(axis=2), 0.0)  # ggml keeps the offset non-negative: min clamped to <= 0
    hi = blocks.max(axis=2)
    scale = (hi - lo) / 15.0  # [n, 8]
    offset = -lo  # >= 0
    d = (scale.max(axis=1) / 63.0).astype("<f2")  # [n]
    dmin = (offset.max(axis=1) / 63.0).astype("<f2")
    d32, dmin32 = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.rint(scale / d32), 0.0)
        mn = np.where(dmin32 > 0, np.rint(offset / dmin32), 0.0)
    sc = np.clip(sc, 0, 63)
    mn = np.clip(mn, 0, 63)
    eff_scale = (d32 * sc)[:, :, None]  # what the decoder will multiply by
    eff_min = (dmin32 * mn)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(eff_scale > 0, np.rint((blocks + eff_min) / eff_scale), 0.0)
    q = np.clip(q, 0, 15).astype(np.uint8).reshape(n, 4, 2, SUB)  # pairs of sub-blocks share 32 bytes
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(n, 128)
    out = np.concatenate(
        [d.reshape(n, 1).view(np.uint8), dmin.reshape(n, 1).view(np.uint8), pack_scales(sc, mn), qs], axis=1
    )
    return out.reshape(*lead, (x.shape[-1] // QK_K) * Q4_K_BLOCK_BYTES)
