"""Bradley–Terry strengths by maximum likelihood, with or without style control, by Newton's method.

The model: P(a beats b) = σ(θa − θb [+ βᵀx]) where x is the z-scored style difference of the two answers. Ties and
both-bad votes count half a win for each side (arena-rank's `BradleyTerry`/`ContextualBradleyTerry` and FastChat's
convention). θ is identified by Σθ = 0. The plain model's likelihood depends on the votes only through, for each
unordered pair, the number of votes and one side's score, so it is fitted on at most K(K−1)/2 numbers whatever the
number of votes; Newton's method then converges to machine precision in a handful of steps.

When no finite maximum exists — a model without votes, groups of models that never met, or a model (or group) that
won, or lost, every vote against the rest — `fit` raises InputError naming the models: a rating of ±∞ is not a
result we can print or rank with. (Bootstrap resamples that lose a finite maximum are handled in `intervals`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from simsa.errors import InputError

from .votes import Votes

MIN_PAIR_COUNT = 50  # reweighting floor (arena-rank's min_pair_count): pairs rarer than this are not up-weighted
STEP_TOL = 1e-10  # Newton stops after a step this small (the next would change θ by ~1e-20)
MAX_ITER = 100


@dataclass(frozen=True, eq=False)
class BTFit:
    """A fitted Bradley–Terry model: θ in natural log-odds with Σθ = 0; `coef` the style coefficients per
    z-scored covariate (style fits only); `loglik` the log-likelihood Σ fᵢ log P(outcomeᵢ) with the frequency
    weights fᵢ (not the reweighting, not the penalty), in nats.

    `style_mean`/`style_std` are the z-scoring constants used (population std, 1 where a covariate is constant),
    `reweight`/`reg` the settings, so that intervals can be computed for exactly this fit.
    """

    models: tuple[str, ...]
    theta: np.ndarray
    coef: np.ndarray | None
    loglik: float
    iterations: int
    converged: bool
    reweight: bool = False
    reg: float = 1.0
    style_mean: np.ndarray | None = None
    style_std: np.ndarray | None = None


def pair_weights(votes: Votes) -> np.ndarray:
    """Inverse pair-count weights 1/max(n_pair, 50) per vote (arena-rank's reweighting), not normalised.

    Why: a schedule that over-samples some pairs would otherwise let those pairs dominate the fit.
    """
    k = len(votes.models)
    lo, hi = np.minimum(votes.a, votes.b), np.maximum(votes.a, votes.b)
    key = lo * k + hi
    per_pair = np.bincount(key, minlength=k * k)
    return 1.0 / np.maximum(per_pair[key], MIN_PAIR_COUNT)


def vote_weights(votes: Votes, weights: np.ndarray | None, reweight: bool) -> np.ndarray:
    """Frequency weights (a weight of 2 counts the vote twice) times reweighting, per vote."""
    w = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(votes),):
        raise InputError(f"weights have shape {w.shape}, expected ({len(votes)},)")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise InputError("weights must be finite and non-negative")
    return w * pair_weights(votes) if reweight else w


@dataclass(frozen=True, eq=False)
class PairTable:
    """The plain model's sufficient statistics: per unordered pair (i < j), total weight n and i's weighted score s."""

    k: int
    i: np.ndarray
    j: np.ndarray
    n: np.ndarray
    s: np.ndarray


def pair_table(votes: Votes, w: np.ndarray) -> PairTable:
    k = len(votes.models)
    o = votes.outcome
    lo, hi = np.minimum(votes.a, votes.b), np.maximum(votes.a, votes.b)
    s_lo = np.where(votes.a == lo, o, 1.0 - o)  # score of the lower-indexed model
    key = lo * k + hi
    n = np.bincount(key, weights=w, minlength=k * k)
    s = np.bincount(key, weights=w * s_lo, minlength=k * k)
    keep = np.flatnonzero(n > 0)
    return PairTable(k, keep // k, keep % k, n[keep], s[keep])


def identifiability_problem(models: tuple[str, ...], i: np.ndarray, j: np.ndarray, n: np.ndarray,
                            s: np.ndarray) -> str | None:
    """Why the likelihood has no finite maximum, or None when it has one.

    A finite maximum exists exactly when, for every split of the models into two groups, each group scored
    against the other (Ford, 1957): the directed graph 'i scored against j' must be strongly connected.
    """
    k = len(models)
    played = np.zeros(k, dtype=bool)
    played[i[n > 0]] = True
    played[j[n > 0]] = True
    if not played.all():
        missing = [models[m] for m in np.flatnonzero(~played)]
        return f"no votes for {_names(missing)}, so no rating can be estimated"
    if k < 2:
        return "at least two models are needed"
    tol = 1e-12 * np.maximum(n, 1.0)
    src = np.concatenate([i[s > tol], j[(n - s) > tol]])
    dst = np.concatenate([j[s > tol], i[(n - s) > tol]])
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(k, k)).tocsr()
    nweak, weak = connected_components(graph, directed=True, connection="weak")
    if nweak > 1:
        groups = [_names([models[m] for m in np.flatnonzero(weak == g)]) for g in range(nweak)]
        return "the votes fall into groups of models that never met: " + "; ".join(groups)
    nstrong, comp = connected_components(graph, directed=True, connection="strong")
    if nstrong == 1:
        return None
    out_edges = np.zeros(nstrong, dtype=bool)  # component scored against some other component
    in_edges = np.zeros(nstrong, dtype=bool)
    cross = comp[src] != comp[dst]
    out_edges[comp[src[cross]]] = True
    in_edges[comp[dst[cross]]] = True
    # name the smallest group that never conceded (won every vote against the rest) or never scored (lost every one)
    candidates = [(int(np.sum(comp == c)), 0, c, "won") for c in range(nstrong) if not in_edges[c]]
    candidates += [(int(np.sum(comp == c)), 1, c, "lost") for c in range(nstrong) if not out_edges[c]]
    _, _, c, verb = min(candidates)
    names = [models[m] for m in np.flatnonzero(comp == c)]
    return f"{_names(names)} {verb} every vote against the other models (no finite rating)"


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(m) for m in names[:8])
    more = f" and {len(names) - 8} more" if len(names) > 8 else ""
    return ("model " if len(names) == 1 else "models ") + shown + more


def _pair_loglik(theta: np.ndarray, t: PairTable) -> np.ndarray:
    """Σ s·d − n·softplus(d) per row of theta (R, K)."""
    d = theta[:, t.i] - theta[:, t.j]
    return np.sum(t.s * d - t.n * np.logaddexp(0.0, d), axis=-1)


def newton_pairs(t: PairTable, n: np.ndarray, s: np.ndarray, theta0: np.ndarray,
                 ridge: np.ndarray | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """Maximise the plain likelihood for R weightings of the same pairs at once.

    `n`, `s` are (R, P) pair weights and scores, `theta0` (R, K), `ridge` (R,) an optional L2 penalty per round.
    Returns θ (R, K) with Σθ = 0, the iterations taken and which rounds converged. The singular Hessian (θ is
    defined up to a constant) is made invertible by adding c·11ᵀ, which leaves the step in the Σ = 0 plane.
    """
    rounds, k = theta0.shape
    ridge = np.zeros(rounds) if ridge is None else ridge
    theta = theta0 - theta0.mean(axis=1, keepdims=True)
    inc = np.zeros((len(t.i), k))
    inc[np.arange(len(t.i)), t.i] = 1.0
    inc[np.arange(len(t.i)), t.j] = -1.0
    eye = np.eye(k)
    ones = np.full((k, k), 1.0 / k)
    done = np.zeros(rounds, dtype=bool)
    it = 0
    for it in range(1, MAX_ITER + 1):  # noqa: B007 - the count is returned
        act = np.flatnonzero(~done)
        th, na, sa, ra = theta[act], n[act], s[act], ridge[act]
        d = th @ inc.T
        p = expit(d)
        grad = (sa - na * p) @ inc - ra[:, None] * th
        h = na * p * (1.0 - p)
        hess = np.einsum("rp,pk,pl->rkl", h, inc, inc, optimize=True)
        scale = np.maximum(np.einsum("rkk->r", hess) / k, 1e-12)
        hess += ra[:, None, None] * eye + scale[:, None, None] * ones
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step -= step.mean(axis=1, keepdims=True)
        old = _pair_loglik(th, _rows(t, na, sa)) - 0.5 * ra * np.sum(th * th, axis=1)
        factor = np.ones(len(act))
        for _ in range(60):  # backtracking: Newton may overshoot far from the optimum
            cand = th + factor[:, None] * step
            new = _pair_loglik(cand, _rows(t, na, sa)) - 0.5 * ra * np.sum(cand * cand, axis=1)
            bad = new < old - 1e-10 * (1.0 + np.abs(old))
            if not bad.any():
                break
            factor[bad] *= 0.5
        theta[act] = th + factor[:, None] * step
        small = np.max(np.abs(factor[:, None] * step), axis=1) < STEP_TOL
        done[act[small]] = True
        if done.all():
            break
    return theta, it, done


def _rows(t: PairTable, n: np.ndarray, s: np.ndarray) -> PairTable:
    return PairTable(t.k, t.i, t.j, n, s)


def zscore(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covariates z-scored over the vote set (population std; 1 where a column is constant), as arena-rank does."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std == 0, 1.0, std)
    return (x - mean) / std, mean, std


def fit(votes: Votes, weights: np.ndarray | None = None, *, style: bool = False, reg: float = 1.0,
        reweight: bool = False, theta0: np.ndarray | None = None, coef0: np.ndarray | None = None) -> BTFit:
    """Maximum-likelihood Bradley–Terry strengths (and style coefficients when `style`).

    `weights` are frequency weights per vote (a bootstrap's counts; 0 drops a vote). `reweight` applies
    arena-rank's inverse pair-count weights. With `style`, the covariates are z-scored over `votes` (all of them,
    whatever the weights) and the coefficients carry an L2 penalty `reg`·‖β‖²/2 on the mean log-likelihood, exactly
    arena-rank's `ContextualBradleyTerry` objective. `theta0`/`coef0` start the iteration (e.g. at a previous fit).
    Raises InputError when no finite maximum exists (see the module's docstring).
    """
    if style:
        return fit_style(votes, weights, reg=reg, reweight=reweight, theta0=theta0, coef0=coef0)
    w = vote_weights(votes, weights, reweight)
    table = pair_table(votes, w)
    problem = identifiability_problem(votes.models, table.i, table.j, table.n, table.s)
    if problem:
        raise InputError(problem)
    k = len(votes.models)
    start = np.zeros((1, k)) if theta0 is None else np.asarray(theta0, dtype=float).reshape(1, k)
    theta, iters, ok = newton_pairs(table, table.n[None], table.s[None], start)
    ll = float(_pair_loglik(theta, pair_table(votes, vote_weights(votes, weights, False)))[0])
    return BTFit(votes.models, theta[0], None, ll, iters, bool(ok[0]), reweight=reweight, reg=reg)


@dataclass(frozen=True, eq=False)
class StyleDesign:
    """What the style model's Newton steps need: indices, outcomes, z-scored covariates and row weights/N."""

    k: int
    a: np.ndarray
    b: np.ndarray
    o: np.ndarray
    x: np.ndarray
    u: np.ndarray  # row weight divided by the total frequency weight: the objective is Σ u·ll − reg‖β‖²/2
    mean: np.ndarray
    std: np.ndarray


def style_design(votes: Votes, weights: np.ndarray | None, reweight: bool) -> StyleDesign:
    if votes.style is None:
        raise InputError("style control needs the style columns (length, headers, lists, bold for both answers)")
    freq = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=float)
    w = vote_weights(votes, freq, False)
    if reweight:
        rw = pair_weights(votes)
        w = w * rw / rw.mean()
    x, mean, std = zscore(np.asarray(votes.style, dtype=float))
    total = freq.sum()
    if total <= 0:
        raise InputError("no votes to fit")
    return StyleDesign(len(votes.models), votes.a, votes.b, votes.outcome, x, w / total, mean, std)


def style_objective(design: StyleDesign, theta: np.ndarray, coef: np.ndarray, reg: float) -> float:
    z = theta[design.a] - theta[design.b] + design.x @ coef
    ll = np.sum(design.u * (design.o * z - np.logaddexp(0.0, z)))
    return float(ll - 0.5 * reg * coef @ coef)


def fit_style(votes: Votes, weights: np.ndarray | None, *, reg: float, reweight: bool,
              theta0: np.ndarray | None = None, coef0: np.ndarray | None = None, ridge: float = 0.0) -> BTFit:
    """The style-controlled fit; `ridge` > 0 adds ridge·‖θ‖²/2 to the (mean) objective and skips the check for a
    finite maximum — used only for bootstrap resamples that lost one."""
    if reg < 0:
        raise InputError("the style penalty reg must be non-negative")
    dz = style_design(votes, weights, reweight)
    if ridge <= 0:
        table = pair_table(votes, dz.u)
        problem = identifiability_problem(votes.models, table.i, table.j, table.n, table.s)
        if problem:
            raise InputError(problem)
    k, f = dz.k, dz.x.shape[1]
    theta = np.zeros(k) if theta0 is None else np.asarray(theta0, dtype=float) - np.mean(theta0)
    coef = np.zeros(f) if coef0 is None else np.asarray(coef0, dtype=float).copy()
    old = style_objective(dz, theta, coef, reg) - 0.5 * ridge * theta @ theta
    converged = False
    it = 0
    for it in range(1, MAX_ITER + 1):  # noqa: B007 - the count is returned
        z = theta[dz.a] - theta[dz.b] + dz.x @ coef
        p = expit(z)
        r = dz.u * (dz.o - p)
        h = dz.u * p * (1.0 - p)
        g_theta = np.bincount(dz.a, r, k) - np.bincount(dz.b, r, k) - ridge * theta
        g_coef = dz.x.T @ r - reg * coef
        hess = style_hessian(dz, h) + np.diag(np.r_[np.full(k, ridge), np.full(f, reg)])
        scale = max(np.trace(hess[:k, :k]) / k, 1e-12)
        hess[:k, :k] += scale / k
        step = np.linalg.solve(hess, np.r_[g_theta, g_coef])
        step[:k] -= step[:k].mean()
        factor = 1.0
        for _ in range(60):
            cand = theta + factor * step[:k]
            new = style_objective(dz, cand, coef + factor * step[k:], reg) - 0.5 * ridge * cand @ cand
            if new >= old - 1e-12 * (1.0 + abs(old)):
                break
            factor *= 0.5
        theta = theta + factor * step[:k]
        coef = coef + factor * step[k:]
        old = new
        if np.max(np.abs(factor * step)) < STEP_TOL:
            converged = True
            break
    z = theta[dz.a] - theta[dz.b] + dz.x @ coef
    base = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=float)
    ll = float(np.sum(base * (dz.o * z - np.logaddexp(0.0, z))))
    return BTFit(votes.models, theta, coef, ll, it, converged, reweight=reweight, reg=reg,
                 style_mean=dz.mean, style_std=dz.std)


def style_hessian(dz: StyleDesign, h: np.ndarray) -> np.ndarray:
    """Σ hᵢ xᵢxᵢᵀ for the design rows xᵢ = (e_a − e_b, zᵢ): the (K+F)² information matrix, assembled by counting."""
    k, f = dz.k, dz.x.shape[1]
    pair = np.bincount(dz.a * k + dz.b, h, k * k).reshape(k, k)
    tt = np.diag(pair.sum(axis=0) + pair.sum(axis=1)) - pair - pair.T
    hx = h[:, None] * dz.x
    cross = np.stack([np.bincount(dz.a, hx[:, c], k) - np.bincount(dz.b, hx[:, c], k) for c in range(f)], axis=1)
    ff = dz.x.T @ hx
    return np.block([[tt, cross], [cross.T, ff]])
