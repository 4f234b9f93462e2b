"""The statistics people quote, beside their corrected versions — labelled "not evidence".

Norm gains are positive vectors near 1, so the raw cosine of two unrelated models' gains is close to 1 (the 2026
accusation rested on exactly this). Centring removes the shared offset; even then a gain vector has no units to match
and no null distribution, so neither number decides anything. Per-layer weight-std profiles are shaped by the
initialiser and the depth, not by descent, and correlate across unrelated models of one design.
"""

from __future__ import annotations

import numpy as np

NOT_EVIDENCE = "not evidence"


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def gain_similarity(cand: np.ndarray, ref: np.ndarray) -> dict:
    """Raw cosine (the naive number) and centred cosine (Pearson correlation) of two gain vectors."""
    a = np.asarray(cand, dtype=np.float64).ravel()
    b = np.asarray(ref, dtype=np.float64).ravel()
    return {"raw_cosine": round(_cos(a, b), 6), "centred_cosine": round(_cos(a - a.mean(), b - b.mean()), 6)}


def profile_correlation(cand: list[float], ref: list[float]) -> float | None:
    """Pearson correlation of two per-layer profiles over their common depth."""
    n = min(len(cand), len(ref))
    if n < 3:
        return None
    a, b = np.asarray(cand[:n]), np.asarray(ref[:n])
    if a.std() == 0 or b.std() == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 6)


def naive_section(gains: list[tuple[str, np.ndarray, np.ndarray]], std_c: list[float], std_r: list[float]) -> dict:
    """The ``naive`` section: per-norm raw and centred cosines, their means, and the std-profile correlation."""
    rows = [{"tensor": label, **gain_similarity(c, r)} for label, c, r in gains]
    raw = [r["raw_cosine"] for r in rows]
    centred = [r["centred_cosine"] for r in rows]
    return {
        "label": NOT_EVIDENCE,
        "explanation": (
            "Raw cosine of norm gains is near 1 for unrelated models because gains are positive numbers near 1; "
            "the centred cosine removes that offset. Neither has a null distribution or hidden units to match, and "
            "std profiles follow the initialiser and depth. None of these numbers enters a verdict."
        ),
        "norm_gains": rows,
        "mean_raw_cosine": round(float(np.mean(raw)), 6) if raw else None,
        "mean_centred_cosine": round(float(np.mean(centred)), 6) if centred else None,
        "std_profile": {"candidate": [round(x, 6) for x in std_c], "reference": [round(x, 6) for x in std_r],
                        "correlation": profile_correlation(std_c, std_r)},
    }
