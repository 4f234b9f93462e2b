"""Localisation: which candidate layer descends from which reference layer (pure).

Given the evidence matrix ``E[a, b] = −log10 p`` for candidate layer a against reference layer b, find the monotone
map (candidate layers in order map to reference layers in non-decreasing order, so dropped layers are skipped and
duplicated layers may share a parent) that collects the most evidence, using only pairs that are significant on
their own after correcting for the number of pairs looked at. Candidate layers left unmapped have no evidence of
descent: they were re-initialised or trained independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simsa.lineage.stats.pvalues import cauchy_log10

PAIR_ALPHA_LOG10 = -3.0  # a single layer pair must reach p ≤ 1e-3 after correction to be mapped
RESTART_COST = 3.0  # starting a new run back at an earlier reference layer costs this many threshold-level pairs


@dataclass(frozen=True)
class LayerMap:
    pairs: list[tuple[int, int, float]]  # (candidate layer, reference layer, log10 p of that pair)
    unmapped: list[int]  # candidate layers with no significant parent
    threshold_log10: float  # per-pair significance needed to be mapped
    segments: list[list[int]] = field(default_factory=list)  # [first cand, last cand, first ref, last ref] per run
    reused_reference_layers: list[int] = field(default_factory=list)  # reference layers that parent several layers


def monotone_map(log10_p: np.ndarray, cand_layers: list[int], ref_layers: list[int]) -> LayerMap:
    """Best piecewise-monotone map through significant pairs, by dynamic programming over the evidence matrix.

    Within a run the map is monotone (candidate layers in order take reference layers in non-decreasing order, so
    dropped layers are skipped and a duplicated layer may share its parent). A new run may start *back* at an
    earlier reference layer — depth up-scaling stacks copies of the same span (layers 0–23 then 8–31) — but each
    restart costs the evidence of ``RESTART_COST`` just-significant pairs, so a stray significant pair never breaks a
    monotone map into pieces.
    """
    n_c, n_r = log10_p.shape
    threshold = PAIR_ALPHA_LOG10 - math.log10(max(1, n_c * n_r))
    gain = np.where(log10_p <= threshold, -log10_p, -np.inf)
    penalty = RESTART_COST * -threshold
    best = np.full((n_c, n_r), -np.inf)
    back: dict[tuple[int, int], tuple[int, int] | None] = {}
    # Over rows processed so far: prefix[b] = best path ending in a column <= b; overall = best path anywhere.
    prefix_val = np.zeros(n_r)
    prefix_arg: list[tuple[int, int] | None] = [None] * n_r
    overall_val, overall_arg = 0.0, None
    for a in range(n_c):
        row_best = [(best[a, b], (a, b)) for b in range(n_r)]
        for b in range(n_r):
            if not np.isfinite(gain[a, b]):
                continue
            stay, restart = prefix_val[b], overall_val - penalty
            prev_val, prev_arg = (stay, prefix_arg[b]) if stay >= restart else (restart, overall_arg)
            best[a, b] = gain[a, b] + prev_val
            back[(a, b)] = prev_arg
            row_best[b] = (best[a, b], (a, b))
        running_val, running_arg = -np.inf, None
        for b in range(n_r):  # fold this row into the prefix maxima (paths may end in any earlier row)
            if row_best[b][0] > running_val:
                running_val, running_arg = row_best[b]
            if running_val > prefix_val[b]:
                prefix_val[b], prefix_arg[b] = running_val, running_arg
            elif b > 0 and prefix_val[b - 1] > prefix_val[b]:
                prefix_val[b], prefix_arg[b] = prefix_val[b - 1], prefix_arg[b - 1]
            if prefix_val[b] > overall_val:
                overall_val, overall_arg = prefix_val[b], prefix_arg[b]
    path: list[tuple[int, int]] = []
    node = overall_arg
    while node is not None:
        path.append(node)
        node = back.get(node)
    path.reverse()
    pairs = [(cand_layers[a], ref_layers[b], float(log10_p[a, b])) for a, b in path]
    mapped = {a for a, _ in path}
    segments: list[list[int]] = []
    for a, b in path:
        if segments and b >= segments[-1][3]:
            segments[-1][1], segments[-1][3] = cand_layers[a], ref_layers[b]
        else:
            segments.append([cand_layers[a], cand_layers[a], ref_layers[b], ref_layers[b]])
    used = [ref_layers[b] for _, b in path]
    return LayerMap(pairs=pairs, unmapped=[cand_layers[a] for a in range(n_c) if a not in mapped],
                    threshold_log10=threshold, segments=segments,
                    reused_reference_layers=sorted({r for r in used if used.count(r) > 1}))


def combine_layers(log10_p: np.ndarray, tested: np.ndarray | None = None) -> float:
    """A component's p-value: the Cauchy combination of the p-values of every layer pair tested.

    Every layer pair of a stack is tested against the same coordinate permutations, so the pairs' p-values are
    dependent; the Cauchy combination stays valid under any dependence, where Fisher's would not, and unlike a
    Šidák-corrected minimum it is not conservative when the pairs are strongly dependent. ``tested`` masks the pairs
    a deep model's screen left out (they are no evidence, not p = 1).
    """
    values = log10_p[tested] if tested is not None else log10_p.ravel()
    return cauchy_log10(values.tolist())
