"""Aggregating expert totals into a team's panel score: values against numpy/scipy, the standard errors'
formulas, and severity-adjusted totals beside the raw ones."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.stats import mstats

from simsa.errors import InputError
from simsa.panel.aggregate import aggregate, severity_adjusted, winsorised_sd
from simsa.panel.agreement import severities

N = math.nan
SAMPLES = [
    [71.0, 64.5, 80.0, 77.5, 69.0],
    [12.0, 30.0, 28.5, 29.0, 31.0, 27.0, 33.0],
    list(np.random.default_rng(3).normal(25, 5, 10)),
    list(np.random.default_rng(4).uniform(0, 35, 13)),
]


@pytest.mark.parametrize("x", SAMPLES)
def test_mean_and_its_standard_error(x):
    found = aggregate(x, "mean")
    assert found.value == pytest.approx(np.mean(x), abs=1e-12)
    assert found.stderr == pytest.approx(stats.sem(x), abs=1e-12)
    assert found.stderr == pytest.approx(np.std(x, ddof=1) / math.sqrt(len(x)), abs=1e-12)
    assert (found.n, found.rule) == (len(x), "mean")


@pytest.mark.parametrize("x", SAMPLES)
@pytest.mark.parametrize("trim", [0.1, 0.2, 0.25])
def test_trimmed_mean_with_the_tukey_mclaughlin_standard_error(x, trim):
    found = aggregate(x, "trimmed_mean", trim)
    assert found.value == pytest.approx(stats.trim_mean(x, trim), abs=1e-12)
    assert found.stderr == pytest.approx(float(mstats.trimmed_stde(np.array(x), limits=(trim, trim))), abs=1e-12)
    assert found.trim == trim


def test_trimmed_mean_by_hand():
    x = [1.0, 2.0, 3.0, 4.0, 100.0]
    found = aggregate(x, "trimmed_mean", 0.2)  # one value cut from each end
    assert found.value == pytest.approx(3.0)
    winsorised = [2.0, 2.0, 3.0, 4.0, 4.0]
    assert winsorised_sd(x, 0.2) == pytest.approx(np.std(winsorised, ddof=1))
    assert found.stderr == pytest.approx(np.std(winsorised, ddof=1) / (0.6 * math.sqrt(5)))
    assert found.stderr < aggregate(x, "mean").stderr / 10  # the outlier does not inflate it
    untrimmed = aggregate(x, "trimmed_mean", 0.0)
    assert untrimmed.value == pytest.approx(np.mean(x)) and untrimmed.stderr == pytest.approx(stats.sem(x))


@pytest.mark.parametrize("x", SAMPLES)
def test_median_and_its_asymptotic_standard_error(x):
    found = aggregate(x, "median")
    assert found.value == np.median(x)
    assert found.stderr == pytest.approx(1.2533141373155 * np.std(x, ddof=1) / math.sqrt(len(x)), abs=1e-12)


def test_median_standard_error_matches_the_spread_of_medians():
    """The asymptotic formula is right for normal samples: compare it with simulated medians."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.normal(0, 1, (20000, 41)), axis=1)
    typical = aggregate(list(rng.normal(0, 1, 41)), "median").stderr
    assert np.std(medians) == pytest.approx(math.sqrt(math.pi / 2) / math.sqrt(41), rel=0.03)
    assert 0.5 * np.std(medians) < typical < 1.6 * np.std(medians)


@pytest.mark.parametrize("rule", ["mean", "trimmed_mean", "median"])
def test_fewer_than_two_values_have_no_standard_error(rule):
    found = aggregate([42.0], rule)
    assert found.value == 42.0 and found.stderr is None and found.n == 1
    assert json.loads(json.dumps(found.to_dict()))["stderr"] is None
    with pytest.raises(InputError, match="no expert totals"):
        aggregate([], rule)
    with pytest.raises(InputError, match="finite"):
        aggregate([1.0, N], rule)


def test_bad_rule_and_trim_are_refused():
    with pytest.raises(InputError, match="unknown aggregation rule"):
        aggregate([1.0, 2.0], "mode")
    with pytest.raises(InputError, match=r"below 0\.5"):
        aggregate([1.0, 2.0], "trimmed_mean", 0.5)
    with pytest.raises(InputError, match="flat list"):
        aggregate([[1.0, 2.0]], "mean")


def panel_with_a_harsh_expert() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    truth = rng.uniform(15, 30, 12)
    totals = truth[None, :] + rng.normal(0, 0.5, (7, 12))
    totals[4] -= 6.0
    totals[rng.random(totals.shape) < 0.25] = np.nan
    return np.clip(totals, 0, 35), truth


def test_severity_adjustment_takes_the_harsh_expert_out():
    totals, truth = panel_with_a_harsh_expert()
    experts, teams = [f"e{i}" for i in range(7)], [f"t{j}" for j in range(12)]
    found = severity_adjusted(totals, experts, teams, low=0, high=35)
    expected = severities(totals, rater_ids=experts)
    assert found.severities == tuple(expected)
    assert found.severities[4].outlier and found.severities[4].severity == pytest.approx(-6.0, abs=0.6)
    shift = np.array([s.severity for s in expected])
    np.testing.assert_allclose(found.adjusted, np.clip(totals - shift[:, None], 0, 35))
    assert np.array_equal(np.isnan(found.adjusted), np.isnan(totals))
    # a team the harsh expert scored: the adjusted mean is closer to the truth than the raw one
    team = next(j for j in range(12) if not np.isnan(totals[4, j]))
    raw, adjusted = found.team(teams[team], "mean")
    assert raw.n == adjusted.n == int((~np.isnan(totals[:, team])).sum())
    assert raw.value == pytest.approx(np.nanmean(totals[:, team]))
    assert abs(adjusted.value - truth[team]) < abs(raw.value - truth[team])
    out = json.loads(json.dumps(found.to_dict(), allow_nan=False))
    assert out["experts"][4]["id"] == "e4" and out["experts"][4]["outlier"] is True
    assert out["teams"][team]["raw"]["e4"] == pytest.approx(totals[4, team])


def test_severity_adjustment_is_clipped_and_leaves_loners_alone():
    totals = np.array([[34.0, 33.0, N], [30.0, 29.0, N], [N, N, 20.0]])
    found = severity_adjusted(totals, ["lenient", "strict", "alone"], ["a", "b", "c"], low=0, high=35)
    assert found.severities[0].severity == pytest.approx(4.0)
    assert found.adjusted[1, 0] == pytest.approx(34.0)  # 30 + 4
    assert found.adjusted[0, 0] == pytest.approx(30.0)
    assert math.isnan(found.severities[2].severity) and found.adjusted[2, 2] == 20.0
    clipped = severity_adjusted([[1.0, 2.0], [9.0, 10.0]], ["a", "b"], ["x", "y"], low=0, high=10)
    assert clipped.adjusted[0].tolist() == [9.0, 10.0] and clipped.adjusted[1].tolist() == [1.0, 2.0]
    clipped = severity_adjusted([[1.0, 9.5], [3.0, 10.0]], ["a", "b"], ["x", "y"], low=0, high=10)
    assert clipped.adjusted[0, 1] == 10.0  # 9.5 + 1.25 clipped to the top of the scale


def test_severity_adjustment_refuses_bad_input():
    with pytest.raises(InputError, match="shape"):
        severity_adjusted([[1.0, 2.0]], ["a", "b"], ["x", "y"], low=0, high=10)
    with pytest.raises(InputError, match="low bound"):
        severity_adjusted([[1.0]], ["a"], ["x"], low=5, high=5)
    with pytest.raises(InputError, match="on the scale"):
        severity_adjusted([[11.0]], ["a"], ["x"], low=0, high=10)
    found = severity_adjusted([[1.0, 2.0], [2.0, 3.0]], ["a", "b"], ["x", "y"], low=0, high=10)
    with pytest.raises(InputError, match="no totals for team"):
        found.team("z")
