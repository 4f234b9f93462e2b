"""Text simsa writes itself, in English and Korean: computed gate evidence, rationales, tie notes, fragility, and
times in a programme's zone."""

from __future__ import annotations

import datetime as dt

import pytest

from helpers import EXAMPLE, TWO_CATEGORIES, load, program_text, scores
from simsa.program.adjudicate import decide
from simsa.program.explain import decision_dict, fragility
from simsa.program.gates import licence_gate, min_score_gate
from simsa.program.loader import load_program, parse_program
from simsa.timeutil import end_of_day, format_local, parse_instant

AT = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)


def test_licence_gate_evidence_in_both_languages() -> None:
    text = load_program(EXAMPLE).text
    reused = '  weights = "reused_frozen"'
    text = text.replace("  credited = true\n" + reused, "  credited = false\n" + reused)
    text = text.replace('licence = "mit"', 'licence = "gpl-3.0"', 1)
    program = parse_program(text, "x.toml").program
    gate = next(g for g in program.stage("stage-1").gates if g.kind == "licence")
    halla = licence_gate(gate, program.team("halla"))
    assert not halla.passed
    assert halla.evidence == "vision encoder (foreign-lab/vision-encoder-400m) is not credited"
    assert halla.evidence_ko == "vision encoder (foreign-lab/vision-encoder-400m): 출처 미표기"
    baekdu = licence_gate(gate, program.team("baekdu"))
    assert baekdu.evidence == "model licence apache-2.0; no borrowed components declared"
    assert baekdu.evidence_ko == "모델 라이선스 apache-2.0; 선언된 외부 구성요소 없음"
    jiri = licence_gate(gate, program.team("jiri"))
    assert jiri.passed and jiri.evidence_ko is not None and jiri.evidence_ko.endswith("apache-2.0, 출처 표기")
    assert jiri.to_dict()["evidence_ko"] == jiri.evidence_ko


def test_min_score_gate_evidence_in_both_languages() -> None:
    program = load_program(EXAMPLE).program
    gate = next(g for g in program.stage("stage-2").gates if g.kind == "min_score")
    low = min_score_gate(gate, 0.5)
    assert low.evidence == "bench:safety = 0.5 < threshold 0.7" and low.evidence_ko == "bench:safety = 0.5 < 기준 0.7"
    none = min_score_gate(gate, None)
    assert not none.passed and none.evidence_ko == "bench:safety 점수 기록 없음"


def test_rationale_names_the_team_ahead_and_tie_notes_use_names() -> None:
    teams = ["a", "b", "c"]
    text = program_text(teams, criteria=TWO_CATEGORIES, elimination="advance_best = 1",
                        tie_breakers='["criterion:bench", "team_order"]')
    text = text.replace('name = "Team b"', 'name = "Team b"\nname_ko = "비팀"')
    text = text.replace('name = "Team c"', 'name = "Team c"\nname_ko = "씨"')
    lp = load(text)
    table = {"a": {"bench:main": 0.9, "panel:user": 0.9}, "b": {"bench:main": 0.5, "panel:user": 0.5},
             "c": {"bench:main": 0.5, "panel:user": 0.5}}
    out = decision_dict(decide(lp.program, "s1", scores(table), {}), decided_at=AT, program_sha256="x",
                        robustness={})
    by_id = {t["team"]: t for t in out["teams"]}
    assert by_id["b"]["reason"].endswith("points behind Team a.")
    assert by_id["b"]["reason_ko"].endswith("Team a에 40.00점 뒤짐.")
    # b and c tie on every criterion; the team order separates them. Particles follow the last syllable.
    assert by_id["b"]["tie_break"] == "tied on 50 points with Team c; ordered by team order in the program file"
    assert by_id["b"]["tie_break_ko"] == "씨와 50점 동점; 사업 정의 파일의 팀 순서로 순위 결정"
    assert by_id["c"]["tie_break_ko"] == "비팀과 50점 동점; 사업 정의 파일의 팀 순서로 순위 결정"
    assert by_id["a"]["tie_break"] is None and by_id["a"]["tie_break_ko"] is None
    assert out["timezone"] == "UTC" and out["robustness"] == {"fragile": False, "fragile_above": 0.2}


@pytest.mark.parametrize("p, threshold, fragile", [(0.21, 0.2, True), (0.2, 0.2, False), (0.0, 0.0, False),
                                                   (0.05, 0.0, True), (None, 0.2, False)])
def test_fragility_is_strictly_above_the_threshold(p: float | None, threshold: float, fragile: bool) -> None:
    rob = {"resampling": {"p_decision_changes": p}} if p is not None else {"resampling": None}
    assert fragility(rob, threshold) == {"fragile": fragile, "fragile_above": threshold}


def test_fragile_above_comes_from_the_program_file() -> None:
    teams = ["a", "b"]
    lp = load(program_text(teams, criteria=TWO_CATEGORIES, elimination="advance_best = 1",
                           robustness="draws = 200\nseed = 3\nfragile_above = 0.05"))
    close = {"a": {"bench:main": 0.70, "panel:user": 0.70}, "b": {"bench:main": 0.69, "panel:user": 0.70}}
    out = decision_dict(decide(lp.program, "s1", scores(close, stderr=0.05), {}), decided_at=AT, program_sha256="x")
    rob = out["robustness"]
    assert rob["fragile_above"] == 0.05 and rob["resampling"]["p_decision_changes"] > 0.05 and rob["fragile"]


def test_format_local() -> None:
    assert format_local("2026-01-15T09:00:00Z", "Asia/Seoul") == "2026-01-15 18:00 KST (UTC+09:00)"
    assert format_local(dt.datetime(2026, 1, 15, 9), "Asia/Seoul") == "2026-01-15 18:00 KST (UTC+09:00)"
    assert format_local("2026-01-15T09:00:00Z", "UTC") == "2026-01-15 09:00 UTC"
    assert format_local("2026-01-15T09:00:00Z", None) == "2026-01-15 09:00 UTC"
    assert format_local("2026-01-15T09:00:00Z", "Asia/Kolkata") == "2026-01-15 14:30 IST (UTC+05:30)"
    assert format_local("2026-01-15T09:00:00Z", "America/Sao_Paulo") == "2026-01-15 06:00 UTC-03:00"
    assert format_local("2026-01-15T09:00:00Z", "No/Such_Zone") == "2026-01-15 09:00 UTC"
    assert format_local("2026-01-25", "Asia/Seoul") == "2026-01-25" and format_local(None, "UTC") == ""
    assert parse_instant("2026-01-15T18:00:00+09:00") == dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)
    assert format_local(end_of_day(dt.date(2026, 1, 25), "Asia/Seoul"), "UTC") == "2026-01-25 14:59 UTC"
