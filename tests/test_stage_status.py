"""`simsa stage status`: the whole stage before deciding — every score, rater count, standard error, gate result,
every reason the stage cannot be decided yet, and the decision in force. Real CLI, SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_inproc import run
from helpers import EXAMPLE, TWO_CATEGORIES, program_text, write_bench_scores
from simsa.cli.output import console
from simsa.demo import EXPERTS, write_example_scores

TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")
DECIDED = "2026-01-15T09:00:00Z"


@pytest.fixture
def narrow() -> Iterator[None]:
    """Render as on an 80-column terminal."""
    before = console.width
    console.width = 80
    yield
    console.width = before


def _status(db: str, stage: str = "stage-1", program: str = "k-ai-2026") -> dict:
    return run("stage", "status", program, stage, "--json", db=db).json()


def _gate(db: str, team: str, passed: bool = True, stage: str = "stage-1") -> None:
    run("gate", "record", str(EXAMPLE), "--stage", stage, "--team", team, "--gate", "originality",
        "--pass" if passed else "--fail", "--evidence", f"lineage compare of {team}: independent", "--json",
        db=db).json()


def _partial_stage_1(db: str, tmp_path: Path) -> None:
    """Panel scores for every team, benchmarks for all but taebaek, originality for all but jiri."""
    panel = tmp_path / "panel.csv"
    write_example_scores(panel)
    bench = tmp_path / "bench.json"
    write_bench_scores(bench, teams=TEAMS[:4])
    run("program", "load", str(EXAMPLE), "--json", db=db).json()
    run("score", "import", str(EXAMPLE), str(panel), "--json", db=db).json()
    run("score", "import", str(EXAMPLE), str(bench), "--json", db=db).json()
    for team in TEAMS:
        if team != "jiri":
            _gate(db, team)


def test_incomplete_stage_lists_every_reason_then_completes(db_url: str, tmp_path: Path) -> None:
    _partial_stage_1(db_url, tmp_path)
    st = _status(db_url)
    assert st["participants"] == list(TEAMS) and st["participants_final"]
    assert st["decidable"] is False and st["decision_in_force"] is None
    reasons = {(b["kind"], b["team"], b["source"] or b["gate"]) for b in st["blockers"]}
    assert reasons == {("missing_score", "taebaek", "bench:nia"), ("missing_score", "taebaek", "bench:global-common"),
                       ("missing_score", "taebaek", "bench:team-chosen"), ("missing_gate", "jiri", "originality")}
    assert len(st["blockers"]) == 4
    assert {c["source"]: c["missing"] for c in st["columns"]}["bench:nia"] == "blocks"
    taebaek = next(t for t in st["teams"] if t["team"] == "taebaek")
    assert taebaek["scores"]["bench:nia"]["missing"] == "blocks" and taebaek["scores"]["bench:nia"]["value"] is None
    # decide refuses for the same reason status gives
    refused = run("stage", "decide", "k-ai-2026", "stage-1", db=db_url)
    assert refused.code == 2 and "taebaek" in refused.stderr

    # a panel source with several raters: n and the standard error of their mean
    expert = next(t for t in st["teams"] if t["team"] == "baekdu")["scores"]["panel:expert"]
    listed = run("score", "list", "k-ai-2026", "--team", "baekdu", "--json", db=db_url).json()["scores"]
    values = [s["value"] for s in listed if s["source"] == "panel:expert"]
    mean = sum(values) / len(values)
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))
    assert expert["n"] == EXPERTS == len(values)
    assert expert["value"] == pytest.approx(mean) and expert["stderr"] == pytest.approx(se)

    # gates: recorded with evidence, computed licence, missing
    baekdu = next(t for t in st["teams"] if t["team"] == "baekdu")["gates"]
    assert baekdu["originality"]["state"] == "passed" and baekdu["originality"]["origin"] == "recorded"
    assert "lineage compare of baekdu" in baekdu["originality"]["evidence"]
    assert baekdu["licence"]["origin"] == "computed" and baekdu["licence"]["state"] == "passed"
    jiri = next(t for t in st["teams"] if t["team"] == "jiri")["gates"]
    assert jiri["originality"]["state"] == "missing"

    # complete it: decidable; decide; the decision in force shows up
    rest = tmp_path / "rest.json"
    write_bench_scores(rest, teams=("taebaek",))
    run("score", "import", str(EXAMPLE), str(rest), "--json", db=db_url).json()
    _gate(db_url, "jiri", passed=False)
    st = _status(db_url)
    assert st["decidable"] is True and st["blockers"] == []
    assert next(t for t in st["teams"] if t["team"] == "jiri")["gates"]["originality"]["state"] == "failed"
    decided = run("stage", "decide", "k-ai-2026", "stage-1", "--at", DECIDED, "--json", db=db_url).json()
    st = _status(db_url)
    force = st["decision_in_force"]
    assert force["id"] == decided["decision_id"] and force["decided_at"] == DECIDED
    assert force["same_program_version"] is True and force["advanced"] == decided["advanced"]


def test_later_stage_before_and_after_the_previous_is_decided(db_url: str, tmp_path: Path) -> None:
    _partial_stage_1(db_url, tmp_path)
    st = _status(db_url, "stage-2")
    assert st["decidable"] is False and st["participants_final"] is False
    assert st["blockers"][0]["kind"] == "previous_stage_undecided" and "stage-1" in st["blockers"][0]["message"]
    assert st["participants"] == [*TEAMS, "gaya"]  # candidates while stage 1 is open
    rest = tmp_path / "rest.json"
    write_bench_scores(rest, teams=("taebaek",))
    run("score", "import", str(EXAMPLE), str(rest), "--json", db=db_url).json()
    _gate(db_url, "jiri", passed=False)
    decided = run("stage", "decide", "k-ai-2026", "stage-1", "--at", DECIDED, "--json", db=db_url).json()
    st = _status(db_url, "stage-2")
    assert st["participants_final"] is True and st["previous_decision"]["id"] == decided["decision_id"]
    assert st["participants"] == [t for t in TEAMS if t in decided["title_holders"]] + ["gaya"]
    basis = {t["team"]: t["basis"] for t in st["teams"]}
    assert basis["gaya"] == "joins at stage-2" and basis["baekdu"] == "title holder after stage-1"
    kinds = {b["kind"] for b in st["blockers"]}
    assert "previous_stage_undecided" not in kinds and kinds == {"missing_score", "missing_gate"}
    # stage 2's safety gate is min_score on bench:safety: its missing score blocks, named once per team
    safety = [b for b in st["blockers"] if b["source"] == "bench:safety"]
    assert len(safety) == len(st["participants"]) and "gate safety" in safety[0]["message"]


def test_missing_counted_as_zero_does_not_block(db_url: str, tmp_path: Path) -> None:
    criteria = TWO_CATEGORIES.replace('source = "panel:user"', 'source = "panel:user"\nmissing = "zero"')
    gates = ('[[stages.gates]]\nid = "safety"\nname = "Safety"\nkind = "min_score"\nsource = "manual:safety"\n'
             'threshold = 0.5\n')
    path = tmp_path / "p.toml"
    path.write_text(program_text(["a", "b", "c"], criteria=criteria, gates=gates), encoding="utf-8")
    for team, bench in (("a", 0.8), ("b", 0.6), ("c", 0.4)):
        for source, value, rater in (("bench:main", bench, ""), ("manual:safety", 0.9, "")):
            run("score", "add", str(path), "--stage", "s1", "--team", team, "--source", source, "--value", str(value),
                "--rater", rater, "--json", db=db_url).json()
    run("score", "add", str(path), "--stage", "s1", "--team", "a", "--source", "panel:user", "--value", "0.7",
        "--rater", "u1", "--json", db=db_url).json()
    st = _status(db_url, "s1", str(path))
    assert st["decidable"] is True
    assert st["zero_counted"] == ["panel:user of b", "panel:user of c"]
    cols = {c["source"]: c for c in st["columns"]}
    assert cols["panel:user"]["missing"] == "zero" and cols["manual:safety"]["missing"] == "blocks"
    assert cols["manual:safety"]["gates"] == ["safety"] and cols["manual:safety"]["criteria"] == []
    assert next(t for t in st["teams"] if t["team"] == "b")["scores"]["panel:user"]["missing"] == "zero"
    assert next(t for t in st["teams"] if t["team"] == "a")["gates"]["safety"]["state"] == "passed"
    assert run("stage", "decide", str(path), "s1", "--dry-run", "--json", db=db_url).code == 0


def test_status_reads_at_80_columns(sqlite_url: str, tmp_path: Path, narrow: None) -> None:
    _partial_stage_1(sqlite_url, tmp_path)
    out = run("stage", "status", "k-ai-2026", "stage-1", db=sqlite_url)
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    text = out.stdout
    assert "Participants (first stage, all teams): baekdu, halla, jiri, seorak, taebaek" in text
    assert "Decision in force: none" in text
    baekdu = next(line for line in lines if line.lstrip().startswith("baekdu") and "±" in line)
    assert f"({EXPERTS})" in baekdu and "±0.02" in baekdu  # panel: raters shown; benchmark: its stderr
    taebaek = next(line for line in lines if line.lstrip().startswith("taebaek") and "—" in line)
    assert taebaek.count("—") == 3
    assert "✗ cannot be decided now — 4 reasons:" in text
    assert "taebaek — missing scores bench:nia, bench:global-common, bench:team-chosen" in text
    assert "jiri — missing gate result originality" in text


def test_unknown_stage_is_one_line_exit_2(sqlite_url: str) -> None:
    out = run("stage", "status", str(EXAMPLE), "stage-9", db=sqlite_url)
    assert out.code == 2 and "has no stage 'stage-9'" in out.stderr and len(out.stderr.strip().splitlines()) == 1
