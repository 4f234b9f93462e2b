"""The expert panel's JSON API over a real server and store, with real reviews locked through the services: what each
caller may see before and after the stage's decision (the conflict-leak regressions of issue 13), an expert locking
reviews by blind code, the admin's assignments and steps, strict bodies, and a locked review edited in the database
failing the audit log's verification.

The helpers here set a panel up as the secretariat would; the admin pages' tests use them too."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from helpers import write_bench_scores
from panel_support import csv_log, markdown_report, panel_program_text
from simsa.audit.log import verify
from simsa.demo import write_example_scores
from simsa.program.loader import LoadedProgram, parse_program
from simsa.services import decisions, panel, panel_documents, panel_results, panel_steps, programs, score_files
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.store.db import Store
from simsa.store.models import PanelReview
from web_support import FAILING, PROGRAM, STAGE, TEAMS, LiveSite

API = "/api/v1"
ON_PANEL = f"{API}/programs/{PROGRAM}/stages/{STAGE}/panel"
EXPERTS = ("ex-ahn", "ex-baek", "ex-cho", "ex-dong", "ex-eun")
CONFLICTED = "ex-halla"          # declares an affiliation with one of team Halla's consortium members
CONFLICTED_TEAM = "halla"
BASE = {"baekdu": 4, "halla": 3, "jiri": 2, "seorak": 4, "taebaek": 3}
WEEK = dt.timedelta(days=7)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int) -> str:
    """A refusal in the API's error shape; returns its message."""
    assert response.status_code == status, (response.status_code, response.text[:800])
    body = response.json()
    assert set(body) >= {"error", "exit_code", "status"} and body["status"] == status
    return body["error"]


# --------------------------------------------------------------------------- setting a panel up (services)


def load_panel_program(store: Store, deadline: dt.datetime) -> LoadedProgram:
    """The example programme with stage 1's submission deadline at `deadline`, stored as a new version."""
    loaded = parse_program(panel_program_text(deadline), "k-ai-2026.toml")
    with store.session() as s:
        programs.register(s, loaded, "test")
    return loaded


def record_other_scores(store: Store, loaded: LoadedProgram, work: Path) -> None:
    """Stage 1's benchmark and user scores and its originality gates (what the decision needs besides the panel)."""
    write_example_scores(work / "panel.csv")
    write_bench_scores(work / "bench.json")
    with store.session() as s:
        version = programs.for_writing(s, loaded, "test").version
        for name in ("panel.csv", "bench.json"):
            score_service.add(s, version, loaded.program, score_files.parse_file(work / name), "test")
        for team in TEAMS:
            gate_service.record(s, version, loaded.program, stage_id=STAGE, team_id=team, gate_id="originality",
                                passed=team != FAILING, evidence="recorded for the panel tests", actor="test",
                                example=True, link=None)


def make_people(site: LiveSite, experts: tuple[str, ...] = (*EXPERTS, CONFLICTED)) -> None:
    """The secretariat, experts with their declarations, and team Halla's account."""
    site.account("sec")
    site.account("halla-lead", "team", team=CONFLICTED_TEAM)
    for name in experts:
        site.account(name, "expert")
    assert site.store is not None
    with site.store.session() as s:
        for name in experts:
            affiliation = "Halla AI" if name == CONFLICTED else f"University of {name[3:].title()}"
            panel.declare(s, name, affiliations=[affiliation], relations=[], conflicts=[])


def anchor_bytes(anchor: str) -> bytes:
    return markdown_report(f"Calibration anchor {anchor}", "a fictional lab")


def upload_documents(store: Store, deadline: dt.datetime) -> None:
    """The anchors (by the secretariat) and team Halla's report and log (before the deadline)."""
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for anchor in ctx.anchors:
            panel_documents.upload(s, ctx, anchor_bytes(anchor), f"{anchor}.md", "report", "sec", anchor_id=anchor)
        before = deadline - dt.timedelta(hours=2)
        panel_documents.upload(s, ctx, markdown_report("Team Halla", "Halla AI"), "halla-report.md", "report",
                               "halla-lead", team_id=CONFLICTED_TEAM, now=before)
        panel_documents.upload(s, ctx, csv_log(), "halla-log.csv", "log", "halla-lead", team_id=CONFLICTED_TEAM,
                               now=before)


def criteria(store: Store) -> list[str]:
    with store.session(readonly=True) as s:
        return [c.id for c in panel.context(s, PROGRAM, STAGE).panel.criteria]


def calibration_levels(crits: list[str], expert_index: int, anchor: str, *, contrarian: bool = False
                       ) -> dict[str, int]:
    strong = anchor == "anchor-strong"
    if contrarian:
        strong = not strong
    base = 5 if strong else 1
    return {c: base + ((-1 if strong else 1) if (expert_index + k) % 3 == 0 else 0) for k, c in enumerate(crits)}


def score_calibration(store: Store, experts: list[str], contrarian: str | None = None) -> None:
    crits = criteria(store)
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for i, expert in enumerate(experts):
            for anchor in ctx.anchors:
                panel.submit_review(s, ctx, expert, anchor, "calibration",
                                    calibration_levels(crits, i, anchor, contrarian=expert == contrarian),
                                    {c: f"{expert} on {anchor}" for c in crits})


def levels(crits: list[str], expert: str, team: str) -> dict[str, int]:
    i = sorted((*EXPERTS, CONFLICTED)).index(expert)
    return {c: max(1, min(5, BASE[team] + (2 * i + k + len(team)) % 3 - 1)) for k, c in enumerate(crits)}


def justification(expert: str, team: str, crit: str) -> str:
    return f"{expert} judged {team} on {crit}"


def lock_round(store: Store, rnd: str = "1", *, skip: set[tuple[str, str]] = frozenset()) -> None:  # type: ignore[assignment]
    """Every assigned expert locks their review (but the (team, expert) pairs in `skip`)."""
    crits = criteria(store)
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for team, expert in panel.assignments(s, ctx):
            if (team, expert) in skip or panel.review_of(s, ctx, rnd, team, expert) is not None:
                continue
            panel.submit_review(s, ctx, expert, team, rnd, levels(crits, expert, team),
                                {c: justification(expert, team, c) for c in crits}, identified="no")


def advance(store: Store, target: str) -> None:
    with store.session() as s:
        panel_steps.advance(s, panel.context(s, PROGRAM, STAGE), target, "sec")


@dataclass
class Panel:
    site: LiveSite
    loaded: LoadedProgram
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        assert self.site.store is not None
        return self.site.store

    def client(self, who: str | None = None) -> httpx.Client:
        return self.site.client(headers=bearer(self.tokens[who])) if who else self.site.client()


def panel_in_round1(site: LiveSite, work: Path, *, skip: set[tuple[str, str]] = frozenset()  # type: ignore[assignment]
                    ) -> Panel:
    """Stage 1's panel with 5 clean experts and one conflicted with Halla, calibrated, in round 1 with every
    review locked (but `skip`); the deadline passed an hour ago."""
    deadline = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert site.store is not None
    loaded = load_panel_program(site.store, deadline)
    record_other_scores(site.store, loaded, work)
    make_people(site)
    upload_documents(site.store, deadline)
    with site.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        balanced = panel.auto_assign(s, ctx, "sec")
        assert not balanced.short
    advance(site.store, "calibration")
    score_calibration(site.store, [*EXPERTS, CONFLICTED])
    advance(site.store, "round1")
    lock_round(site.store, skip=skip)
    names = ("sec", "halla-lead", *EXPERTS, CONFLICTED)
    return Panel(site, loaded, {n: site.api_token(n) for n in names})


def admin_result(store: Store) -> panel_results.PanelResult:
    with store.session(readonly=True) as s:
        return panel_results.compute(s, panel.context(s, PROGRAM, STAGE))


def numbers_of(result: panel_results.PanelResult, team: str) -> list[str]:
    """How a team's aggregate could appear in a body: JSON's repr of the floats and the pages' 2-decimal form."""
    t = result.team(team)
    assert t is not None
    out = []
    for value in (t.raw, t.adjusted, t.stderr, *t.totals):
        if value is not None:
            out += [json.dumps(round(value, 6)), f"{value:.2f}"]
    return [n for n in out if len(n) >= 4]  # "3.0" could be anything


# --------------------------------------------------------------------------- a panel in round 1, shared


PENDING = ("seorak", "ex-ahn")  # one review left for the expert to lock through the API


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("panel-api")
    site = LiveSite(f"sqlite:///{work / 'simsa.db'}", settings_changes={"max_upload_bytes": 200_000}).start()
    try:
        yield panel_in_round1(site, work, skip={PENDING})
    finally:
        site.stop()


def code_of(p: Panel, team: str) -> str:
    with p.store.session(readonly=True) as s:
        return panel.codes(s, panel.context(s, PROGRAM, STAGE))[team]


def test_conflicted_expert_gets_nothing_of_the_team_before_the_decision(running: Panel) -> None:
    p = running
    result = admin_result(p.store)
    halla_numbers = numbers_of(result, CONFLICTED_TEAM)
    halla_code = code_of(p, CONFLICTED_TEAM)
    others = [e for e in EXPERTS]
    with p.client(CONFLICTED) as c:
        bodies = []
        state = c.get(ON_PANEL)
        assert state.status_code == 200, state.text
        mine = state.json()
        assert mine["view"] == "expert" and mine["expert"] == CONFLICTED and mine["result"] is None
        codes = {a["submission"] for a in mine["assignments"]}
        assert codes and halla_code not in codes
        assert {r["subject"] for r in mine["reviews"] if r["round"] == "1"} == codes
        bodies.append(state.text)
        refused = c.get(f"{ON_PANEL}/result")
        assert "published with the stage's decision" in assert_error(refused, 403)
        bodies.append(refused.text)
        # the team's submission does not exist for them: the same 404 as a code that exists nowhere
        review = {"round": "1", "submission": halla_code, "scores": levels(criteria(p.store), CONFLICTED, "halla"),
                  "justifications": {}, "identified": "no"}
        hidden = c.post(f"{ON_PANEL}/reviews", json=review)
        nowhere = c.post(f"{ON_PANEL}/reviews", json={**review, "submission": "ZZ"})
        assert assert_error(hidden, 404).replace(halla_code, "?") == assert_error(nowhere, 404).replace("ZZ", "?")
        bodies += [hidden.text, nowhere.text]
        # the public reads show no score of the panel: no row of rater "panel" before the decision, no report
        scores = c.get(f"{API}/programs/{PROGRAM}/stages/{STAGE}/scores", params={"history": "true"})
        assert scores.status_code == 200
        assert not [r for r in scores.json()["records"] if r["rater"] == "panel"]
        assert_error(c.get(f"{API}/programs/{PROGRAM}/stages/{STAGE}/report"), 404)
        bodies += [scores.text]
        for path in ("/admin/panels", f"/admin/panels/{PROGRAM}/{STAGE}"):
            page = c.get(path)
            assert page.status_code == 403
            bodies.append(page.text)
    # the expert's own pages: the team's submission answers as a code that exists nowhere
    browser = p.site.signed_in(CONFLICTED)
    own = browser.get("/expert")
    assert own.status_code == 200
    on_stage = f"/expert/panels/{PROGRAM}/{STAGE}/submissions"
    hidden_page, nowhere_page = browser.get(f"{on_stage}/{halla_code}"), browser.get(f"{on_stage}/ZZ")
    assert hidden_page.status_code == nowhere_page.status_code == 404
    bodies += [own.text, hidden_page.text]
    text = "\n".join(bodies)
    for number in halla_numbers:
        assert number not in text, number
    for expert in others:  # no other expert's name, scores or words
        assert expert not in text
    assert "judged halla" not in text and "Submission " + halla_code not in text


def test_no_expert_and_no_team_gets_an_aggregate_before_the_decision(running: Panel) -> None:
    p = running
    result = admin_result(p.store)
    every_number = [n for t in TEAMS for n in numbers_of(result, t)]
    for who in ("ex-baek", "halla-lead", None):
        with p.client(who) as c:
            res = c.get(f"{ON_PANEL}/result")
            assert "published with the stage's decision" in assert_error(res, 403)
            state = c.get(ON_PANEL)
            if who == "ex-baek":
                body = state.json()
                assert body["view"] == "expert" and body["result"] is None
                assert {r["expert"] for r in body["reviews"]} == {"ex-baek"}
                assert all("ex-baek judged" in j for r in body["reviews"] if r["round"] == "1"
                           for j in r["justifications"].values())
                team_ids_shown = {r["subject"] for r in body["reviews"] if r["round"] == "1"}
                assert not team_ids_shown & set(TEAMS)  # blind codes, never team ids
            else:
                assert "secretariat and its experts" in assert_error(state, 403)
            for number in every_number:
                assert number not in state.text + res.text, (who, number)
    # the admin sees everything
    with p.client("sec") as c:
        state = c.get(ON_PANEL).json()
        assert state["view"] == "admin" and state["phase"] == "round1" and state["next"] == "round2"
        assert state["blockers"] == ["1 round-1 review(s) not locked yet: ex-ahn → seorak"]
        assert all(cov["experts"] >= 5 for cov in state["coverage"])
        assert (CONFLICTED_TEAM, CONFLICTED) not in {(a["team"], a["expert"]) for a in state["assignments"]}
        assert state["calibration"]["passed"] is True
        computed = c.get(f"{ON_PANEL}/result").json()
        assert computed["schema"] == "simsa.panel.result/1"
        halla = next(t for t in computed["teams"] if t["team"] == CONFLICTED_TEAM)
        assert halla["raw"] == pytest.approx(result.team(CONFLICTED_TEAM).raw)  # type: ignore[union-attr]


def test_an_expert_locks_a_review_by_blind_code(running: Panel) -> None:
    p = running
    team, expert = PENDING
    code = code_of(p, team)
    crits = criteria(p.store)
    body = {"round": "1", "submission": code, "scores": levels(crits, expert, team),
            "justifications": {c: justification(expert, team, c) for c in crits}, "identified": "unsure",
            "identified_as": "maybe a telecom"}
    with p.client(expert) as c:
        incomplete = c.post(f"{ON_PANEL}/reviews", json={**body, "justifications": {}})
        assert "a justification is required" in assert_error(incomplete, 400)
        assert_error(c.post(f"{ON_PANEL}/reviews", json={**body, "scores": {crits[0]: "4"}}), 422)
        assert_error(c.post(f"{ON_PANEL}/reviews", json={**body, "anchor": "anchor-strong"}), 422)
        assert_error(c.post(f"{ON_PANEL}/reviews", json={**body, "extra": 1}), 422)
        assert_error(c.post(f"{ON_PANEL}/reviews", json={**body, "round": "calibration", "submission": None,
                                                        "anchor": "anchor-strong"}), 400)  # calibration is over
        locked = c.post(f"{ON_PANEL}/reviews", json=body)
        assert locked.status_code == 201, locked.text
        out = locked.json()
        assert out["subject"] == code and out["identified"] == "unsure" and out["scores"] == body["scores"]
        assert f"\"{team}\"" not in locked.text  # the subject is the code, never the team id
        again = c.post(f"{ON_PANEL}/reviews", json={**body, "scores": {k: 5 for k in crits}})
        assert "locked" in assert_error(again, 400)
    with p.store.session(readonly=True) as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        stored = panel.review_of(s, ctx, "1", team, expert)
        assert stored is not None and dict(stored.review.scores) == body["scores"]
        assert stored.content_sha256 == out["content_sha256"]
    # a team or the admin cannot lock an expert's review; a browser session cannot write through the API
    with p.client("sec") as c:
        assert_error(c.post(f"{ON_PANEL}/reviews", json=body), 403)
    with p.client("halla-lead") as c:
        assert_error(c.post(f"{ON_PANEL}/reviews", json=body), 403)


def test_admin_assignments_and_steps_through_the_api(running: Panel) -> None:
    p = running
    with p.client("sec") as c:
        refused = c.post(f"{ON_PANEL}/assignments", json={"team": CONFLICTED_TEAM, "expert": CONFLICTED})
        assert "declared affiliation 'Halla AI' matches" in assert_error(refused, 400)
        locked = c.post(f"{ON_PANEL}/assignments/remove", json={"team": "baekdu", "expert": "ex-baek"})
        assert "locked a review" in assert_error(locked, 400)
        assert_error(c.post(f"{ON_PANEL}/assignments", json={"team": "nobody", "expert": "ex-baek"}), 404)
        assert_error(c.post(f"{ON_PANEL}/advance", json={"to": "open"}), 422)
        skipping = c.post(f"{ON_PANEL}/advance", json={"to": "closed"})
        assert "the next step is round2" in assert_error(skipping, 400)
        balanced = c.post(f"{ON_PANEL}/assignments/balance")
        assert balanced.status_code == 201 and balanced.json() == {"added": [], "short": []}
    with p.client("ex-ahn") as c:
        assert_error(c.post(f"{ON_PANEL}/advance", json={"to": "round2"}), 403)
        assert_error(c.post(f"{ON_PANEL}/assignments", json={"team": "jiri", "expert": "ex-ahn"}), 403)
    with p.client() as c:
        assert_error(c.post(f"{ON_PANEL}/advance", json={"to": "round2"}), 401)


def test_a_locked_review_edited_in_the_database_fails_verification(running: Panel) -> None:
    p = running
    with p.store.session() as s:
        row = s.execute(select(PanelReview).where(PanelReview.round == "1").limit(1)).scalar_one()
        original, row_id = row.content, row.id
        s.execute(update(PanelReview).where(PanelReview.id == row_id)
                  .values(content=original.replace(b'"scores":{', b'"scores":{"x":1,')))
    try:
        with p.store.session(readonly=True) as s:
            report = verify(s)
        assert not report.ok
        assert any("panel_reviews" in json.dumps(problem) for problem in report.to_dict()["problems"])
        with p.client() as c:
            assert c.get(f"{API}/audit/verify").json()["ok"] is False
    finally:
        with p.store.session() as s:
            s.execute(update(PanelReview).where(PanelReview.id == row_id).values(content=original))
    with p.store.session(readonly=True) as s:
        assert verify(s).ok


def test_openapi_documents_the_panel_routes() -> None:
    from fastapi.routing import APIRoute

    from simsa.web.app import create_app
    from simsa.web.routes.api import panel as panel_routes
    from simsa.web.settings import WebSettings

    class NoStore:
        pass

    schema = create_app(WebSettings(access_log=False), store=NoStore()).openapi()  # type: ignore[arg-type]
    routes = [r for r in panel_routes.router.routes if isinstance(r, APIRoute)]
    assert len(routes) == 7
    for route in routes:
        for method in route.methods:
            operation = schema["paths"][API + route.path][method.lower()]
            assert operation["summary"] and {"200", "201"} & set(operation["responses"]), route.path
            assert operation["tags"] == ["panel"]
            if method == "POST":
                assert operation["security"] == [{"api_token": []}], route.path
                assert {"401", "403", "404", "422"} <= set(operation["responses"]), route.path
    review = schema["components"]["schemas"]["ReviewIn"]
    assert review["additionalProperties"] is False and review["properties"]["scores"]["maxProperties"] == 50


# --------------------------------------------------------------------------- after the decision


def test_the_result_is_public_after_the_decision(sqlite_site: LiveSite, tmp_path: Path) -> None:
    p = panel_in_round1(sqlite_site, tmp_path)
    with p.client("halla-lead") as c:
        assert_error(c.get(f"{ON_PANEL}/result"), 403)
    advance(p.store, "round2")
    advance(p.store, "closed")
    with p.client(CONFLICTED) as c:  # closed but not decided: still nothing
        assert_error(c.get(f"{ON_PANEL}/result"), 403)
        assert c.get(ON_PANEL).json()["result"] is None
    with p.store.session() as s:
        decisions.decide_and_store(s, p.loaded, STAGE, "sec")
    with p.store.session(readonly=True) as s:
        stored = panel_results.stored_result(s, PROGRAM, STAGE)
    assert stored is not None and stored["schema"] == "simsa.panel.result/1"
    assert stored["experts"] == [f"E{i}" for i in range(1, 7)]  # anonymised
    for who in (None, "halla-lead", CONFLICTED):
        with p.client(who) as c:
            res = c.get(f"{ON_PANEL}/result")
            assert res.status_code == 200 and res.json() == stored
            state = c.get(ON_PANEL).json()
            assert state["result"] == stored and state["phase"] == "closed"
            for expert in EXPERTS:  # names never appear in the public document
                assert expert not in res.text
    scores = p.client().get(f"{API}/programs/{PROGRAM}/stages/{STAGE}/scores").json()["current"]
    panel_scores = {s["team"]: s["value"] for s in scores if s["source"] == "panel:expert"}
    with p.store.session(readonly=True) as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        expected = {t["team"]: panel_results.to_scale(ctx, t["value"], t["stderr"])[0] for t in stored["teams"]}
    assert panel_scores == pytest.approx(expected)
