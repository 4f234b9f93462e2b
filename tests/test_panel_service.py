"""The expert panel's services on a real store: the rubric in the program file, conflicts and assignment, the
panel's steps and what blocks them, locked reviews (and a database edit caught by `audit verify`), frozen
submissions, blind codes kept out of the public log, and the closed panel's aggregate deciding `panel:expert`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from helpers import write_bench_scores
from panel_support import PROGRAM, STAGE, csv_log, markdown_report, panel_program_text, write_panel_program
from simsa import accounts
from simsa.audit.log import export, verify
from simsa.demo import write_example_scores
from simsa.errors import DataMissingError, InputError, NotFound, ProgramFileError
from simsa.panel.balance import balance
from simsa.panel.conflicts import Declaration, conflicts_with
from simsa.panel.rubric import check_review, total
from simsa.program.loader import load_program, parse_program
from simsa.services import decisions, panel, panel_documents, panel_results, panel_steps, programs, score_files
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.store.db import Store
from simsa.store.models import PanelDocument, PanelReview

UTC = dt.UTC
EXPERTS = ("kim", "lee", "park", "choi", "jung", "kang")


def _program(tmp_path: Path, deadline: dt.datetime, **changes: str):
    return load_program(write_panel_program(tmp_path, deadline, changes=changes or None))


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'panel.db'}")
    store.upgrade()
    return store


def _experts(store: Store, names=EXPERTS) -> None:
    for name in names:
        with store.session() as s:
            _, token = accounts.invite(s, username=name, display_name=name.title(), role="expert", actor="test")
        with store.session() as s:
            accounts.accept_invitation(s, token, "correct horse battery staple")
        with store.session() as s:
            panel.declare(s, name, affiliations=["Seoul National University"], relations=[], conflicts=[])


def _levels(ctx, level: int) -> tuple[dict, dict]:
    scores = {c.id: min(max(level, c.low), c.high) for c in ctx.panel.criteria}
    notes = {c.id: f"level {scores[c.id]} because the report shows it" for c in ctx.panel.criteria}
    return scores, notes


# --------------------------------------------------------------------------- the program file


def test_rubric_in_program_file_is_validated_with_one_line_errors(tmp_path: Path) -> None:
    base = panel_program_text(dt.datetime(2026, 1, 5, tzinfo=UTC))
    loaded = parse_program(base, "k.toml")
    rubric = loaded.program.stage(STAGE).expert_panel
    assert rubric is not None and [c.id for c in rubric.criteria][:2] == ["originality", "training"]
    assert rubric.min_experts == 5 and rubric.calibration is not None and rubric.calibration.threshold == 0.667
    bad = {
        "level values must be distinct and ascending": ('{ value = 2, label = "Weak"', '{ value = 1, label = "Weak"'),
        "has no UTC offset": ("submission_deadline = 2026-01-05T00:00:00Z",
                              "submission_deadline = 2026-01-05T00:00:00"),
        "aggregation": ('aggregation = "mean"', 'aggregation = "average"'),
        "rubric criterion id 'training' is used twice": ('id = "data"\n', 'id = "training"\n'),
    }
    for expected, (old, new) in bad.items():
        text_ = base.replace(old, new, 1)
        assert text_ != base, old
        with pytest.raises(ProgramFileError) as err:
            parse_program(text_, "k.toml")
        assert expected in str(err.value), str(err.value)
        assert "\n" not in str(err.value).strip() or len(str(err.value).splitlines()) <= 3
    no_source = base.replace('source = "panel:expert"', 'source = "manual:expert"')
    with pytest.raises(ProgramFileError, match="expert_panel but no criterion with source 'panel:expert'"):
        parse_program(no_source, "k.toml")


def test_review_check_and_total() -> None:
    loaded = parse_program(panel_program_text(dt.datetime(2026, 1, 5, tzinfo=UTC)), "k.toml")
    rubric = loaded.program.stage(STAGE).expert_panel
    assert rubric is not None
    top = {c.id: c.high for c in rubric.criteria}
    notes = {c.id: "why" for c in rubric.criteria}
    assert total(rubric, top) == pytest.approx(100.0)
    assert total(rubric, {c.id: c.low for c in rubric.criteria}) == pytest.approx(0.0)
    with pytest.raises(InputError) as err:
        check_review(rubric, {**top, "originality": 9}, {**notes, "data": " "}, identified=None, live=True)
    message = str(err.value)
    assert "'9' is not a level" in message or "9 is not a level" in message
    assert "Data governance: a justification is required" in message
    assert "could you identify the team" in message
    review = check_review(rubric, {k: str(v) for k, v in top.items()}, notes, identified="no", live=True)
    assert dict(review.scores) == top and review.identified == "no"


# --------------------------------------------------------------------------- conflicts and assignment


def test_conflicts_match_declared_affiliations_and_relations() -> None:
    loaded = parse_program(panel_program_text(dt.datetime(2026, 1, 5, tzinfo=UTC)), "k.toml")
    halla = loaded.program.team("halla")
    decl = Declaration("kim", affiliations=("halla ai",), relations=(), conflicts=())
    assert [c.reason for c in conflicts_with(decl, PROGRAM, halla)] == [
        "declared affiliation 'halla ai' matches 'halla'"]
    assert conflicts_with(Declaration("lee", relations=("Professor at Jeju Speech Lab, co-author",)), PROGRAM, halla)
    assert conflicts_with(Declaration("park", conflicts=("k-ai-2026/halla",)), PROGRAM, halla)
    assert not conflicts_with(Declaration("choi", affiliations=("AI",)), PROGRAM, halla)  # too short to match
    assert not conflicts_with(Declaration("choi", affiliations=("Baekdu Cloud",)), PROGRAM, halla)


def test_balance_reaches_the_minimum_and_reports_shortfalls() -> None:
    teams = ["a", "b", "c"]
    experts = ["e1", "e2", "e3", "e4"]
    result = balance(teams, experts, [], {("e1", "a"), ("e2", "a")}, 2)
    have = {t: {e for tt, e in result.added if tt == t} for t in teams}
    assert all(len(v) == 2 for v in have.values()) and not result.short
    assert not have["a"] & {"e1", "e2"}
    loads = [sum(1 for _, e in result.added if e == x) for x in experts]
    assert max(loads) - min(loads) <= 1
    short = balance(teams, experts, [], {("e1", "a"), ("e2", "a"), ("e3", "a")}, 2)
    assert short.short == (("a", 1),)


def test_assignment_refuses_conflicts_and_undeclared_experts(tmp_path: Path) -> None:
    store = _store(tmp_path)
    loaded = _program(tmp_path, dt.datetime.now(UTC) + dt.timedelta(days=1))
    _experts(store, ("kim", "lee"))
    with store.session() as s:
        accounts.invite(s, username="silent", display_name="Silent", role="expert", actor="test")
    with store.session() as s:
        programs.register(s, loaded, "test")
        panel.declare(s, "lee", affiliations=["Jeju Speech Lab"], relations=[], conflicts=[])
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        with pytest.raises(InputError, match="lee may not review halla: declared affiliation 'Jeju Speech Lab'"):
            panel.assign(s, ctx, "halla", "lee", "admin")
        with pytest.raises(NotFound):
            panel.assign(s, ctx, "halla", "nobody", "admin")
        panel.assign(s, ctx, "halla", "kim", "admin")
        with pytest.raises(InputError, match="already assigned"):
            panel.assign(s, ctx, "halla", "kim", "admin")
    with store.session() as s:  # a conflict declared after the assignment takes the pair out
        panel.declare(s, "kim", affiliations=["Halla AI"], relations=[], conflicts=[])
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        assert ("halla", "kim") not in panel.assignments(s, ctx)


# --------------------------------------------------------------------------- the panel's life


def _setup_panel(store: Store, tmp_path: Path, start: dt.datetime):
    """Program with the deadline an hour after `start`; experts declared; every team's documents uploaded at
    `start`; anchors uploaded; assignments balanced."""
    loaded = _program(tmp_path, start + dt.timedelta(hours=1))
    _experts(store)
    write_example_scores(tmp_path / "panel.csv")
    write_bench_scores(tmp_path / "bench.json")
    with store.session() as s:
        version, _ = programs.register(s, loaded, "test")
        for name in ("panel.csv", "bench.json"):
            score_service.add(s, version, loaded.program, score_files.parse_file(tmp_path / name), "test")
        for team in loaded.program.teams:
            gate_service.record(s, version, loaded.program, stage_id=STAGE, team_id=team.id, gate_id="originality",
                                passed=True, evidence="independent", actor="test", link=None)
        ctx = panel.context(s, PROGRAM, STAGE)
        for team in ctx.teams:
            panel_documents.upload(s, ctx, markdown_report(team.name, team.members[0]), "report.md", "report",
                                   f"team-{team.id}", team_id=team.id, now=start)
            panel_documents.upload(s, ctx, csv_log(), "train.csv", "log", f"team-{team.id}", team_id=team.id,
                                   now=start)
        for anchor in ctx.anchors:
            panel_documents.upload(s, ctx, markdown_report(f"Anchor {anchor}", "nobody"), f"{anchor}.md", "report",
                                   "admin", anchor_id=anchor)
        result = panel.auto_assign(s, ctx, "admin")
        assert not result.short
    return loaded


def test_panel_life_from_calibration_to_the_decision(tmp_path: Path) -> None:
    store = _store(tmp_path)
    start = dt.datetime.now(UTC) - dt.timedelta(hours=2)
    loaded = _setup_panel(store, tmp_path, start)
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        with pytest.raises(InputError, match="next step is calibration"):
            panel_steps.advance(s, ctx, "round1", "admin")
        panel_steps.advance(s, ctx, "calibration", "admin")
        codes = panel.codes(s, ctx)
        assert sorted(codes.values()) == sorted("ABCDEF"[: len(ctx.teams)])
    with store.session() as s:  # submissions are frozen: the deadline has passed
        ctx = panel.context(s, PROGRAM, STAGE)
        with pytest.raises(InputError, match="deadline"):
            panel_documents.upload(s, ctx, csv_log(), "late.csv", "log", "team-halla", team_id="halla")
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        experts = panel.assigned_experts(s, ctx)
        for i, expert in enumerate(experts):  # one expert far off on the anchors: calibration fails
            for anchor, level in zip(ctx.anchors, (5, 1), strict=True):
                panel.submit_review(s, ctx, expert, anchor, "calibration", *_levels(ctx, 6 - level if i == 0
                                                                                    else level))
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        cal = panel_results.calibration(s, ctx)
        assert not cal.missing and cal.alpha is not None and cal.alpha < 0.667
        deviant = max(cal.deviations, key=lambda d: d["mean_abs_deviation"])
        assert deviant["id"] == experts[0]
        with pytest.raises(InputError, match="below the threshold"):
            panel_steps.advance(s, ctx, "round1", "admin")
        with pytest.raises(InputError, match="locked"):
            panel.submit_review(s, ctx, experts[0], ctx.anchors[0], "calibration", *_levels(ctx, 5))
    # The programme amends the threshold (a new version, audited) after the discussion of the anchors.
    amended = write_panel_program(tmp_path, start + dt.timedelta(hours=1),
                                  changes={"threshold = 0.667": "threshold = -1.0"})
    with store.session() as s:
        programs.register(s, load_program(amended), "admin")
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        panel_steps.advance(s, ctx, "round1", "admin")
        with pytest.raises(InputError, match="round 2 is not open"):
            panel.submit_review(s, ctx, experts[1], panel.teams_of(s, ctx, experts[1])[0], "2", *_levels(ctx, 3),
                                identified="no")
    levels = {"baekdu": 5, "halla": 4, "jiri": 2, "seorak": 3, "taebaek": 3, "gaya": 1}
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for team, expert in panel.assignments(s, ctx):
            panel.submit_review(s, ctx, expert, team, "1", *_levels(ctx, levels[team]),
                                identified="yes" if team == "halla" else "no")
        with pytest.raises(InputError, match="locked"):
            team, expert = panel.assignments(s, ctx)[0]
            panel.submit_review(s, ctx, expert, team, "1", *_levels(ctx, 1), identified="no")
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        panel_steps.advance(s, ctx, "round2", "admin")
        team, expert = next((t, e) for t, e in panel.assignments(s, ctx) if t == "jiri")
        dist = panel.round1_distribution(s, ctx, team, expert)
        assert dist["originality"] == [2] * len(dist["originality"])
        panel.post_comment(s, ctx, team, expert, "<b>I read the log again</b>")
        panel.submit_review(s, ctx, expert, team, "2", *_levels(ctx, 3), identified="no")
    with store.session() as s:  # nothing of the panel's scores is in the score table before the decision
        ctx = panel.context(s, PROGRAM, STAGE)
        with pytest.raises(DataMissingError, match="close it before deciding"):
            decisions.compute(s, loaded, STAGE, dt.datetime.now(UTC))
        panel_steps.advance(s, ctx, "closed", "admin")
    with store.session() as s:
        preview = decisions.compute(s, loaded, STAGE, dt.datetime.now(UTC))
        result = decisions.decide_and_store(s, loaded, STAGE, "admin")
    assert result["expert_panel"]["teams"] and preview["expert_panel"] == result["expert_panel"]
    with store.session() as s:
        current = score_service.current(s, PROGRAM, STAGE)
        rows = score_service.current_rows(s, PROGRAM, [STAGE])
        ctx = panel.context(s, PROGRAM, STAGE)
        stored = panel_results.stored_result(s, PROGRAM, STAGE)
    panel_rows = {k: r for k, r in rows.items() if k[2] == "panel:expert"}
    assert all(r.voided for k, r in panel_rows.items() if k[3] != "panel"), "imported expert rows still count"
    by_team = {t["team"]: t for t in result["expert_panel"]["teams"]}
    assert by_team["baekdu"]["value"] == pytest.approx(100.0)
    assert current["baekdu"]["panel:expert"].value == pytest.approx(100.0)  # raw_range [0, 100]
    assert by_team["jiri"]["round2_revised"] == 1 and by_team["jiri"]["mean_shift"] > 0
    assert by_team["halla"]["identified"]["yes"] == by_team["halla"]["experts"]
    assert stored is not None and stored["teams"] == result["expert_panel"]["teams"]
    assert all(e.startswith("E") for e in stored["experts"])
    with store.session(readonly=True) as s:
        assert verify(s).ok
        log = json.dumps(export(s), ensure_ascii=False)
    for expert in EXPERTS:  # the result published with the decision is anonymised
        assert f'"{expert}"' not in json.dumps(result["expert_panel"])
    assert "I read the log again" not in log and '"code"' not in log  # hidden contents: logged by hash only


def test_a_locked_review_edited_in_the_database_fails_audit_verify(tmp_path: Path) -> None:
    store = _store(tmp_path)
    start = dt.datetime.now(UTC) - dt.timedelta(hours=2)
    loaded = _program(tmp_path, start + dt.timedelta(hours=1), **{"anchors = [\"anchor-strong\", \"anchor-weak\"]\n"
                                                                   "    threshold = 0.667": "anchors = [\"a\"]"})
    _experts(store, ("kim",))
    with store.session() as s:
        programs.register(s, loaded, "test")
        ctx = panel.context(s, PROGRAM, STAGE)
        panel_documents.upload(s, ctx, markdown_report("Anchor", "x"), "a.md", "report", "admin", anchor_id="a")
        panel.assign(s, ctx, "halla", "kim", "admin")
        panel_steps.advance(s, ctx, "calibration", "admin")
        panel.submit_review(s, ctx, "kim", "a", "calibration", *_levels(ctx, 2))
    with store.session() as s:
        assert verify(s).ok
        s.execute(text("UPDATE panel_reviews SET content = :c"), {"c": b'{"scores": {"originality": 5}}'})
    with store.session(readonly=True) as s:
        problems = verify(s).problems
    assert any(p.table == "panel_reviews" and "content" in p.message for p in problems), problems


def test_refused_upload_stores_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    loaded = _program(tmp_path, dt.datetime.now(UTC) + dt.timedelta(days=1))
    with store.session() as s:
        programs.register(s, loaded, "test")
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        with pytest.raises(InputError):
            panel_documents.upload(s, ctx, b"PK\x03\x04" + b"\x00" * 100, "log.csv", "log", "t", team_id="halla")
    with store.session(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(PanelDocument)).scalar() == 0
        assert s.execute(select(func.count()).select_from(PanelReview)).scalar() == 0
