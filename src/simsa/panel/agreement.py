"""How far the experts of a panel agree: Krippendorff's α with a bootstrap interval, the ICCs, rater severities.

A panel's ratings are a matrix `values` of shape (n_raters, n_items), float, with `nan` where a rater did not
rate an item. Everything here is pure computation on such matrices (and `read_long_table`, which builds one from a
CSV file), so the web platform, the reports and the `simsa panel agreement` command share one implementation.

Krippendorff's α follows Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": only pairable values
count (items rated by at least two raters); the coincidence matrix o_ck = Σ_u (number of c–k pairs in item u) /
(m_u − 1) gives the observed disagreement D_o = Σ o_ck δ²_ck / n and the expected one D_e = Σ n_c n_k δ²_ck /
(n (n − 1)), with n_c the margins of o and n the number of pairable values; α = 1 − D_o / D_e. The sums are
evaluated in closed forms that never build the V×V matrix (V distinct values can be in the thousands for
continuous scores): for the interval metric Σ over the pairs of item u of (v_i − v_j)² is 2 m_u SS_u; the ordinal
metric (Σ_{g=c..k} n_g − (n_c + n_k) / 2)² is the interval metric on the values' mid-rank positions among the
margins; the nominal sums count unequal pairs. `coincidence_matrix` builds o itself for small scales, to inspect.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from simsa.errors import MAX_LISTED_PROBLEMS, InputError
from simsa.files import FileReadError, read_limited

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")

MAD_TO_SD = 1.4826  # median absolute deviation × this estimates the standard deviation of a normal sample
MEAN_AD_TO_SD = math.sqrt(math.pi / 2)  # mean absolute deviation × this does the same (used when the MAD is 0)
MIN_RATERS_FOR_OUTLIERS = 3  # with two raters each is the other's mirror image: neither is the odd one out
MAX_TABLE_BYTES = 50 * 1024 * 1024
MAX_CELLS = 4_000_000  # raters × items of the dense matrix a long table becomes (32 MB of floats)
MAX_VALUE_MAGNITUDE = 1e12  # larger ratings are typos, and their squares would lose all precision
MAX_COINCIDENCE_DOMAIN = 1000
MAX_RATIO_CROSS_ITEMS = 3000  # items up to which the ratio bootstrap keeps an items × items matrix (72 MB)
TABLE_COLUMNS = ("rater", "item", "value")


# --------------------------------------------------------------------------- input


def as_ratings(values: Any) -> np.ndarray:
    """A float copy of a (raters × items) matrix; infinite values are refused (`nan` marks a missing rating)."""
    try:
        array = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"ratings must be numbers (nan for missing): {exc}") from None
    if array.ndim != 2:
        raise InputError(f"ratings must be a matrix of raters × items, got an array of {array.ndim} dimensions")
    if np.isinf(array).any():
        raise InputError("ratings must be finite numbers (nan marks a missing rating)")
    return array


def _check_level(level: str) -> Level:
    if level not in LEVELS:
        raise InputError(f"unknown level of measurement {level!r}; use one of {', '.join(LEVELS)}")
    return level


def _pairable(values: np.ndarray) -> np.ndarray:
    """The item columns with at least two ratings: the only ones that carry information about agreement."""
    return values[:, (~np.isnan(values)).sum(axis=0) >= 2]


# --------------------------------------------------------------------------- Krippendorff's alpha


def _flat(pairable: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, unit, m): the pairable values item by item, the item index of each, and each item's number of values."""
    present = ~np.isnan(pairable.T)
    unit = np.nonzero(present)[0]
    return pairable.T[present], unit, present.sum(axis=1)


def _interval_alpha(x: np.ndarray, unit: np.ndarray, m: np.ndarray) -> float:
    n = x.size
    unit_mean = np.bincount(unit, weights=x, minlength=m.size) / m
    within = np.bincount(unit, weights=(x - unit_mean[unit]) ** 2, minlength=m.size)
    observed = float(np.sum(2.0 * m * within / (m - 1)))
    expected = 2.0 * n * float(np.sum((x - x.mean()) ** 2))
    if expected <= 0.0:
        return math.nan
    return 1.0 - (n - 1) * observed / expected


def _ordinal_alpha(x: np.ndarray, unit: np.ndarray, m: np.ndarray) -> float:
    _, codes, counts = np.unique(x, return_inverse=True, return_counts=True)
    position = np.cumsum(counts) - counts / 2.0  # Σ_{g<c} n_g + n_c / 2
    return _interval_alpha(position[codes], unit, m)


def _nominal_alpha(x: np.ndarray, unit: np.ndarray, m: np.ndarray) -> float:
    n = x.size
    _, codes, counts = np.unique(x, return_inverse=True, return_counts=True)
    keys = unit.astype(np.int64) * counts.size + codes
    unique_keys, per_key = np.unique(keys, return_counts=True)
    same = np.bincount(unique_keys // counts.size, weights=per_key.astype(float) ** 2, minlength=m.size)
    observed = float(np.sum((m.astype(float) ** 2 - same) / (m - 1)))
    expected = float(n) ** 2 - float(np.sum(counts.astype(float) ** 2))
    if expected <= 0.0:
        return math.nan
    return 1.0 - (n - 1) * observed / expected


def _ratio_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    return np.divide(a - b, total, out=np.zeros(np.broadcast(a, b).shape), where=total != 0) ** 2


def _ratio_alpha(pairable: np.ndarray) -> float:
    present = ~np.isnan(pairable)
    m = present.sum(axis=0)
    weight = 1.0 / (m - 1)
    observed = 0.0
    for r in range(pairable.shape[0] - 1):
        for s in range(r + 1, pairable.shape[0]):
            both = present[r] & present[s]
            observed += 2.0 * float(np.sum(_ratio_distance(pairable[r, both], pairable[s, both]) * weight[both]))
    domain, counts = np.unique(pairable[present], return_counts=True)
    counts = counts.astype(float)
    n = counts.sum()
    expected = 0.0
    step = max(1, 2_000_000 // domain.size)  # rows of the V×V distance matrix held at once
    for start in range(0, domain.size, step):
        block = _ratio_distance(domain[start:start + step, None], domain[None, :])
        expected += float(counts[start:start + step] @ block @ counts)
    if expected <= 0.0:
        return math.nan
    return 1.0 - (n - 1) * observed / expected


def _alpha(pairable: np.ndarray, level: Level) -> float:
    """α of a matrix whose columns all have at least two ratings."""
    if pairable.shape[1] == 0:
        return math.nan
    if level == "ratio":
        return float(_ratio_alpha(pairable))
    x, unit, m = _flat(pairable)
    if level == "interval":
        return float(_interval_alpha(x, unit, m))
    if level == "ordinal":
        return float(_ordinal_alpha(x, unit, m))
    return float(_nominal_alpha(x, unit, m))


def krippendorff_alpha(values: Any, level: Level = "interval") -> float:
    """Krippendorff's α of a (raters × items) matrix with `nan` for missing ratings.

    Items with fewer than two ratings are left out (their values cannot be paired). Returns nan when α is
    undefined: no item has two ratings, or the pairable values do not vary (expected disagreement 0). The ratio
    level needs values ≥ 0 (its distance ((c − k) / (c + k))² assumes a true zero). For the nominal level the
    values are category codes: only their equality matters.
    """
    level = _check_level(level)
    array = as_ratings(values)
    if level == "ratio" and (array < 0).any():
        raise InputError("the ratio level needs ratings of at least 0 (a ratio scale has a true zero)")
    return _alpha(_pairable(array), level)


@dataclass(frozen=True)
class Coincidences:
    """Krippendorff's coincidence matrix: `matrix[c, k]` counts c–k pairs within items, each item weighted
    1 / (m_u − 1); `domain` holds the values c in order, `margins` the row sums n_c (pairable values per value)."""

    domain: tuple[float, ...]
    matrix: np.ndarray
    margins: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"domain": list(self.domain), "matrix": self.matrix.tolist(), "margins": list(self.margins)}


def coincidence_matrix(values: Any) -> Coincidences:
    """The coincidence matrix of the pairable ratings, for rating scales (at most MAX_COINCIDENCE_DOMAIN values)."""
    pairable = _pairable(as_ratings(values))
    x, unit, m = _flat(pairable)
    domain, codes = np.unique(x, return_inverse=True)
    if domain.size > MAX_COINCIDENCE_DOMAIN:
        raise InputError(f"{domain.size} distinct ratings; a coincidence matrix is shown for at most "
                         f"{MAX_COINCIDENCE_DOMAIN}")
    counts = np.zeros((m.size, domain.size))
    np.add.at(counts, (unit, codes), 1.0)
    weight = 1.0 / (m - 1)
    matrix = counts.T @ (counts * weight[:, None]) - np.diag(weight @ counts)
    return Coincidences(tuple(float(v) for v in domain), matrix, tuple(float(v) for v in matrix.sum(axis=1)))


def _ratio_cross(pairable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cross, m): cross[u, v] sums the ratio δ² over the pairs of a value of item u with a value of item v."""
    x, unit, m = _flat(pairable)
    starts = np.concatenate([[0], np.cumsum(m)[:-1]])
    cross = np.zeros((m.size, m.size))
    step = max(1, 2_000_000 // x.size)
    for start in range(0, x.size, step):
        block = _ratio_distance(x[start:start + step, None], x[None, :])
        np.add.at(cross, unit[start:start + step], np.add.reduceat(block, starts, axis=1))
    return cross, m


def _bootstrap(pairable: np.ndarray, level: Level, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """α of `rounds` resamples of the item columns (nan where undefined).

    A resample is a multiset of items with weights w (how often each was drawn). For the ratio level, whose
    expected disagreement costs O(values²) from scratch, α is computed from the weights: the observed sum is
    Σ_u w_u cross[u, u] / (m_u − 1), the expected one w·cross·w, n = Σ_u w_u m_u — the same numbers the
    resampled matrix would give, at O(items²) a round. Other levels recompute α on the resampled matrix."""
    items = pairable.shape[1]
    picks = (rng.integers(0, items, items) for _ in range(rounds))
    if level != "ratio" or items > MAX_RATIO_CROSS_ITEMS:
        return np.array([_alpha(pairable[:, pick], level) for pick in picks])
    cross, m = _ratio_cross(pairable)
    within = np.diag(cross) / (m - 1)
    draws = []
    for pick in picks:
        w = np.bincount(pick, minlength=items).astype(float)
        expected = float(w @ cross @ w)
        draws.append(1.0 - (w @ m - 1) * float(w @ within) / expected if expected > 0 else math.nan)
    return np.array(draws)


@dataclass(frozen=True)
class AlphaEstimate:
    """α with a percentile bootstrap interval over items; `n_pairable` counts the values that entered α.

    `low` and `high` are nan when no bootstrap round gave a defined α (or `rounds` is 0)."""

    alpha: float
    low: float
    high: float
    rounds: int
    level: Level
    n_items: int
    n_raters: int
    n_pairable: int
    confidence: float = 0.95
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": _num(self.alpha), "low": _num(self.low), "high": _num(self.high), "rounds": self.rounds,
                "level": self.level, "n_items": self.n_items, "n_raters": self.n_raters,
                "n_pairable": self.n_pairable, "confidence": self.confidence, "seed": self.seed}


def alpha_interval(values: Any, level: Level = "interval", *, rounds: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> AlphaEstimate:
    """α and its percentile bootstrap interval: item columns are resampled with replacement (the items are the
    sample; the raters stay fixed), `rounds` times from a generator seeded with `seed`, so the interval is the same
    on every run. Rounds whose α is undefined (e.g. a draw of items without variation) are skipped."""
    level = _check_level(level)
    if rounds < 0:
        raise InputError(f"bootstrap rounds must be 0 or more, got {rounds}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must lie between 0 and 1, got {confidence}")
    array = as_ratings(values)
    point = krippendorff_alpha(array, level)
    pairable = _pairable(array)
    low = high = math.nan
    if rounds and pairable.shape[1]:
        draws = _bootstrap(pairable, level, rounds, np.random.default_rng(seed))
        draws = draws[np.isfinite(draws)]
        if draws.size:
            tail = (1.0 - confidence) / 2.0
            low, high = (float(q) for q in np.quantile(draws, [tail, 1.0 - tail]))
    return AlphaEstimate(alpha=point, low=low, high=high, rounds=rounds, level=level, n_items=array.shape[1],
                         n_raters=array.shape[0], n_pairable=int((~np.isnan(pairable)).sum()),
                         confidence=confidence, seed=seed)


# --------------------------------------------------------------------------- intraclass correlation


@dataclass(frozen=True)
class IccResult:
    """ICC(A,1) (two-way random effects, absolute agreement, one rater) and ICC(C,1) (two-way, consistency, one
    rater) after McGraw & Wong (1996), from the mean squares of the items × raters ANOVA, with F-based intervals.

    pingouin calls them ICC2 and ICC3. An undefined value (e.g. no variation at all) is nan."""

    icc_a1: float
    icc_c1: float
    a1_low: float
    a1_high: float
    c1_low: float
    c1_high: float
    ms_items: float
    ms_raters: float
    ms_error: float
    n_items: int
    n_raters: int
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {"icc_a1": _num(self.icc_a1), "icc_a1_interval": [_num(self.a1_low), _num(self.a1_high)],
                "icc_c1": _num(self.icc_c1), "icc_c1_interval": [_num(self.c1_low), _num(self.c1_high)],
                "ms_items": _num(self.ms_items), "ms_raters": _num(self.ms_raters), "ms_error": _num(self.ms_error),
                "n_items": self.n_items, "n_raters": self.n_raters, "confidence": self.confidence}


def icc_unavailable(values: Any) -> str | None:
    """Why the ICCs cannot be computed for this matrix, or None when they can."""
    array = as_ratings(values)
    if array.shape[0] < 2 or array.shape[1] < 2:
        return f"the ICCs need at least 2 raters and 2 items (got {array.shape[0]} and {array.shape[1]})"
    missing = int(np.isnan(array).sum())
    if missing:
        return f"{missing} of {array.size} cells are missing; the ICCs need every rater to rate every item"
    return None


def icc(values: Any, confidence: float = 0.95) -> IccResult | None:
    """ICC(A,1) and ICC(C,1) of complete data; None when a cell is missing or there are fewer than 2 raters or
    items (`icc_unavailable` says which)."""
    from scipy.stats import f as f_dist

    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must lie between 0 and 1, got {confidence}")
    array = as_ratings(values)
    if icc_unavailable(array) is not None:
        return None
    y = array.T  # items (targets) × raters
    n, k = y.shape
    grand = y.mean()
    item_means, rater_means = y.mean(axis=1), y.mean(axis=0)
    ms_items = k * float(np.sum((item_means - grand) ** 2)) / (n - 1)
    ms_raters = n * float(np.sum((rater_means - grand) ** 2)) / (k - 1)
    residual = y - item_means[:, None] - rater_means[None, :] + grand
    ms_error = float(np.sum(residual ** 2)) / ((n - 1) * (k - 1))
    q = 1.0 - (1.0 - confidence) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ms_items_, ms_raters_, ms_error_ = np.float64(ms_items), np.float64(ms_raters), np.float64(ms_error)
        c1 = (ms_items_ - ms_error_) / (ms_items_ + (k - 1) * ms_error_)
        a1 = (ms_items_ - ms_error_) / (ms_items_ + (k - 1) * ms_error_ + k * (ms_raters_ - ms_error_) / n)
        # ICC(C,1): the F test of items against error
        f_obs = ms_items_ / ms_error_
        df_items, df_error = n - 1, (n - 1) * (k - 1)
        f_low = f_obs / f_dist.ppf(q, df_items, df_error)
        f_high = f_obs * f_dist.ppf(q, df_error, df_items)
        c1_low, c1_high = (f_low - 1) / (f_low + k - 1), (f_high - 1) / (f_high + k - 1)
        # ICC(A,1): Satterthwaite's degrees of freedom for a·MS_raters + b·MS_error (McGraw & Wong 1996, table 7)
        a = k * a1 / (n * (1 - a1))
        b = 1 + k * a1 * (n - 1) / (n * (1 - a1))
        v = (a * ms_raters_ + b * ms_error_) ** 2 / ((a * ms_raters_) ** 2 / (k - 1) + (b * ms_error_) ** 2 / df_error)
        f_star_low = f_dist.ppf(q, n - 1, v)
        f_star_high = f_dist.ppf(q, v, n - 1)
        spread = k * ms_raters_ + (k * n - k - n) * ms_error_
        a1_low = n * (ms_items_ - f_star_low * ms_error_) / (f_star_low * spread + n * ms_items_)
        a1_high = n * (f_star_high * ms_items_ - ms_error_) / (spread + n * f_star_high * ms_items_)
    return IccResult(icc_a1=float(a1), icc_c1=float(c1), a1_low=float(a1_low), a1_high=float(a1_high),
                     c1_low=float(c1_low), c1_high=float(c1_high), ms_items=ms_items, ms_raters=ms_raters,
                     ms_error=ms_error, n_items=n, n_raters=k, confidence=confidence)


# --------------------------------------------------------------------------- raters


def _ids(rater_ids: Sequence[str] | None, count: int) -> list[str]:
    if rater_ids is None:
        return [str(i) for i in range(count)]
    if len(rater_ids) != count:
        raise InputError(f"{len(rater_ids)} rater ids for {count} raters")
    return [str(r) for r in rater_ids]


def _deviations(array: np.ndarray) -> np.ndarray:
    """Each rating minus the mean of the OTHER raters' ratings of the item; nan where there is no other rating."""
    present = ~np.isnan(array)
    count = present.sum(axis=0)
    total = np.where(present, array, 0.0).sum(axis=0)
    others = count[None, :] - present
    with np.errstate(divide="ignore", invalid="ignore"):
        others_mean = (total[None, :] - np.where(present, array, 0.0)) / others
    return np.where(present & (others > 0), array - others_mean, np.nan)


@dataclass(frozen=True)
class RaterSeverity:
    """A rater's severity: the mean of (their rating − the other raters' mean) over the items they share with
    others (negative: harsher than the panel). `robust_z` measures it against the panel's median severity in robust
    standard deviations; `outlier` is |robust_z| > z. nan/None when undefined (no shared item, too few raters)."""

    rater: str
    severity: float
    n_items: int
    robust_z: float | None
    outlier: bool

    def to_dict(self) -> dict[str, Any]:
        return {"rater": self.rater, "severity": _num(self.severity), "n_items": self.n_items,
                "robust_z": _num(self.robust_z), "outlier": self.outlier}


def _robust_scale(sample: np.ndarray) -> float:
    """1.4826 × MAD; when more than half the raters agree exactly the MAD is 0, so sqrt(π/2) × the mean absolute
    deviation stands in (both estimate the standard deviation of a normal sample)."""
    median = np.median(sample)
    mad = MAD_TO_SD * float(np.median(np.abs(sample - median)))
    return mad if mad > 0 else MEAN_AD_TO_SD * float(np.mean(np.abs(sample - median)))


def severities(values: Any, *, z: float = 2.0, rater_ids: Sequence[str] | None = None) -> list[RaterSeverity]:
    """Each rater's severity, in input order, flagged as an outlier when it lies more than `z` robust standard
    deviations (1.4826 × MAD over the raters) from the median severity. Needs 3 raters with a severity to flag
    anyone; a panel whose severities are all equal has no outlier."""
    if z <= 0:
        raise InputError(f"the outlier threshold z must be positive, got {z}")
    array = as_ratings(values)
    ids = _ids(rater_ids, array.shape[0])
    deviations = _deviations(array)
    counts = (~np.isnan(deviations)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        severity = np.where(counts > 0, np.nansum(deviations, axis=1) / np.maximum(counts, 1), np.nan)
    finite = severity[np.isfinite(severity)]
    scale = _robust_scale(finite) if finite.size >= MIN_RATERS_FOR_OUTLIERS else 0.0
    median = float(np.median(finite)) if finite.size else math.nan
    out = []
    for rater, value, count in zip(ids, severity, counts, strict=True):
        robust_z = (float(value) - median) / scale if scale > 0 and math.isfinite(value) else None
        out.append(RaterSeverity(rater=rater, severity=float(value), n_items=int(count), robust_z=robust_z,
                                 outlier=robust_z is not None and abs(robust_z) > z))
    return out


@dataclass(frozen=True)
class RaterDeviation:
    """For calibration: how far a rater lies from the rest of the panel (mean |rating − others' mean| over shared
    items), and α of the panel without them — a rater whose removal raises α a lot is the one who disagrees."""

    rater: str
    mean_abs_deviation: float
    n_items: int
    alpha_without: float

    def to_dict(self) -> dict[str, Any]:
        return {"rater": self.rater, "mean_abs_deviation": _num(self.mean_abs_deviation), "n_items": self.n_items,
                "alpha_without": _num(self.alpha_without)}


def deviation_from_panel(values: Any, level: Level = "interval", *,
                         rater_ids: Sequence[str] | None = None) -> list[RaterDeviation]:
    """Each rater's mean absolute deviation from the others and α at `level` without them, in input order."""
    level = _check_level(level)
    array = as_ratings(values)
    ids = _ids(rater_ids, array.shape[0])
    deviations = np.abs(_deviations(array))
    counts = (~np.isnan(deviations)).sum(axis=1)
    out = []
    for r, rater in enumerate(ids):
        mean_abs = float(np.nansum(deviations[r]) / counts[r]) if counts[r] else math.nan
        without = krippendorff_alpha(np.delete(array, r, axis=0), level)
        out.append(RaterDeviation(rater=rater, mean_abs_deviation=mean_abs, n_items=int(counts[r]),
                                  alpha_without=without))
    return out


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class AgreementReport:
    """Everything `simsa panel agreement` shows: α with its interval, the ICCs (or why not), and per rater the
    severity and deviation from the panel."""

    alpha: AlphaEstimate
    icc: IccResult | None
    icc_reason: str | None
    severities: tuple[RaterSeverity, ...]
    deviations: tuple[RaterDeviation, ...]
    rater_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    n_missing: int

    def to_dict(self) -> dict[str, Any]:
        raters = []
        for severity, deviation in zip(self.severities, self.deviations, strict=True):
            raters.append({"id": severity.rater, "severity": _num(severity.severity), "n_items": severity.n_items,
                           "robust_z": _num(severity.robust_z), "outlier": severity.outlier,
                           "mean_abs_deviation": _num(deviation.mean_abs_deviation),
                           "alpha_without": _num(deviation.alpha_without)})
        return {"alpha": _num(self.alpha.alpha), "alpha_interval": [_num(self.alpha.low), _num(self.alpha.high)],
                "confidence": self.alpha.confidence, "rounds": self.alpha.rounds, "seed": self.alpha.seed,
                "level": self.alpha.level, "icc": None if self.icc is None else self.icc.to_dict(),
                "icc_unavailable": self.icc_reason, "raters": raters, "n_items": self.alpha.n_items,
                "n_raters": self.alpha.n_raters, "n_pairable": self.alpha.n_pairable, "n_missing": self.n_missing}


def agreement_report(values: Any, rater_ids: Sequence[str], item_ids: Sequence[str], level: Level = "interval",
                     rounds: int = 1000, seed: int = 0, *, z: float = 2.0) -> AgreementReport:
    """α with its bootstrap interval, the ICCs where the data are complete, and each rater's severity and
    deviation from the panel."""
    array = as_ratings(values)
    if len(item_ids) != array.shape[1]:
        raise InputError(f"{len(item_ids)} item ids for {array.shape[1]} items")
    ids = _ids(rater_ids, array.shape[0])
    return AgreementReport(
        alpha=alpha_interval(array, level, rounds=rounds, seed=seed), icc=icc(array), icc_reason=icc_unavailable(array),
        severities=tuple(severities(array, z=z, rater_ids=ids)),
        deviations=tuple(deviation_from_panel(array, level, rater_ids=ids)), rater_ids=tuple(ids),
        item_ids=tuple(str(i) for i in item_ids), n_missing=int(np.isnan(array).sum()))


def _num(value: float | None) -> float | None:
    """JSON has no nan: an undefined number is null."""
    return None if value is None or not math.isfinite(value) else float(value)


# --------------------------------------------------------------------------- long table


class RatingTable(NamedTuple):
    """A long table as a matrix: `values[r, i]` is rater `rater_ids[r]`'s rating of item `item_ids[i]`."""

    values: np.ndarray
    rater_ids: list[str]
    item_ids: list[str]


def _decode(data: bytes, path: str | Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8") from None


def _header(row: list[str], path: str | Path, line: int) -> dict[str, int]:
    names = [cell.strip().lower() for cell in row]
    if not set(TABLE_COLUMNS) & set(names):
        raise InputError(f"{path}:{line}: the first line must be the header rater,item,value (got {','.join(row)})")
    extra = [name for name in names if name not in TABLE_COLUMNS]
    if extra:
        raise InputError(f"{path}:{line}: unexpected column {extra[0]!r}; the table has exactly the columns "
                         "rater,item,value")
    missing = [name for name in TABLE_COLUMNS if name not in names]
    if missing:
        raise InputError(f"{path}:{line}: the header lacks the column {missing[0]!r} (need rater,item,value)")
    if len(set(names)) != len(names):
        raise InputError(f"{path}:{line}: a column appears twice in the header")
    return {name: names.index(name) for name in TABLE_COLUMNS}


def _value(text: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"value {text!r} is not a number") from None
    if not math.isfinite(number) or abs(number) > MAX_VALUE_MAGNITUDE:
        raise ValueError(f"value {text!r} is not a finite number of magnitude at most {MAX_VALUE_MAGNITUDE:g}")
    return number


def read_long_table(path: str | Path) -> RatingTable:
    """Read a CSV `rater,item,value` (header required; blank value = missing rating) into a ratings matrix.

    Raters and items keep the order of their first appearance. A duplicate (rater, item) pair, a non-numeric
    value, a row with the wrong number of fields or an extra column is refused, naming the line; every bad row is
    named in one error (up to MAX_LISTED_PROBLEMS). Regular files of at most MAX_TABLE_BYTES only, UTF-8 with or
    without a byte order mark. Nominal codes are read as numbers too.
    """
    try:
        data = read_limited(path, MAX_TABLE_BYTES, "rating tables")
    except FileReadError as exc:
        raise InputError(f"{path}: {exc}") from None
    reader = csv.reader(io.StringIO(_decode(data, path), newline=""))
    columns: dict[str, int] | None = None
    raters: dict[str, int] = {}
    items: dict[str, int] = {}
    seen: dict[tuple[int, int], int] = {}
    cells: list[tuple[int, int, float]] = []
    problems: list[str] = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _header(row, path, line)
                continue
            problem = _row(row, line, columns, raters, items, seen, cells)
            if problem:
                problems.append(problem)
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: not a readable CSV row ({exc})") from None
    if columns is None:
        raise InputError(f"{path}: empty file; expected the header rater,item,value and one row per rating")
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"; and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise InputError(f"{path}: {shown}{more}" if len(problems) == 1 else
                         f"{path}: {len(problems)} invalid rows: {shown}{more}")
    if not cells:
        raise InputError(f"{path}: no ratings after the header")
    if len(raters) * len(items) > MAX_CELLS:
        raise InputError(f"{path}: {len(raters)} raters × {len(items)} items is more than {MAX_CELLS} cells")
    values = np.full((len(raters), len(items)), np.nan)
    for r, i, value in cells:
        values[r, i] = value
    return RatingTable(values, list(raters), list(items))


def _row(row: list[str], line: int, columns: dict[str, int], raters: dict[str, int], items: dict[str, int],
         seen: dict[tuple[int, int], int], cells: list[tuple[int, int, float]]) -> str | None:
    """Add one data row; the problem with it as text (naming the line), or None."""
    if len(row) != len(columns):
        return f"line {line}: {len(row)} fields, expected {len(columns)} (rater,item,value)"
    rater, item = row[columns["rater"]].strip(), row[columns["item"]].strip()
    if not rater or not item:
        return f"line {line}: the {'rater' if not rater else 'item'} is blank"
    try:
        value = _value(row[columns["value"]])
    except ValueError as exc:
        return f"line {line}: {exc}"
    key = (raters.setdefault(rater, len(raters)), items.setdefault(item, len(items)))
    if key in seen:
        return f"line {line}: rater {rater!r} rated item {item!r} already on line {seen[key]}"
    seen[key] = line
    cells.append((*key, value))
    return None
