"""The secretariat's pages, through HTTP as a browser uses them (form page, CSRF token, post, 303), and attacks on
them: wrong roles, anonymous and cross-site posts, HTML in every text field, oversized and malformed uploads,
expired and reused invitations, repeated wrong passwords."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from helpers import write_bench_scores
from simsa import accounts
from simsa.audit.log import iter_entries, verify
from simsa.demo import write_example_scores
from simsa.services import appeals, decision_records, programs
from simsa.store.models import Account, Appeal, AuditEntry, EvidenceDocument, GateResult, Invitation, Score
from test_evidence_docs import lineage_result
from web_support import PASSWORD, PROGRAM, STAGE, TEAMS, LiveSite, csrf_of, record_example_stage

STAGE_URL = f"/admin/programs/{PROGRAM}/stages/{STAGE}"
SCRIPT = "<script>alert(1)</script>"
ATTR = '"><img src=x onerror=alert(1)>'
SQL = "' OR 1=1 --"
NEW_PASSWORD = "another long passphrase"


def escaped(value: str) -> str:
    """`value` as the autoescaping templates write it."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
            .replace("'", "&#39;"))


def audit_count(site: LiveSite) -> int:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return s.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def count(site: LiveSite, model: type) -> int:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def post_form(client: httpx.Client, page: str, action: str, data: dict | None = None,
              files: dict | None = None) -> httpx.Response:
    """Open the page that holds a form, then post it with that page's CSRF token, as a browser does."""
    shown = client.get(page)
    assert shown.status_code == 200, shown.text[:500]
    return client.post(action, data={"csrf_token": csrf_of(shown.text), **(data or {})}, files=files)


def redirected(response: httpx.Response, to: str) -> None:
    assert response.status_code == 303, response.text[-1500:]
    assert response.headers["location"].startswith(to), response.headers["location"]


def error_of(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text, re.S)
    assert found is not None, response.text[-1500:]
    return found.group(1)


def invitation_path(html: str) -> str:
    found = re.search(r'id="invitation-link">https?://[^/]+(/invite/[^<]+)<', html)
    assert found is not None, html[-1500:]
    return found.group(1)


def english(client: httpx.Client, page: str) -> httpx.Client:
    """The client with English chosen (the choice is remembered in a cookie)."""
    assert client.get(f"{page}?lang=en").status_code == 200
    return client


def accept(site: LiveSite, path: str, password: str = PASSWORD) -> httpx.Response:
    with site.client() as invitee:
        form = invitee.get(path)
        assert form.status_code == 200, form.text[-800:]
        return invitee.post(path, data={"csrf_token": csrf_of(form.text), "password": password,
                                        "password_again": password})


# --------------------------------------------------------------------------- the whole flow


def test_secretariat_flow(live_site: LiveSite, tmp_path: Path) -> None:
    """Load the example, invite a team that activates itself, record scores (two files and one form), gates, decide
    at a local time; the team appeals in the window; the secretariat resolves it; the audit log verifies and names
    the accounts that acted."""
    site = live_site
    site.account("sec")
    admin = english(site.signed_in("sec"), "/admin")

    loaded = post_form(admin, "/admin/programs/load", "/admin/programs/load", {"example": "1"})
    assert loaded.status_code == 200 and "Loaded as version 1" in loaded.text
    again = post_form(admin, "/admin/programs/load", "/admin/programs/load", {"example": "1"})
    assert again.status_code == 200 and "Already loaded" in again.text

    invited = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                        {"username": "baekdu-lead", "display_name": "Baekdu lead", "role": "team",
                         "program": PROGRAM, "team": "baekdu"})
    assert invited.status_code == 200 and "valid for 7 days" in invited.text
    redirected(accept(site, invitation_path(invited.text)), "/login")
    team = english(site.signed_in("baekdu-lead"), "/team")

    write_example_scores(tmp_path / "panel.csv")
    write_bench_scores(tmp_path / "bench.json")
    for name in ("panel.csv", "bench.json"):
        imported = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores/import",
                             files={"file": (name, (tmp_path / name).read_bytes())})
        redirected(imported, f"{STAGE_URL}?done=done_scores_imported")
    one = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores",
                    {"team": "baekdu", "source": "panel:expert", "rater": "expert-11", "value": "81.5",
                     "evidence": "sheet 11"})
    redirected(one, f"{STAGE_URL}?done=done_score_recorded")
    for name in TEAMS:
        gate = post_form(admin, STAGE_URL, f"{STAGE_URL}/gates",
                         {"team": name, "gate": "originality", "passed": "fail" if name == "jiri" else "pass",
                          "evidence": f"lineage check of {name}", "link": "https://example.org/lineage"})
        redirected(gate, f"{STAGE_URL}?done=done_gate_recorded")

    page = admin.get(STAGE_URL)
    assert "ready to decide" in page.text and "expert-11" in page.text
    seoul = dt.datetime.now(ZoneInfo("Asia/Seoul")).replace(second=0, microsecond=0) - dt.timedelta(minutes=1)
    decided = post_form(admin, STAGE_URL, f"{STAGE_URL}/decide", {"decided_at": seoul.strftime("%Y-%m-%dT%H:%M")})
    redirected(decided, f"/programs/{PROGRAM}/stages/{STAGE}?done=done_decided")
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        row = decision_records.effective(s, PROGRAM, STAGE)
        assert row is not None
        assert row.decided_at.replace(tzinfo=dt.UTC) == seoul.astimezone(dt.UTC)  # the form's local time, as UTC
        assert "jiri" in decision_records.body(row)["eliminated"]

    overview = team.get("/team")
    assert overview.status_code == 200 and "File the appeal" in overview.text and "rank" in overview.text
    filed = post_form(team, "/team", f"/team/stages/{STAGE}/appeal", {"grounds": "our expert scores were mixed up"})
    redirected(filed, "/team?done=done_appeal_filed")
    with site.store.session(readonly=True) as s:
        listed = appeals.listing(s, PROGRAM, STAGE)
    assert [(a["team"], a["status"]) for a in listed] == [("baekdu", "pending")]
    appeal_id = listed[0]["id"]
    dashboard = admin.get("/admin")
    assert f"#appeal-{appeal_id}" in dashboard.text

    resolved = post_form(admin, STAGE_URL, f"{STAGE_URL}/appeals/{appeal_id}/resolve",
                         {"outcome": "rejected", "reason": "the sheets were checked and match"})
    redirected(resolved, f"{STAGE_URL}?done=done_appeal_resolved")
    mine = team.get(f"/team/appeals/{appeal_id}")
    assert mine.status_code == 200 and "the sheets were checked and match" in mine.text

    with site.store.session(readonly=True) as s:
        assert verify(s).ok
        actors = {e.actor for e in iter_entries(s)}
        by_action = {e.action: e.actor for e in iter_entries(s)}
    assert {"account:sec", "account:baekdu-lead"} <= actors
    for action in ("program.load", "score.add", "score.import", "gate.record", "decision.record",
                   "appeal.resolve"):
        assert by_action[action] == "account:sec", action
    assert by_action["appeal.file"] == "account:baekdu-lead"
    admin.close()
    team.close()


# --------------------------------------------------------------------------- a shared site for attacks


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The example stage decided now, an admin, two team accounts, an expert and a rater, a pending invitation and
    a pending appeal by halla; login throttling relaxed (many sign-ins come from one address)."""
    work = tmp_path_factory.mktemp("web-admin")
    site = LiveSite(f"sqlite:///{work / 'simsa.db'}",
                    settings_changes={"login_rate": 10_000, "max_upload_bytes": 100_000}).start()
    assert site.store is not None
    record_example_stage(site.store, work, decide_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    site.account("sec")
    team_a = site.account("team-a", "team", team="baekdu")
    site.account("team-b", "team", team="halla")
    site.account("expert1", "expert")
    site.account("rater1", "rater")
    with site.store.session() as s:
        pending, _ = accounts.invite(s, username="pending", display_name="Pending", role="rater", actor="test")
        loaded = programs.resolve(s, PROGRAM)
        appeal = appeals.file(s, loaded, STAGE, "halla", "halla's grounds marker", "account:team-b")
        s.flush()
        appeal_id = appeal.id
    clients = {name: site.signed_in(name) for name in ("sec", "team-a", "team-b", "expert1", "rater1")}
    english(clients["sec"], "/admin")
    try:
        yield {"site": site, "clients": clients, "team_a": team_a.id, "pending": pending.id, "appeal": appeal_id,
               "work": work}
    finally:
        for client in clients.values():
            client.close()
        site.stop()


def admin_posts(ids: dict) -> list[tuple[str, dict, dict | None]]:
    """Every form post of the secretariat's pages, with data that would write if it were accepted."""
    upload = {"file": ("extra.csv", b"stage,team,source,value,rater\nstage-1,halla,panel:expert,50,expert-77\n")}
    return [
        ("/admin/accounts/invite", {"username": "mallory", "display_name": "M", "role": "admin"}, None),
        (f"/admin/accounts/{ids['team_a']}/active", {"active": "0"}, None),
        (f"/admin/accounts/{ids['team_a']}/unlock", {}, None),
        (f"/admin/accounts/{ids['pending']}/reinvite", {}, None),
        ("/admin/programs/load", {}, {"file": ("p.toml", b"[program]\nid = 'x'\n")}),
        (f"{STAGE_URL}/scores", {"team": "halla", "source": "panel:expert", "rater": "expert-78", "value": "50"}, None),
        (f"{STAGE_URL}/scores/import", {}, upload),
        (f"{STAGE_URL}/gates", {"team": "halla", "gate": "originality", "passed": "fail", "evidence": "x"}, None),
        (f"{STAGE_URL}/void", {"kind": "score", "record_id": "1", "reason": "x"}, None),
        (f"{STAGE_URL}/decide", {}, None),
        (f"{STAGE_URL}/appeals/{ids['appeal']}/resolve", {"outcome": "upheld", "reason": "x"}, None),
    ]


@pytest.mark.parametrize("who", ["team-a", "expert1", "rater1"])
def test_admin_posts_refused_to_other_roles(attacked: dict, who: str) -> None:
    site, client = attacked["site"], attacked["clients"][who]
    token = csrf_of(client.get("/account").text)  # the attacker's own, valid CSRF token
    before = audit_count(site)
    for action, data, files in admin_posts(attacked):
        response = client.post(action, data={"csrf_token": token, **data}, files=files)
        assert response.status_code == 403, (action, response.status_code)
    assert client.get("/admin").status_code == 403
    assert client.get(STAGE_URL).status_code == 403
    assert audit_count(site) == before


def test_admin_posts_refused_to_anonymous(attacked: dict) -> None:
    site = attacked["site"]
    before = audit_count(site)
    with site.client() as anonymous:
        token = csrf_of(anonymous.get("/login").text)
        for action, data, files in admin_posts(attacked):
            response = anonymous.post(action, data={"csrf_token": token, **data}, files=files)
            assert response.status_code in (303, 401), (action, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"].startswith("/login")
        assert anonymous.get("/admin").headers["location"].startswith("/login")
    assert audit_count(site) == before


def test_admin_posts_need_the_sessions_csrf_token(attacked: dict) -> None:
    site, admin = attacked["site"], attacked["clients"]["sec"]
    others = csrf_of(attacked["clients"]["team-a"].get("/account").text)
    before = audit_count(site)
    for action, data, files in admin_posts(attacked):
        for token in (None, others, ""):
            form = dict(data) if token is None else {"csrf_token": token, **data}
            response = admin.post(action, data=form, files=files)
            assert response.status_code == 403, (action, token, response.status_code)
            assert "CSRF" in response.text
    assert audit_count(site) == before


def test_signed_in_pages_need_the_csrf_token(attacked: dict) -> None:
    """The team's and the account's own forms too."""
    site = attacked["site"]
    before = audit_count(site)
    team = attacked["clients"]["team-a"]
    for action, data in ((f"/team/stages/{STAGE}/appeal", {"grounds": "forged"}),
                         ("/account/tokens", {"name": "forged"}),
                         ("/account/password", {"old": PASSWORD, "new": NEW_PASSWORD, "new_again": NEW_PASSWORD}),
                         ("/account/tokens/1/revoke", {})):
        assert team.post(action, data=data).status_code == 403
        assert team.post(action, data={"csrf_token": "x" * 43, **data}).status_code == 403
    assert audit_count(site) == before


def test_page_forms_refuse_api_tokens(attacked: dict) -> None:
    """An API token writes through the API only: it cannot mint more tokens or change a password on the pages."""
    site = attacked["site"]
    token = site.api_token("sec")
    before = audit_count(site)
    with site.client(headers={"Authorization": f"Bearer {token}"}) as bearer:
        assert bearer.post("/account/tokens", data={"name": "more"}).status_code == 403
        assert bearer.post("/admin/accounts/invite", data={"username": "viatoken", "display_name": "x",
                                                           "role": "admin"}).status_code == 403
    assert audit_count(site) == before


def test_sql_metacharacters_are_plain_text(attacked: dict) -> None:
    site, admin = attacked["site"], attacked["clients"]["sec"]
    before = count(site, Account)
    for path in (f"/admin/programs/{SQL}/stages/{STAGE}", f"/admin/programs/{PROGRAM}/stages/{SQL}",
                 f"/team/appeals/{SQL}", f"/admin/programs/{SQL}.toml/stages/{STAGE}"):
        assert admin.get(path).status_code in (403, 404, 422), path
    refused = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                        {"username": SQL, "display_name": "x", "role": "rater"})
    assert refused.status_code == 400 and "invalid username" in error_of(refused)
    assert escaped(SQL) in refused.text  # the input is kept, escaped
    made = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                     {"username": "sql-name", "display_name": SQL, "role": "rater"})
    assert made.status_code == 200
    bad_team = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores",
                         {"team": SQL, "source": "panel:expert", "rater": SQL, "value": "50"})
    assert bad_team.status_code == 400 and "unknown team" in error_of(bad_team)
    assert count(site, Account) == before + 1
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        assert accounts.find_account(s, "sql-name").display_name == SQL


def test_program_file_must_be_a_stored_programme(attacked: dict) -> None:
    """A programme named in a URL or form is a stored one, never a path the server would read."""
    admin = attacked["clients"]["sec"]
    for key in ("pyproject.toml", "..", "/etc/passwd", "src"):
        assert admin.get(f"/admin/programs/{key}/stages/{STAGE}").status_code in (404, 422)
    refused = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                        {"username": "pathy", "display_name": "x", "role": "team",
                         "program": "examples/k-ai-2026.toml", "team": "baekdu"})
    assert refused.status_code == 400 and "no programme" in error_of(refused)


def test_score_file_errors_name_every_bad_row_and_record_nothing(attacked: dict) -> None:
    site, admin = attacked["site"], attacked["clients"]["sec"]
    before = count(site, Score), audit_count(site)
    unreadable = (b"stage,team,source,value,rater\n"
                  b"stage-1,halla,panel:expert,50,expert-90\n"
                  b"stage-1,halla,panel:expert,lots,expert-91\n"
                  b"stage-1,halla,panel:expert,,expert-92\n")
    response = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores/import",
                         files={"file": ("bad <b>.csv", unreadable)})
    assert response.status_code == 400
    message = error_of(response)
    assert "bad _b_.csv:3: value must be a number" in message and "bad _b_.csv:4: value is required" in message
    assert "simsa-upload" not in message and "/tmp" not in message
    invalid = (b'{"scores": [{"stage": "stage-1", "team": "nobody", "source": "panel:expert", "value": 5, '
               b'"rater": "e1"}, {"stage": "stage-1", "team": "halla", "source": "bench:nope", "value": 5}]}')
    response = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores/import", files={"file": ("s.json", invalid)})
    message = error_of(response)
    assert response.status_code == 400 and "2 invalid scores, nothing recorded" in message
    assert "unknown team &#39;nobody&#39;" in message and "bench:nope" in message
    other_stage = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores/import",
                            files={"file": ("s2.csv", b"stage,team,source,value\nstage-2,halla,bench:stage2,0.5\n")})
    assert other_stage.status_code == 400 and "other stages" in error_of(other_stage)
    wrong_type = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores/import", files={"file": ("x.xlsx", b"PK..")})
    assert wrong_type.status_code == 400 and "use .csv or .json" in error_of(wrong_type)
    assert (count(site, Score), audit_count(site)) == before


def test_uploads_over_the_limit_are_refused(attacked: dict) -> None:
    site, admin = attacked["site"], attacked["clients"]["sec"]
    before = audit_count(site)
    big = b"stage,team,source,value\n" + b"stage-1,halla,panel:expert,50\n" * 8000  # ~250 kB, limit 100 kB
    response = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores/import", files={"file": ("big.csv", big)})
    assert response.status_code == 413
    toml = post_form(admin, "/admin/programs/load", "/admin/programs/load", files={"file": ("p.toml", big)})
    assert toml.status_code == 413
    assert audit_count(site) == before


def test_program_upload_errors_are_shown_on_the_form(attacked: dict) -> None:
    site, admin = attacked["site"], attacked["clients"]["sec"]
    before = audit_count(site)
    broken = post_form(admin, "/admin/programs/load", "/admin/programs/load",
                       files={"file": ("broken.toml", b"[program]\nid = \n")})
    assert broken.status_code == 400 and "broken.toml:2" in error_of(broken)
    binary = post_form(admin, "/admin/programs/load", "/admin/programs/load", files={"file": ("b.toml", b"\xff\xfe")})
    assert binary.status_code == 400 and "UTF-8" in error_of(binary)
    empty = post_form(admin, "/admin/programs/load", "/admin/programs/load")
    assert empty.status_code == 400
    assert audit_count(site) == before


def test_gate_from_an_uploaded_lineage_result(attacked: dict) -> None:
    """A saved `lineage compare --json` result uploaded on the stage page decides the gate as recommended (or, after
    review, as overridden with a reason); the public gate page then shows the lineage report and serves the uploaded
    file byte for byte. Bad files, a reason without a decision, other roles and a missing CSRF token record
    nothing."""
    site, admin = attacked["site"], attacked["clients"]["sec"]
    root = attacked["work"] / "lineage-upload"
    root.mkdir()
    raw = json.dumps(lineage_result(root, candidate_path=f"jiri/{SCRIPT}"), ensure_ascii=False, indent=2).encode()
    sha = hashlib.sha256(raw).hexdigest()
    action = f"{STAGE_URL}/gates/lineage"
    form = admin.get(STAGE_URL).text
    assert f'action="{action}"' in form and "Decide a gate from a lineage comparison" in form

    before = audit_count(site)
    for name, content, fields, message in (
            ("l <b>.json", b"{not json", {}, "l _b_.json:1: malformed JSON"),
            ("d.json", b'{"schema": "simsa.decision/1"}', {}, "d.json: lineage result: schema"),
            ("x.json", b"\xff\xfe", {}, "x.json: not valid UTF-8"),
            ("r.json", raw, {"reason": SCRIPT}, "a reason is recorded with a reviewer&#39;s decision"),
            ("o.json", raw, {"override": "maybe"}, "pass or fail after review"),
            ("t.json", raw, {"team": SQL}, "unknown stage or team"),
            ("k.json", raw, {"link": "javascript:alert(1)"}, "web address")):
        refused = post_form(admin, STAGE_URL, action, {"team": "jiri", "gate": "originality", **fields},
                            files={"file": (name, content)})
        assert refused.status_code == 400 and message in error_of(refused), (name, error_of(refused))
        assert SCRIPT not in refused.text and "/tmp" not in error_of(refused)
    assert post_form(admin, STAGE_URL, action, {"team": "jiri"}).status_code == 400  # no file
    team_a = attacked["clients"]["team-a"]
    assert team_a.post(action, data={"csrf_token": csrf_of(team_a.get("/account").text), "team": "jiri"},
                       files={"file": ("j.json", raw)}).status_code == 403
    assert admin.post(action, data={"team": "jiri"}, files={"file": ("j.json", raw)}).status_code == 403
    assert audit_count(site) == before

    recorded = post_form(admin, STAGE_URL, action, {"team": "jiri", "gate": "originality", "override": "",
                                                     "reason": "", "link": ""}, files={"file": ("jiri.json", raw)})
    redirected(recorded, f"{STAGE_URL}?done=done_gate_lineage_recorded")
    reviewed = post_form(admin, STAGE_URL, action, {"team": "seorak", "override": "pass", "reason": SCRIPT,
                                                     "link": "https://example.org/seorak"},
                         files={"file": ("seorak.json", raw)})
    redirected(reviewed, STAGE_URL)

    gate = f"/programs/{PROGRAM}/stages/{STAGE}/gates/jiri/originality"
    page = admin.get(gate, params={"lang": "en"}).text
    assert "Originality from lineage: FAIL" in page and sha[:16] in page
    assert "Lineage report" in page and "Layer-by-layer evidence" in page and "<svg" in page
    assert SCRIPT not in page and escaped(f"jiri/{SCRIPT}") in page
    assert admin.get(gate + "/lineage.json").content == raw
    seorak = admin.get(f"/programs/{PROGRAM}/stages/{STAGE}/gates/seorak/originality", params={"lang": "en"}).text
    assert "Decided PASS after review: " + escaped(SCRIPT) in seorak and "Lineage report" in seorak
    assert SCRIPT not in seorak
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        docs = s.execute(select(EvidenceDocument)).scalars().all()
        assert [d.sha256 for d in docs] == [sha] and docs[0].stored_by == "account:sec"
        linked = s.execute(select(GateResult.team_id, GateResult.document_id).where(
            GateResult.document_id.is_not(None)).order_by(GateResult.id)).all()
        assert [tuple(r) for r in linked] == [("jiri", docs[0].id), ("seorak", docs[0].id)]
        assert verify(s).ok


def test_no_page_shows_hashes_or_other_tokens(attacked: dict) -> None:
    site = attacked["site"]
    secret = site.api_token("team-b")
    pages = {"sec": ["/admin", "/admin/accounts", STAGE_URL, "/account"],
             "team-a": ["/team", "/account"], "team-b": ["/team", "/account", f"/team/appeals/{attacked['appeal']}"],
             "expert1": ["/account"], "rater1": ["/account"]}
    for who, paths in pages.items():
        client = attacked["clients"][who]
        for path in paths:
            html = client.get(path).text
            assert "$argon2" not in html and secret not in html, (who, path)
            assert not re.search(r"simsa_[A-Za-z0-9_-]{20,}", html), (who, path)
    team_a = attacked["clients"]["team-a"]
    for path in ("/team", "/account"):
        html = team_a.get(path).text
        assert "team-b" not in html and "halla&#39;s grounds marker" not in html and "Team-B" not in html


def test_session_cookie_flags(attacked: dict) -> None:
    site = attacked["site"]
    with site.client() as browser:
        token = csrf_of(browser.get("/login").text)
        response = browser.post("/login", data={"username": "rater1", "password": PASSWORD, "csrf_token": token})
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("simsa_session="))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "secure" not in flags


def test_secure_cookies_when_configured(tmp_path: Path) -> None:
    site = LiveSite(f"sqlite:///{tmp_path / 's.db'}", settings_changes={"secure_cookies": "always"}).start()
    try:
        site.account("sec")
        with site.client() as browser:
            form = browser.get("/login")
            csrf_cookie = form.headers["set-cookie"]
            assert "secure" in [p.strip().lower() for p in csrf_cookie.split(";")]
            # a Secure cookie is not sent back over plain HTTP: hand it back as a browser behind HTTPS would
            response = browser.post("/login", headers={"Cookie": csrf_cookie.split(";")[0]},
                                    data={"username": "sec", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
        assert response.status_code == 303
        cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("simsa_session="))
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert {"secure", "httponly", "samesite=lax"} <= set(flags)
    finally:
        site.stop()


# --------------------------------------------------------------------------- invitations, locks, escaping


def test_invitations_expire_and_work_once(sqlite_site: LiveSite) -> None:
    site = sqlite_site
    site.account("sec")
    admin = site.signed_in("sec")
    first = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                      {"username": "late", "display_name": "Late", "role": "expert"})
    late_path = invitation_path(first.text)
    second = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                       {"username": "once", "display_name": "Once", "role": "rater"})
    once_path = invitation_path(second.text)
    assert site.store is not None
    with site.store.session() as s:
        late = accounts.find_account(s, "late")
        s.execute(update(Invitation).where(Invitation.account_id == late.id)
                  .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    with site.client() as invitee:
        expired = invitee.get(late_path)
        assert expired.status_code == 400 and "expired" in expired.text and 'name="password"' not in expired.text
    redirected(accept(site, once_path), "/login")
    with site.client() as invitee:
        reused = invitee.get(once_path)
        assert reused.status_code == 400 and "already used" in reused.text
        token = csrf_of(invitee.get("/login").text)
        replay = invitee.post(once_path, data={"csrf_token": token, "password": NEW_PASSWORD,
                                               "password_again": NEW_PASSWORD})
        assert replay.status_code == 400 and "already used" in replay.text
    # a fresh link for the expired one: the old link stays dead, the new one works
    fresh = post_form(admin, "/admin/accounts?lang=en", f"/admin/accounts/{late.id}/reinvite")
    assert fresh.status_code == 200 and "valid for 7 days" in fresh.text
    redirected(accept(site, invitation_path(fresh.text)), "/login")
    site.signed_in("late").close()
    admin.close()


def test_invitation_links_use_the_public_url(tmp_path: Path) -> None:
    site = LiveSite(f"sqlite:///{tmp_path / 's.db'}",
                    settings_changes={"public_url": "https://judging.example"}).start()
    try:
        site.account("sec")
        admin = site.signed_in("sec")
        invited = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                            {"username": "far", "display_name": "Far", "role": "expert"})
        assert re.search(r'id="invitation-link">https://judging\.example/invite/[A-Za-z0-9_-]{43}<', invited.text)
        admin.close()
    finally:
        site.stop()


def test_five_wrong_passwords_lock_until_unlocked(sqlite_site: LiveSite) -> None:
    site = sqlite_site
    site.account("sec")
    victim = site.account("victim", "expert")
    with site.client() as guesser:
        for _ in range(accounts.LOCK_AFTER):
            token = csrf_of(guesser.get("/login").text)
            wrong = guesser.post("/login", data={"username": "victim", "password": "not the password at all",
                                                 "csrf_token": token})
            assert wrong.status_code == 401
        token = csrf_of(guesser.get("/login").text)
        right = guesser.post("/login", data={"username": "victim", "password": PASSWORD, "csrf_token": token})
        assert right.status_code == 401 and "simsa_session" not in right.headers.get("set-cookie", "")
    admin = site.signed_in("sec")
    listing = admin.get("/admin/accounts?lang=en")
    assert "Unlock" in listing.text
    unlocked = admin.post(f"/admin/accounts/{victim.id}/unlock", data={"csrf_token": csrf_of(listing.text)})
    redirected(unlocked, "/admin/accounts?done=done_account_unlocked")
    site.signed_in("victim").close()
    admin.close()


def test_deactivated_accounts_lose_their_sessions(sqlite_site: LiveSite) -> None:
    site = sqlite_site
    site.account("sec")
    rater = site.account("rater9", "rater")
    session = site.signed_in("rater9")
    assert session.get("/account").status_code == 200
    admin = site.signed_in("sec")
    off = post_form(admin, "/admin/accounts", f"/admin/accounts/{rater.id}/active", {"active": "0"})
    redirected(off, "/admin/accounts?done=done_account_deactivated")
    assert session.get("/account").status_code == 303  # back to the sign-in page
    last_admin = post_form(admin, "/admin/accounts", f"/admin/accounts/{admin_id(site, 'sec')}/active",
                           {"active": "0"})
    assert last_admin.status_code == 400 and "last active administrator" in error_of(last_admin)
    on = post_form(admin, "/admin/accounts", f"/admin/accounts/{rater.id}/active", {"active": "1"})
    redirected(on, "/admin/accounts?done=done_account_activated")
    session.close()
    admin.close()


def admin_id(site: LiveSite, username: str) -> int:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return accounts.find_account(s, username).id


def test_text_fields_are_escaped_everywhere(sqlite_site: LiveSite, tmp_path: Path) -> None:
    """HTML and script in a display name, evidence, notes, raters, grounds, reasons and token names come back as
    text on every page that shows them."""
    site = sqlite_site
    assert site.store is not None
    record_example_stage(site.store, tmp_path)
    site.account("sec")
    admin = site.signed_in("sec")
    invited = post_form(admin, "/admin/accounts", "/admin/accounts/invite",
                        {"username": "xss-team", "display_name": SCRIPT + ATTR, "role": "team", "program": PROGRAM,
                         "team": "baekdu"})
    path = invitation_path(invited.text)
    with site.client() as invitee:
        form = invitee.get(path)
        redirected(invitee.post(path, data={"csrf_token": csrf_of(form.text), "password": PASSWORD,
                                            "password_again": PASSWORD}), "/login")
    gate = post_form(admin, STAGE_URL, f"{STAGE_URL}/gates",
                     {"team": "baekdu", "gate": "originality", "passed": "pass", "evidence": SCRIPT + ATTR})
    redirected(gate, STAGE_URL)
    score = post_form(admin, STAGE_URL, f"{STAGE_URL}/scores",
                      {"team": "baekdu", "source": "panel:expert", "rater": ATTR, "value": "70",
                       "evidence": SCRIPT, "note": ATTR})
    redirected(score, STAGE_URL)
    with site.store.session(readonly=True) as s:
        score_id = s.execute(select(func.max(Score.id))).scalar_one()
    voided = post_form(admin, STAGE_URL, f"{STAGE_URL}/void", {"kind": "score", "record_id": str(score_id),
                                                               "reason": SCRIPT})
    redirected(voided, STAGE_URL)
    redirected(post_form(admin, STAGE_URL, f"{STAGE_URL}/decide"), f"/programs/{PROGRAM}/stages/{STAGE}")
    team = site.signed_in("xss-team")
    redirected(post_form(team, "/team", f"/team/stages/{STAGE}/appeal", {"grounds": ATTR + SCRIPT}), "/team")
    with site.store.session(readonly=True) as s:
        appeal_id = s.execute(select(func.max(Appeal.id))).scalar_one()
    redirected(post_form(admin, STAGE_URL, f"{STAGE_URL}/appeals/{appeal_id}/resolve",
                         {"outcome": "rejected", "reason": SCRIPT + ATTR}), STAGE_URL)
    made = post_form(team, "/account", "/account/tokens", {"name": SCRIPT + ATTR})
    assert made.status_code == 200
    refused = post_form(admin, STAGE_URL, f"{STAGE_URL}/gates",
                        {"team": "baekdu", "gate": "originality", "passed": "pass", "evidence": "x",
                         "link": "javascript:alert(1)"})
    assert refused.status_code == 400 and "web address" in error_of(refused)
    weak = post_form(admin, STAGE_URL, f"{STAGE_URL}/gates",
                     {"team": "halla", "gate": "originality", "passed": "fail", "evidence": "raw cosine 0.989",
                      "grade": "heuristic"})
    assert weak.status_code == 400 and "fails on heuristic evidence only" in error_of(weak)
    assert "raw cosine 0.989" in weak.text and '<option value="heuristic" selected>' in weak.text  # kept
    forged = post_form(admin, STAGE_URL, f"{STAGE_URL}/gates",
                       {"team": "halla", "gate": "originality", "passed": "fail", "evidence": "x", "grade": "proven"})
    assert forged.status_code == 400 and "unknown evidence grade &#39;proven&#39;" in error_of(forged)
    redirected(post_form(admin, STAGE_URL, f"{STAGE_URL}/gates",
                         {"team": "halla", "gate": "originality", "passed": "fail", "evidence": "raw cosine 0.989",
                          "grade": "heuristic", "override_reason": SCRIPT + ATTR}), STAGE_URL)
    public_gate = team.get(f"/programs/{PROGRAM}/stages/{STAGE}/gates/halla/originality")
    assert escaped(SCRIPT + ATTR) in public_gate.text and SCRIPT not in public_gate.text

    pages = [made, invited, admin.get("/admin/accounts"), admin.get(STAGE_URL), admin.get("/admin"),
             team.get("/team"), team.get(f"/team/appeals/{appeal_id}"), team.get("/account"),
             team.get(f"/programs/{PROGRAM}/stages/{STAGE}")]
    for response in pages:
        html = response.text
        assert SCRIPT not in html and ATTR not in html, str(response.url)
    joined = "\n".join(r.text for r in pages)
    for shown in (escaped(SCRIPT), escaped(ATTR)):
        assert shown in joined
    assert escaped(SCRIPT + ATTR) in admin.get("/admin/accounts").text          # display name
    assert escaped(ATTR + SCRIPT) in team.get(f"/team/appeals/{appeal_id}").text  # grounds
    assert escaped(SCRIPT + ATTR) in team.get(f"/team/appeals/{appeal_id}").text  # resolution reason
    assert escaped(SCRIPT + ATTR) in team.get("/account").text                   # token name
    assert escaped(SCRIPT + ATTR) in team.get("/team").text                      # gate evidence in the decision
    assert escaped(SCRIPT) in team.get("/team").text                             # the void's reason
    assert escaped(SCRIPT) in admin.get(STAGE_URL).text                          # appeal grounds, evidence
    with site.store.session(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(GateResult).where(GateResult.link.like("javascript%"))
                         ).scalar_one() == 0
    admin.close()
    team.close()
