"""The expert panel in a real browser (Debian's chromium driven by Playwright), as a team and an expert use it:
the team uploads a Markdown report and a CSV training log; the expert reads the submission blind (report rendered,
log plotted, no team name), scores every criterion, answers the identification question and locks; in round 2 the
expert sees the anonymised distribution, posts to the discussion and revises; the stage is decided and the public
stage page shows the panel's section. The secretariat's steps and the other four experts' reviews go through the
services (their pages are tested elsewhere). Every page visited is kept as a screenshot (tests/browser.py).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from browser import new_context
from helpers import write_bench_scores
from panel_support import csv_log, markdown_report, panel_program_text
from simsa.demo import write_example_scores
from simsa.panel.conflicts import team_names
from simsa.program.loader import LoadedProgram, parse_program
from simsa.services import decision_records, panel, panel_documents, panel_steps, programs, score_files
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from web_support import FAILING, PASSWORD, PROGRAM, STAGE, LiveSite

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, expect

Shot = Callable[[Page, str], Path]
TEAM = "baekdu"
TEAM_USER = "baekdu-lead"
ADMIN = "secretariat"
EXPERTS = ("expert-ahn", "expert-baek", "expert-cho", "expert-do", "expert-eom")
BROWSER_EXPERT = EXPERTS[0]
CRITERIA = ("originality", "training", "data", "reproducibility", "safety")


def load(site: LiveSite, deadline: dt.datetime) -> LoadedProgram:
    assert site.store is not None
    loaded = parse_program(panel_program_text(deadline), f"{PROGRAM}.toml")
    with site.store.session() as s:
        programs.register(s, loaded, "test")
    return loaded


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    folder = tmp_path_factory.mktemp("panel-browser")
    live = LiveSite(f"sqlite:///{folder / 'simsa.db'}", settings_changes={"login_rate": 10_000}).start()
    load(live, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    live.account("sec")
    live.account(TEAM_USER, "team", team=TEAM)
    live.account(ADMIN, "admin")
    for name in EXPERTS:
        live.account(name, "expert")
    try:
        yield live
    finally:
        live.stop()


def sign_in(browser: Browser, site: LiveSite, shot: Shot, username: str) -> Page:
    page = new_context(browser, site.url).new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shot(page, f"signed-in-{username}")
    return page


def scores(level: int) -> dict[str, int]:
    return dict.fromkeys(CRITERIA, level)


def notes(text: str) -> dict[str, str]:
    return dict.fromkeys(CRITERIA, text)


def open_round1(site: LiveSite) -> None:
    """The secretariat's set-up: anchors, the other experts' declarations, five experts on every team, calibration
    scored alike by all five, the deadline passed (a new programme version), round 1 open."""
    assert site.store is not None
    with site.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for name in EXPERTS[1:]:
            panel.declare(s, name, affiliations=[f"Institute {name}"], relations=[], conflicts=[])
        for anchor in ctx.anchors:
            panel_documents.upload(s, ctx, f"# {anchor}\n\nAn anchor report.\n".encode(), f"{anchor}.md", "report",
                                   "sec", anchor_id=anchor)
        assert not panel.auto_assign(s, ctx, "sec").short
        panel_steps.advance(s, ctx, "calibration", "sec")
    with site.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for name in EXPERTS:
            for anchor, base in zip(ctx.anchors, (4, 1), strict=True):
                levels = {c: base + (k % 2) for k, c in enumerate(CRITERIA)}
                panel.submit_review(s, ctx, name, anchor, "calibration", levels, notes("anchor"))
    deadline = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    load(site, deadline)
    time.sleep(max(0.0, (deadline - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    with site.store.session() as s:
        panel_steps.advance(s, panel.context(s, PROGRAM, STAGE), "round1", "sec")


def record_other_scores(site: LiveSite, work: Path) -> None:
    """The stage's other sources (benchmarks, user panel) and originality gates, recorded as the secretariat would."""
    assert site.store is not None
    write_example_scores(work / "panel.csv", experts=False)
    write_bench_scores(work / "bench.json")
    with site.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        version, loaded = programs.stored_version(s, PROGRAM)
        for name in ("panel.csv", "bench.json"):
            score_service.add(s, version, loaded.program, score_files.parse_file(work / name), "test")
        for team in ctx.teams:
            gate_service.record(s, version, loaded.program, stage_id=STAGE, team_id=team.id, gate_id="originality",
                                passed=team.id != FAILING, evidence="recorded for the test", actor="test",
                                example=True, link=None)


def close_and_decide(browser: Browser, site: LiveSite, shot: Shot) -> None:
    """The secretariat, in the browser: the panel's page (its result preview), close the panel, decide the stage."""
    admin = sign_in(browser, site, shot, ADMIN)
    admin.goto(f"/admin/panels/{PROGRAM}/{STAGE}")
    shot(admin, "admin-panel-round2")
    admin.get_by_role("button", name="Close the panel").click()
    expect(admin.get_by_role("status")).to_be_visible()
    shot(admin, "admin-panel-closed")
    admin.goto(f"/admin/programs/{PROGRAM}/stages/{STAGE}")
    admin.get_by_role("button", name="Decide", exact=True).click()
    expect(admin.get_by_role("status")).to_be_visible()
    shot(admin, "admin-decided")
    admin.context.close()


def test_team_uploads_expert_scores_blind_revises_and_the_public_sees_the_panel(
        browser: Browser, site: LiveSite, shot: Shot, tmp_path: Path) -> None:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        ctx = panel.context(s, PROGRAM, STAGE)
    team = ctx.team(TEAM)

    # the team uploads its report and training log
    lead = sign_in(browser, site, shot, TEAM_USER)
    lead.goto("/team/panel")
    expect(lead.get_by_role("heading", name="Documents for the expert panel")).to_be_visible()
    for purpose, name, data, mime in (("report", "baekdu-report.md", markdown_report(team.name, team.members[0]),
                                       "text/markdown"),
                                      ("log", "baekdu-train.csv", csv_log(), "text/csv")):
        lead.get_by_label("What it is").select_option(purpose)
        lead.get_by_label("File").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])
        lead.get_by_role("button", name="Upload").click()
        expect(lead.get_by_role("status")).to_contain_text("The document is uploaded.")
        expect(lead.get_by_role("cell", name=name, exact=True)).to_be_visible()
    shot(lead, "team-uploaded")

    # the browser expert declares through the dashboard
    expert = sign_in(browser, site, shot, BROWSER_EXPERT)
    expert.goto("/expert")
    expert.get_by_label("Organisations you belong or belonged to (one per line)").fill("Seoul Example University")
    expert.get_by_role("button", name="Save the declaration").click()
    expect(expert.get_by_role("status")).to_contain_text("Your declaration is saved.")
    shot(expert, "expert-declared")

    open_round1(site)
    with site.store.session(readonly=True) as s:
        code = panel.codes(s, panel.context(s, PROGRAM, STAGE))[TEAM]
    submission = f"Submission {code}"

    # round 1: read blind, score every criterion, answer the identification question, lock
    expert.goto("/expert")
    expect(expert.get_by_text("round 1: independent scoring")).to_be_visible()
    shot(expert, "expert-dashboard-round1")
    expert.get_by_role("link", name=submission, exact=True).click()
    expect(expert.get_by_role("heading", name=re.compile(f"^{submission}"))).to_be_visible()
    expect(expert.locator(".pn-markdown h1")).to_contain_text("Technical report of █████")
    expect(expert.locator(".pn-markdown table")).to_be_visible()
    expect(expert.locator("figure.pn-plot svg")).to_have_count(3)
    expect(expert.get_by_role("rowheader", name="last step")).to_be_visible()
    html = expert.content().lower()
    assert not [n for n in [*team_names(team), "baekdu-report", "baekdu-train"] if n.lower() in html]
    shot(expert, "expert-submission")
    for k, criterion in enumerate(CRITERIA):
        expert.locator(f'input[name="score_{criterion}"][value="{3 + k % 2}"]').check()
        expert.locator(f'textarea[name="just_{criterion}"]').fill(f"Round-1 reasons for {criterion}.")
    expert.locator('input[name="identified"][value="no"]').check()
    expect(expert.get_by_role("note")).to_contain_text("Submitting locks your review")
    shot(expert, "expert-scored")
    expert.get_by_role("button", name="Submit and lock the review").click()
    expect(expert.get_by_role("status")).to_contain_text("Your review is locked.")
    with site.store.session(readonly=True) as s:
        mine = panel.review_of(s, panel.context(s, PROGRAM, STAGE), "1", TEAM, BROWSER_EXPERT)
    assert mine is not None and mine.review.identified == "no"
    expect(expert.get_by_text(mine.content_sha256)).to_be_visible()
    shot(expert, "expert-locked")

    # the other reviews are locked through the services; round 2 opens
    with site.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for k, (team_id, name) in enumerate(panel.missing_reviews(s, ctx, "1")):
            panel.submit_review(s, ctx, name, team_id, "1", scores(2 + k % 3), notes("independent reasons"),
                                identified="no")
        panel_steps.advance(s, ctx, "round2", "sec")

    expert.reload()
    expect(expert.get_by_role("heading", name="How the panel scored in round 1 (anonymous)")).to_be_visible()
    expert.get_by_label("Your message").fill("The loss curve is smooth; I lean towards 4 on training.")
    expert.get_by_role("button", name="Post").click()
    expect(expert.get_by_role("status")).to_contain_text("Your message is posted.")
    expect(expert.locator(".pn-thread")).to_contain_text("The loss curve is smooth")
    expert.locator('#round2 input[name="score_training"][value="4"]').check()
    expect(expert.locator('#round2 input[name="score_originality"][value="3"]')).to_be_checked()  # pre-filled
    shot(expert, "expert-round2")
    expert.get_by_role("button", name="Submit and lock the revised review").click()
    expect(expert.get_by_role("status")).to_contain_text("Your revised review is locked.")
    expect(expert.get_by_role("heading", name="Your locked review (round 2)")).to_be_visible()
    shot(expert, "expert-revised")
    assert not [n for n in EXPERTS[1:] if n in expert.content()]  # the panel is anonymous to its members

    # the secretariat closes the panel and decides; the public stage page shows the panel's section
    record_other_scores(site, tmp_path)
    close_and_decide(browser, site, shot)
    public = new_context(browser, site.url).new_page()
    public.goto(f"/programs/{PROGRAM}/stages/{STAGE}")
    section = public.locator("#expert-panel")
    expect(section.get_by_role("heading", name="Expert panel", exact=True)).to_be_visible()
    text = section.inner_text()
    assert "Krippendorff" in text and not [n for n in EXPERTS if n in text]
    section.scroll_into_view_if_needed()
    shot(public, "public-stage-panel")
    with site.store.session(readonly=True) as s:
        body = decision_records.body(decision_records.effective(s, PROGRAM, STAGE))
    assert body["expert_panel"]["teams"] and not [n for n in EXPERTS if n in str(body["expert_panel"])]
    for page in (lead, expert, public):
        page.context.close()
