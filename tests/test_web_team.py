"""A team's own pages and one's own account, through HTTP as a browser uses them, and attacks on them: another
team's ids, a team named in a forged form, an appeal after the window, other accounts' tokens."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from simsa import accounts
from simsa.services import appeals, programs
from simsa.services import scores as score_service
from simsa.store.models import Appeal, AuditEntry
from web_support import PASSWORD, PROGRAM, STAGE, LiveSite, csrf_of, record_example_stage

NEW_PASSWORD = "a different long passphrase"


def post_form(client: httpx.Client, page: str, action: str, data: dict | None = None) -> httpx.Response:
    shown = client.get(page)
    assert shown.status_code == 200, shown.text[-800:]
    return client.post(action, data={"csrf_token": csrf_of(shown.text), **(data or {})})


def error_of(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text, re.S)
    assert found is not None, response.text[-1500:]
    return found.group(1)


def audit_count(site: LiveSite) -> int:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return s.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def appeals_of(site: LiveSite) -> list[dict]:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return appeals.listing(s, PROGRAM, STAGE)


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The example stage decided a few minutes ago (its appeal window open); team accounts for baekdu (A) and halla
    (B), B with an appeal and a score under a rater name only B may see; an administrator and an expert."""
    work = tmp_path_factory.mktemp("web-team")
    site = LiveSite(f"sqlite:///{work / 'simsa.db'}", settings_changes={"login_rate": 10_000}).start()
    assert site.store is not None
    record_example_stage(site.store, work, decide_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    with site.store.session() as s:
        loaded = programs.resolve(s, PROGRAM)
        score_service.record(s, loaded, [score_service.ScoreInput(stage=STAGE, team="halla", source="panel:user",
                                                                  value=55.0, rater="rater-only-halla-sees")],
                             "test")
        b_appeal = appeals.file(s, loaded, STAGE, "halla", "grounds only halla may read", "account:team-b")
        s.flush()
        b_appeal_id = b_appeal.id
    site.account("sec")
    site.account("expert1", "expert")
    site.account("team-a", "team", team="baekdu")
    site.account("team-b", "team", team="halla")
    clients = {name: site.signed_in(name) for name in ("sec", "expert1", "team-a", "team-b")}
    for client in clients.values():
        client.get("/account?lang=en")
    try:
        yield {"site": site, "clients": clients, "b_appeal": b_appeal_id}
    finally:
        for client in clients.values():
            client.close()
        site.stop()


def test_team_page_shows_only_its_own_results(teams: dict) -> None:
    page = teams["clients"]["team-a"].get("/team")
    assert page.status_code == 200
    html = page.text
    assert "Team Baekdu" in html and "rank" in html and "File the appeal" in html
    assert "The appeal window is open until the end of" in html
    assert "rater-only-halla-sees" not in html and "grounds only halla may read" not in html
    b_page = teams["clients"]["team-b"].get("/team").text
    assert "rater-only-halla-sees" in b_page and f"/team/appeals/{teams['b_appeal']}" in b_page


def test_another_teams_appeal_is_not_found(teams: dict) -> None:
    a, b = teams["clients"]["team-a"], teams["clients"]["team-b"]
    assert a.get(f"/team/appeals/{teams['b_appeal']}").status_code == 404
    assert "grounds only halla may read" not in a.get(f"/team/appeals/{teams['b_appeal']}").text
    assert a.get("/team/appeals/999999").status_code == 404
    assert a.get("/team/appeals/99999999999999999999").status_code == 422
    mine = b.get(f"/team/appeals/{teams['b_appeal']}")
    assert mine.status_code == 200 and "grounds only halla may read" in mine.text


def test_a_team_in_the_form_is_ignored(teams: dict) -> None:
    """The appeal is always the signed-in account's team's, whatever a forged form says."""
    site, a = teams["site"], teams["clients"]["team-a"]
    before = {x["id"] for x in appeals_of(site)}
    filed = post_form(a, "/team", f"/team/stages/{STAGE}/appeal",
                      {"grounds": "forged for halla", "team": "halla", "team_id": "halla"})
    assert filed.status_code == 303 and filed.headers["location"] == "/team?done=done_appeal_filed"
    new = [x for x in appeals_of(site) if x["id"] not in before]
    assert [(x["team"], x["grounds"]) for x in new] == [("baekdu", "forged for halla")]
    assert "Your appeal is filed." in a.get(filed.headers["location"]).text


def test_team_form_errors_keep_the_input(teams: dict) -> None:
    site, a = teams["site"], teams["clients"]["team-a"]
    before = audit_count(site)
    empty = post_form(a, "/team", f"/team/stages/{STAGE}/appeal", {"grounds": "   "})
    assert empty.status_code == 400 and "needs grounds" in error_of(empty)
    undecided = post_form(a, "/team", "/team/stages/stage-2/appeal", {"grounds": "kept <text>"})
    assert undecided.status_code == 400 and "no decision yet" in error_of(undecided)
    unknown = post_form(a, "/team", "/team/stages/nope/appeal", {"grounds": "x"})
    assert unknown.status_code == 404
    assert audit_count(site) == before


def test_team_pages_are_for_team_accounts(teams: dict) -> None:
    clients = teams["clients"]
    for who in ("sec", "expert1"):
        assert clients[who].get("/team").status_code == 403
        assert clients[who].get(f"/team/appeals/{teams['b_appeal']}").status_code == 403
    with teams["site"].client() as anonymous:
        assert anonymous.get("/team").headers["location"].startswith("/login")
        token = csrf_of(anonymous.get("/login").text)
        refused = anonymous.post(f"/team/stages/{STAGE}/appeal", data={"csrf_token": token, "grounds": "x"})
        assert refused.status_code == 401
    for who in ("team-a", "expert1"):
        assert clients[who].get("/admin").status_code == 403


def test_tokens_are_shown_once_and_only_their_owners_revoke_them(teams: dict) -> None:
    site, a, b = teams["site"], teams["clients"]["team-a"], teams["clients"]["team-b"]
    made = post_form(a, "/account", "/account/tokens", {"name": "ci upload", "expires_days": "30"})
    assert made.status_code == 200
    token = re.search(r'id="api-token">([^<]+)<', made.text).group(1)
    assert token.startswith("simsa_")
    listing = a.get("/account").text
    assert "ci upload" in listing and token not in listing and token[:14] in listing
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        a_account = accounts.find_account(s, "team-a")
        a_token = next(t for t in accounts.list_tokens(s, a_account.id) if t.name == "ci upload")
        assert a_token.expires_at is not None
    before = audit_count(site)
    forged = post_form(b, "/account", f"/account/tokens/{a_token.id}/revoke")
    assert forged.status_code == 400 and f"no API token {a_token.id}" in error_of(forged)
    assert audit_count(site) == before
    with site.store.session(readonly=True) as s:
        assert accounts.token_account(s, token) is not None
    revoked = post_form(a, "/account", f"/account/tokens/{a_token.id}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"] == "/account?done=done_token_revoked"
    with site.store.session(readonly=True) as s:
        assert accounts.token_account(s, token) is None
    again = post_form(a, "/account", f"/account/tokens/{a_token.id}/revoke")
    assert again.status_code == 400 and "already revoked" in error_of(again)
    bad = post_form(a, "/account", "/account/tokens", {"name": "x", "expires_days": "forever"})
    assert bad.status_code == 400 and "whole number of days" in error_of(bad) and 'value="forever"' in bad.text


def test_password_change(teams: dict) -> None:
    site = teams["site"]
    site.account("changer", "rater")
    client = site.signed_in("changer")
    wrong = post_form(client, "/account", "/account/password",
                      {"old": "not it at all", "new": NEW_PASSWORD, "new_again": NEW_PASSWORD})
    assert wrong.status_code == 400 and "current password is wrong" in error_of(wrong)
    differ = post_form(client, "/account", "/account/password",
                       {"old": PASSWORD, "new": NEW_PASSWORD, "new_again": NEW_PASSWORD + "x"})
    assert differ.status_code == 400 and "differ" in error_of(differ)
    short = post_form(client, "/account", "/account/password", {"old": PASSWORD, "new": "short", "new_again": "short"})
    assert short.status_code == 400 and "too short" in error_of(short)
    changed = post_form(client, "/account", "/account/password",
                        {"old": PASSWORD, "new": NEW_PASSWORD, "new_again": NEW_PASSWORD})
    assert changed.status_code == 303
    client.close()
    site.signed_in("changer", NEW_PASSWORD).close()
    with pytest.raises(AssertionError):
        site.signed_in("changer", PASSWORD)


def test_appeals_after_the_window_are_refused(sqlite_site: LiveSite, tmp_path: Path) -> None:
    site = sqlite_site
    assert site.store is not None
    record_example_stage(site.store, tmp_path, decide_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=60))
    site.account("late-team", "team", team="baekdu")
    team = site.signed_in("late-team")
    page = team.get("/team?lang=en")
    assert "The appeal window closed on" in page.text and 'name="grounds"' not in page.text
    before = audit_count(site)
    forged = team.post(f"/team/stages/{STAGE}/appeal", data={"csrf_token": csrf_of(page.text), "grounds": "late"})
    assert forged.status_code == 400 and "appeal window" in error_of(forged) and "closed" in error_of(forged)
    assert audit_count(site) == before
    with site.store.session(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(Appeal)).scalar_one() == 0
    team.close()
