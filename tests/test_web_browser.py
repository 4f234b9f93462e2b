"""The web platform in a real browser (Debian's chromium driven by Playwright), as people use it: clicking links
and buttons found by their visible names, typing into fields found by their labels, choosing files to upload.

One live site (SQLite) serves the whole module, and the flows follow one another as a programme's life does: the
secretariat loads the example, records stage 1 and decides it; a team is invited and appeals; the appeal is
resolved; the audit log verifies, then fails once a row is edited behind the application's back; the pages read
in Korean and English. A flow run on its own records what it needs through the services first. Every page visited
is kept as a screenshot (tests/browser.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from browser import new_context
from helpers import write_bench_scores
from simsa.audit.log import verify
from simsa.demo import write_example_scores
from simsa.report.formats import fmt_points
from simsa.services import appeals as appeal_service
from simsa.services import decision_records, programs
from web_support import FAILING, PASSWORD, PROGRAM, STAGE, TEAMS, LiveSite, record_example_stage

pytest.importorskip("playwright")
from playwright.sync_api import Browser, BrowserContext, Page, expect

ADMIN = "admin"
TEAM_USER = "baekdu-lead"
TEAM = "baekdu"
STAGE_URL = f"/programs/{PROGRAM}/stages/{STAGE}"
Shot = Callable[[Page, str], Path]


# --------------------------------------------------------------------------- the site and the people on it


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    folder = tmp_path_factory.mktemp("browser-site")
    live = LiveSite(f"sqlite:///{folder / 'simsa.db'}").start()
    live.account(ADMIN, "admin")
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def people(browser: Browser, site: LiveSite) -> Iterator[dict[str, BrowserContext]]:
    """One browser profile (cookies) per person, opened on first use and kept for the module."""
    opened: dict[str, BrowserContext] = {}
    yield opened
    for context in opened.values():
        context.close()


def person(people: dict[str, BrowserContext], browser: Browser, site: LiveSite, who: str, lang: str = "en") -> Page:
    """The page of `who`'s browser (a new profile the first time), reused across the module's flows."""
    if who not in people:
        people[who] = new_context(browser, site.url, lang)
        people[who].new_page()
    return people[who].pages[0]


def card(page: Page, heading: str):  # type: ignore[no-untyped-def]
    """The form card whose heading is `heading`."""
    return page.locator("section.card").filter(has=page.get_by_role("heading", name=heading, exact=True))


def sign_in(page: Page, shot: Shot, username: str, password: str = PASSWORD) -> None:
    page.goto("/")
    page.get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    shot(page, f"sign-in-{username}")
    page.locator("main").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shot(page, f"signed-in-{username}")


def signed_in(people: dict[str, BrowserContext], browser: Browser, site: LiveSite, shot: Shot, who: str) -> Page:
    page = person(people, browser, site, who)
    page.goto("/")
    if page.get_by_role("button", name="Sign out").count() == 0:
        sign_in(page, shot, who)
    return page


def decided(site: LiveSite) -> dict | None:
    """The body of stage 1's decision in force (with who made it), None when undecided."""
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        row = decision_records.effective(s, PROGRAM, STAGE)
        return {**decision_records.body(row), "decided_by": row.decided_by} if row is not None else None


def ensure_decided(site: LiveSite, tmp_path: Path) -> dict:
    """Stage 1 decided now (through the services, when the first flow did not run before)."""
    body = decided(site)
    if body is None:
        assert site.store is not None
        body = record_example_stage(site.store, tmp_path, decide_at=dt.datetime.now(dt.UTC))
    assert body is not None
    return body


def pending_appeals(site: LiveSite) -> list[dict]:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return [a for a in appeal_service.listing(s, PROGRAM, STAGE) if a["status"] == "pending"]


# --------------------------------------------------------------------------- flows


def test_admin_records_and_decides_stage_then_public_leaderboard_shows_it(
        browser: Browser, site: LiveSite, people: dict, shot: Shot, tmp_path: Path) -> None:
    admin = signed_in(people, browser, site, shot, ADMIN)
    admin.get_by_role("link", name="Administration").click()
    expect(admin.get_by_role("heading", name="Secretariat", exact=True)).to_be_visible()
    shot(admin, "admin-dashboard")

    admin.get_by_role("link", name="Load a programme file").first.click()
    shot(admin, "load-programme")
    admin.get_by_role("button", name="Load the example").click()
    expect(admin.get_by_role("status")).to_contain_text("version")
    shot(admin, "programme-loaded")
    admin.get_by_role("link", name=STAGE, exact=True).click()
    expect(admin).to_have_url(re.compile(f"/admin{STAGE_URL}$"))
    shot(admin, "stage-admin-empty")

    panel, bench = tmp_path / "panel.csv", tmp_path / "bench.json"
    write_example_scores(panel)
    write_bench_scores(bench)
    for upload in (panel, bench):
        form = card(admin, "Import a score file")
        form.get_by_label("Score file").set_input_files(upload)
        form.get_by_role("button", name="Import").click()
        expect(admin.get_by_role("status")).to_have_text("The score file is imported.")
        shot(admin, f"imported-{upload.name}")

    for team in TEAMS:
        form = card(admin, "Record a gate result")
        form.get_by_label(re.compile(r"^Team")).select_option(team)
        form.get_by_label(re.compile(r"^Gate")).select_option("originality")
        failed = team == FAILING
        form.get_by_label(re.compile(r"^Result")).select_option("fail" if failed else "pass")
        form.get_by_label("Evidence", exact=True).fill(
            "weights match a foreign base" if failed else "independent of every registered reference")
        if failed:
            form.get_by_label("Link to the evidence").fill("https://example.org/forensics/jiri")
        form.get_by_role("button", name="Record").click()
        expect(admin.get_by_role("status")).to_have_text("The gate result is recorded.")
    expect(admin.get_by_text("ready to decide", exact=True)).to_be_visible()
    shot(admin, "stage-admin-ready")

    card(admin, "Decide the stage").get_by_role("button", name="Decide").click()
    expect(admin).to_have_url(re.compile(f"{STAGE_URL}\\?done=done_decided$"))
    expect(admin.get_by_role("status")).to_have_text("The stage is decided.")
    shot(admin, "decided")

    body = decided(site)
    assert body is not None and body["decided_by"] == f"account:{ADMIN}"
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        names = {t.id: t.name for t in programs.resolve(s, PROGRAM).program.teams}
    ranked = sorted(body["teams"], key=lambda t: t["rank"])

    public = person(people, browser, site, "public")
    public.goto("/")
    shot(public, "public-home")
    public.get_by_role("link", name="Sovereign AI Foundation Model Programme (example)").first.click()
    shot(public, "public-programme")
    public.get_by_role("link", name="Stage 1", exact=True).first.click()
    expect(public).to_have_url(re.compile(f"{STAGE_URL}$"))
    expect(public.get_by_text("Decision in force")).to_be_visible()
    shot(public, "public-stage")
    rows = public.locator("#leaderboard tbody tr")
    expect(rows).to_have_count(len(TEAMS))
    shown = [(rows.nth(i).locator("td").nth(1).inner_text().strip(), rows.nth(i).locator("td").nth(2).inner_text()
              .strip()) for i in range(len(TEAMS))]
    assert shown == [(names[t["team"]], fmt_points(t["total"])) for t in ranked]
    eliminated = public.locator("#leaderboard tbody tr", has_text=names[FAILING])
    expect(eliminated).to_contain_text("Eliminated")


def test_invited_team_files_appeal_within_window_only(browser: Browser, site: LiveSite, people: dict, shot: Shot,
                                                      tmp_path: Path) -> None:
    ensure_decided(site, tmp_path)
    admin = signed_in(people, browser, site, shot, ADMIN)
    admin.get_by_role("link", name="Administration").click()
    admin.get_by_role("link", name="Accounts", exact=True).click()
    shot(admin, "accounts")
    admin.get_by_label("Username").fill(TEAM_USER)
    admin.get_by_label("Display name").fill("Baekdu team lead")
    admin.get_by_label("Role").select_option("team")
    admin.get_by_label(re.compile(r"^Programme")).select_option(PROGRAM)
    admin.get_by_label("Team (team accounts only)").select_option(TEAM)
    admin.get_by_role("button", name="Invite", exact=True).click()
    expect(admin.get_by_role("heading", name="Invitation link")).to_be_visible()
    shot(admin, "invitation-link")
    link = admin.locator("#invitation-link").inner_text().strip()
    assert link.startswith(f"{site.url}/invite/")

    team = person(people, browser, site, TEAM_USER)
    team.goto(link)
    expect(team.get_by_role("heading", name="Activate your account")).to_be_visible()
    shot(team, "invitation-opened")
    team.get_by_label("Password", exact=True).fill(PASSWORD)
    team.get_by_label("Password again").fill(PASSWORD)
    team.get_by_role("button", name="Activate").click()
    expect(team.get_by_role("status")).to_contain_text("Your account is active")
    shot(team, "activated")
    team.get_by_label("Username").fill(TEAM_USER)
    team.get_by_label("Password").fill(PASSWORD)
    team.locator("main").get_by_role("button", name="Sign in").click()
    team.get_by_role("link", name="My team").click()
    expect(team.get_by_role("heading", name="Team Baekdu")).to_be_visible()
    shot(team, "team-page")

    stage = team.locator(f"#stage-{STAGE}")
    expect(stage.get_by_text("The appeal window is open until")).to_be_visible()
    grounds = "The expert panel's scores were entered for the wrong model <script>alert(1)</script>"
    stage.get_by_label("Grounds").fill(grounds)
    stage.get_by_role("button", name="File the appeal").click()
    expect(team.get_by_role("status")).to_have_text("Your appeal is filed.")
    shot(team, "appeal-filed")
    filed = pending_appeals(site)
    assert [(a["team"], a["grounds"]) for a in filed] == [(TEAM, grounds)]
    team.locator(f"#stage-{STAGE}").get_by_role("link", name=f"#{filed[0]['id']}").click()
    expect(team.get_by_text(grounds)).to_be_visible()  # shown as text, not run
    shot(team, "appeal-page")

    # A stage decided longer ago than its appeal window: no form, and a forged post is refused.
    late = LiveSite(f"sqlite:///{tmp_path / 'late.db'}").start()
    try:
        assert late.store is not None
        record_example_stage(late.store, tmp_path, decide_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=60))
        late.account("halla-lead", "team", team="halla")
        context = new_context(browser, late.url)
        try:
            page = context.new_page()
            sign_in(page, shot, "halla-lead")
            page.get_by_role("link", name="My team").click()
            section = page.locator(f"#stage-{STAGE}")
            expect(section.get_by_text("The appeal window closed on")).to_be_visible()
            expect(section.get_by_role("button", name="File the appeal")).to_have_count(0)
            shot(page, "late-team-page")
            token = page.locator("input[name=csrf_token]").first.get_attribute("value")
            forged = page.request.post(f"{late.url}/team/stages/{STAGE}/appeal",
                                       form={"csrf_token": token or "", "grounds": "too late"}, max_redirects=0)
            assert forged.status == 400, forged.text()[:300]
            assert "appeal window" in forged.text()
            page.set_content(forged.text())
            shot(page, "late-appeal-refused")
            with late.store.session(readonly=True) as s:
                assert appeal_service.listing(s, PROGRAM, STAGE) == []
        finally:
            context.close()
    finally:
        late.stop()


def test_admin_resolves_appeal_and_public_stage_shows_it(browser: Browser, site: LiveSite, people: dict,
                                                         shot: Shot, tmp_path: Path) -> None:
    ensure_decided(site, tmp_path)
    if not pending_appeals(site):  # run on its own: the team's appeal, filed through the services
        assert site.store is not None
        with site.store.session() as s:
            appeal_service.file(s, programs.resolve(s, PROGRAM), STAGE, TEAM, "a recount of the panel", "test")
    appeal = pending_appeals(site)[0]
    admin = signed_in(people, browser, site, shot, ADMIN)
    admin.get_by_role("link", name="Administration").click()
    shot(admin, "dashboard-pending-appeal")
    admin.get_by_role("link", name=str(appeal["id"]), exact=True).click()
    expect(admin).to_have_url(re.compile(f"/admin{STAGE_URL}#appeal-{appeal['id']}$"))
    found = admin.locator(f"#appeal-{appeal['id']}")
    found.get_by_label("Outcome").select_option("rejected")
    reason = "The panel's sheets show the scores were entered for the team's submitted model."
    found.get_by_label("Reason").fill(reason)
    shot(admin, "resolving-appeal")
    found.get_by_role("button", name="Resolve").click()
    expect(admin.get_by_role("status")).to_have_text("The appeal is resolved.")
    shot(admin, "appeal-resolved")

    public = person(people, browser, site, "public")
    public.goto(STAGE_URL)
    row = public.locator("#appeals tbody tr", has_text=reason)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Rejected")
    expect(row.locator("td").nth(1)).to_have_text("Team Baekdu")
    public.locator("#appeals").scroll_into_view_if_needed()
    shot(public, "public-stage-appeal-resolved")
    assert pending_appeals(site) == []


def test_audit_verifies_then_fails_after_a_row_is_edited(browser: Browser, site: LiveSite, people: dict,
                                                          shot: Shot, tmp_path: Path) -> None:
    ensure_decided(site, tmp_path)
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        expected = verify(s)
    assert expected.ok
    public = person(people, browser, site, "public")
    public.goto("/")
    public.get_by_role("link", name="Audit log").first.click()
    expect(public).to_have_url(re.compile(r"/audit$"))
    shot(public, "audit-log")
    public.get_by_role("link", name="Verify the log now").click()
    expect(public.get_by_role("status")).to_contain_text("OK")
    expect(public.locator("#head")).to_have_text(expected.head)
    shot(public, "audit-verify-ok")

    with site.store.engine.begin() as conn:
        changed = conn.execute(text("SELECT min(id) FROM scores")).scalar_one()
        conn.execute(text("UPDATE scores SET value = value + 1 WHERE id = (SELECT min(id) FROM scores)"))
    try:
        public.reload()
        expect(public.get_by_role("alert")).to_contain_text("FAILED")
        problem = public.locator("table tbody tr", has_text="scores").filter(
            has=public.locator("td", has_text=re.compile(f"^{changed}$")))
        expect(problem).to_have_count(1)
        shot(public, "audit-verify-failed")
    finally:  # put the row back: the flows after this one read a sound record
        with site.store.engine.begin() as conn:
            conn.execute(text("UPDATE scores SET value = value - 1 WHERE id = :id"), {"id": changed})
    public.reload()
    expect(public.get_by_role("status")).to_contain_text("OK")


def test_stage_page_in_korean_then_english(browser: Browser, site: LiveSite, people: dict, shot: Shot,
                                           tmp_path: Path) -> None:
    ensure_decided(site, tmp_path)
    page = person(people, browser, site, "reader", lang="en")
    page.goto(STAGE_URL)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("link", name="한국어").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.get_by_role("heading", name="1차 평가", exact=True)).to_be_visible()
    expect(page.locator("#leaderboard")).to_contain_text("백두팀")
    shot(page, "stage-ko")
    page.goto(STAGE_URL)  # the choice is remembered
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Stage 1", exact=True)).to_be_visible()
    expect(page.locator("#leaderboard")).to_contain_text("Team Baekdu")
    shot(page, "stage-en")
