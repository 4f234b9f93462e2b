"""Arena rankings on the Elo-like scale: rating, interval, standard error, rank and rank interval per model.

The scale is arena-rank's and FastChat's: rating = 400/ln 10 · θ + 1000, so 400 points are odds of 10 to 1. An
anchor (model, rating) shifts the whole scale so that model's point rating is the declared value; intervals keep
their widths (the anchor is a choice of origin, not a measurement).

Rank intervals: from the bootstrap, the α/2 and 1−α/2 quantiles of each round's rank (rounded outward); from the
sandwich, LMArena's rule — best rank 1 + the number of models whose lower bound exceeds this one's upper bound,
worst rank the number of models whose upper bound is not below this one's lower bound (itself included). Either way
the interval is widened to contain the point rank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from simsa.errors import InputError

from .bt import fit
from .intervals import Bootstrap, Progress, bootstrap, sandwich_cov
from .style import STYLE_COVARIATES
from .votes import Votes

SCALE = 400.0
BASE = 10.0
INIT = 1000.0
ALPHA_ELO = SCALE / np.log(BASE)
METHODS = ("bootstrap", "sandwich")


@dataclass(frozen=True)
class Rating:
    """One model's line of a ranking; ranks count from 1 (best); `rank_lower` ≤ `rank` ≤ `rank_upper`."""

    model: str
    rating: float
    lower: float
    upper: float
    se: float
    rank: int
    rank_lower: int
    rank_upper: int
    votes: int


@dataclass(frozen=True)
class Ranking:
    """A whole ranking, best first, with how it was computed."""

    method: str
    style: bool
    ratings: tuple[Rating, ...]
    n_votes: int
    rounds: int | None
    anchor: tuple[str, float] | None
    coef: dict[str, float] | None
    alpha: float = 0.05
    reweight: bool = False
    separated_rounds: int = 0  # bootstrap rounds without a finite maximum (see intervals)
    reg: float | None = None  # the style penalty used (style rankings only)
    # R² of each style covariate explained by which entrants met (style rankings only): near 1, the style effect
    # cannot be told apart from the entrants' strengths and the style-controlled order rests on the penalty.
    collinearity: dict[str, float] | None = None
    # The fit behind the ranking, in `models` order (θ in log-odds, and the bootstrap rounds' θ when bootstrapped),
    # so a caller can derive other quantities (e.g. expected win rates) with the same rounds. Not in to_dict().
    models: tuple[str, ...] = field(default=(), repr=False, compare=False)
    theta: np.ndarray | None = field(default=None, repr=False, compare=False)
    samples: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "style": self.style,
            "n_votes": self.n_votes,
            "rounds": self.rounds,
            "confidence": 1.0 - self.alpha,
            "reweight": self.reweight,
            "scale": {"points": SCALE, "base": BASE, "init": INIT},
            "anchor": None if self.anchor is None else {"model": self.anchor[0], "rating": self.anchor[1]},
            "coef": self.coef,
            "style_collinearity": self.collinearity,
            "style_identified": None if self.collinearity is None else max(self.collinearity.values()) < COLLINEAR,
            "style_reg": self.reg,
            "separated_rounds": self.separated_rounds,
            "ratings": [asdict(r) for r in self.ratings],
        }


def to_elo(theta: np.ndarray, anchor: tuple[str, float] | None = None,
           models: tuple[str, ...] | list[str] | None = None) -> np.ndarray:
    """400/ln(10)·θ + 1000; with an anchor, shifted (per row of a 2-D array) so the anchor model has its rating."""
    elo = ALPHA_ELO * np.asarray(theta, dtype=float) + INIT
    if anchor is None:
        return elo
    idx = anchor_index(anchor, models)
    return elo - elo[..., idx : idx + 1] + anchor[1]


def anchor_index(anchor: tuple[str, float], models: tuple[str, ...] | list[str] | None) -> int:
    name = anchor[0]
    if models is None:
        raise InputError("an anchor needs the model list")
    if name not in models:
        raise InputError(f"anchor model {name!r} has no votes (models: {', '.join(models)})")
    if not np.isfinite(anchor[1]):
        raise InputError(f"anchor rating for {name!r} must be a finite number")
    return list(models).index(name)


def style_reg_default(n_votes: int) -> float:
    """FastChat's style penalty (0.5·‖β‖²/2 on the summed log-likelihood) expressed on the mean, as `fit` takes it."""
    return 0.5 / max(n_votes, 1)


def point_ranks(values: np.ndarray) -> np.ndarray:
    """1 + the number of strictly better values, along the last axis (equal values share a rank)."""
    v = np.asarray(values)
    return 1 + np.sum(v[..., None, :] > v[..., :, None], axis=-1)


def rank(votes: Votes, *, style: bool = False, method: str = "bootstrap", rounds: int = 1000, seed: int = 0,
         anchor: tuple[str, float] | None = None, alpha: float = 0.05, progress: Progress | None = None,
         reweight: bool = False, reg: float | None = None) -> Ranking:
    """Fit, compute intervals by `method` ('bootstrap' or 'sandwich') and rank the models, best first.

    `reg` is the style coefficients' penalty on the mean log-likelihood; None means FastChat's strength,
    0.5/number of votes (a penalty on the summed likelihood, which fades as votes accumulate). arena-rank's default,
    1.0, does not fade: it shrinks the style coefficients to roughly a sixth of their size at any number of votes and
    leaves most of a style bias in the ranking (see docs/arena-statistics.md); pass reg=1.0 to reproduce it.
    """
    if reg is None:
        reg = style_reg_default(len(votes))
    if method not in METHODS:
        raise InputError(f"unknown interval method {method!r}: expected bootstrap or sandwich")
    if not 0 < alpha < 1:
        raise InputError("alpha must be between 0 and 1")
    fitted = fit(votes, style=style, reg=reg, reweight=reweight)
    models = votes.models
    shift = 0.0
    if anchor is not None:
        idx = anchor_index(anchor, models)
        shift = anchor[1] - (ALPHA_ELO * fitted.theta[idx] + INIT)
    point = to_elo(fitted.theta) + shift
    ranks = point_ranks(point)
    boot: Bootstrap | None = None
    if method == "bootstrap":
        boot = bootstrap(votes, rounds, seed, style=style, progress=progress, reg=reg, reweight=reweight,
                         start=fitted)
        samples = to_elo(boot.samples) + shift
        lower = np.quantile(samples, alpha / 2, axis=0)
        upper = np.quantile(samples, 1 - alpha / 2, axis=0)
        se = samples.std(axis=0, ddof=1) if rounds > 1 else np.zeros(len(models))
        round_ranks = point_ranks(samples)
        rank_lo = np.minimum(np.floor(np.quantile(round_ranks, alpha / 2, axis=0)).astype(int), ranks)
        rank_hi = np.maximum(np.ceil(np.quantile(round_ranks, 1 - alpha / 2, axis=0)).astype(int), ranks)
    else:
        se = ALPHA_ELO * np.sqrt(np.maximum(np.diag(sandwich_cov(votes, fitted)), 0.0))
        width = norm.ppf(1 - alpha / 2) * se
        lower, upper = point - width, point + width
        rank_lo = np.minimum(1 + np.sum(lower[None, :] > upper[:, None], axis=1), ranks)
        rank_hi = np.maximum(np.sum(upper[None, :] >= lower[:, None], axis=1), ranks)
    counts = votes.counts()
    order = sorted(range(len(models)), key=lambda i: (-point[i], models[i]))
    lines = tuple(Rating(models[i], float(point[i]), float(lower[i]), float(upper[i]), float(se[i]), int(ranks[i]),
                         int(rank_lo[i]), int(rank_hi[i]), int(counts[i])) for i in order)
    coef = None if fitted.coef is None else {c: float(v) for c, v in zip(STYLE_COVARIATES, fitted.coef, strict=True)}
    return Ranking(method, style, lines, len(votes), rounds if boot else None, anchor, coef, alpha, reweight,
                   boot.separated if boot else 0, reg if style else None, models=models, theta=fitted.theta,
                   samples=boot.samples if boot else None,
                   collinearity=style_collinearity(votes) if style else None)


COLLINEAR = 0.9  # R² above which a style covariate is reported as not identified apart from the entrants


def style_collinearity(votes: Votes) -> dict[str, float]:
    """How much of each style covariate the entrant design explains (R² of its least-squares fit on the ±1
    indicators of who was on each side). When every entrant answers in one fixed house style, the covariates are a
    function of the pair and style control cannot separate style from strength; a real arena's answers vary within
    an entrant, and R² stays well below 1."""
    if votes.style is None:
        raise InputError("no style covariates in these votes")
    n, k = len(votes), len(votes.models)
    design = np.zeros((n, k + 1))
    rows = np.arange(n)
    design[rows, votes.a] += 1.0
    design[rows, votes.b] -= 1.0
    design[:, k] = 1.0
    y = np.asarray(votes.style, dtype=float)
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    centred = y - y.mean(axis=0)
    out = {}
    for j, name in enumerate(STYLE_COVARIATES):
        total = float(centred[:, j] @ centred[:, j])
        # a constant covariate carries no information of its own
        out[name] = 1.0 if total <= 0 else round(max(0.0, 1.0 - float(resid[:, j] @ resid[:, j]) / total), 4)
    return out
