"""Turn raw criterion scores into fractions of the criterion's points (0–1), across the competing teams.

All functions work on arrays whose last axis is the team axis, so the same code serves the decision itself and
the thousands of resampled decisions of the robustness analysis. NaN marks a missing score; it normalises to 0
and does not influence the other teams' normalisation.
"""

from __future__ import annotations

import numpy as np

from simsa.program.schema import Criterion


def _masked(values: np.ndarray, fill: float) -> np.ndarray:
    return np.where(np.isnan(values), fill, values)


def absolute(values: np.ndarray, low: float, high: float, higher_is_better: bool) -> np.ndarray:
    frac = (values - low) / (high - low)
    frac = np.clip(frac, 0.0, 1.0)
    return frac if higher_is_better else 1.0 - frac


def relative_to_best(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Score divided by the best score (or best divided by score when lower is better)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if higher_is_better:
            best = np.nanmax(_masked(values, -np.inf), axis=-1, keepdims=True)
            frac = np.where(best > 0, values / best, 0.0)
        else:
            best = np.nanmin(_masked(values, np.inf), axis=-1, keepdims=True)
            frac = np.where(values > 0, best / values, 0.0)
    return np.clip(frac, 0.0, 1.0)


def minmax(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Best team gets 1, worst 0; if all teams are equal everyone gets 1."""
    hi = np.max(_masked(values, -np.inf), axis=-1, keepdims=True)
    lo = np.min(_masked(values, np.inf), axis=-1, keepdims=True)
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(span > 0, (values - lo) / span, 1.0)
    return frac if higher_is_better else np.where(span > 0, 1.0 - frac, 1.0)


def rank(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """(n − rank) / (n − 1) with average ranks for ties; the best gets 1, the last 0."""
    from scipy.stats import rankdata  # scipy is slow to import; only rank normalisation needs it

    sign = -1.0 if higher_is_better else 1.0
    present = ~np.isnan(values)
    keyed = np.where(present, sign * values, np.inf)
    ranks = rankdata(keyed, axis=-1, method="average")
    n = present.sum(axis=-1, keepdims=True).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(n > 1, (n - ranks) / (n - 1), 1.0)
    return frac


def fractions(crit: Criterion, values: np.ndarray) -> np.ndarray:
    """Normalise one leaf's raw scores (last axis = teams) to fractions of its points; missing → 0."""
    method = crit.norm
    if method == "absolute":
        low, high = crit.raw_range or (0.0, 1.0)
        frac = absolute(values, low, high, crit.higher_is_better)
    elif method == "relative_to_best":
        frac = relative_to_best(values, crit.higher_is_better)
    elif method == "minmax":
        frac = minmax(values, crit.higher_is_better)
    elif method == "rank":
        frac = rank(values, crit.higher_is_better)
    else:  # pragma: no cover - the schema admits no other value
        raise ValueError(f"unknown normalisation {method!r}")
    return np.where(np.isnan(values), 0.0, frac)
