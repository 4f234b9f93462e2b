"""The user-review arena in a real browser (Debian's chromium driven by Playwright) against two tiny models served
by `simsa serve-model` on loopback, as the secretariat and raters use it: the secretariat freezes the two entrants
(their served weights' digests go into the manifest); a rater takes the suggested prompt, reads both answers with
no entrant named anywhere on the page, votes, and only then sees who was who, with the measured latency and speed
and the declared prices, and rates the answers; a second rater does the same in Korean. Every page visited is kept
as a screenshot (tests/browser.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from arena_support import arena_program_text
from browser import new_context
from helpers import EXAMPLE
from served_models import address, launch, one_thread, serve_command, stop
from simsa import accounts
from simsa.accounts import AccountView
from simsa.program.loader import parse_program
from simsa.services import arena, arena_answers, programs
from web_support import PASSWORD, PROGRAM, STAGE, LiveSite

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, expect

Shot = Callable[[Page, str], Path]
ENTRANTS = {"baekdu": 1, "halla": 2}  # team -> the tiny model's seed
DROPPED = ("jiri", "seorak", "taebaek")
BASE = f"/arena/{PROGRAM}/{STAGE}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:
    """Two tiny models (a few training steps each, different seeds) served over HTTP on loopback."""
    from simsa.bench.tinymodels import TinySpec, build_tiny_model

    folder = tmp_path_factory.mktemp("arena-models")
    with one_thread():
        dirs = {team: build_tiny_model(folder / f"tiny-{team}-chat", TinySpec(steps=10, seed=seed))
                for team, seed in ENTRANTS.items()}
    procs = {team: launch(serve_command(d, "--port", "0", "--json")) for team, d in dirs.items()}
    try:
        yield {team: address(proc, f"serve-model for {team}") for team, proc in procs.items()}
    finally:
        stop(*procs.values())


def program_text(served: dict[str, dict]) -> str:
    """The example programme with the arena open now, two entrants pointing at the served models, short answers,
    a one-second dwell and no attention checks."""
    example = EXAMPLE.read_text(encoding="utf-8")
    changes = {"max_tokens = 512": "max_tokens = 16", "min_dwell_seconds = 5": "min_dwell_seconds = 1",
               "gold_every = 10": "gold_every = 0"}
    for team in DROPPED:
        block = re.search(rf'    \[\[stages\.arena\.entrants\]\]\n    team = "{team}"\n.*?\n\n', example, re.S)
        assert block is not None
        changes[block.group(0)] = ""
    for team, info in served.items():
        found = re.search(rf'team = "{team}"\n    endpoint = "[^"]+"\n    model = "[^"]+"', example)
        assert found is not None
        changes[found.group(0)] = f'team = "{team}"\n    endpoint = "{info["url"]}"\n    model = "{info["model"]}"'
    now = dt.datetime.now(dt.UTC)
    return arena_program_text(now - dt.timedelta(hours=1), now + dt.timedelta(days=1), changes=changes)


@pytest.fixture(scope="module")
def site(served: dict[str, dict], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    folder = tmp_path_factory.mktemp("arena-browser")
    live = LiveSite(f"sqlite:///{folder / 'simsa.db'}", settings_changes={"login_rate": 10_000}).start()
    assert live.store is not None
    with live.store.session() as s:
        programs.register(s, parse_program(program_text(served), f"{PROGRAM}.toml"), "test")
    live.account("sec")
    live.account("rater-en", "rater")
    live.account("rater-ko", "rater")
    arena_answers.use_factory(None)  # the real clients: the served models over HTTP
    try:
        yield live
    finally:
        arena_answers.use_factory(None)
        live.stop()


def sign_in(browser: Browser, site: LiveSite, username: str) -> Page:
    page = new_context(browser, site.url).new_page()
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def names_of(ctx: arena.ArenaContext) -> list[str]:
    """What would name an entrant on a rater's page: team ids and names, members, models, served model names,
    endpoints' ports."""
    out: list[str] = []
    for e in ctx.arena.entrants:
        team = ctx.loaded.program.team(e.team)
        out += [e.team, team.name, *(n for n in (team.name_ko,) if n), *team.members, *team.models]
        out += [e.model or "", (e.endpoint or "").rsplit(":", 1)[-1].split("/")[0]]
    return [n for n in out if n]


def page_text(page: Page) -> str:
    """Everything the page holds: its HTML (form fields and comments included)."""
    return page.content()


def battle(page: Page, shot: Shot, site: LiveSite, ctx: arena.ArenaContext, lang: str, who: AccountView) -> None:
    """One whole battle in the browser: start, take the suggested prompt, read, vote A, see the reveal, rate."""
    label = {"en": ("Start a battle", "Use this prompt", "A is better", "Save the ratings", "Answer A"),
             "ko": ("대결 시작", "이 질문 사용", "A가 더 좋음", "평가 저장", "답변 A")}[lang]
    page.goto(f"/arena?lang={lang}")
    shot(page, f"arena-home-{lang}")
    page.get_by_role("button", name=label[0]).click()
    expect(page.get_by_role("button", name=label[1])).to_be_visible()
    shot(page, f"arena-battle-{lang}")
    page.get_by_role("button", name=label[1]).click()
    expect(page.get_by_role("button", name=label[2])).to_be_visible()
    shot(page, f"arena-answers-{lang}")
    html = page_text(page).casefold()
    named = [n for n in names_of(ctx) if n.casefold() in html]
    assert not named, named  # before the vote, nothing on the page names an entrant
    assert "latency" not in html and "응답 시간" not in html
    expect(page.locator(".ar-answer")).to_have_count(2)
    page.wait_for_timeout(1100)  # the minimum dwell time
    page.get_by_role("button", name=label[2]).click()
    reveal = page.locator("#reveal")
    expect(reveal).to_be_visible()
    token = page.url.split("/b/", 1)[1].split("?", 1)[0]
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        view = arena.battle(s, ctx, token, who)
    assert view.reveal is not None
    for team in (view.reveal.left_team, view.reveal.right_team):
        found = ctx.loaded.program.team(team)
        expect(reveal).to_contain_text(found.name_ko if lang == "ko" and found.name_ko else found.name)
    expect(reveal).to_contain_text(f"{ctx.arena.entrant(view.reveal.left_team).price_per_million_tokens:.2f}")
    expect(page.locator(".ar-answer h3").first).to_contain_text(label[4])
    shot(page, f"arena-reveal-{lang}")
    page.locator("select[name=usefulness_left]").select_option("4")
    page.locator("select[name=cost_efficiency_right]").select_option("2")
    page.get_by_role("button", name=label[3]).click()
    expect(reveal).not_to_contain_text(label[3])
    shot(page, f"arena-rated-{lang}")


def test_a_rater_votes_blind_against_two_served_models(browser: Browser, site: LiveSite, shot: Shot) -> None:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        ctx = arena.context(s, PROGRAM, STAGE)
    admin = sign_in(browser, site, "sec")
    admin.goto(f"/admin/arenas/{PROGRAM}/{STAGE}")
    admin.get_by_role("button", name="Read the entrants and freeze").click()
    expect(admin.locator(".notice.done")).to_be_visible()
    with site.store.session(readonly=True) as s:
        segment = arena.current_segment(s, ctx)
    assert segment is not None
    digests = {e["team"]: e["identity"].get("sha256") for e in segment.manifest["entrants"]}
    assert all(digests.values()) and digests["baekdu"] != digests["halla"]  # the served weights, frozen
    expect(admin.locator(".ar-sha")).to_have_text(segment.manifest_sha256)
    shot(admin, "arena-admin-frozen")

    with site.store.session(readonly=True) as s:
        raters = {a.username: a for a in accounts.list_accounts(s)}
    for lang in ("en", "ko"):
        battle(sign_in(browser, site, f"rater-{lang}"), shot, site, ctx, lang, raters[f"rater-{lang}"])

    admin.goto(f"/admin/arenas/{PROGRAM}/{STAGE}")
    expect(admin.locator("#live")).to_be_visible()
    shot(admin, "arena-admin-live")
    admin.goto(f"/admin/arenas/{PROGRAM}/{STAGE}/ranking")
    shot(admin, "arena-admin-ranking")
