"""Uncertainty of Bradley–Terry strengths: bootstrap over votes, and the sandwich (robust) covariance.

The bootstrap resamples votes with replacement. For the plain model the likelihood only sees, per unordered pair,
how many votes fell on each of the three outcomes (won, lost, half), so a resample is a multinomial draw of counts
over those few cells — equivalent to resampling the votes, and independent of the number of votes; all rounds are
then fitted together by batched Newton steps. The style model cannot be aggregated: each round refits on
resampled row counts, started at the full fit.

A resample can lose its finite maximum (a rarely seen model that won all its resampled votes). Such a round is fitted
with a tiny ridge (1e-6 × its votes on ‖θ‖²/2): that model's strength comes out very large but finite, the honest
direction for a percentile bound, and `Bootstrap.separated` counts these rounds.

The sandwich covariance H⁻¹GH⁻¹ follows arena-rank exactly, including its conventions: for the plain model H is
the summed information plus `hessian_reg` × (number of votes when unweighted, 1 when reweighted) on the diagonal;
for the style model both matrices are per-vote means, H has `hessian_reg` on its whole diagonal (and no term for
the coefficients' penalty), G is reduced by reg²ββᵀ/n, and the covariance is H⁻¹GH⁻¹/n.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from simsa.errors import InputError

from .bt import (
    BTFit,
    PairTable,
    fit,
    fit_style,
    identifiability_problem,
    newton_pairs,
    pair_weights,
    style_design,
    style_hessian,
)
from .votes import Votes

Progress = Callable[[str, int, int], None]
SEPARATED_RIDGE = 1e-6
CHUNK = 100  # bootstrap rounds fitted together (memory ~ CHUNK × pairs × models floats)


@dataclass(frozen=True, eq=False)
class Bootstrap:
    """θ per bootstrap round (rounds, n_models), each with Σθ = 0; `coef` the style coefficients per round."""

    samples: np.ndarray
    rounds: int
    seed: int
    style: bool = False
    coef: np.ndarray | None = None
    separated: int = 0  # rounds whose resample had no finite maximum (fitted with a tiny ridge)


def bootstrap(votes: Votes, rounds: int = 1000, seed: int = 0, *, style: bool = False, progress: Progress | None = None,
              reg: float = 1.0, reweight: bool = False, start: BTFit | None = None) -> Bootstrap:
    """Percentile-bootstrap samples of θ: `rounds` resamples of the votes (with replacement), seeded.

    `start` is the full-data fit (computed when not given); it raises InputError when the votes themselves have no
    finite maximum. `progress(label, done, total)` is called as rounds complete.
    """
    if rounds < 1:
        raise InputError("the bootstrap needs at least one round")
    if len(votes) == 0:
        raise InputError("no votes")
    start = start or fit(votes, style=style, reg=reg, reweight=reweight)
    rng = np.random.default_rng(seed)
    if style:
        return _bootstrap_style(votes, rounds, seed, rng, start, progress)
    return _bootstrap_plain(votes, rounds, seed, rng, start, progress)


def _bootstrap_plain(votes: Votes, rounds: int, seed: int, rng: np.random.Generator, start: BTFit,
                     progress: Progress | None) -> Bootstrap:
    k = len(votes.models)
    lo, hi = np.minimum(votes.a, votes.b), np.maximum(votes.a, votes.b)
    o = votes.outcome
    s_lo = np.where(votes.a == lo, o, 1.0 - o)
    cell = (lo * k + hi) * 3 + np.rint(s_lo * 2).astype(np.int64)  # three cells per pair: lost, half, won
    cells, counts = np.unique(cell, return_counts=True)
    pair_key = cells // 3
    score = (cells % 3) / 2.0
    keys, pair_of_cell = np.unique(pair_key, return_inverse=True)
    table = PairTable(k, keys // k, keys % k, np.zeros(len(keys)), np.zeros(len(keys)))
    rw = np.ones(len(cells))
    if start.reweight:  # weights are a property of the pair in the original votes, as in arena-rank
        per_pair = np.bincount(pair_of_cell, weights=counts)
        rw = 1.0 / np.maximum(per_pair[pair_of_cell], 50)
    spread = np.zeros((len(cells), len(keys)))
    spread[np.arange(len(cells)), pair_of_cell] = 1.0
    total = int(counts.sum())
    samples = np.empty((rounds, k))
    separated = 0
    for first in range(0, rounds, CHUNK):
        size = min(CHUNK, rounds - first)
        draw = rng.multinomial(total, counts / total, size=size).astype(float)
        n = (draw * rw) @ spread
        s = (draw * rw * score) @ spread
        ridge = np.zeros(size)
        for r in range(size):
            if identifiability_problem(votes.models, table.i, table.j, n[r], s[r]):
                ridge[r] = SEPARATED_RIDGE * n[r].sum()
        separated += int(np.count_nonzero(ridge))
        theta, _, _ = newton_pairs(table, n, s, np.repeat(start.theta[None], size, axis=0), ridge)
        samples[first:first + size] = theta
        if progress:
            progress("bootstrap", first + size, rounds)
    return Bootstrap(samples, rounds, seed, style=False, separated=separated)


def _bootstrap_style(votes: Votes, rounds: int, seed: int, rng: np.random.Generator, start: BTFit,
                     progress: Progress | None) -> Bootstrap:
    n = len(votes)
    k = len(votes.models)
    samples = np.empty((rounds, k))
    coefs = np.empty((rounds, len(start.coef if start.coef is not None else ())))
    separated = 0
    for r in range(rounds):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        try:
            fitted = fit(votes, weights, style=True, reg=start.reg, reweight=start.reweight, theta0=start.theta,
                         coef0=start.coef)
        except InputError:
            separated += 1
            fitted = fit_style(votes, weights, reg=start.reg, reweight=start.reweight, theta0=start.theta,
                               coef0=start.coef, ridge=SEPARATED_RIDGE)
        samples[r] = fitted.theta
        coefs[r] = fitted.coef
        if progress and (r + 1 == rounds or (r + 1) % 10 == 0):
            progress("bootstrap", r + 1, rounds)
    return Bootstrap(samples, rounds, seed, style=True, coef=coefs, separated=separated)


def sandwich_cov(votes: Votes, fit: BTFit, *, hessian_reg: float = 1e-5,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Robust (sandwich) covariance of θ, (n_models, n_models), in natural log-odds², as arena-rank computes it.

    `weights` must be the frequency weights the fit used (None for all votes once).
    """
    if fit.coef is not None:
        return _sandwich_style(votes, fit, hessian_reg, weights)[: len(fit.models), : len(fit.models)]
    k = len(votes.models)
    c = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=float)
    rw = pair_weights(votes) if fit.reweight else np.ones(len(votes))
    p = expit(fit.theta[votes.a] - fit.theta[votes.b])
    h = c * rw * p * (1.0 - p)
    g = c * (rw * (votes.outcome - p)) ** 2
    eps = hessian_reg * (1.0 if fit.reweight else c.sum())
    return _sandwich(_laplacian(votes, h, k) + eps * np.eye(k), _laplacian(votes, g, k), k)


def _sandwich(hess: np.ndarray, grad: np.ndarray, k: int) -> np.ndarray:
    """H⁻¹GH⁻¹ computed off the direction (1, …, 1, 0, …) of a common shift of the K strengths.

    Both matrices are exactly singular along that direction but for `hessian_reg`, so H⁻¹ is ~1/hessian_reg
    there and a plain inverse lets rounding errors of G along it (~1e-16) grow by 1/hessian_reg²; with reweighted
    votes that reaches ~1e-6 rating points. The shift cannot change any prediction, so the covariance has no
    component along it: computing in a basis of its orthogonal complement gives the same matrix, exactly rounded.
    """
    dim = hess.shape[0]
    shift = np.zeros((dim, 1))
    shift[:k] = 1.0 / np.sqrt(k)
    basis = np.linalg.qr(np.hstack([shift, np.eye(dim)[:, : dim - 1]]))[0][:, 1:]
    inv = np.linalg.inv(basis.T @ hess @ basis)
    return basis @ (inv @ (basis.T @ grad @ basis) @ inv) @ basis.T


def _laplacian(votes: Votes, vals: np.ndarray, k: int) -> np.ndarray:
    pair = np.bincount(votes.a * k + votes.b, vals, k * k).reshape(k, k)
    return np.diag(pair.sum(axis=0) + pair.sum(axis=1)) - pair - pair.T


def _sandwich_style(votes: Votes, fit: BTFit, hessian_reg: float, weights: np.ndarray | None) -> np.ndarray:
    assert fit.coef is not None
    dz = style_design(votes, weights, fit.reweight)
    c = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=float)
    n_obs = c.sum()
    w = dz.u * n_obs / np.where(c > 0, c, 1.0)  # the reweighting alone (mean 1), per vote
    p = expit(fit.theta[dz.a] - fit.theta[dz.b] + dz.x @ fit.coef)
    k, f = dz.k, len(fit.coef)
    hess = style_hessian(dz, c * w * p * (1.0 - p) / n_obs) + hessian_reg * np.eye(k + f)
    grad = style_hessian(dz, c * (w * (dz.o - p)) ** 2 / n_obs)
    params = np.r_[np.zeros(k), fit.coef]
    grad -= (fit.reg**2 / n_obs) * np.outer(params, params)
    return _sandwich(hess, grad, k) / n_obs

