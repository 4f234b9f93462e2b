"""The lineage statistics on arrays: p-value arithmetic, calibration, invariances, localisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simsa.lineage.stats.correspondence import (
    SamplingSettings,
    best_match,
    coordinate_draws,
    evidence,
    paired_match,
    prepare_candidate,
    prepare_reference,
)
from simsa.lineage.stats.localise import combine_layers, monotone_map
from simsa.lineage.stats.naive import gain_similarity
from simsa.lineage.stats.pvalues import cauchy_log10, sidak_log10, t_log10_sf


def test_cauchy_combination_matches_its_closed_form() -> None:
    for lps in ([-0.3], [-1.0, -2.0, -0.5], [-4.0] * 10, [-0.01] * 50, [-7.5, -0.2]):
        t = float(np.mean([math.tan((0.5 - 10 ** v) * math.pi) for v in lps]))
        expected = math.log10(0.5 - math.atan(t) / math.pi)
        assert cauchy_log10(lps) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_cauchy_combination_reaches_the_far_tail_and_is_dominated_by_the_smallest_p() -> None:
    # tan((1/2 − p)π) ≈ 1/(πp): one tiny p among n gives about n·p
    assert cauchy_log10([-300.0, -0.3, -0.1, -0.5]) == pytest.approx(-300 + math.log10(4), abs=1e-6)
    a, b = cauchy_log10([-300.0] * 32), cauchy_log10([-400.0] * 32)
    assert math.isfinite(a) and b < a <= -299.9
    assert cauchy_log10([]) == 0.0 and cauchy_log10([-math.inf, -1.0]) == -math.inf
    assert cauchy_log10([0.0, 0.0]) == pytest.approx(0.0, abs=1e-9)  # p = 1 everywhere: no evidence


def test_cauchy_combination_is_calibrated_under_dependence() -> None:
    """Independent, and perfectly dependent, uniform p-values: P(p ≤ α) stays at α (Fisher's would not)."""
    rng = np.random.default_rng(3)
    alpha = 0.01
    indep = np.array([cauchy_log10(list(np.log10(r))) for r in rng.uniform(size=(20000, 6))])
    same = np.array([cauchy_log10([math.log10(u)] * 6) for u in rng.uniform(size=20000)])
    for lp in (indep, same):
        rate = float(np.mean(lp <= math.log10(alpha)))
        assert stats.binomtest(int(rate * lp.size), lp.size, alpha).pvalue > 1e-3, rate


def test_sidak_is_exact_and_never_underflows() -> None:
    p, k = 0.01, 7
    assert 10 ** sidak_log10(math.log10(p), k) == pytest.approx(1 - (1 - p) ** k)
    assert sidak_log10(-500.0, 10) == pytest.approx(-499.0)
    assert sidak_log10(-0.0001, 1000) <= 0.0


def test_t_tail_reaches_tiny_pvalues() -> None:
    assert t_log10_sf(1e6, 31) < -150
    assert t_log10_sf(-3.0, 31) > -0.01
    assert t_log10_sf(math.inf, 31) == -math.inf


def _model(rng: np.random.Generator, d: int = 64, n: int = 128) -> list[np.ndarray]:
    """Unit views with the per-coordinate scale structure trained models have (a few huge coordinates)."""
    scale = np.exp(rng.normal(0, 1, d))
    scale[rng.integers(d)] = 20.0
    return [rng.normal(size=(n, d)) * scale for _ in range(3)]


def _test(ref: list[np.ndarray], cand: list[np.ndarray], rng: np.random.Generator, settings: SamplingSettings):
    draws = coordinate_draws(ref[0].shape[1], settings, rng)
    prepared_ref = prepare_reference([p[:, draws.reference] for p in ref])
    return evidence([best_match(prepared_ref, prepare_candidate(cand, draws))])


def test_null_pvalues_are_uniform() -> None:
    """Independent pairs: the calibrated p-values must not pile up near 0 (KS against uniform)."""
    rng = np.random.default_rng(11)
    settings = SamplingSettings(units=128, draws=24)
    ps = [10 ** _test(_model(rng), _model(rng), rng, settings).log10_p for _ in range(120)]
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert np.mean(np.array(ps) < 0.05) < 0.12


def test_noisy_permuted_copy_is_detected() -> None:
    rng = np.random.default_rng(3)
    ref = _model(rng)
    perm = rng.permutation(128)
    cand = [p[perm] + rng.normal(size=p.shape) * 2 * p.std() for p in ref]
    ev = _test(ref, cand, rng, SamplingSettings(units=128, draws=32))
    assert ev.log10_p < -10
    assert ev.p_monte_carlo == pytest.approx(1 / 33)


def test_statistic_ignores_unit_order_and_folded_gains() -> None:
    """Permuting candidate neurons or folding a positive per-coordinate gain into them changes nothing."""
    rng = np.random.default_rng(5)
    ref, cand = _model(rng), _model(rng)
    settings = SamplingSettings(units=256, draws=8)
    draws = coordinate_draws(64, settings, np.random.default_rng(0))
    prepared_ref = prepare_reference([p[:, draws.reference] for p in ref])
    base = best_match(prepared_ref, prepare_candidate(cand, draws)).mean(axis=1)
    perm = rng.permutation(128)
    gains = np.exp(rng.normal(0, 0.5, 64))
    moved = best_match(prepared_ref, prepare_candidate([p[perm] * gains for p in cand], draws)).mean(axis=1)
    np.testing.assert_allclose(base, moved, rtol=1e-5)


def test_paired_rows_compare_token_with_token() -> None:
    rng = np.random.default_rng(8)
    ref = rng.normal(size=(200, 64))
    cand = ref + rng.normal(size=ref.shape)
    draws = coordinate_draws(64, SamplingSettings(draws=16), rng)
    scores = paired_match(prepare_reference([ref[:, draws.reference]]), prepare_candidate([cand], draws))
    assert scores.shape == (17, 200)
    assert scores[0].mean() > 0.6 > 0.2 > abs(scores[1:].mean())
    assert evidence([scores]).log10_p < -10


def test_monotone_map_skips_dropped_layers_and_names_new_ones() -> None:
    e = np.full((4, 5), -0.2)
    e[0, 0], e[1, 1], e[2, 3], e[3, 4] = -80, -70, -60, -65  # reference layer 2 was dropped
    lm = monotone_map(e, [0, 1, 2, 3], [0, 1, 2, 3, 4])
    assert [(a, b) for a, b, _ in lm.pairs] == [(0, 0), (1, 1), (2, 3), (3, 4)]
    e = np.full((4, 4), -0.2)
    e[0, 0], e[2, 2], e[3, 3] = -50, -40, -60
    e[1, 3] = -8  # significant but out of order: not worth breaking the run (it would cost 2←2 and a restart)
    lm = monotone_map(e, [0, 1, 2, 3], [0, 1, 2, 3])
    assert [(a, b) for a, b, _ in lm.pairs] == [(0, 0), (2, 2), (3, 3)] and lm.unmapped == [1]


def test_map_restarts_for_depth_upscaling() -> None:
    # 4 → 6 layers, SOLAR-style: candidate layers 0..5 copy reference layers 0, 1, 2, 1, 2, 3.
    e = np.full((6, 4), -0.3)
    for a, b in enumerate([0, 1, 2, 1, 2, 3]):
        e[a, b] = -40
    e[3, 2] = e[4, 1] = -9  # adjacent copies resemble each other a little
    lm = monotone_map(e, list(range(6)), list(range(4)))
    assert [(a, b) for a, b, _ in lm.pairs] == [(0, 0), (1, 1), (2, 2), (3, 1), (4, 2), (5, 3)]
    assert lm.segments == [[0, 2, 0, 2], [3, 5, 1, 3]] and lm.reused_reference_layers == [1, 2]
    assert lm.unmapped == []


def test_monotone_map_allows_duplicated_layers() -> None:
    e = np.full((3, 2), -0.1)
    e[0, 0], e[1, 0], e[2, 1] = -30, -30, -30
    assert [(a, b) for a, b, _ in monotone_map(e, [0, 1, 2], [0, 1]).pairs] == [(0, 0), (1, 0), (2, 1)]


def test_weak_pairs_are_not_mapped_and_combination_stays_null_like() -> None:
    e = np.full((6, 6), -1.5)  # p ≈ 0.03 everywhere: not significant after looking at 36 pairs
    assert monotone_map(e, list(range(6)), list(range(6))).pairs == []
    assert combine_layers(np.full((6, 6), -0.3)) > -1


def test_naive_gain_cosine_is_high_for_unrelated_gains() -> None:
    rng = np.random.default_rng(1)
    a, b = 1 + 0.05 * rng.normal(size=512), 1 + 0.05 * rng.normal(size=512)
    sim = gain_similarity(a, b)
    assert sim["raw_cosine"] > 0.99 and abs(sim["centred_cosine"]) < 0.2


def test_overall_verdict_follows_the_corrected_overall_p_value() -> None:
    from simsa.lineage.stats.verdict import Thresholds, overall_verdict

    th = Thresholds()
    comps = {"text.embedding": "independent", "text.attention": "inconclusive", "text.mlp": "independent"}
    units = dict.fromkeys(comps, 256)
    # One component at p = 0.008 alone no longer makes the whole model inconclusive: corrected for three
    # components the overall p is 0.024.
    verdict, rule = overall_verdict(comps, set(), False, sidak_log10(math.log10(0.008), 3), th, units)
    assert verdict == "independent" and "corrected overall" in rule
    verdict, rule = overall_verdict(comps, set(), False, sidak_log10(-4.0, 3), th, units)
    assert verdict == "inconclusive" and "text.attention" in rule
    assert overall_verdict({**comps, "text.mlp": "derived"}, set(), False, -30.0, th, units)[0] == "derived"
    assert overall_verdict(comps, set(comps), False, 0.0, th, units)[0] == "inconclusive"  # nothing testable
    few = dict.fromkeys(comps, 8)
    assert overall_verdict(comps, set(), False, -0.1, th, few)[0] == "inconclusive"


def test_a_components_verdict_is_corrected_for_the_number_of_components_tested() -> None:
    from simsa.lineage.stats.verdict import Thresholds, component_verdict

    th = Thresholds()
    alone = component_verdict(math.log10(0.008), 256, 0.0, False, th, 0.0, 1)
    among_four = component_verdict(math.log10(0.008), 256, 0.0, False, th, 0.0, 4)
    assert alone[0] == "inconclusive"
    assert among_four[0] == "independent" and "Šidák over 4 components" in among_four[1]
    assert component_verdict(-40.0, 256, 0.0, False, th, 0.9, 5)[0] == "derived"
