"""From the experts' totals to a team's panel score: the declared aggregation rule, its standard error, and the
severity-adjusted totals shown beside the raw ones.

The standard error travels with the `panel:expert` score into the decision's robustness analysis, so each rule
comes with an estimate that says how much the score would move with other experts of the same kind:

* mean — sd / √n (ddof = 1);
* trimmed mean — scipy's `trim_mean` (⌊trim · n⌋ values cut from each end) with the Tukey–McLaughlin (1963)
  standard error s_w / ((1 − 2 · trim) √n), s_w the standard deviation (ddof = 1) of the sample winsorised at
  the same points (what `scipy.stats.mstats.trimmed_stde` computes);
* median — the asymptotic √(π/2) · sd / √n (1.2533 · sd / √n; exact for normal samples). Chosen over a
  bootstrap because a bootstrap median of 5 to 10 experts takes only a handful of distinct values, and because a
  closed form needs no seed to be reproduced.

A standard error is None with fewer than two values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from simsa.errors import InputError
from simsa.panel.agreement import RaterSeverity, as_ratings, severities

Rule = Literal["mean", "trimmed_mean", "median"]
RULES: tuple[Rule, ...] = ("mean", "trimmed_mean", "median")
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)


@dataclass(frozen=True)
class Aggregate:
    """A team's panel score under `rule` from `n` expert totals, with its standard error (None for n < 2)."""

    value: float
    stderr: float | None
    n: int
    rule: Rule
    trim: float | None = None  # the proportion cut from each end, for the trimmed mean

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "stderr": self.stderr, "n": self.n, "rule": self.rule, "trim": self.trim}


def _sample(values: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expert totals must be numbers: {exc}") from None
    if x.ndim != 1:
        raise InputError("expert totals must be a flat list of numbers")
    if x.size == 0:
        raise InputError("no expert totals to aggregate")
    if not np.isfinite(x).all():
        raise InputError("expert totals must be finite numbers (leave out the experts who did not score)")
    return x


def winsorised_sd(values: Sequence[float] | np.ndarray, trim: float) -> float:
    """The standard deviation (ddof = 1) after replacing the ⌊trim · n⌋ lowest and highest values with the nearest
    value kept; nan for fewer than two values."""
    x = np.sort(_sample(values))
    if x.size < 2:
        return math.nan
    cut = int(trim * x.size)
    return float(np.std(np.clip(x, x[cut], x[x.size - cut - 1]), ddof=1))


def aggregate(values: Sequence[float], rule: Rule = "mean", trim: float = 0.2) -> Aggregate:
    """Aggregate expert totals by `rule`; `trim` is the proportion cut from EACH end by the trimmed mean."""
    from scipy.stats import trim_mean

    x = _sample(values)
    n = int(x.size)
    if rule == "mean":
        se = float(np.std(x, ddof=1) / math.sqrt(n)) if n >= 2 else None
        return Aggregate(float(np.mean(x)), se, n, rule)
    if rule == "trimmed_mean":
        if not 0.0 <= trim < 0.5:
            raise InputError(f"the trimmed mean cuts a proportion of at least 0 and below 0.5 from each end, "
                             f"got {trim}")
        se = winsorised_sd(x, trim) / ((1.0 - 2.0 * trim) * math.sqrt(n)) if n >= 2 else None
        return Aggregate(float(trim_mean(x, trim)), se, n, rule, trim)
    if rule == "median":
        se = float(MEDIAN_SE_FACTOR * np.std(x, ddof=1) / math.sqrt(n)) if n >= 2 else None
        return Aggregate(float(np.median(x)), se, n, rule)
    raise InputError(f"unknown aggregation rule {rule!r}; use one of {', '.join(RULES)}")


@dataclass(frozen=True)
class SeverityAdjustment:
    """Expert totals per (expert, team) with each expert's severity taken out: adjusted = total − severity, clipped
    to the scale [low, high]. An expert without a severity (no team shared with another expert) is left as is.

    `raw` and `adjusted` are (experts × teams) matrices with nan where an expert did not score a team."""

    rater_ids: tuple[str, ...]
    team_ids: tuple[str, ...]
    raw: np.ndarray
    adjusted: np.ndarray
    severities: tuple[RaterSeverity, ...]
    low: float
    high: float

    def team(self, team_id: str, rule: Rule = "mean", trim: float = 0.2) -> tuple[Aggregate, Aggregate]:
        """The team's raw and severity-adjusted aggregates under `rule`, side by side."""
        if team_id not in self.team_ids:
            raise InputError(f"no totals for team {team_id!r}")
        column = self.team_ids.index(team_id)
        raw, adjusted = self.raw[:, column], self.adjusted[:, column]
        scored = ~np.isnan(raw)
        return aggregate(raw[scored], rule, trim), aggregate(adjusted[scored], rule, trim)

    def to_dict(self) -> dict[str, Any]:
        def cell(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        return {"low": self.low, "high": self.high,
                "experts": [s.to_dict() | {"id": s.rater} for s in self.severities],
                "teams": [{"id": team, "raw": {r: cell(self.raw[i, j]) for i, r in enumerate(self.rater_ids)},
                           "adjusted": {r: cell(self.adjusted[i, j]) for i, r in enumerate(self.rater_ids)}}
                          for j, team in enumerate(self.team_ids)]}


def severity_adjusted(matrix: Any, rater_ids: Sequence[str], team_ids: Sequence[str], *, low: float,
                      high: float, z: float = 2.0) -> SeverityAdjustment:
    """Take each expert's severity (as in `agreement.severities`) out of their totals, within the scale bounds."""
    raw = as_ratings(matrix)
    if raw.shape != (len(rater_ids), len(team_ids)):
        raise InputError(f"totals of shape {raw.shape} for {len(rater_ids)} experts × {len(team_ids)} teams")
    if not low < high:
        raise InputError(f"the scale's low bound must lie below its high bound, got {low} and {high}")
    outside = raw[~np.isnan(raw)]
    if ((outside < low) | (outside > high)).any():
        raise InputError(f"expert totals must lie on the scale [{low:g}, {high:g}]")
    found = severities(raw, z=z, rater_ids=list(rater_ids))
    shift = np.array([s.severity if math.isfinite(s.severity) else 0.0 for s in found])
    adjusted = np.clip(raw - shift[:, None], low, high)
    return SeverityAdjustment(tuple(map(str, rater_ids)), tuple(map(str, team_ids)), raw, adjusted, tuple(found),
                              float(low), float(high))
