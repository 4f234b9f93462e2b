"""P-value arithmetic in log space.

Lineage evidence is often overwhelming (a copied layer gives p far below 1e-300), so every p-value here is carried as
``log10_p`` (≤ 0) and never exponentiated where it could underflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special, stats

LN10 = math.log(10.0)


def t_log10_sf(t: float, dof: int) -> float:
    """log10 P(T ≥ t) for Student's t with ``dof`` degrees of freedom."""
    if math.isnan(t):
        return 0.0
    if math.isinf(t):
        return 0.0 if t < 0 else -math.inf
    return min(0.0, float(stats.t.logsf(t, dof)) / LN10)


def sidak_log10(log10_p: float, k: int) -> float:
    """The Šidák correction 1 − (1 − p)^k of the smallest of k independent p-values, in log10.

    Exact where it matters: uniform under the null when the k p-values are independent and uniform, so a corrected
    minimum is again a proper p-value (and, unlike Bonferroni, not conservative in a way a KS test would flag).
    """
    if k <= 1 or log10_p == 0.0:
        return min(0.0, log10_p)
    if math.isinf(log10_p):
        return log10_p
    ln_p = log10_p * LN10
    if ln_p < -30.0:  # 1 − (1 − p)^k = k·p (1 + O(k·p))
        return min(0.0, log10_p + math.log10(k))
    val = -math.expm1(k * math.log1p(-math.exp(ln_p)))
    return min(0.0, math.log10(val)) if val > 0 else log10_p + math.log10(k)


def monte_carlo_p(observed: float, null: np.ndarray) -> float:
    """The exact randomisation p-value (1 + #{null ≥ observed}) / (B + 1)."""
    return float((1 + np.count_nonzero(null >= observed)) / (null.size + 1))


def cauchy_log10(log10_ps: Sequence[float]) -> float:
    """The Cauchy combination (ACAT) of p-values that may depend on each other arbitrarily, in log10.

    T = mean tan((½ − p_i)π) is standard Cauchy under the null *whatever the dependence between the p_i* (Liu & Xie,
    2020), and its tail is what matters: p = ½ − arctan(T)/π. The layers of one component share one coordinate
    permutation per draw, so their p-values are dependent and Fisher's χ² combination (which assumes independence)
    would be anti-conservative; this is not. Tiny p-values are handled through tan((½ − p)π) = cot(πp) ≈ 1/(πp),
    in log space.
    """
    vals = [min(0.0, float(v)) for v in log10_ps]
    if not vals:
        return 0.0
    if any(math.isinf(v) for v in vals):
        return -math.inf
    n = len(vals)
    tiny = [v for v in vals if v < -8.0]  # cot(πp) = 1/(πp) − πp/3 − …: exact to float precision here
    rest = [10.0 ** v for v in vals if v >= -8.0]
    # Large p-values near 1 push T towards −∞ without bound; clip them as the original method does.
    moderate = sum(math.tan((0.5 - min(p, 1.0 - 1e-15)) * math.pi) for p in rest)
    if tiny:
        log_big = float(special.logsumexp([-(v * LN10) for v in tiny])) - math.log(math.pi)  # ln Σ 1/(πp)
        ratio = moderate * math.exp(-log_big) if log_big < 700 else 0.0
        if 1.0 + ratio <= 0.0:
            return 0.0
        log_t = log_big + math.log1p(ratio) - math.log(n)
        if log_t > 30.0:  # p = arctan tail = 1/(πT)(1 + O(T⁻²))
            return min(0.0, (-log_t - math.log(math.pi)) / LN10)
        t = math.exp(log_t)
    else:
        t = moderate / n
    p = 0.5 - math.atan(t) / math.pi
    if t > 1e6:
        p = 1.0 / (math.pi * t)
    return min(0.0, math.log10(p)) if p > 0 else -math.inf
