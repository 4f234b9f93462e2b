"""The secretariat's panel pages through HTTP as a browser uses them (form page, CSRF token, post, 303): a panel set up,
calibrated, run and closed — assignments refused for a conflict with the reason, balancing to the minimum, steps
refused with their blockers (anchors missing, calibration missing or below the threshold, deadline not passed), a
deviating expert removed, a message hidden — and the guards: CSRF and roles."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import httpx
from sqlalchemy import func, select

from simsa.services import panel
from simsa.store.models import PanelAssignment
from test_web_admin import english, error_of, post_form, redirected
from test_web_panel_api import (
    CONFLICTED,
    CONFLICTED_TEAM,
    EXPERTS,
    admin_result,
    anchor_bytes,
    load_panel_program,
    lock_round,
    make_people,
    record_other_scores,
    score_calibration,
)
from web_support import PROGRAM, STAGE, TEAMS, LiveSite, csrf_of

PANELS = "/admin/panels"
PAGE = f"{PANELS}/{PROGRAM}/{STAGE}"


def blockers_of(html: str) -> list[str]:
    found = re.search(r'<ul class="small" id="blockers">(.*?)</ul>', html, re.S)
    return [] if found is None else re.findall(r"<li>(.*?)</li>", found.group(1), re.S)


def assignments(site: LiveSite) -> set[tuple[str, str]]:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return set(panel.assignments(s, panel.context(s, PROGRAM, STAGE)))


def cell(html: str, team: str, expert: str) -> str:
    """The matrix cell of (team, expert): its state class."""
    row = re.search(rf'<tr id="team-{team}">(.*?)</tr>', html, re.S)
    assert row is not None
    heads = re.search(r'<table class="matrix">\s*<thead><tr>(.*?)</tr>', html, re.S)
    assert heads is not None
    names = re.findall(r"<th>(.*?)</th>", heads.group(1))[1:]
    states = re.findall(r'<td class="cell-(\w+)">', row.group(1))
    return states[names.index(expert)]


def test_a_panel_run_from_its_admin_page(sqlite_site: LiveSite, tmp_path: Path) -> None:
    site = sqlite_site
    assert site.store is not None
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    loaded = load_panel_program(site.store, future)
    record_other_scores(site.store, loaded, tmp_path)
    make_people(site)
    admin = english(site.signed_in("sec"), "/admin")

    listing = admin.get(PANELS)
    assert listing.status_code == 200 and f'href="{PAGE}"' in listing.text and "being set up" in listing.text
    shown = admin.get(PAGE)
    assert shown.status_code == 200
    assert "declared affiliation &#39;Halla AI&#39; matches &#39;halla&#39;" in shown.text
    assert cell(shown.text, CONFLICTED_TEAM, CONFLICTED) == "conflicted"
    assert cell(shown.text, CONFLICTED_TEAM, "ex-ahn") == "free"
    assert blockers_of(shown.text) == ["upload the calibration anchor documents first: anchor-strong, anchor-weak",
                                       "assign experts first"]

    # a conflicted assignment is refused with the reason; the step is refused with every blocker
    refused = post_form(admin, PAGE, f"{PAGE}/assign", {"team": CONFLICTED_TEAM, "expert": CONFLICTED})
    assert refused.status_code == 400
    assert "ex-halla may not review halla: declared affiliation &#39;Halla AI&#39;" in error_of(refused)
    early = post_form(admin, PAGE, f"{PAGE}/advance", {"to": "calibration"})
    assert early.status_code == 400 and "upload the calibration anchor documents first" in error_of(early)

    # anchors uploaded through the form, listed with their sha256; one withdrawn and uploaded again
    for anchor in ("anchor-strong", "anchor-weak"):
        up = post_form(admin, PAGE, f"{PAGE}/anchors", {"anchor": anchor, "purpose": "report"},
                       files={"file": (f"{anchor}.md", anchor_bytes(anchor), "text/markdown")})
        redirected(up, f"{PAGE}?done=done_pa_anchor_uploaded")
    wrong = post_form(admin, PAGE, f"{PAGE}/anchors", {"anchor": "anchor-weak", "purpose": "report"},
                      files={"file": ("weak.md", b"\x00\x01binary\xff" * 10, "text/markdown")})
    assert wrong.status_code == 400 and error_of(wrong)
    page = admin.get(PAGE).text
    for anchor in ("anchor-strong", "anchor-weak"):
        assert hashlib.sha256(anchor_bytes(anchor)).hexdigest() in page
    doc_id = re.search(r'/anchors/(\d+)/withdraw', page).group(1)  # type: ignore[union-attr]
    redirected(post_form(admin, PAGE, f"{PAGE}/anchors/{doc_id}/withdraw"), PAGE)
    assert len(re.findall(r"/anchors/\d+/withdraw", admin.get(PAGE).text)) == 1
    redirected(post_form(admin, PAGE, f"{PAGE}/anchors", {"anchor": "anchor-strong"},
                         files={"file": ("strong.md", anchor_bytes("anchor-strong"), "text/markdown")}), PAGE)

    # balance automatically: every team reaches the minimum; then one pair removed and assigned again by hand
    balanced = post_form(admin, PAGE, f"{PAGE}/balance")
    assert balanced.status_code == 200 and "Balancing added 25 assignment(s)." in balanced.text
    assert "Every team has the minimum of non-conflicted experts." in balanced.text
    assert len(assignments(site)) == 25 and (CONFLICTED_TEAM, CONFLICTED) not in assignments(site)
    redirected(post_form(admin, PAGE, f"{PAGE}/unassign", {"team": "jiri", "expert": "ex-cho"}), PAGE)
    short = admin.get(PAGE).text
    assert cell(short, "jiri", "ex-cho") == "free" and 'badge bad">short' in short
    redirected(post_form(admin, PAGE, f"{PAGE}/assign", {"team": "jiri", "expert": "ex-cho"}), PAGE)
    twice = post_form(admin, PAGE, f"{PAGE}/assign", {"team": "jiri", "expert": "ex-cho"})
    assert twice.status_code == 400 and "already assigned" in error_of(twice)

    redirected(post_form(admin, PAGE, f"{PAGE}/advance", {"to": "calibration"}), f"{PAGE}?done=done_pa_advanced")
    page = admin.get(PAGE).text
    assert "The anchors are fixed" in page and "/withdraw" not in page
    blockers = blockers_of(page)
    assert blockers[0].startswith("submissions are open until ")
    assert blockers[1].startswith("calibration not finished: ex-ahn → anchor-strong")

    # calibration: the conflicted expert scores the anchors the other way round; agreement falls below the
    # threshold and the page shows who deviates
    score_calibration(site.store, [*EXPERTS, CONFLICTED], contrarian=CONFLICTED)
    page = admin.get(PAGE).text
    below = [b for b in blockers_of(page) if b.startswith("calibration agreement")]
    assert below and "is below the threshold 0.667" in below[0]
    refused = post_form(admin, PAGE, f"{PAGE}/advance", {"to": "round1"})
    assert refused.status_code == 400 and "below the threshold" in error_of(refused)
    row = re.search(rf"<tr><td>{CONFLICTED}</td>(.*?)</tr>", page, re.S)
    assert row is not None and "outlier" in row.group(1)
    alpha_without = float(re.findall(r'<td class="num">([\d.]+)</td>', row.group(1))[1])
    assert alpha_without > 0.667

    # the admin takes the deviating expert off the panel and assigns the others in their place (balancing would
    # choose the expert with the lightest load: the one just removed): agreement passes; only the deadline is left
    for team, expert in sorted(assignments(site)):
        if expert == CONFLICTED:
            redirected(post_form(admin, PAGE, f"{PAGE}/unassign", {"team": team, "expert": expert}), PAGE)
            free = next(e for e in EXPERTS if (team, e) not in assignments(site))
            redirected(post_form(admin, PAGE, f"{PAGE}/assign", {"team": team, "expert": free}), PAGE)
    page = admin.get(PAGE).text
    assert len(assignments(site)) == 25 and 'badge bad">short' not in page
    assert [b for b in blockers_of(page) if not b.startswith("submissions are open until 20")] == []
    assert 'badge ok">reached' in page

    # the deadline moves into the past (a new version of the programme): round 1 opens
    load_panel_program(site.store, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    redirected(post_form(admin, PAGE, f"{PAGE}/advance", {"to": "round1"}), PAGE)
    page = admin.get(PAGE).text
    assert "0 of 25 reviews locked" in page and "Submission " in page
    lock_round(site.store)
    page = admin.get(PAGE).text
    assert "25 of 25 reviews locked" in page
    result = admin_result(site.store)
    for team in TEAMS:  # the preview shows every team's aggregate, with its name, to the admin
        assert f"{result.team(team).raw:.2f}" in page  # type: ignore[union-attr]
    assert "ICC(A,1)" in page

    # round 2: a message hidden with a reason
    redirected(post_form(admin, PAGE, f"{PAGE}/advance", {"to": "round2"}), PAGE)
    with site.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        comment = panel.post_comment(s, ctx, CONFLICTED_TEAM, "ex-ahn", "Their data section is thin.")
    page = admin.get(PAGE).text
    assert "Their data section is thin." in page
    empty = post_form(admin, PAGE, f"{PAGE}/comments/{comment.id}/hide", {"reason": "  "})
    assert empty.status_code == 400 and "say why the message is hidden" in error_of(empty)
    redirected(post_form(admin, PAGE, f"{PAGE}/comments/{comment.id}/hide", {"reason": "names a team member"}),
               f"{PAGE}#discussion")
    page = admin.get(PAGE).text
    assert "hidden by the moderator: names a team member" in page and "Their data section is thin." not in page
    again = post_form(admin, PAGE, f"{PAGE}/comments/{comment.id}/hide", {"reason": "again"})
    assert again.status_code == 400 and "hidden already" in error_of(again)

    # close, with the way to the stage's decision
    closing = admin.get(PAGE).text
    assert "Close the panel" in closing
    redirected(post_form(admin, PAGE, f"{PAGE}/advance", {"to": "closed"}), f"{PAGE}?done=done_pa_closed")
    closed = admin.get(PAGE).text
    assert "The panel is closed; its aggregate becomes" in closed
    assert f'href="/admin/programs/{PROGRAM}/stages/{STAGE}#decide"' in closed
    assert "closed" in admin.get(PANELS).text


def test_csrf_and_roles(sqlite_site: LiveSite, tmp_path: Path) -> None:
    site = sqlite_site
    assert site.store is not None
    load_panel_program(site.store, dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    make_people(site, experts=("ex-ahn",))
    admin = site.signed_in("sec")
    before = _count(site)

    no_token = admin.post(f"{PAGE}/assign", data={"team": "jiri", "expert": "ex-ahn"})
    assert no_token.status_code == 403
    wrong_token = admin.post(f"{PAGE}/balance", data={"csrf_token": "x" * 40})
    assert wrong_token.status_code == 403
    for who in ("ex-ahn", "halla-lead"):
        client = site.signed_in(who)
        for path in (PANELS, PAGE):
            assert client.get(path).status_code == 403
        token = csrf_of(client.get("/account").text)
        assert client.post(f"{PAGE}/balance", data={"csrf_token": token}).status_code == 403
    anonymous = site.client()
    page = anonymous.get(PAGE)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert anonymous.post(f"{PAGE}/balance").status_code in (401, 403)
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {site.api_token('sec')}"}) as api:
        assert api.post(f"{PAGE}/balance").status_code == 403  # pages' forms are for browsers
    assert _count(site) == before
    for path in (PANELS, PAGE):  # every word of the pages exists in Korean too
        korean = admin.get(f"{path}?lang=ko")
        assert korean.status_code == 200 and "전문가" in korean.text
    assert admin.get(f"{PANELS}/{PROGRAM}/stage-2").status_code == 404
    assert admin.get(f"{PANELS}/nothing/{STAGE}").status_code == 404


def _count(site: LiveSite) -> int:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return s.execute(select(func.count()).select_from(PanelAssignment)).scalar_one()
