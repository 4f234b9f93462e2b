"""Stage adjudication core: normalisation, gates, ranking, ties, cuts, robustness — pure logic, exact numbers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from helpers import EXAMPLE, TWO_CATEGORIES, load, passing, program_text, scores
from simsa.errors import DataMissingError
from simsa.program import normalise
from simsa.program.adjudicate import decide, participants
from simsa.program.explain import decision_dict
from simsa.program.gates import licence_gate
from simsa.program.loader import load_program, parse_program
from simsa.program.robustness import resample, weight_sensitivity

AT = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
GATE = '[[stages.gates]]\nid = "originality"\nname = "Originality"\nkind = "recorded"\n'


def test_normalisations_on_known_values() -> None:
    v = np.array([50.0, 80.0, 100.0, np.nan])
    assert np.allclose(normalise.absolute(v[:3], 0, 100, True), [0.5, 0.8, 1.0])
    assert np.allclose(normalise.absolute(np.array([150.0, -5.0]), 0, 100, True), [1.0, 0.0])
    assert np.allclose(normalise.absolute(v[:3], 0, 100, False), [0.5, 0.2, 0.0])
    assert np.allclose(normalise.relative_to_best(v[:3], True), [0.5, 0.8, 1.0])
    assert np.allclose(normalise.relative_to_best(v[:3], False), [1.0, 50 / 80, 0.5])
    assert np.allclose(normalise.minmax(v[:3], True), [0.0, 0.6, 1.0])
    assert np.allclose(normalise.minmax(np.array([3.0, 3.0]), True), [1.0, 1.0])
    assert np.allclose(normalise.rank(np.array([10.0, 30.0, 30.0, 5.0]), True), [1 / 3, 5 / 6, 5 / 6, 0.0])
    # a missing score neither scores nor moves the others' normalisation
    assert np.allclose(normalise.relative_to_best(v, True)[:3], [0.5, 0.8, 1.0])
    assert np.allclose(normalise.rank(v, True)[:3], [0.0, 0.5, 1.0])


def test_points_ranking_gate_and_cut() -> None:
    teams = ["a", "b", "c", "d"]
    lp = load(program_text(teams, criteria=TWO_CATEGORIES, gates=GATE))
    table = {"a": {"bench:main": 0.9, "panel:user": 0.95}, "b": {"bench:main": 0.8, "panel:user": 0.8},
             "c": {"bench:main": 0.7, "panel:user": 0.7}, "d": {"bench:main": 0.6, "panel:user": 0.6}}
    d = decide(lp.program, "s1", scores(table), passing(teams, failing=("b",)))
    out = decision_dict(d, decided_at=AT, program_sha256=lp.sha256)
    by_team = {t["team"]: t for t in out["teams"]}
    assert by_team["a"]["total"] == pytest.approx(60 * 0.9 + 40 * 0.95)
    assert by_team["a"]["breakdown"]["user"] == {**by_team["a"]["breakdown"]["user"], "points": 38.0, "raw": 0.95}
    assert [t["team"] for t in out["teams"]] == ["a", "b", "c", "d"]
    assert by_team["b"]["status"] == "eliminated" and "gate" in by_team["b"]["reason"]
    # ranking_pool "all": b keeps its slot, so only a advances of the best two
    assert out["advanced"] == ["a"]
    assert out["title_holders"] == ["a"]
    assert set(out["eliminated"]) == {"b", "c", "d"}
    assert out["appeal_deadline"] == "2026-02-11"


def test_eligible_pool_gives_the_slot_to_the_next_team() -> None:
    teams = ["a", "b", "c"]
    text = program_text(teams, criteria=TWO_CATEGORIES, gates=GATE,
                        elimination='ranking_pool = "eligible"\nadvance_best = 2')
    lp = load(text)
    table = {t: {"bench:main": v, "panel:user": v * 100} for t, v in zip(teams, (0.9, 0.8, 0.7), strict=True)}
    d = decide(lp.program, "s1", scores(table), passing(teams, failing=("b",)))
    assert d.advanced_ids == ["a", "c"]


def test_tie_broken_by_declared_criterion_then_shared_at_cut() -> None:
    teams = ["a", "b", "c"]
    # a and b tie on total 70 (a: 0.5*60+1.0*40, b: ~0.8333*60+0.5*40 = 50+20 = 70) with b ahead on bench
    table = {"a": {"bench:main": 0.5, "panel:user": 1.0}, "b": {"bench:main": 5 / 6, "panel:user": 0.5},
             "c": {"bench:main": 1.0, "panel:user": 1.0}}
    crit = TWO_CATEGORIES.replace('source = "panel:user"', 'source = "panel:user"\nraw_range = [0, 1]')
    lp = load(program_text(teams, criteria=crit, tie_breakers='["criterion:bench"]'))
    d = decide(lp.program, "s1", scores(table), {})
    out = decision_dict(d, decided_at=AT, program_sha256="x")
    assert [t["team"] for t in out["teams"]] == ["c", "b", "a"]
    assert [t["rank"] for t in out["teams"]] == [1, 2, 3]
    assert out["advanced"] == ["c", "b"]
    assert out["teams"][1]["tie_break"] == "tied on 70 points with Team a; ordered by Benchmarks points (50 vs 30)"
    assert out["teams"][2]["tie_break_ko"] == "Team b와(과) 70점 동점; Benchmarks 점수로 순위 결정(30 대 50)"
    # without tie-breakers the tie is shared; at the cut line both advance or both go, as declared
    lp2 = load(program_text(teams, criteria=crit, tie_breakers="[]"))
    d2 = decide(lp2.program, "s1", scores(table), {})
    assert sorted(d2.outcome.rank.tolist()) == [1, 2, 2]
    assert set(d2.advanced_ids) == {"a", "b", "c"}
    lp3 = load(program_text(teams, criteria=crit, tie_breakers="[]",
                            elimination='advance_best = 2\ntie_at_cut = "eliminate_all"'))
    assert decide(lp3.program, "s1", scores(table), {}).advanced_ids == ["c"]


def test_cut_lowest_and_minimum_total() -> None:
    teams = ["a", "b", "c", "d"]
    table = {t: {"bench:main": v, "panel:user": v} for t, v in zip(teams, (0.9, 0.7, 0.5, 0.3), strict=True)}
    crit = TWO_CATEGORIES.replace('source = "panel:user"', 'source = "panel:user"\nraw_range = [0, 1]')
    lp = load(program_text(teams, criteria=crit, elimination="cut_lowest = 1\nmin_total = 60"))
    d = decide(lp.program, "s1", scores(table), {})
    out = decision_dict(d, decided_at=AT, program_sha256="x")
    assert out["advanced"] == ["a", "b"]
    reasons = {t["team"]: t["reason"] for t in out["teams"]}
    assert "below the minimum of 60.00" in reasons["c"]
    assert "below the minimum" in reasons["d"]
    assert reasons["b"].startswith("Advanced: rank 2 of 4")


def test_missing_scores_and_gate_results_refuse_the_decision() -> None:
    teams = ["a", "b"]
    lp = load(program_text(teams, criteria=TWO_CATEGORIES, gates=GATE))
    table = {"a": {"bench:main": 0.9, "panel:user": 0.9}, "b": {"bench:main": 0.8}}
    with pytest.raises(DataMissingError, match="no score for panel:user of team b"):
        decide(lp.program, "s1", scores(table), passing(teams))
    table["b"]["panel:user"] = 0.5
    with pytest.raises(DataMissingError, match="gate originality result of team b"):
        decide(lp.program, "s1", scores(table), passing(["a"]))
    zero = TWO_CATEGORIES.replace('source = "panel:user"', 'source = "panel:user"\nmissing = "zero"')
    lp2 = load(program_text(teams, criteria=zero))
    d = decide(lp2.program, "s1", scores({"a": {"bench:main": 0.5}, "b": {"bench:main": 0.4}}), {})
    assert d.outcome.totals.tolist() == [30.0, 24.0]


def test_licence_gate_reads_declarations() -> None:
    text = load_program(EXAMPLE).text
    reused = '  weights = "reused_frozen"'
    text = text.replace("  credited = true\n" + reused, "  credited = false\n" + reused)
    program = parse_program(text, "x.toml").program
    gate = next(g for g in program.stage("stage-1").gates if g.kind == "licence")
    halla = licence_gate(gate, program.team("halla"))
    assert not halla.passed and "is not credited" in halla.evidence
    assert licence_gate(gate, program.team("jiri")).passed


def test_weight_sensitivity_matches_the_analytic_crossing() -> None:
    # A: bench 1.0, user 0.5 → 80; B: bench 0.8, user 1.0 → 88. Best one advances (B).
    # Raising bench weight by u (user rescaled to keep 100): A = 50 + 30u, B = 100 − 12u → cross at u = 50/42.
    # Lowering user weight by u: A = 100 − 20u, B = 80 + 8u → cross at u = 20/28.
    crit = TWO_CATEGORIES.replace('source = "panel:user"', 'source = "panel:user"\nraw_range = [0, 1]')
    lp = load(program_text(["a", "b"], criteria=crit, elimination="advance_best = 1"))
    d = decide(lp.program, "s1", scores({"a": {"bench:main": 1.0, "panel:user": 0.5},
                                         "b": {"bench:main": 0.8, "panel:user": 1.0}}), {})
    assert d.advanced_ids == ["b"]
    w = weight_sensitivity(d, 100.0)
    cats = {c["criterion"]: c for c in w["categories"]}
    assert cats["bench"]["increase_pct"] == pytest.approx(100 * (50 / 42 - 1), abs=0.01)
    assert cats["bench"]["decrease_pct"] is None
    assert cats["user"]["decrease_pct"] == pytest.approx(100 * (20 / 28 - 1), abs=0.01)
    assert cats["user"]["increase_pct"] is None
    assert w["min_abs_pct"] == pytest.approx(19.05, abs=0.01)
    assert set(cats["bench"]["flips"]) == {"a", "b"}


def test_resampling_is_seeded_and_tracks_the_margin() -> None:
    crit = TWO_CATEGORIES.replace('source = "panel:user"', 'source = "panel:user"\nraw_range = [0, 1]')
    lp = load(program_text(["a", "b"], criteria=crit, elimination="advance_best = 1"))
    close = {"a": {"bench:main": 0.70, "panel:user": 0.70}, "b": {"bench:main": 0.69, "panel:user": 0.70}}
    d = decide(lp.program, "s1", scores(close, stderr=0.02), {})
    r1, r2 = resample(d, 1000, 1), resample(d, 1000, 1)
    assert r1 == r2
    assert 0.2 < r1["p_decision_changes"] < 0.5
    assert r1["teams"]["a"]["p_status_flip"] == r1["p_decision_changes"]
    far = {"a": {"bench:main": 0.9, "panel:user": 0.9}, "b": {"bench:main": 0.3, "panel:user": 0.3}}
    assert resample(decide(lp.program, "s1", scores(far, stderr=0.02), {}), 500, 1)["p_decision_changes"] == 0
    fixed = resample(decide(lp.program, "s1", scores(close), {}), 500, 1)
    assert fixed["p_decision_changes"] == 0 and "no recorded score carries a standard error" in fixed["note"]


def test_participants_follow_title_holders_and_replacements() -> None:
    program = load_program(EXAMPLE).program
    assert [t.id for t in participants(program, "stage-1", None)] == ["baekdu", "halla", "jiri", "seorak", "taebaek"]
    two = participants(program, "stage-2", ["baekdu", "jiri", "seorak"])
    assert [t.id for t in two] == ["baekdu", "jiri", "seorak", "gaya"]
    with pytest.raises(DataMissingError, match="decide 'stage-1' first"):
        participants(program, "stage-2", None)


def test_rounding_to_the_declared_precision_creates_published_ties() -> None:
    crit = TWO_CATEGORIES.replace('source = "panel:user"', 'source = "panel:user"\nraw_range = [0, 1]')
    lp = load(program_text(["a", "b"], criteria=crit, extra_stage="precision = 1", tie_breakers='["team_order"]'))
    d = decide(lp.program, "s1", scores({"a": {"bench:main": 0.5, "panel:user": 0.5},
                                         "b": {"bench:main": 0.5004, "panel:user": 0.5}}), {})
    assert d.outcome.totals.tolist() == [50.0, 50.0]
    assert d.outcome.tie_notes[0].startswith("tied on 50 points with b")


def test_the_typed_decision_declares_exactly_the_keys_a_decision_has() -> None:
    """`decision_schema.DecisionDoc` is the decision's type: every key it has, in order, and nothing else."""
    from typing import get_type_hints

    from simsa.program.decision_schema import DecisionDoc, TeamResult

    teams = ["a", "b", "c", "d"]
    lp = load(program_text(teams, criteria=TWO_CATEGORIES, gates=GATE))
    table = {t: {"bench:main": 0.9 - 0.1 * i, "panel:user": 0.8} for i, t in enumerate(teams)}
    out = decision_dict(decide(lp.program, "s1", scores(table), passing(teams, failing=("b",))), decided_at=AT,
                        program_sha256=lp.sha256)
    required = [k for k in get_type_hints(DecisionDoc) if k in DecisionDoc.__required_keys__]
    assert list(out) == required  # the keys adjudication adds later (voids, panel, arena) are NotRequired
    assert set(DecisionDoc.__optional_keys__) == {"voided", "expert_panel", "expert_panel_sha256", "user_arena",
                                                  "user_arena_sha256", "decision_warnings", "imported"}
    for team in out["teams"]:
        assert list(team) == list(get_type_hints(TeamResult))
