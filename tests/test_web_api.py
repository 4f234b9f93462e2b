"""The JSON API under /api/v1 over a real server and store: every read of a decided stage, a whole write flow with
API tokens (audited under the token's account), attacks (no or revoked token, wrong role, another team, a browser
cookie, malformed and hostile input in bodies and paths) answered with 4xx JSON errors that record nothing, the
OpenAPI schema, and concurrent writers on both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from pathlib import Path

import httpx
import pytest

from helpers import EXAMPLE, write_bench_scores
from simsa import accounts
from simsa.audit.log import verify
from simsa.demo import write_example_scores
from simsa.services import score_files
from web_support import FAILING, PROGRAM, STAGE, TEAMS, LiveSite, record_example_stage

API = "/api/v1"
PROG = f"{API}/programs/{PROGRAM}"
ON_STAGE = f"{PROG}/stages/{STAGE}"
EVIL = "' OR 1=1 --"
XSS = ('<script>alert(1)</script>', '"><img src=x onerror=alert(1)>')
BODY_CAP = 100_000  # the module site's max_upload_bytes


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int | None = None) -> dict:
    """A refusal in the CLI's --json shape: 4xx (or `status`), JSON, one line, never a server error."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "exit_code", "status"}
    assert body["status"] == response.status_code and body["exit_code"] == 2
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body


def example_rows(work: Path) -> list[dict]:
    """Stage 1's example scores as API items: the demo's panel scores and the benchmark scores, read as files."""
    write_example_scores(work / "panel.csv")
    write_bench_scores(work / "bench.json")
    items = score_files.parse_file(work / "panel.csv") + score_files.parse_file(work / "bench.json")
    return [{k: v for k, v in dataclasses.asdict(i).items() if k != "where" and v is not None} for i in items]


def audit_size(site: LiveSite) -> tuple[int, str | None]:
    page = site.client().get(f"{API}/audit", params={"after": 0, "limit": 1}).json()
    entries = site.client().get(f"{API}/audit/verify").json()["entries"]
    return entries, page["head"]


def load_example(client: httpx.Client, token: str) -> dict:
    response = client.post(f"{API}/programs", headers=bearer(token),
                           json={"text": EXAMPLE.read_text(encoding="utf-8"), "source_name": "k-ai-2026.toml"})
    assert response.status_code == 201, response.text
    return response.json()


# --------------------------------------------------------------------------- a decided stage, shared by the module


@dataclasses.dataclass
class Decided:
    site: LiveSite
    tokens: dict[str, str]
    work: Path


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The example's stage 1 recorded and decided on SQLite, with an account (and token) of every role."""
    work = tmp_path_factory.mktemp("api")
    site = LiveSite(f"sqlite:///{work / 'simsa.db'}", settings_changes={"max_upload_bytes": BODY_CAP}).start()
    try:
        record_example_stage(site.store, work, decide_at=dt.datetime(2026, 1, 16, tzinfo=dt.UTC))
        roles = {"admin": ("admin", None), "expert": ("expert", None), "rater": ("rater", None),
                 "team-halla": ("team", "halla")}
        for name, (role, team) in roles.items():
            site.account(name, role, team=team)
        yield Decided(site, {name: site.api_token(name) for name in roles}, work)
    finally:
        site.stop()


def test_every_read_of_a_decided_stage(decided: Decided) -> None:
    c = decided.site.client()
    text = EXAMPLE.read_text(encoding="utf-8")
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()

    listed = c.get(f"{API}/programs").json()["programs"]
    assert [(p["id"], p["latest"]["sha256"], p["versions"]) for p in listed] == [(PROGRAM, sha, 1)]
    assert listed[0]["latest"]["loaded_at"].endswith("Z")

    program = c.get(PROG).json()
    assert program["timezone"] == "Asia/Seoul" and program["sha256"] == sha
    assert {t["id"] for t in program["teams"]} >= set(TEAMS)
    stage = next(s for s in program["stages"] if s["id"] == STAGE)
    assert {g["id"] for g in stage["gates"]} >= {"originality", "licence"}
    assert any(cr["source"] == "panel:expert" for cr in stage["criteria"]) and stage["max_points"] == 100
    assert program["definition"]["program"]["id"] == PROGRAM and len(program["versions"]) == 1

    versions = c.get(f"{PROG}/versions").json()["versions"]
    assert [(v["sha256"], v["decisions"], v["decisions_in_force"]) for v in versions] == [(sha, [1], [1])]
    version = c.get(f"{PROG}/versions/{versions[0]['id']}").json()
    assert version["text"] == text and version["sha256"] == sha
    assert_error(c.get(f"{PROG}/versions/999"), 404)
    assert "no version before" in assert_error(c.get(f"{PROG}/diff"), 400)["error"]

    status = c.get(f"{ON_STAGE}/status").json()
    assert status["decidable"] is True and status["blockers"] == []
    assert status["decision_in_force"]["id"] == 1

    scores = c.get(f"{ON_STAGE}/scores").json()
    assert scores["records"] is None
    assert {(s["team"], s["source"]) for s in scores["current"]} == {
        (t, src) for t in TEAMS for src in ("bench:nia", "bench:global-common", "bench:team-chosen", "panel:expert",
                                            "panel:user")}
    halla = c.get(f"{ON_STAGE}/scores", params={"team": "halla", "history": "true"}).json()
    assert {s["team"] for s in halla["current"]} == {"halla"}
    assert halla["records"] and all(r["team"] == "halla" and r["current"] and r["recorded_at"].endswith("Z")
                                    for r in halla["records"])
    expert = next(s for s in halla["current"] if s["source"] == "panel:expert")
    assert expert["n"] == len(expert["score_ids"]) > 1
    assert_error(c.get(f"{ON_STAGE}/scores", params={"team": "nobody"}), 404)

    gates = c.get(f"{ON_STAGE}/gates").json()["results"]
    assert {g["team"]: g["passed"] for g in gates} == {t: t != FAILING for t in TEAMS}
    assert all(isinstance(g["record_id"], int) for g in gates)

    decision = c.get(f"{ON_STAGE}/decision").json()
    assert decision["decision_id"] == 1 and FAILING in decision["eliminated"]
    assert decision["decided_at"] == "2026-01-16T00:00:00Z"
    assert c.get(f"{ON_STAGE}/decision", params={"id": 1}).json() == decision
    assert_error(c.get(f"{ON_STAGE}/decision", params={"id": 99}), 404)
    chain = c.get(f"{ON_STAGE}/decisions").json()["decisions"]
    assert [(d["id"], d["in_force"], d["supersedes"], d["appeal_id"]) for d in chain] == [(1, True, None, None)]
    assert c.get(f"{ON_STAGE}/appeals").json()["appeals"] == []
    assert_error(c.get(f"{PROG}/stages/stage-2/decision"), 404)

    report = c.get(f"{ON_STAGE}/report")
    assert report.headers["content-type"].startswith("application/json")
    assert report.json()["decision"]["decision_id"] == 1
    md = c.get(f"{ON_STAGE}/report", params={"format": "md", "lang": "en"})
    assert md.headers["content-type"].startswith("text/markdown") and md.text.startswith("#")
    html = c.get(f"{ON_STAGE}/report", params={"format": "html", "lang": "ko"})
    assert html.headers["content-type"].startswith("text/html") and "<html" in html.text
    assert "script-src 'self'" in html.headers["content-security-policy"]

    assert_error(c.get(f"{ON_STAGE}/lineage/{FAILING}/originality"), 404)
    assert_error(c.get(f"{ON_STAGE}/lineage/{FAILING}/no-such-gate"), 404)

    page = c.get(f"{API}/audit", params={"limit": 2}).json()
    assert [e["seq"] for e in page["entries"]] == [1, 2] and page["next"] == 2
    assert page["entries"][0]["action"] == "program.load" and isinstance(page["entries"][0]["payload"], dict)
    following = c.get(f"{API}/audit", params={"after": page["next"], "limit": 1}).json()
    assert following["entries"][0]["seq"] == 3
    assert c.get(f"{API}/audit/3").json() == following["entries"][0]
    assert_error(c.get(f"{API}/audit/999999"), 404)
    assert_error(c.get(f"{API}/audit", params={"limit": 1001}), 422)
    checked = c.get(f"{API}/audit/verify").json()
    assert checked["ok"] and checked["head"] == page["head"]
    exported = c.get(f"{API}/audit/export").json()
    assert exported["schema"] == "simsa.audit/1" and exported["head"] == page["head"]
    assert len(exported["entries"]) == checked["entries"]
    trail = c.get(f"{API}/audit/trail", params={"action": "decision"}).json()
    assert [e["action"] for e in trail["entries"]] == ["decision.record"]

    me = c.get(f"{API}/me", headers=bearer(decided.tokens["team-halla"])).json()
    assert (me["username"], me["role"], me["program_key"], me["team_id"]) == ("team-halla", "team", PROGRAM, "halla")
    assert_error(c.get(f"{API}/me"), 401)


# --------------------------------------------------------------------------- attacks


def admin_writes() -> list[tuple[str, dict]]:
    """Every write only an administrator may make, each with a body that would otherwise be accepted or refused on
    its merits."""
    score = {"stage": STAGE, "team": "halla", "source": "bench:nia", "value": 0.9}
    gate = {"stage": STAGE, "team": "halla", "gate": "originality", "passed": True, "evidence": "checked"}
    return [
        (f"{API}/programs", {"text": EXAMPLE.read_text(encoding="utf-8")}),
        (f"{PROG}/scores", {"scores": [score]}),
        (f"{PROG}/gates", gate),
        (f"{PROG}/gates/import", {"gates": [gate]}),
        (f"{PROG}/gates/lineage", {"stage": STAGE, "team": "halla", "lineage": {}}),
        (f"{ON_STAGE}/decide", {}),
        (f"{API}/appeals/1/resolve", {"outcome": "rejected", "reason": "no grounds"}),
        (f"{API}/scores/1/void", {"reason": "typo"}),
        (f"{API}/gates/1/void", {"reason": "typo"}),
        (f"{PROG}/batches/imp-1/undo", {"reason": "wrong file"}),
    ]


def test_attacks_are_refused_with_json_errors_and_record_nothing(decided: Decided) -> None:
    site, tokens = decided.site, decided.tokens
    c = site.client()
    with site.store.session() as s:
        admin_account = accounts.find_account(s, "admin")
        assert admin_account is not None
        view, revoked = accounts.create_api_token(s, admin_account.id, "to revoke", actor="test")
    with site.store.session() as s:
        accounts.revoke_api_token(s, view.id, actor="test")
    browser = site.signed_in("admin")
    before = audit_size(site)

    # No token, an unknown or revoked token, a browser session: none may write.
    for path, body in admin_writes():
        assert_error(c.post(path, json=body), 401)
        assert_error(c.post(path, json=body, headers=bearer(revoked)), 401)
        assert "API token" in assert_error(browser.post(path, json=body), 401)["error"]
    assert_error(c.post(f"{PROG}/scores", json={"scores": []}, headers={"Authorization": "Bearer nope"}), 401)
    assert_error(c.post(f"{PROG}/scores", json={}, headers={"Authorization": "Bearer " + "x" * 5000}), 401)
    assert_error(c.get(f"{API}/me", headers=bearer(revoked)), 401)
    assert browser.get(f"{API}/me").json()["username"] == "admin"  # a session may read

    # Other roles on administrators' writes.
    for role in ("expert", "rater", "team-halla"):
        for path, body in admin_writes():
            refused = assert_error(c.post(path, json=body, headers=bearer(tokens[role])), 403)
            assert "admin" in refused["error"]

    # A team speaks for itself only, and only now.
    others = [t for t in TEAMS if t != "halla"]
    for team in others:
        refused = assert_error(c.post(f"{ON_STAGE}/appeals", json={"team": team, "grounds": "unfair"},
                                      headers=bearer(tokens["team-halla"])), 403)
        assert "halla" in refused["error"] and team in refused["error"]
    assert_error(c.post(f"{ON_STAGE}/appeals", json={"team": "halla", "grounds": "late", "at": "2026-01-17T00:00Z"},
                        headers=bearer(tokens["team-halla"])), 403)
    for role in ("expert", "rater"):
        assert_error(c.post(f"{ON_STAGE}/appeals", json={"team": "halla", "grounds": "x"},
                            headers=bearer(tokens[role])), 403)

    admin = bearer(tokens["admin"])
    good = {"stage": STAGE, "team": "halla", "source": "bench:nia", "value": 0.9}

    # Malformed and wrongly typed bodies.
    for raw in ('{"scores": [', "not json", "", "[]", '{"scores": {}}', "null", '"x"', "1" * 5000, "[" * 10_000):
        assert_error(c.post(f"{PROG}/scores", content=raw, headers={**admin, "content-type": "application/json"}))
    wrong = [{**good, "value": "0.9"}, {**good, "value": True}, {**good, "value": None}, {**good, "stage": 5},
             {**good, "stderr": "x"}, {**good, "example": "yes"}, {**good, "extra": 1}, {"team": "halla"},
             {**good, "stage": "s" * 10_000}, {**good, "team": "t" * 10_000}, {**good, "rater": "r" * 10_000},
             {**good, "source": "b" * 10_000}, {**good, "run_id": "x" * 10_000}, {**good, "note": "n" * 100_000},
             {**good, "evidence": "a\x00b"}]
    for item in wrong:
        assert_error(c.post(f"{PROG}/scores", json={"scores": [item]}, headers=admin))
    assert_error(c.post(f"{PROG}/scores", json={"scores": []}, headers=admin), 422)
    for number in ("NaN", "Infinity", "-Infinity", "1e309", "-1e309", "1" + "0" * 400, "1" + "0" * 5000):
        for extra in (f'"value": {number}', f'"value": 0.5, "stderr": {number}'):
            raw = f'{{"scores": [{{"stage": "{STAGE}", "team": "halla", "source": "bench:nia", {extra}}}]}}'
            assert_error(c.post(f"{PROG}/scores", content=raw, headers={**admin, "content-type": "application/json"}))
    lone = f'{{"stage": "{STAGE}", "team": "halla", "gate": "originality", "passed": true, "evidence": "\\ud800"}}'
    assert_error(c.post(f"{PROG}/gates", content=lone, headers={**admin, "content-type": "application/json"}), 422)

    # Rows of the right shape that the programme refuses: every one named, nothing recorded.
    bad = [{**good, "team": "nobody"}, {**good, "source": "bench:nope"}, {**good, "value": 7.5},
           {**good, "source": "panel:expert", "value": 50}, good, good]
    refused = assert_error(c.post(f"{PROG}/scores", json={"scores": bad}, headers=admin), 400)["error"]
    assert refused.startswith("5 invalid scores, nothing recorded")
    for needle in ("'nobody'", "'bench:nope'", "7.5", "need a rater", "a second score"):
        assert needle in refused

    # Bodies larger than the server accepts, declared or streamed.
    huge = {"scores": [{**good, "note": "n" * 10_000} for _ in range(BODY_CAP // 10_000 + 1)]}
    assert_error(c.post(f"{PROG}/scores", json=huge, headers=admin), 413)
    chunks = (b"x" * 10_000 for _ in range(BODY_CAP // 10_000 + 2))
    assert_error(c.post(f"{PROG}/scores", content=chunks, headers={**admin, "content-type": "application/json"}),
                 413)

    # Programme files: a broken one is located; a malformed one never reaches the store.
    broken = c.post(f"{API}/programs", json={"text": "[program]\nid = \n", "source_name": "bad.toml"}, headers=admin)
    assert assert_error(broken, 400)["error"].startswith("bad.toml:2:")
    assert_error(c.post(f"{API}/programs", json={"text": "[program]\nid = 'x'\n", "source_name": "a\x00"},
                        headers=admin), 422)
    checked = c.post(f"{API}/programs/check", json={"text": EXAMPLE.read_text(encoding="utf-8")},
                     headers=bearer(tokens["expert"]))
    assert checked.status_code == 200 and checked.json()["program"] == PROGRAM

    # Hostile path and query parameters: 4xx JSON, never a server error.
    for value in (EVIL, "x" * 10_000, "9" * 400, "-1", "0", "%00", "stage-1;DROP TABLE scores"):
        p = value
        gets = [f"{API}/programs/{p}", f"{API}/programs/{p}/versions", f"{API}/programs/{p}/diff",
                f"{API}/programs/{p}/stages/{STAGE}/status", f"{PROG}/versions/{p}", f"{PROG}/stages/{p}/status",
                f"{PROG}/stages/{p}/scores", f"{PROG}/stages/{p}/gates", f"{PROG}/stages/{p}/decision",
                f"{PROG}/stages/{p}/decisions", f"{PROG}/stages/{p}/appeals", f"{PROG}/stages/{p}/report",
                f"{ON_STAGE}/lineage/{p}/originality", f"{ON_STAGE}/lineage/halla/{p}", f"{API}/audit/{p}"]
        for path in gets:
            assert_error(c.get(path))
        if value in ("-1", "0", "%00"):  # valid or meaningless as query values
            continue
        for params in ({"team": value}, {"id": value}, {"format": value}, {"lang": value}, {"history": value}):
            assert_error(c.get(f"{ON_STAGE}/scores" if "team" in params or "history" in params else
                               f"{ON_STAGE}/report", params=params))
        for params in ({"from": value}, {"to": value}):
            assert_error(c.get(f"{PROG}/diff", params=params))
        for params in ({"after": value}, {"limit": value}):
            assert_error(c.get(f"{API}/audit", params=params))
        for params in ({"since": value}, {"until": value}, {"tz": value}):
            assert_error(c.get(f"{API}/audit/trail", params=params))
        posts = [(f"{API}/programs/{p}/scores", {"scores": [good]}), (f"{API}/programs/{p}/gates", {}),
                 (f"{PROG}/stages/{p}/decide", {}), (f"{PROG}/stages/{p}/appeals", {"team": "halla", "grounds": "x"}),
                 (f"{API}/appeals/{p}/resolve", {"outcome": "upheld", "reason": "x"}),
                 (f"{API}/scores/{p}/void", {"reason": "x"}), (f"{API}/gates/{p}/void", {"reason": "x"}),
                 (f"{PROG}/batches/{p}/undo", {"reason": "x"})]
        for path, body in posts:
            assert_error(c.post(path, json=body, headers=admin))
    assert_error(c.post(f"{ON_STAGE}/decide", json={"at": EVIL}, headers=admin), 400)
    assert_error(c.post(f"{ON_STAGE}/decide", json={"at": "9999-12-31T23:59:59-23:59"}, headers=admin), 400)
    assert_error(c.post(f"{ON_STAGE}/decide", json={}, headers=admin), 400)  # a decision is in force
    assert_error(c.get(f"{API}/no-such-endpoint"), 404)

    assert audit_size(site) == before
    with site.store.session(readonly=True) as s:
        assert verify(s).ok


def test_openapi_documents_every_route() -> None:
    from fastapi.routing import APIRoute

    from simsa.web.app import create_app
    from simsa.web.routes.api import audit, programs, stages, writes
    from simsa.web.settings import WebSettings

    class NoStore:
        pass

    schema = create_app(WebSettings(access_log=False), store=NoStore()).openapi()  # type: ignore[arg-type]
    routes = [r for part in (programs, stages, writes, audit) for r in part.router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 28
    for route in routes:
        for method in route.methods:
            operation = schema["paths"][API + route.path][method.lower()]
            assert operation["summary"] and {"200", "201"} & set(operation["responses"]), route.path
            if method == "POST":
                assert operation["security"] == [{"api_token": []}], route.path
                assert "403" in operation["responses"] and "401" in operation["responses"]
    components = schema["components"]["schemas"]
    for name in ("ScoresIn", "ScoreIn", "ScoresRecorded", "Decision", "StageStatus", "AuditPage", "ApiError"):
        assert name in components
    assert components["ScoresIn"]["properties"]["scores"]["maxItems"] == 100_000


def test_openapi_is_served(decided: Decided) -> None:
    served = decided.site.client().get(f"{API}/openapi.json").json()
    assert {f"{API}/programs/{{key}}/stages/{{stage}}/decide", f"{API}/audit/{{seq}}"} <= set(served["paths"])


# --------------------------------------------------------------------------- a whole write flow


def test_write_flow_with_api_tokens(sqlite_site: LiveSite, tmp_path: Path) -> None:
    site = sqlite_site
    site.account("chair", "admin")
    site.account("team-halla", "team", team="halla")
    chair = site.api_token("chair")
    admin, team = bearer(chair), bearer(site.api_token("team-halla"))
    c = site.client()
    first_seq = c.get(f"{API}/audit/verify").json()["entries"]

    loaded = load_example(c, chair)
    assert loaded["loaded"] is True and loaded["program"] == PROGRAM
    again = c.post(f"{API}/programs", headers=admin, json={"text": EXAMPLE.read_text(encoding="utf-8")})
    assert again.status_code == 200 and again.json()["loaded"] is False

    rows = example_rows(tmp_path)
    recorded = c.post(f"{PROG}/scores", headers=admin, json={"scores": rows})
    assert recorded.status_code == 201, recorded.text
    assert len(recorded.json()["recorded"]) == len(rows) and recorded.json()["batch_id"] is None
    batch = c.post(f"{PROG}/scores", headers=admin, json={"scores": [{**rows[0], "value": 1.0}], "batch": True})
    assert batch.status_code == 201
    assert batch.json()["recorded"][0]["supersedes"] == recorded.json()["recorded"][0]["id"]
    undone = c.post(f"{PROG}/batches/{batch.json()['batch_id']}/undo", headers=admin, json={"reason": "wrong file"})
    assert undone.status_code == 201 and len(undone.json()["restored"]) == 1

    gate_ids = {}
    for t in TEAMS:
        evidence = XSS[1] if t == "baekdu" else "independent of every registered reference"
        r = c.post(f"{PROG}/gates", headers=admin, json={"stage": STAGE, "team": t, "gate": "originality",
                                                          "passed": t != FAILING, "evidence": evidence})
        assert r.status_code == 201, r.text
        gate_ids[t] = r.json()["id"]
    voided = c.post(f"{API}/gates/{gate_ids['seorak']}/void", headers=admin, json={"reason": XSS[0]})
    assert voided.status_code == 201
    assert "missing gate originality result of team seorak" in assert_error(
        c.post(f"{ON_STAGE}/decide", headers=admin, json={}), 400)["error"]
    lineage = {"schema": "simsa.lineage.compare/1", "verdict": "independent",
               "candidate": {"path": "halla/halla-omni-14b"}, "reference": {"path": "org/base"},
               "components": [{"name": "text.attention", "verdict": "independent", "log10_p": -0.1,
                               "identity": {"tensors": 10, "identical": 0}}]}
    from_lineage = {"stage": STAGE, "team": "halla", "lineage": lineage, "link": "https://example.org/halla"}
    dry = c.post(f"{PROG}/gates/lineage", params={"dry_run": "true"}, headers=admin, json=from_lineage)
    assert dry.status_code == 200 and dry.json()["recorded"] is None and dry.json()["summary"]["passed"] is True
    decided = c.post(f"{PROG}/gates/lineage", headers=admin, json=from_lineage)
    assert decided.status_code == 201, decided.text
    assert decided.json()["recorded"]["supersedes"] == gate_ids["halla"] and decided.json()["recorded"]["passed"]
    assert "lineage result: schema" in assert_error(c.post(f"{PROG}/gates/lineage", headers=admin, json={
        **from_lineage, "lineage": {**lineage, "schema": "other"}}), 400)["error"]
    review = {**from_lineage, "lineage": {**lineage, "candidate": {"path": "someone/else"}}}
    assert "needs review" in assert_error(c.post(f"{PROG}/gates/lineage", headers=admin, json=review), 400)["error"]
    assert c.post(f"{PROG}/gates/import", headers=admin, json={"gates": [
        {"stage": STAGE, "team": "seorak", "gate": "originality", "passed": True, "evidence": "re-checked"}]}
                  ).status_code == 201

    dry = c.post(f"{ON_STAGE}/decide", params={"dry_run": "true"}, headers=admin,
                 json={"at": "2026-01-16T09:00:00+09:00"})
    assert dry.status_code == 200 and dry.json()["decided_at"] == "2026-01-16T00:00:00Z"
    assert dry.json()["decision_id"] is None
    assert_error(c.get(f"{ON_STAGE}/decision"), 404)  # a dry run records nothing

    made = c.post(f"{ON_STAGE}/decide", headers=admin)
    assert made.status_code == 201, made.text
    decision = made.json()
    assert decision["decision_id"] and FAILING in decision["eliminated"]
    assert c.get(f"{ON_STAGE}/decision").json()["decision_id"] == decision["decision_id"]
    html = c.get(f"{ON_STAGE}/report", params={"format": "html"}).text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html

    filed = c.post(f"{ON_STAGE}/appeals", headers=team, json={"team": "halla", "grounds": XSS[0]})
    assert filed.status_code == 201, filed.text
    appeal = filed.json()
    assert appeal["team"] == "halla" and appeal["status"] == "pending" and appeal["filed_at"].endswith("Z")
    assert_error(c.post(f"{ON_STAGE}/appeals", headers=team, json={"team": "baekdu", "grounds": "x"}), 403)
    listed = c.get(f"{ON_STAGE}/appeals").json()["appeals"]
    assert [(a["id"], a["grounds"], a["status"]) for a in listed] == [(appeal["appeal_id"], XSS[0], "pending")]

    resolved = c.post(f"{API}/appeals/{appeal['appeal_id']}/resolve", headers=admin,
                      json={"outcome": "upheld", "reason": "the panel re-scored"})
    assert resolved.status_code == 201, resolved.text
    new = resolved.json()["new_decision"]
    assert new["supersedes"] == decision["decision_id"] and new["appeal_id"] == appeal["appeal_id"]
    chain = c.get(f"{ON_STAGE}/decisions").json()["decisions"]
    assert [(d["id"], d["in_force"]) for d in chain] == [(new["decision_id"], True), (decision["decision_id"], False)]
    assert_error(c.post(f"{API}/appeals/{appeal['appeal_id']}/resolve", headers=admin,
                        json={"outcome": "rejected", "reason": "again"}), 400)

    score_id = c.get(f"{ON_STAGE}/scores", params={"team": "halla"}).json()["current"][0]["score_ids"][0]
    void = c.post(f"{API}/scores/{score_id}/void", headers=admin, json={"reason": "duplicate sheet"})
    assert void.status_code == 201 and void.json()["voids"] == score_id
    history = c.get(f"{ON_STAGE}/scores", params={"team": "halla", "history": "true"}).json()["records"]
    assert any(r["voided"] and r["supersedes"] == score_id and r["reason"] == "duplicate sheet" for r in history)

    with site.store.session(readonly=True) as s:
        assert verify(s).ok
    entries = c.get(f"{API}/audit", params={"after": first_seq}).json()["entries"]
    actors = {e["actor"] for e in entries}
    assert actors == {"account:chair", "account:team-halla"}
    assert {e["action"] for e in entries if e["actor"] == "account:team-halla"} == {"appeal.file"}


# --------------------------------------------------------------------------- on each backend


def test_concurrent_writers_on_each_backend(live_site: LiveSite) -> None:
    """A write and its read back, then 20 writers at once: none lost, none recorded twice, the log intact."""
    live_site.account("chair", "admin")
    token = live_site.api_token("chair")
    c = live_site.client(limits=httpx.Limits(max_connections=40))
    load_example(c, token)
    r = c.post(f"{PROG}/gates", headers=bearer(token), json={
        "stage": STAGE, "team": "halla", "gate": "originality", "passed": False, "evidence": "shares a base",
        "link": "https://example.org/l"})
    assert r.status_code == 201
    assert c.get(f"{ON_STAGE}/gates").json()["results"] == [{
        "team": "halla", "gate": "originality", "passed": False, "evidence": "shares a base",
        "link": "https://example.org/l", "example": False, "record_id": r.json()["id"], "grade": "declared",
        "override_reason": None}]
    assert_error(c.post(f"{PROG}/scores", headers=bearer(token), json={"scores": [
        {"stage": STAGE, "team": "halla", "source": "panel:expert", "value": 50, "rater": "r" * 129}]}), 422)

    n = 20
    barrier = threading.Barrier(n)
    results: list[httpx.Response | BaseException | None] = [None] * n

    def post(i: int) -> None:
        barrier.wait()
        try:
            results[i] = c.post(f"{PROG}/scores", headers=bearer(token), json={"scores": [
                {"stage": STAGE, "team": "halla", "source": "panel:expert", "value": 50 + i,
                 "rater": f"expert-{i:02d}"}]})
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, httpx.Response) and r.status_code == 201 for r in results), results
    ids = [r.json()["recorded"][0]["id"] for r in results]  # type: ignore[union-attr]
    assert len(set(ids)) == n
    records = c.get(f"{ON_STAGE}/scores", params={"team": "halla", "history": "true"}).json()
    assert sorted((r["rater"], r["value"]) for r in records["records"]) == [
        (f"expert-{i:02d}", 50.0 + i) for i in range(n)]
    current = records["current"][0]
    assert current["n"] == n and sorted(current["score_ids"]) == sorted(ids)
    assert c.get(f"{API}/audit/verify").json()["ok"]
    with live_site.store.session(readonly=True) as s:
        assert verify(s).ok
