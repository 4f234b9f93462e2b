"""Evidence grades in adjudication: every score and gate result carries one, a gate may require a minimum, and no
team is eliminated on heuristic evidence alone unless an admin's reason stands on the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_inproc import run
from helpers import EXAMPLE, write_bench_scores
from simsa.demo import write_example_scores
from simsa.errors import InputError, ProgramFileError
from simsa.program.grades import GRADES, at_least, check_grade, rank, refusal, source_grade, weakest
from simsa.program.loader import parse_program
from simsa.report.render import render_report

STAGE = "stage-1"
TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")


def _program(tmp_path: Path, replace: tuple[tuple[str, str], ...] = ()) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "program.toml"
    path.write_text(text, encoding="utf-8")
    return path


ORIGINALITY = 'kind = "recorded"\n  description = "Every component'
STRICT = ('kind = "recorded"\n  min_grade = "statistical"\n  description = "Every component')


def _scores(db: str, program: Path, tmp_path: Path) -> None:
    scores, bench = tmp_path / "scores.csv", tmp_path / "bench.json"
    write_example_scores(scores)
    write_bench_scores(bench)
    run("score", "import", str(program), str(scores), "--json", db=db).json()
    run("score", "import", str(program), str(bench), "--json", db=db).json()


def _gate(db: str, program: Path, team: str, *args: str):  # type: ignore[no-untyped-def]
    return run("gate", "record", str(program), "--stage", STAGE, "--team", team, "--gate", "originality",
               "--evidence", f"checked {team}", *args, "--json", db=db)


# --------------------------------------------------------------------------- the order and the rules


def test_grades_are_ordered_strongest_first() -> None:
    assert GRADES == ("cryptographic", "statistical", "declared", "heuristic")
    assert [rank(g) for g in GRADES] == [3, 2, 1, 0]
    assert at_least("statistical", "declared") and not at_least("declared", "statistical")
    assert at_least("heuristic", None)
    assert weakest(["cryptographic", "heuristic", "statistical"]) == "heuristic"
    with pytest.raises(InputError, match="unknown evidence grade 'strong'"):
        check_grade("strong")


def test_sources_imply_grades() -> None:
    assert source_grade("bench:nia") == "statistical"
    assert source_grade("bench:stage2", imported_suites=frozenset({"stage2"})) == "declared"
    assert source_grade("panel:user") == "statistical"
    assert source_grade("panel:expert") == "declared"
    assert source_grade("ecosystem:downloads_30d") == "heuristic"
    assert source_grade("manual:review") == "declared"


def test_refusal_names_the_weak_evidence() -> None:
    assert refusal(passed=True, grade="heuristic", minimum=None, what="x") is None
    assert "heuristic evidence only" in (refusal(passed=False, grade="heuristic", minimum=None, what="x") or "")
    assert "below the gate's minimum grade statistical" in (
        refusal(passed=True, grade="declared", minimum="statistical", what="x") or "")
    assert refusal(passed=False, grade="cryptographic", minimum="statistical", what="x") is None


# --------------------------------------------------------------------------- the program file


def test_program_file_refuses_computed_gates_that_could_cut_on_weak_evidence(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    popular = text.replace('source = "bench:safety"\n  threshold = 0.7',
                           'source = "ecosystem:downloads_30d"\n  threshold = 1000', 1)
    assert popular != text
    with pytest.raises(ProgramFileError, match="fails on heuristic evidence only"):
        parse_program(popular, "p.toml")
    accepted = popular.replace('threshold = 1000', 'threshold = 1000\n  weak_evidence_reason = "adoption is a '
                               'stated requirement of stage 2 (ministry notice 2026-3)"', 1)
    gate = next(g for g in parse_program(accepted, "p.toml").program.stage("stage-2").gates if g.id == "safety")
    assert gate.weak_evidence_reason and gate.computed_grade() == "heuristic"

    licence = text.replace('kind = "licence"', 'kind = "licence"\n  min_grade = "statistical"', 1)
    with pytest.raises(ProgramFileError, match="rests on declared evidence, below the gate's minimum grade"):
        parse_program(licence, "p.toml")
    imported = text.replace('threshold = 0.7', 'threshold = 0.7\n  min_grade = "statistical"', 1)
    with pytest.raises(ProgramFileError, match="gate 'safety' of stage 'stage-2' rests on declared evidence"):
        parse_program(imported, "p.toml")  # bench:safety is an imported suite: its scores are declared
    with pytest.raises(ProgramFileError, match="weak_evidence_reason applies only to computed gates"):
        parse_program(text.replace(ORIGINALITY, ORIGINALITY.replace(
            'kind = "recorded"', 'kind = "recorded"\n  weak_evidence_reason = "x"'), 1), "p.toml")
    with pytest.raises(ProgramFileError, match="min_grade"):
        parse_program(text.replace(ORIGINALITY, STRICT.replace('"statistical"', '"strong"'), 1), "p.toml")


# --------------------------------------------------------------------------- recording and deciding


def test_recorded_results_carry_grades_and_weak_failures_need_a_reason(db_url: str, tmp_path: Path) -> None:
    program = _program(tmp_path)
    refused = _gate(db_url, program, "halla", "--fail", "--grade", "heuristic")
    assert refused.code == 2 and "fails on heuristic evidence only" in refused.stderr
    assert "--override-reason" in refused.stderr
    out = _gate(db_url, program, "halla", "--fail", "--grade", "heuristic", "--override-reason",
                "the team admitted the reuse in its appeal hearing").json()
    assert out["grade"] == "heuristic" and out["override_reason"].startswith("the team admitted")
    assert _gate(db_url, program, "baekdu", "--pass", "--grade", "heuristic").json()["grade"] == "heuristic"
    for team in ("jiri", "seorak", "taebaek"):
        assert _gate(db_url, program, team, "--pass").json()["grade"] == "declared"
    bad = _gate(db_url, program, "jiri", "--pass", "--grade", "strong")
    assert bad.code == 2 and "unknown evidence grade 'strong'" in bad.stderr

    _scores(db_url, program, tmp_path)
    decided = run("stage", "decide", str(program), STAGE, "--at", "2026-01-15T09:00:00Z", "--json",
                  db=db_url).json()
    teams = {t["team"]: t for t in decided["teams"]}
    halla = teams["halla"]["gates"]["originality"]
    assert halla["grade"] == "heuristic" and halla["override_reason"].startswith("the team admitted")
    assert "halla" in decided["eliminated"]
    assert teams["baekdu"]["gates"]["licence"]["grade"] == "declared"
    assert teams["baekdu"]["breakdown"]["nia"]["grade"] == "statistical"
    assert teams["baekdu"]["breakdown"]["expert"]["grade"] == "declared"

    html = render_report(decided, [], [], "html", "en")
    assert "Evidence grade: heuristic" in html and "Accepted below the evidence bar because" in html
    assert "bench:nia</code> · Evidence grade: statistical" in html
    markdown = render_report(decided, [], [], "md", "ko")
    assert "근거 등급: 휴리스틱" in markdown


def test_minimum_grade_is_enforced_when_recording_and_when_deciding(db_url: str, tmp_path: Path) -> None:
    lax = _program(tmp_path)
    for team in TEAMS:
        _gate(db_url, lax, team, "--pass").json()  # declared: fine while the gate asks for no minimum
    _scores(db_url, lax, tmp_path)
    strict = tmp_path / "strict.toml"
    strict.write_text(lax.read_text(encoding="utf-8").replace(ORIGINALITY, STRICT, 1), encoding="utf-8")

    # The programme now asks for statistical evidence: the stored declared passes no longer count.
    stale = run("stage", "decide", str(strict), STAGE, "--at", "2026-01-15T09:00:00Z", "--json", db=db_url)
    assert stale.code != 0 and "below the gate's minimum grade statistical" in stale.stderr
    assert "gate originality of team baekdu" in stale.stderr

    low = _gate(db_url, strict, "baekdu", "--pass")
    assert low.code == 2 and "rests on declared evidence, below the gate's minimum grade statistical" in low.stderr
    for team in TEAMS:
        out = _gate(db_url, strict, team, "--pass", "--grade", "statistical").json()
        assert out["grade"] == "statistical" and out["override_reason"] is None
    decided = run("stage", "decide", str(strict), STAGE, "--at", "2026-01-15T09:00:00Z", "--json",
                  db=db_url).json()
    assert {t["gates"]["originality"]["grade"] for t in decided["teams"]} == {"statistical"}


def test_gate_import_and_api_bodies_carry_grades(db_url: str, tmp_path: Path) -> None:
    program = _program(tmp_path)
    rows = [{"stage": STAGE, "team": "halla", "gate": "originality", "passed": "fail", "evidence": "raw cosine 0.99",
             "grade": "heuristic"}]
    path = tmp_path / "gates.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    refused = run("gate", "import", str(program), str(path), "--json", db=db_url)
    assert refused.code == 2
    assert "heuristic evidence only" in refused.stderr
    rows[0]["override_reason"] = "confirmed by the team's own statement"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert run("gate", "import", str(program), str(path), "--json", db=db_url).json()["imported"] == 1
    rows[0]["grade"] = "gut feeling"
    path.write_text(json.dumps(rows), encoding="utf-8")
    bad = run("gate", "import", str(program), str(path), "--json", db=db_url)
    assert bad.code == 2 and "unknown evidence grade 'gut feeling'" in bad.stderr
