"""Localisation: which candidate layer descends from which reference layer (pure).

Given the evidence matrix ``E[a, b] = −log10 p`` for candidate layer a against reference layer b, find the monotone
map (candidate layers in order map to reference layers in non-decreasing order, so dropped layers are skipped and
duplicated layers may share a parent) that collects the most evidence, using only pairs that are significant on
their own after correcting for the number of pairs looked at. Candidate layers left unmapped have no evidence of
descent: they were re-initialised or trained independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simsa.lineage.pvalues import fisher_log10, sidak_log10

PAIR_ALPHA_LOG10 = -3.0  # a single layer pair must reach p ≤ 1e-3 after correction to be mapped


@dataclass(frozen=True)
class LayerMap:
    pairs: list[tuple[int, int, float]]  # (candidate layer, reference layer, log10 p of that pair)
    unmapped: list[int]  # candidate layers with no significant parent
    threshold_log10: float  # per-pair significance needed to be mapped


def monotone_map(log10_p: np.ndarray, cand_layers: list[int], ref_layers: list[int]) -> LayerMap:
    """Best monotone map through significant pairs, by dynamic programming over the evidence matrix."""
    n_c, n_r = log10_p.shape
    threshold = PAIR_ALPHA_LOG10 - math.log10(max(1, n_c * n_r))
    gain = np.where(log10_p <= threshold, -log10_p, -np.inf)
    best = np.full((n_c, n_r), -np.inf)
    back: dict[tuple[int, int], tuple[int, int] | None] = {}
    # prefix[a][b] = best score of a path ending at some (a' ≤ a, b' ≤ b), with its end point
    prefix_val = np.zeros((n_c + 1, n_r + 1))
    prefix_arg: dict[tuple[int, int], tuple[int, int] | None] = {}
    for a in range(n_c):
        for b in range(n_r):
            if np.isfinite(gain[a, b]):
                prev_val = prefix_val[a, b + 1]  # paths ending at rows < a, columns ≤ b
                prev_arg = prefix_arg.get((a, b + 1))
                best[a, b] = gain[a, b] + prev_val
                back[(a, b)] = prev_arg
            # prefix over rows ≤ a and columns ≤ b
            cands = [(prefix_val[a, b + 1], prefix_arg.get((a, b + 1))),
                     (prefix_val[a + 1, b], prefix_arg.get((a + 1, b)))]
            if np.isfinite(best[a, b]):
                cands.append((best[a, b], (a, b)))
            val, arg = max(cands, key=lambda c: c[0])
            prefix_val[a + 1, b + 1] = val
            prefix_arg[(a + 1, b + 1)] = arg
    path: list[tuple[int, int]] = []
    node = prefix_arg.get((n_c, n_r))
    while node is not None:
        path.append(node)
        node = back.get(node)
    path.reverse()
    pairs = [(cand_layers[a], ref_layers[b], float(log10_p[a, b])) for a, b in path]
    mapped = {a for a, _ in path}
    return LayerMap(pairs=pairs, unmapped=[cand_layers[a] for a in range(n_c) if a not in mapped],
                    threshold_log10=threshold)


def per_candidate_layer(log10_p: np.ndarray) -> np.ndarray:
    """For each candidate layer, the p-value of "descends from *some* reference layer" (Šidák over the row)."""
    n_r = log10_p.shape[1]
    return np.array([sidak_log10(float(row.min()), n_r) for row in log10_p])


def combine_layers(log10_p: np.ndarray) -> float:
    """A component's p-value: Fisher's combination of the per-candidate-layer p-values."""
    return fisher_log10(per_candidate_layer(log10_p).tolist())
