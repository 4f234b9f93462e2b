"""The public pages of `simsa web` on a live server: programmes, stages with the decision in force and the ones it
replaced, gate results with their lineage report, the audit log and its verification, and every download; in
English and Korean; and the attacks a public site meets (markup in every recorded text, SQL and path tricks in every
parameter, secrets that must never show, a database edited behind the log's back).

One site is built per module (the example programme decided, appealed, corrected and re-decided through the
services, plus a small programme whose every text is hostile), so the whole file runs in seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from simsa.audit.log import verify
from simsa.program.loader import load_program, parse_program
from simsa.report.formats import fmt_points
from simsa.services import appeals as appeal_service
from simsa.services import corrections, decision_records, evidence_docs, programs, public_views
from simsa.services import decisions as decision_service
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.store.models import Decision, Score
from simsa.web.i18n import WEB_LABELS
from test_evidence_docs import lineage_result
from web_support import EXAMPLE, FAILING, PASSWORD, PROGRAM, STAGE, LiveSite, record_example_stage

DECIDED = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
FILED = dt.datetime(2026, 1, 17, 14, 3, tzinfo=dt.UTC)
RESOLVED = dt.datetime(2026, 1, 21, 10, 0, tzinfo=dt.UTC)
GROUNDS = "전문가 평가 점수 한 건이 잘못된 평가표에서 옮겨 적혔습니다."
RESOLUTION = "Transcription error confirmed; expert score corrected."
VOID_REASON = "평가자 이해충돌 (user-07)"
JIRI_EVIDENCE = "weights match a foreign base"  # record_example_stage's evidence for the failing team
JIRI_LINK = "https://example.org/forensics/jiri"

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = (SCRIPT, IMG)
ESCAPED = ("&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;")
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1:A9)")
BAD_LINK = "javascript:alert(1)"
QUOTED_LINK = 'https://evil.example/?q="><script>alert(1)</script>'
XSS_KEY = "xss-prog"
ATTACKS = ("' OR 1=1 --", "../../etc/passwd", "1; DROP TABLE scores", "%00", "99999999999999999999999")


def xss_program() -> str:
    """A small programme whose every free text is hostile markup."""
    def team(tid: str, name: str, member: str) -> str:
        return (f'[[teams]]\nid = "{tid}"\nname = {json.dumps(name)}\nname_ko = {json.dumps(IMG)}\n'
                f'members = [{json.dumps(member)}]\nmodels = [{json.dumps(SCRIPT)}]\nlicence = "mit"\n')

    return f"""
[program]
id = "{XSS_KEY}"
name = {json.dumps(SCRIPT)}
name_ko = {json.dumps(IMG)}
organiser = {json.dumps(IMG)}
description = {json.dumps(SCRIPT)}
timezone = "Asia/Seoul"

{team("alpha", SCRIPT, IMG)}
{team("beta", IMG, SCRIPT)}
{team("gamma", "=cmd|' /C calc'!A0", "@evil")}

[[stages]]
id = "s1"
name = {json.dumps(SCRIPT)}
name_ko = {json.dumps(IMG)}
start = 2026-01-01
end = 2026-02-01
appeal_days = 10
tie_breakers = ["team_order"]

[stages.elimination]
advance_best = 2

[stages.robustness]
draws = 50
seed = 7

[[stages.criteria]]
id = "bench"
name = {json.dumps(SCRIPT)}
name_ko = {json.dumps(IMG)}
points = 100
source = "bench:main"

[[stages.gates]]
id = "originality"
name = {json.dumps(IMG)}
kind = "recorded"
description = {json.dumps(SCRIPT)}
"""


@dataclass(frozen=True)
class Site:
    live: LiveSite
    client: httpx.Client
    db_path: Path
    admin_token: str
    lineage: dict
    lineage_file: bytes  # jiri's lineage result as the file `lineage compare --json` wrote and the gate recorded


def _build(store, work: Path) -> None:  # type: ignore[no-untyped-def]
    """The example stage decided, appealed (upheld after a correction and a void), and the hostile programme."""
    first = record_example_stage(store, work, decide_at=DECIDED)
    assert first is not None
    loaded = load_program(EXAMPLE)
    cut_on_points = next(c["team"] for c in first["robustness"]["cuts"] if c["cause"] == "points")
    with store.session() as s:
        appeal_id = appeal_service.file(s, loaded, STAGE, cut_on_points, GROUNDS, "test", FILED).id
    with store.session() as s:
        version, _ = programs.register(s, loaded, "test")
        correction = score_service.ScoreInput(stage=STAGE, team=cut_on_points, source="panel:expert", value=95.0,
                                              rater="expert-01", note="corrected transcription")
        score_service.add(s, version, loaded.program, [correction], "test")
        conflicted = next(r for r in score_service.history(s, PROGRAM, STAGE, FAILING)
                          if r.source == "panel:user" and r.rater == "user-07")
        corrections.void_score(s, PROGRAM, conflicted.id, VOID_REASON, "test")
    with store.session() as s:
        appeal_service.resolve(s, loaded, appeal_id, True, RESOLUTION, "test", RESOLVED)

    hostile = parse_program(xss_program(), "xss.toml")
    with store.session() as s:
        version, _ = programs.register(s, hostile, SCRIPT)
        items = [score_service.ScoreInput(stage="s1", team=t, source="bench:main", value=v, stderr=0.01,
                                          run_id=FORMULAS[i], evidence=SCRIPT, note=FORMULAS[(i + 1) % 4])
                 for i, (t, v) in enumerate((("alpha", 0.8), ("beta", 0.6), ("gamma", 0.4)))]
        score_service.add(s, version, hostile.program, items, IMG)
        for team, link in (("alpha", BAD_LINK), ("beta", QUOTED_LINK), ("gamma", None)):
            gate_service.record(s, version, hostile.program, stage_id="s1", team_id=team, gate_id="originality",
                                passed=team != "beta", evidence=f"{SCRIPT} {IMG}", link=link, actor=SCRIPT,
                                grade="heuristic" if team == "beta" else "declared",
                                override_reason=f"{SCRIPT} {IMG}" if team == "beta" else None)
    with store.session() as s:
        decision_service.decide_and_store(s, hostile, "s1", IMG, at=DECIDED)
    with store.session() as s:
        appeal = appeal_service.file(s, hostile, "s1", "beta", f"{SCRIPT}\n{IMG}", SCRIPT, FILED)
        appeal_id = appeal.id
    with store.session() as s:
        appeal_service.resolve(s, hostile, appeal_id, False, IMG, SCRIPT, RESOLVED)


UNREADABLE = json.dumps({"schema": "simsa.lineage.compare/1", "verdict": SCRIPT})  # JSON, but no report in it


def _record_lineage(store, work: Path, lineage: dict) -> bytes:  # type: ignore[no-untyped-def]
    """Jiri's originality gate decided from a saved lineage comparison, as `simsa gate from-lineage` records it
    (after the decisions, so the decision in force keeps the hand-recorded result); halla's current result pointed
    at a stored document that is JSON but not a lineage report (an older format, say)."""
    path = work / "jiri-lineage.json"
    path.write_text(json.dumps(lineage, ensure_ascii=False, indent=2), encoding="utf-8")
    found = gate_service.read_lineage_file(path)
    loaded = load_program(EXAMPLE)
    with store.session() as s:
        out = gate_service.record_result_from_lineage(
            s, loaded, stage_id=STAGE, team_id=FAILING, gate_id="originality", lineage=found.data,
            lineage_sha256=found.sha256, lineage_text=found.text, link=JIRI_LINK, actor="test")
        assert out.recorded is not None and out.recorded.passed is False and out.summary["recommendation"] == "fail"
    with store.session() as s:
        version, _ = programs.register(s, loaded, "test")
        doc = evidence_docs.store_document(s, UNREADABLE, kind=evidence_docs.LINEAGE_KIND, actor="test")
        gate_service.record(s, version, loaded.program, stage_id=STAGE, team_id="halla", gate_id="originality",
                            passed=True, evidence="lineage result in an older format", link=None, actor="test",
                            document_id=doc.id)
    return path.read_bytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("web-public")
    db_path = work / "simsa.db"
    live = LiveSite(f"sqlite:///{db_path}").start()
    try:
        assert live.store is not None
        lineage = lineage_result(work, candidate_path=f"jiri/{SCRIPT}")  # escaped in the lineage section
        _build(live.store, work)
        lineage_file = _record_lineage(live.store, work, lineage)
        live.account("secretariat", "admin")
        token = live.api_token("secretariat")
        with live.client() as client:
            yield Site(live=live, client=client, db_path=db_path, admin_token=token, lineage=lineage,
                       lineage_file=lineage_file)
    finally:
        live.stop()


def get(site: Site, path: str, status: int = 200, **params: str) -> httpx.Response:
    response = site.client.get(path, params=params or None)
    assert response.status_code == status, (path, params, response.status_code, response.text[:500])
    return response


def decision_in_force(site: Site, key: str = PROGRAM, stage: str = STAGE) -> Decision:
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        row = decision_records.effective(s, key, stage)
        assert row is not None
        s.expunge(row)
        return row


def page_paths(key: str, stage: str, team: str, first_decision: int) -> list[str]:
    base = f"/programs/{key}/stages/{stage}"
    return ["/", f"/programs/{key}", base, f"{base}/decisions/{first_decision}", f"{base}/gates/{team}/originality",
            "/audit", "/audit/1", "/audit/verify"]


# ---------------------------------------------------------------- pages show the right data


def test_start_page_lists_programmes(site: Site) -> None:
    page = get(site, "/", lang="en").text
    assert f'href="/programs/{PROGRAM}"' in page and f'href="/programs/{XSS_KEY}"' in page
    assert "Sovereign AI Foundation Model Programme (example)" in page
    for name in ("Team Baekdu", "Team Halla", "Team Jiri", "Team Seorak", "Team Taebaek"):
        assert name in page
    assert "독자 AI 파운데이션 모델 프로젝트 (예시)" in get(site, "/", lang="ko").text


def test_empty_store_says_how_to_load(tmp_path: Path) -> None:
    live = LiveSite(f"sqlite:///{tmp_path / 'empty.db'}").start()
    try:
        with live.client() as client:
            page = client.get("/", params={"lang": "en"})
            assert page.status_code == 200
            assert "No programme is loaded yet" in page.text and "simsa program load" in page.text
    finally:
        live.stop()


def test_programme_overview(site: Site) -> None:
    page = get(site, f"/programs/{PROGRAM}", lang="en").text
    assert "Asia/Seoul" in page and "Baekdu Cloud" in page and "Jiri Telecom" in page  # consortium members
    assert f'href="/programs/{PROGRAM}/stages/{STAGE}"' in page and 'href="/programs/k-ai-2026/stages/stage-2"' in page
    in_force = decision_in_force(site)
    assert f"decision #{in_force.id}" in page and "not decided" in page
    advanced = len(json.loads(in_force.body)["advanced"])
    assert f"{advanced} advanced" in page
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        from simsa.services.program_versions import list_versions

        versions = list_versions(s, PROGRAM)
    for v in versions:
        assert v.sha256 in page and f'href="/programs/{PROGRAM}/versions/{v.id}.toml"' in page
        text = get(site, f"/programs/{PROGRAM}/versions/{v.id}.toml")
        assert text.text == EXAMPLE.read_text(encoding="utf-8")
        assert text.headers["content-type"].startswith("application/toml")
        assert "attachment" in text.headers["content-disposition"] and PROGRAM in text.headers["content-disposition"]


def test_stage_page_shows_the_decision_in_force(site: Site) -> None:
    row = decision_in_force(site)
    body = json.loads(row.body)
    assert row.supersedes_id is not None  # the upheld appeal re-decided
    page = get(site, f"/programs/{PROGRAM}/stages/{STAGE}", lang="en").text
    for team in body["teams"]:
        assert team["name"] in page and fmt_points(team["total"]) in page
    assert JIRI_EVIDENCE in page
    assert f'<a href="{JIRI_LINK}" rel="noopener noreferrer nofollow">{JIRI_LINK}</a>' in page
    assert f'href="/programs/{PROGRAM}/stages/{STAGE}/gates/{FAILING}/originality"' in page
    assert GROUNDS in page and RESOLUTION in page  # the appeal
    assert VOID_REASON in page  # voided records
    assert f'href="/programs/{PROGRAM}/stages/{STAGE}/decisions/{row.supersedes_id}"' in page  # history
    assert page.count("<svg") >= 2  # the points and robustness charts, inline
    assert "Example data" in page  # the example-data notice
    if body["robustness"]["fragile"]:
        assert "Fragile decision" in page
    for link in ("report.html", "report.md", "report.json", "decision.json", "scores.csv"):
        assert f'href="/programs/{PROGRAM}/stages/{STAGE}/{link}"' in page
    assert "2026-01-21 19:00 KST" in page  # the re-decision's time in the programme's zone


def test_past_decision_is_marked_superseded(site: Site) -> None:
    row = decision_in_force(site)
    first = row.supersedes_id
    page = get(site, f"/programs/{PROGRAM}/stages/{STAGE}/decisions/{first}", lang="en").text
    assert f"Decision #{first} (superseded)" in page and f"decision #{row.id} superseded it" in page
    assert f'href="/programs/{PROGRAM}/stages/{STAGE}/decisions/{row.id}"' in page
    assert f"report.html?id={first}" in page and f"decision.json?id={first}" in page
    current = get(site, f"/programs/{PROGRAM}/stages/{STAGE}/decisions/{row.id}", lang="en").text
    assert "(superseded)" not in current and "Decision in force" in current


def test_undecided_stage_shows_its_status(site: Site) -> None:
    page = get(site, f"/programs/{PROGRAM}/stages/stage-2", lang="en").text
    assert "Not decided yet" in page and "The stage cannot be decided yet" in page
    assert "missing score" in page and "Team Gaya" in page
    assert 'href="/programs/k-ai-2026/stages/stage-2/scores.csv"' in page and "decision.json" not in page


def test_gate_page_with_history_and_lineage_report(site: Site) -> None:
    path = f"/programs/{PROGRAM}/stages/{STAGE}/gates/{FAILING}/originality"
    sha = hashlib.sha256(site.lineage_file).hexdigest()
    page = get(site, path, lang="en").text
    assert "Originality from lineage: FAIL" in page and sha[:16] in page  # the evidence names the file's hash
    assert JIRI_EVIDENCE in page and f'href="{JIRI_LINK}"' in page  # the hand-recorded result it superseded
    assert "Recorded by" in page and "Failed" in page
    assert "Lineage report" in page and "Layer-by-layer evidence" in page and "<svg" in page
    grades = re.findall(r'<dd class="grade">([a-z]+)</dd>', page)
    assert grades and grades[0] in ("cryptographic", "statistical")  # the lineage result's grade, shown
    assert "Evidence grade: declared" in page  # the hand-recorded result it superseded
    assert f'<span class="hash">{sha}</span>' in page and f"{len(site.lineage_file)} bytes" in page
    assert "&lt;script&gt;" in page and SCRIPT not in page  # the hostile candidate path, escaped
    download = get(site, path + "/lineage.json")
    assert download.headers["content-type"] == "application/json"
    assert download.content == site.lineage_file  # the recorded file byte for byte, not a re-serialisation
    assert f'-lineage-{sha}.json"' in download.headers["content-disposition"]
    assert json.loads(download.content) == site.lineage
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        view = public_views.gate_page(s, PROGRAM, STAGE, FAILING, "originality")
        assert view.document is not None and view.lineage == site.lineage
        assert (view.document.sha256, view.document.bytes) == (sha, len(site.lineage_file))
        assert view.to_dict()["document"]["sha256"] == sha and view.to_dict()["lineage_attached"]
    other = get(site, f"/programs/{PROGRAM}/stages/{STAGE}/gates/baekdu/originality", lang="en").text
    assert "Lineage report" not in other and "independent of every registered reference" in other
    get(site, f"/programs/{PROGRAM}/stages/{STAGE}/gates/baekdu/originality/lineage.json", status=404)
    get(site, f"/programs/{PROGRAM}/stages/{STAGE}/gates/nobody/originality/lineage.json", status=404)
    broken = get(site, f"/programs/{PROGRAM}/stages/{STAGE}/gates/halla/originality", lang="en").text
    assert "cannot be shown as a report" in broken and "lineage.json" in broken and SCRIPT not in broken
    stored = get(site, f"/programs/{PROGRAM}/stages/{STAGE}/gates/halla/originality/lineage.json")
    assert stored.content == UNREADABLE.encode("utf-8")  # served as stored; a download is data, not a page
    computed = get(site, f"/programs/{PROGRAM}/stages/{STAGE}/gates/halla/licence", lang="en").text
    assert "computed from the programme file" in computed and "In the decision in force" in computed


def test_audit_log_pages_and_filters(site: Site) -> None:
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        result = verify(s)
    page = get(site, "/audit", lang="en").text
    assert f'href="/audit/{result.entries}"' in page and f'href="/audit/{result.entries - 49}"' in page
    assert f'href="/audit/{result.entries - 50}"' not in page  # 50 per page, newest first
    assert "page=2" in page
    second = get(site, "/audit", page="2", lang="en").text
    assert f'href="/audit/{result.entries - 50}"' in second
    only = get(site, "/audit", action="appeal.", lang="en").text
    assert only.count("<code>appeal.file</code>") == 2 and "<code>score.add</code>" not in only
    by_actor = get(site, "/audit", actor="secretariat", lang="en").text
    assert "No entry matches" in by_actor  # the admin was made by "test"
    entry = get(site, "/audit/1", lang="en").text
    assert "program.load" in entry and 'href="/audit/2"' in entry and "&#34;program_key&#34;" in entry
    get(site, f"/audit/{result.entries + 1}", status=404)
    get(site, "/audit", page=str(10**6), status=404)
    get(site, "/audit", page="0", status=400)


def test_audit_verify_page_shows_the_head(site: Site) -> None:
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        result = verify(s)
    page = get(site, "/audit/verify", lang="en").text
    assert result.ok and "OK — the log is intact" in page
    assert f'<dd class="hash" id="head">{result.head}</dd>' in page and f"<dd>{result.entries}</dd>" in page
    assert "schema version" in page  # says what was checked


def test_languages_and_no_missing_labels(site: Site) -> None:
    row = decision_in_force(site)
    paths = [*page_paths(PROGRAM, STAGE, FAILING, row.supersedes_id or row.id), f"/programs/{PROGRAM}/stages/stage-2",
             f"/programs/{PROGRAM}/stages/{STAGE}/gates/halla/licence"]
    for path in paths:
        ko = get(site, path, lang="ko").text
        en = get(site, path, lang="en").text
        assert '<html lang="ko">' in ko and '<html lang="en">' in en
        assert "감사 기록" in ko and "Audit log" in en  # the frame
        assert f'href="{path}?lang=en"' in ko  # the language switch keeps the page
    stage_ko = get(site, f"/programs/{PROGRAM}/stages/{STAGE}", lang="ko").text
    stage_en = get(site, f"/programs/{PROGRAM}/stages/{STAGE}", lang="en").text
    assert WEB_LABELS["leaderboard"][1] in stage_ko and WEB_LABELS["leaderboard"][0] not in stage_ko
    assert "Leaderboard" in stage_en and "백두팀" in stage_ko and "Team Baekdu" in stage_en
    assert "내려받기" in stage_ko


def test_every_label_the_templates_name_exists() -> None:
    templates = Path(__file__).resolve().parent.parent / "src" / "simsa" / "web" / "templates"
    used = set()
    for path in templates.glob("public_*.html.j2"):
        used |= set(re.findall(r"""\bt\(["']([a-z0-9_]+)["']\s*[,)]""", path.read_text(encoding="utf-8")))
    assert len(used) > 60
    used |= {f"pub_gate_kind_{kind}" for kind in ("recorded", "min_score", "licence")}  # named from data
    assert sorted(k for k in used if k not in WEB_LABELS) == []
    assert all(WEB_LABELS[k][0] and WEB_LABELS[k][1] for k in used)


# ---------------------------------------------------------------- downloads


def test_downloads_bytes(site: Site) -> None:
    base = f"/programs/{PROGRAM}/stages/{STAGE}"
    row = decision_in_force(site)
    decision = get(site, f"{base}/decision.json")
    assert decision.content == row.body.encode("utf-8")
    assert decision.headers["content-type"] == "application/json"
    assert f'filename="{PROGRAM}-{STAGE}-decision-{row.id}.json"' in decision.headers["content-disposition"]
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        first = s.get(Decision, row.supersedes_id)
        assert first is not None
        assert get(site, f"{base}/decision.json", id=str(first.id)).content == first.body.encode("utf-8")
        score_rows = s.execute(select(Score).where(Score.program_key == PROGRAM, Score.stage_id == STAGE)
                               .order_by(Score.id)).scalars().all()
        rows_count = s.execute(select(func.count()).select_from(Score)
                               .where(Score.program_key == PROGRAM, Score.stage_id == STAGE)).scalar_one()
    report = json.loads(get(site, f"{base}/report.json").content)
    assert report["schema"] == "simsa.report/1" and report["decision"]["decision_id"] == row.id
    assert report["history"][0]["decision_id"] == row.supersedes_id and report["appeals"][0]["grounds"] == GROUNDS
    html = get(site, f"{base}/report.html", lang="ko")
    assert html.headers["content-type"].startswith("text/html") and "attachment" in html.headers["content-disposition"]
    assert "순위표" in html.text and "Leaderboard" not in html.text
    md = get(site, f"{base}/report.md")
    assert md.headers["content-type"].startswith("text/markdown") and "## Leaderboard" in md.text
    assert "-both.md" in md.headers["content-disposition"]
    old = json.loads(get(site, f"{base}/report.json", id=str(row.supersedes_id)).content)
    assert old["decision"]["decision_id"] == row.supersedes_id
    get(site, f"{base}/report.pdf", status=404)
    get(site, f"{base}/report.html", status=400, lang="fr")

    scores = get(site, f"{base}/scores.csv")
    assert scores.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(scores.content.decode("utf-8-sig"))))
    assert len(table) == rows_count == len(score_rows)
    assert [int(r["id"]) for r in table] == [r.id for r in score_rows]
    assert list(table[0]) == ["id", "stage", "team", "source", "rater", "value", "stderr", "run_id", "evidence",
                              "note", "example", "recorded_at_utc", "recorded_by", "supersedes", "voided", "reason",
                              "batch", "current"]
    voided = [r for r in table if r["voided"] == "true"]
    assert len(voided) == 1 and voided[0]["reason"] == VOID_REASON and voided[0]["supersedes"]
    assert sum(1 for r in table if r["supersedes"]) == 2  # the correction and the void
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["recorded_at_utc"]) for r in table)

    export = json.loads(get(site, "/audit/export.json").content)
    with site.live.store.session(readonly=True) as s:
        assert export["head"] == verify(s).head


# ---------------------------------------------------------------- attacks


def test_hostile_text_comes_back_escaped_everywhere(site: Site) -> None:
    row = decision_in_force(site, XSS_KEY, "s1")
    base = f"/programs/{XSS_KEY}/stages/s1"
    paths = [*page_paths(XSS_KEY, "s1", "alpha", row.id), f"{base}/gates/beta/originality",
             f"{base}/gates/gamma/originality"]
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        entries = verify(s).entries
    paths += [f"/audit/{n}" for n in range(1, entries + 1) if n % 7 == 0 or n > entries - 30]
    for lang in ("en", "ko"):
        for path in paths:
            page = get(site, path, lang=lang).text
            for raw in HOSTILE:
                assert raw not in page, (path, raw)
            assert "<img" not in page
    stage_page = get(site, base, lang="en").text
    for escaped in ESCAPED:
        assert escaped in stage_page
    assert 'href="javascript:' not in stage_page and BAD_LINK in stage_page  # shown, never linked
    assert 'href="https://evil.example/?q=&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in stage_page
    audit_page = get(site, "/audit", actor=SCRIPT, lang="en").text
    assert ESCAPED[0] in audit_page and SCRIPT not in audit_page and "gate.record" in audit_page
    report = get(site, f"{base}/report.html").text
    assert SCRIPT not in report and "<img" not in report
    beta = get(site, f"{base}/gates/beta/originality", lang="en").text
    assert "Accepted below the evidence bar because" in beta and ESCAPED[0] in beta  # the admin's reason, escaped
    assert '<dd class="grade">heuristic</dd>' in beta


def test_csv_cells_cannot_run_as_formulas(site: Site) -> None:
    content = get(site, f"/programs/{XSS_KEY}/stages/s1/scores.csv").content.decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(content)))
    assert len(table) == 3
    cells = [r[k] for r in table for k in ("run_id", "note", "evidence", "recorded_by")]
    for formula in FORMULAS:
        assert "'" + formula in cells and formula not in cells
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)
    assert all(r["evidence"] == SCRIPT for r in table)  # CSV is data, not HTML: kept as recorded
    assert [r["value"] for r in table] == ["0.8", "0.6", "0.4"]  # numbers stay numbers


def test_sql_and_path_tricks_in_every_parameter(site: Site) -> None:
    row = decision_in_force(site)
    base = f"/programs/{PROGRAM}/stages/{STAGE}"
    for attack in ATTACKS:
        a = quote(attack, safe="")
        paths = [f"/programs/{a}", f"/programs/{a}/stages/{STAGE}", f"/programs/{PROGRAM}/stages/{a}",
                 f"{base}/decisions/{a}", f"{base}/gates/{a}/originality", f"{base}/gates/{FAILING}/{a}",
                 f"{base}/gates/{a}/originality/lineage.json", f"/audit/{a}", f"/programs/{PROGRAM}/versions/{a}.toml",
                 f"{base}/report.{a}", f"/programs/{a}/stages/{STAGE}/decision.json",
                 f"/programs/{PROGRAM}/stages/{a}/scores.csv", f"{base}/decision.json?id={a}",
                 f"{base}/report.html?id={a}", f"{base}/report.json?lang={a}", f"/audit?page={a}"]
        if not attack.isdigit():  # digits could start an action's name: that filter just matches nothing
            paths.append(f"/audit?action={a}")
        for path in paths:
            response = site.client.get(path)
            assert response.status_code in (400, 404), (path, response.status_code, response.text[:300])
            assert "Team Baekdu" not in response.text and "root:" not in response.text
        filtered = site.client.get(f"/audit?actor={a}")  # a free-text filter: no entry has that actor
        assert filtered.status_code == 200 and "No entry matches" in filtered.text
        assert site.client.get(f"/?lang={a}").status_code == 200  # an unknown language is ignored
    # an id of the right shape that belongs elsewhere is not found either
    get(site, f"/programs/{PROGRAM}/stages/stage-2/decisions/{row.id}", status=404)
    get(site, f"/programs/{PROGRAM}/stages/stage-2/decision.json", status=404)
    get(site, f"/programs/{XSS_KEY}/versions/1.toml", status=404)
    get(site, f"/programs/{PROGRAM}/stages/stage-9", status=404)
    get(site, "/programs/src", status=404)  # a directory next to the server is never read as a programme
    get(site, "/programs/pyproject.toml", status=404)


def test_no_secret_on_any_page(site: Site) -> None:
    row = decision_in_force(site)
    paths = [*page_paths(PROGRAM, STAGE, FAILING, row.id), "/audit/export.json", "/audit?page=1&action=token."]
    assert site.live.store is not None
    with site.live.store.session(readonly=True) as s:
        entries = verify(s).entries
    paths += [f"/audit/{n}" for n in range(entries - 3, entries + 1)]
    for path in paths:
        text = site.client.get(path).text
        assert "$argon2" not in text and site.admin_token not in text and PASSWORD not in text, path


def test_audit_verify_fails_after_an_edit_behind_the_log(site: Site, tmp_path: Path) -> None:
    """A score and the stored lineage document edited in a copy of the database: verification names both rows; the
    gate page still opens (the document cannot be shown as a report) and the download is what the database holds,
    so its hash no longer matches the one in its name."""
    copy = tmp_path / "tampered.db"
    shutil.copyfile(site.db_path, copy)
    sha = hashlib.sha256(site.lineage_file).hexdigest()
    with sqlite3.connect(copy) as conn:
        score_id = conn.execute("SELECT min(id) FROM scores WHERE program_key = ?", (PROGRAM,)).fetchone()[0]
        conn.execute("UPDATE scores SET value = value + 7 WHERE id = ?", (score_id,))
        doc_id = conn.execute("SELECT id FROM evidence_documents WHERE sha256 = ?", (sha,)).fetchone()[0]
        conn.execute("UPDATE evidence_documents SET content = ? WHERE id = ?", ("{not json", doc_id))
    live = LiveSite(f"sqlite:///{copy}").start()
    try:
        with live.client() as client:
            page = client.get("/audit/verify", params={"lang": "en"})
            assert page.status_code == 200
            assert "FAILED" in page.text and "OK —" not in page.text
            assert "<td>scores</td>" in page.text and f"<td>{score_id}</td>" in page.text
            assert "<td>evidence_documents</td>" in page.text and f"<td>{doc_id}</td>" in page.text
            assert client.get("/audit/verify", params={"lang": "ko"}).text.count("실패") >= 1
            gate = f"/programs/{PROGRAM}/stages/{STAGE}/gates/{FAILING}/originality"
            shown = client.get(gate, params={"lang": "en"})
            assert shown.status_code == 200 and "cannot be shown as a report" in shown.text
            served = client.get(gate + "/lineage.json")
            assert served.content == b"{not json" and sha in served.headers["content-disposition"]
            assert hashlib.sha256(served.content).hexdigest() != sha
    finally:
        live.stop()
