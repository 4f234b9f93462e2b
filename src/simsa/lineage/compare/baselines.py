"""The naive statistics people quote (raw cosine of norm gains, weight-std profiles), read from the two sides and
reported beside their corrected versions as "not evidence" (see ``simsa.lineage.stats.naive``).
"""


from __future__ import annotations

import numpy as np

from simsa.errors import CheckpointError
from simsa.lineage.compare.sides import Side
from simsa.lineage.model.units import read_units
from simsa.lineage.stats import naive

MAX_NAIVE_GAINS = 256


def _norm_gains(side: Side) -> dict[tuple, str]:
    return {(t.role.stack, t.role.detail, t.role.layer): t.name for t in side.amap.tensors
            if t.role.kind == "norm" and len(t.shape) == 1 and not t.name.endswith("bias")}


def _std_profile(side: Side) -> list[float]:
    """Per-layer std of sampled query rows (a naive statistic, reported as such)."""
    if side.fingerprint is not None:
        return list(side.fingerprint.meta.get("std_profile", []))
    qs = sorted(((t.role.layer, t) for t in side.amap.tensors
                 if t.role.kind == "attn.q" and t.role.stack == "text" and t.role.layer is not None
                 and t.residual_axis is not None), key=lambda x: x[0])
    seen, out = set(), []
    for layer, t in qs:
        if layer in seen:
            continue
        seen.add(layer)
        n = t.n_units
        rows = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(np.int64))
        out.append(float(read_units(side.ckpt, [t], rows).std(dtype=np.float64)))
    return out


def naive_inputs(side: Side) -> tuple[dict[str, np.ndarray], list[float]]:
    """The norm gains and std profile the naive section needs (what a fingerprint keeps of them)."""
    names = sorted(_norm_gains(side).items(), key=lambda kv: repr(kv[0]))[:MAX_NAIVE_GAINS]
    return {name: side.ckpt.read(name) for _, name in names}, _std_profile(side)


def naive_baselines(cand: Side, ref: Side) -> dict:
    nc, nr = _norm_gains(cand), _norm_gains(ref)
    gains = []
    for key in sorted(set(nc) & set(nr), key=repr)[:MAX_NAIVE_GAINS]:
        try:
            a, b = cand.ckpt.read(nc[key]), ref.ckpt.read(nr[key])
        except CheckpointError:  # a fingerprint keeps a bounded number of gains
            continue
        if a.shape == b.shape:
            gains.append((nc[key], a, b))
    return naive.naive_section(gains, _std_profile(cand), _std_profile(ref))
