"""The hidden-unit correspondence test (pure numpy; no I/O).

Question: were the candidate's hidden units initialised from the reference's?

Units are vectors in the residual stream: rows of query/key/value/gate/up projections, columns of output/down
projections, rows of embeddings. A model derived from the reference keeps, for most of its units, a counterpart in
the reference whose vector points the same way; permuting neurons or heads only reorders the counterparts, so the
statistic takes, for each sampled candidate unit, its *best* cosine over all reference units (or, for embeddings,
the cosine with the row of the same token).

Null hypothesis: the two models were initialised independently. Standard training treats the residual coordinates
symmetrically (i.i.d. initialisation, coordinate-wise optimisers and norm gains), so under the null the candidate's
distribution is unchanged when its residual coordinates are permuted. Recomputing the statistic with the candidate's
coordinates randomly permuted therefore draws from the statistic's exact null distribution (a randomisation test).
The observed value and the B draws are exchangeable under the null; a Student-t prediction interval over the draws
(``t = (T₀ − mean) / (sd·√(1 + 1/B))``, B − 1 degrees of freedom) turns them into a calibrated p-value that can reach
the tiny values copied weights deserve, and the exact Monte-Carlo p-value ``(1 + #{T_b ≥ T₀}) / (B + 1)`` is
reported beside it.

Before cosines are taken each residual coordinate is standardised across units (so a coordinate with a huge scale,
as trained models have, cannot dominate, and folding a norm gain into a matrix changes nothing), then each unit
vector is centred and normalised.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simsa.lineage.stats.pvalues import monte_carlo_p, t_log10_sf

# Fewer units than this and standardising coordinates across units is noise, not normalisation.
MIN_UNITS_FOR_COLUMN_STANDARDISATION = 16
STRUCTURE_ROWS = 2048  # units used to estimate the structured directions of a large group
STRUCTURE_MAX_DIRECTIONS = 64  # at most this many structured directions are removed
STRUCTURE_EDGE_FACTOR = 1.05  # margin over the Marchenko–Pastur edge before a direction counts as structure
GRAM_SVD_ROWS = 1024  # up to this many units the structure is found from the units' Gram matrix
NULL_QUANTILE = 0.999  # a unit "has a counterpart" when its best cosine beats this quantile of the null
_BLOCK = 2048


@dataclass(frozen=True)
class SamplingSettings:
    """Sampling sizes: they bound the cost of a comparison whatever the model size."""

    units: int = 256  # candidate units sampled per unit group
    ref_units: int = 8192  # reference units kept per unit group
    coords: int = 512  # residual coordinates used
    draws: int = 24  # coordinate permutations drawn for the null
    seed: int = 0
    views: str = "all"  # "all" views of each unit, or only "input"-side rows (cheap to read remotely)


@dataclass(frozen=True)
class CoordinateDraws:
    """Residual coordinates: ``index[0]`` for the reference and the observed statistic, ``index[1:]`` the null."""

    index: np.ndarray  # (draws + 1, coords) int
    # Columns of a fingerprint's stored units that row 0 keeps (None: all of them); set when coordinates flagged as
    # non-exchangeable are left out of a comparison against a fingerprint.
    ref_positions: np.ndarray | None = None

    @property
    def reference(self) -> np.ndarray:
        return self.index[0]

    @cached_property
    def key(self) -> str:
        """A digest of the draws: prepared candidate units are reusable exactly where this is equal."""
        h = hashlib.blake2b(np.ascontiguousarray(self.index, dtype=np.int64).tobytes(), digest_size=16)
        if self.ref_positions is not None:
            h.update(b"|" + np.ascontiguousarray(self.ref_positions, dtype=np.int64).tobytes())
        return h.hexdigest()


def coordinate_draws(width: int, settings: SamplingSettings, rng: np.random.Generator,
                     allowed: np.ndarray | None = None) -> CoordinateDraws:
    """Pick the residual coordinates and the random coordinate maps of the null.

    A uniformly random permutation restricted to a fixed coordinate subset is a uniformly random ordered sample of
    distinct coordinates, which is what each null draw takes. ``allowed`` restricts everything to one exchangeable
    class of coordinates (those the audit in ``exchangeability`` passed in both models); by default all of them.
    """
    pool = np.arange(width) if allowed is None else np.asarray(allowed, dtype=np.int64)
    k = min(pool.size, settings.coords)
    ref = np.sort(rng.choice(pool, size=k, replace=False)) if k < pool.size else pool
    rows = [ref] + [rng.choice(pool, size=k, replace=False) for _ in range(settings.draws)]
    return CoordinateDraws(np.stack(rows).astype(np.int64))


def restrict_prepared(stored: np.ndarray, views: int, positions: np.ndarray | None) -> np.ndarray:
    """Prepared units (``views`` unit-length blocks side by side) cut to ``positions`` of each block, renormalised.

    Used when a fingerprint's stored units cover coordinates that a comparison leaves out as non-exchangeable.
    """
    if positions is None:
        return stored
    width = stored.shape[1] // views
    blocks = [_unit_rows(np.asarray(stored[:, i * width:(i + 1) * width], dtype=np.float32)[:, positions])
              for i in range(views)]
    return (np.concatenate(blocks, axis=1) / math.sqrt(views)).astype(np.float32)


def _standardise_columns(x: np.ndarray) -> np.ndarray:
    """Standardise each coordinate (last axis) across units (first axis)."""
    if x.shape[0] < MIN_UNITS_FOR_COLUMN_STANDARDISATION:
        return x
    mu = x.mean(axis=0, keepdims=True, dtype=np.float64)
    sd = x.std(axis=0, keepdims=True, dtype=np.float64)
    sd[(sd == 0) | ~np.isfinite(sd)] = 1.0
    return ((x - mu) / sd).astype(np.float32)


def remove_shared_structure(x: np.ndarray) -> np.ndarray:
    """Project out the directions in which a layer's units are *structured* rather than random.

    Training moves every unit of a layer along the few directions in which its inputs vary most (gradients are
    outer products with the residual stream). Two unrelated models that read the same residual basis (a reused
    embedding, a re-initialised layer trained inside its parent) therefore share those directions without sharing
    any initialisation. Singular directions above the Marchenko–Pastur edge of an i.i.d. matrix of the same size and
    noise level are that structure; the rest (the random part, where initialisation noise lives and where a copied
    unit keeps its fingerprint) is what the test compares. Each model's projection is computed from its own units,
    so it commutes with permuting residual coordinates and the null stays exact.
    """
    n, d = x.shape
    if min(n, d) < MIN_UNITS_FOR_COLUMN_STANDARDISATION:
        return x
    # A large group's structure is estimated on evenly spaced units: bounded cost, the same directions.
    sample = x[np.linspace(0, n - 1, STRUCTURE_ROWS).astype(np.int64)] if n > STRUCTURE_ROWS else x
    n = sample.shape[0]
    s, vt = _top_singular(sample.astype(np.float64), min(STRUCTURE_MAX_DIRECTIONS, min(n, d) // 2))
    total = float(np.einsum("ij,ij->", sample, sample, dtype=np.float64))
    k = 0
    for _ in range(8):
        rest = max(0.0, total - float((s[:k] ** 2).sum()))
        sigma = math.sqrt(rest / max(1, (n - k) * (d - k)))
        edge = sigma * (math.sqrt(n - k) + math.sqrt(d - k)) * STRUCTURE_EDGE_FACTOR
        new_k = int(np.count_nonzero(s > edge))
        if new_k == k:
            break
        k = new_k
    if k == 0:
        return x
    v = vt[:k].astype(np.float32)
    return x - (x @ v.T) @ v


def _top_singular(x: np.ndarray, k: int, iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Top-k singular values and right singular vectors by subspace iteration started in *unit* space.

    Starting from random combinations of units (not of coordinates) keeps every step equivariant to permuting the
    residual coordinates, so the projection is exactly as symmetric as the null requires; a full SVD would cost
    O(n·d·min(n, d)) where this costs O(n·d·k).
    """
    n, _ = x.shape
    if n <= min(GRAM_SVD_ROWS, x.shape[1]):
        # Few units (a candidate sample): the exact answer from the n × n Gram matrix is cheaper than iterating in
        # coordinate space, and the Gram matrix is unchanged by permuting coordinates, so equivariance is exact too.
        w, u = np.linalg.eigh(x @ x.T)
        top = np.argsort(w)[::-1][:k]
        s = np.sqrt(np.maximum(w[top], 0.0))
        return s, (u[:, top].T @ x) / np.maximum(s, 1e-30)[:, None]
    width = min(n, k + 8)
    start = np.random.default_rng(0).standard_normal((n, width))
    z = x.T @ start
    for _ in range(iterations):
        z, _ = np.linalg.qr(z)
        z = x.T @ (x @ z)
    z, _ = np.linalg.qr(z)
    _, s, vt_small = np.linalg.svd(x @ z, full_matrices=False)
    return s[:k], (vt_small @ z.T)[:k]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Centre and normalise each row over the last axis."""
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    norm[norm == 0] = 1.0
    return x / norm


def prepare_reference(parts: list[np.ndarray]) -> np.ndarray:
    """Reference units, each part already restricted to the reference coordinates: ``(n, d')`` → ``(n, P)``.

    Parts are different views of the same units (for an MLP neuron: its gate row, up row and down column); each is
    standardised and normalised on its own and the concatenation is scaled back to unit length.
    """
    views = [_unit_rows(remove_shared_structure(_standardise_columns(np.asarray(p, dtype=np.float32))))
             for p in parts]
    return (np.concatenate(views, axis=1) / math.sqrt(len(views))).astype(np.float32)


def prepare_candidate(parts: list[np.ndarray], draws: CoordinateDraws) -> np.ndarray:
    """Candidate units with all residual coordinates: ``(m, d)`` parts → ``(draws + 1, m, P)``."""
    return candidate_on_draws(standardise_candidate(parts), draws)


def standardise_candidate(parts: list[np.ndarray]) -> list[np.ndarray]:
    """The part of ``prepare_candidate`` that does not depend on the draws (so a scan does it once)."""
    return [remove_shared_structure(_standardise_columns(np.asarray(p, dtype=np.float32))) for p in parts]


def candidate_on_draws(std: list[np.ndarray], draws: CoordinateDraws) -> np.ndarray:
    """Standardised candidate parts on each draw's coordinates: ``(draws + 1, m, P)``."""
    out = []
    for idx in draws.index:
        views = [_unit_rows(p[:, idx]) for p in std]
        out.append(np.concatenate(views, axis=1) / math.sqrt(len(views)))
    return np.stack(out).astype(np.float32)


def best_match(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Best cosine of every candidate unit over all reference units, per draw: ``(draws + 1, m)``."""
    n_draws, m, p = candidate.shape
    rows = candidate.reshape(n_draws * m, p)  # a view: no copy of the (draws + 1)·m candidate vectors
    best = np.full(n_draws * m, -np.inf, dtype=np.float32)
    for start in range(0, reference.shape[0], _BLOCK):
        block = np.asarray(reference[start:start + _BLOCK], dtype=np.float32)
        np.maximum(best, (rows @ block.T).max(axis=1), out=best)
    return best.reshape(n_draws, m)


def paired_match(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine of each candidate unit with its paired reference unit (same token), per draw: ``(draws + 1, m)``."""
    return np.einsum("mp,bmp->bm", reference, candidate)


@dataclass(frozen=True)
class PairEvidence:
    """Evidence that one candidate layer (of one component) descends from one reference layer."""

    log10_p: float  # calibrated (Student-t over the null draws)
    p_monte_carlo: float  # exact, but no smaller than 1 / (draws + 1)
    statistic: float  # observed mean best cosine
    null_mean: float
    null_sd: float
    t: float
    matched_fraction: float  # share of units with a counterpart beyond the null's 99.9 % quantile (coverage-scaled)
    units: int  # candidate units tested

    def as_dict(self) -> dict:
        return {
            "log10_p": round(self.log10_p, 3),
            "p_monte_carlo": self.p_monte_carlo,
            "statistic": round(self.statistic, 5),
            "null_mean": round(self.null_mean, 5),
            "null_sd": round(self.null_sd, 6),
            "t": round(self.t, 3),
            "matched_fraction": round(self.matched_fraction, 4),
            "units": self.units,
        }


def evidence(per_group: list[np.ndarray], coverage: list[float] | None = None) -> PairEvidence:
    """Combine the per-unit scores of a component's unit groups into one test.

    Each array is ``(draws + 1, m_g)``: row 0 observed, rows 1.. null. The component statistic is the mean over
    groups of the mean over units, computed identically for every draw, so observed and null stay exchangeable.
    ``coverage`` is, per group, the share of reference units searched; the matched fraction is scaled by it so it
    estimates the share of candidate units with a counterpart in the whole reference layer.
    """
    if not per_group:
        raise ValueError("no unit groups to test")
    totals = np.mean([g.mean(axis=1) for g in per_group], axis=0)
    observed, null = float(totals[0]), totals[1:]
    b = null.size
    mean, sd = float(null.mean()), float(null.std(ddof=1)) if b > 1 else 0.0
    scale = sd * math.sqrt(1.0 + 1.0 / b) if b else 0.0
    t = (observed - mean) / scale if scale > 0 else (math.inf if observed > mean else 0.0)
    matched = []
    for i, g in enumerate(per_group):
        threshold = float(np.quantile(g[1:], NULL_QUANTILE)) if g.shape[0] > 1 else math.inf
        share = float(np.mean(g[0] > threshold))
        # Only a sample of reference units was searched: a copied unit finds its partner with that probability.
        cover = coverage[i] if coverage else 1.0
        matched.append(min(1.0, share / cover) if cover > 0 else share)
    return PairEvidence(
        log10_p=t_log10_sf(t, max(1, b - 1)),
        p_monte_carlo=monte_carlo_p(observed, null),
        statistic=observed,
        null_mean=mean,
        null_sd=sd,
        t=t,
        matched_fraction=float(np.mean(matched)),
        units=int(sum(g.shape[1] for g in per_group)),
    )
