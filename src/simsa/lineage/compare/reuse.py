"""Component reuse: how much of a reused part (a vision tower, a projector, an embedding) was changed.

A unit test says *whether* a component descends from the reference; reuse rules also ask *how*: taken unchanged
(frozen), lightly tuned, or trained further. Tensors are paired by role (stack, kind, layer, expert, detail) and
shape, and compared on a sample of rows: relative difference ``‖a − b‖ / ‖b‖``. The share of tensors within 1 % and
within 10 % of their reference counterpart is reported beside the share bit- or bf16-identical.
"""

from __future__ import annotations

import numpy as np

from simsa.lineage.formats.reader import TensorReader
from simsa.lineage.model.roles import ArchitectureMap

NEAR = 0.01  # within 1 %: "near-identical"
LIGHT = 0.10  # within 10 %: "lightly tuned"
SAMPLE_ROWS = 64
FROZEN, LIGHTLY_TUNED, TUNED = "reused unchanged", "reused, lightly tuned", "derived (trained further)"


def _role_keys(amap: ArchitectureMap) -> dict[tuple, str]:
    """Role key → tensor name, for roles held by exactly one tensor."""
    seen: dict[tuple, list[str]] = {}
    for t in amap.tensors:
        r = t.role
        key = (r.stack, r.kind, r.layer, r.expert, r.detail, t.unit_range, tuple(t.shape), t.name.endswith("bias"))
        names = seen.setdefault(key, [])
        if t.name not in names:
            names.append(t.name)
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


def _sample(ckpt: TensorReader, name: str) -> np.ndarray:
    shape = tuple(ckpt.shape(name))
    if len(shape) == 2 and shape[0] > SAMPLE_ROWS:
        rows = np.unique(np.linspace(0, shape[0] - 1, SAMPLE_ROWS).astype(np.int64))
        return np.asarray(ckpt.read_index(name, rows, axis=0), dtype=np.float64)
    return np.asarray(ckpt.read(name), dtype=np.float64)


def relative_differences(cand_ckpt: TensorReader, cand_map: ArchitectureMap, ref_ckpt: TensorReader,
                         ref_map: ArchitectureMap) -> dict[str, float]:
    """Candidate tensor → relative difference from its role-matched reference tensor (sampled rows)."""
    ref_keys = _role_keys(ref_map)
    out: dict[str, float] = {}
    for key, name in _role_keys(cand_map).items():
        other = ref_keys.get(key)
        if other is None:
            continue
        try:
            a, b = _sample(cand_ckpt, name), _sample(ref_ckpt, other)
        except Exception:
            continue
        if a.shape != b.shape:
            continue
        a, b = np.nan_to_num(a, posinf=0.0, neginf=0.0), np.nan_to_num(b, posinf=0.0, neginf=0.0)  # as read_units
        norm = float(np.linalg.norm(b))
        diff = float(np.linalg.norm(a - b))
        if norm > 0 and np.isfinite(diff / norm):
            out[name] = diff / norm
        elif diff == 0:
            out[name] = 0.0
    return out


def reuse_summary(tensors: set[str], identical: set[str], diffs: dict[str, float]) -> dict:
    """How a component was reused: shares of its tensors identical, near-identical and lightly changed."""
    n = len(tensors)
    paired = [diffs[t] for t in tensors if t in diffs]
    near = sum(1 for t in tensors if t in identical or diffs.get(t, np.inf) <= NEAR)
    light = sum(1 for t in tensors if t in identical or diffs.get(t, np.inf) <= LIGHT)
    return {
        "tensors": n,
        "paired": len(paired),
        "identical_share": round(len(identical & tensors) / n, 4) if n else 0.0,
        "near_identical_share": round(near / n, 4) if n else 0.0,
        "within_10pct_share": round(light / n, 4) if n else 0.0,
        "median_relative_difference": round(float(np.median(paired)), 5) if paired else None,
        "max_relative_difference": round(float(np.max(paired)), 5) if paired else None,
    }


def reuse_label(verdict: str, summary: dict) -> str | None:
    """Frozen / lightly tuned / trained further, for a component found identical or derived."""
    if verdict not in ("identical", "derived"):
        return None
    if summary["identical_share"] >= 1.0:
        return FROZEN
    if summary["within_10pct_share"] >= 0.9:
        return LIGHTLY_TUNED
    return TUNED
