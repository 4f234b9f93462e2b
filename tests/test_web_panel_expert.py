"""The expert panel's pages for experts and teams, through HTTP as a browser uses them, and attacks on them: experts
who are not assigned or are conflicted asking for a submission, team names leaking into blinded pages, other
experts' scores before one's own is locked, a second submission, forged forms, HTML in every text field, another
team's documents, hostile uploads.

One live site serves the module, and the panel moves forward as the tests go: teams upload while submissions are
open; then (fixture `live`) the deadline passes, a declaration made late conflicts one expert, and round 1 opens.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
import zipfile
from collections.abc import Iterator

import httpx
import pytest
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from sqlalchemy import func, select

from panel_support import csv_log, markdown_report, panel_program_text
from simsa.panel.conflicts import team_names
from simsa.program.loader import parse_program
from simsa.services import panel, panel_documents, panel_steps, programs
from simsa.store.models import PanelBlob, PanelComment, PanelDocument, PanelReview
from simsa.timeutil import format_local
from web_support import PROGRAM, STAGE, LiveSite, csrf_of

UPLOAD_LIMIT = 300_000
TEAM_A, TEAM_B = "baekdu", "halla"
CRITERIA = ("originality", "training", "data", "reproducibility", "safety")
EXPERTS = ("exp-one", "exp-two", "exp-conf", "exp-out")
HOSTILE = "<script>alert('x')</script><b>bold</b>"
BASE = f"/expert/panels/{PROGRAM}/{STAGE}"
A_FILES = ("Baekdu_tech_report.md", "team-baekdu-train.csv", "Baekdu Cloud report.pdf")


def load(site: LiveSite, deadline: dt.datetime) -> None:
    assert site.store is not None
    text = panel_program_text(deadline, changes={"min_experts = 5": "min_experts = 2"})
    with site.store.session() as s:
        programs.register(s, parse_program(text, f"{PROGRAM}.toml"), "test")


def pass_deadline(site: LiveSite) -> None:
    """A new programme version whose deadline (whole seconds, as the file writes it) is after every upload so
    far, and a wait until it has passed."""
    deadline = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    load(site, deadline)
    time.sleep(max(0.0, (deadline - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)


def pdf_with(text: str) -> bytes:
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        fig = Figure(figsize=(8.27, 11.69))
        fig.text(0.1, 0.8, text, fontsize=20)
        pdf.savefig(fig)
    return buf.getvalue()


def count(site: LiveSite, model: type) -> int:
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def error_of(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text, re.S)
    assert found is not None, response.text[-1500:]
    return found.group(1)


def upload(client: httpx.Client, name: str, data: bytes, purpose: str = "report") -> httpx.Response:
    token = csrf_of(client.get("/team/panel").text)
    return client.post(f"/team/panel/stages/{STAGE}/documents", data={"csrf_token": token, "purpose": purpose},
                       files={"file": (name, data)})


def review_form(level: int, note: str = "reasoned", **extra: str) -> dict[str, str]:
    form = {f"score_{c}": str(level) for c in CRITERIA}
    form.update({f"just_{c}": f"{note} ({c})" for c in CRITERIA})
    form.update(extra)
    return form


def post(client: httpx.Client, page: str, action: str, data: dict) -> httpx.Response:
    shown = client.get(page)
    assert shown.status_code == 200, shown.text[-800:]
    return client.post(action, data={"csrf_token": csrf_of(shown.text), **data})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Submissions open for another hour; teams A and B, an admin, four declared experts (none conflicted yet)."""
    work = tmp_path_factory.mktemp("web-panel")
    live = LiveSite(f"sqlite:///{work / 'simsa.db'}",
                    settings_changes={"login_rate": 10_000, "max_upload_bytes": UPLOAD_LIMIT}).start()
    load(live, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    live.account("sec")
    live.account("team-a", "team", team=TEAM_A)
    live.account("team-b", "team", team=TEAM_B)
    for name in EXPERTS:
        live.account(name, "expert")
    assert live.store is not None
    with live.store.session() as s:
        for name in EXPERTS:
            panel.declare(s, name, affiliations=[f"University of {name}"], relations=[], conflicts=[])
    clients = {name: live.signed_in(name) for name in ("sec", "team-a", "team-b", *EXPERTS)}
    for client in clients.values():
        client.get("/?lang=en")
    try:
        yield {"site": live, "clients": clients}
    finally:
        for client in clients.values():
            client.close()
        live.stop()


def ctx_of(site: LiveSite):  # type: ignore[no-untyped-def]
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return panel.context(s, PROGRAM, STAGE)


# --------------------------------------------------------------------------- teams, while submissions are open


def test_team_uploads_and_sees_only_its_own_documents(site: dict) -> None:
    live, a, b = site["site"], site["clients"]["team-a"], site["clients"]["team-b"]
    team = ctx_of(live).team(TEAM_A)
    for name, data, purpose in ((A_FILES[0], markdown_report(team.name, team.members[0]), "report"),
                                (A_FILES[1], csv_log(), "log"),
                                (A_FILES[2], pdf_with(f"Model trained by {team.name} and {team.members[0]}"),
                                 "report")):
        response = upload(a, name, data, purpose)
        assert response.status_code == 303, response.text[-800:]
    assert upload(b, "halla.md", markdown_report("Team Halla", "Halla AI"), "report").status_code == 303
    page_a, page_b = a.get("/team/panel").text, b.get("/team/panel").text
    assert all(name in page_a for name in A_FILES) and "halla.md" not in page_a
    assert "halla.md" in page_b and not any(name in page_b for name in A_FILES)
    with live.store.session(readonly=True) as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        a_docs = panel_documents.submission(s, ctx, TEAM_A)
    assert len(a_docs) == 3 and all(d.sha256 in page_a and d.sha256 not in page_b for d in a_docs)
    assert not re.search(r"Submission [A-Z]\b", page_a + page_b)  # no blind code is shown to teams


def test_a_team_cannot_withdraw_another_teams_document(site: dict) -> None:
    live, a, b = site["site"], site["clients"]["team-a"], site["clients"]["team-b"]
    with live.store.session(readonly=True) as s:
        target = panel_documents.submission(s, panel.context(s, PROGRAM, STAGE), TEAM_A)[0].id
    token = csrf_of(b.get("/team/panel").text)
    before = count(live, PanelDocument)
    response = b.post(f"/team/panel/stages/{STAGE}/documents/{target}/withdraw", data={"csrf_token": token})
    assert response.status_code == 404
    assert a.post(f"/team/panel/stages/{STAGE}/documents/{target}/withdraw", data={}).status_code == 403  # no CSRF
    assert count(live, PanelDocument) == before


def test_hostile_uploads_store_nothing(site: dict) -> None:
    live, a = site["site"], site["clients"]["team-a"]
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(1_000_000))
    html = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
    before = (count(live, PanelDocument), count(live, PanelBlob))
    cases = ((("log.csv", zipped.getvalue(), "log"), 400, "ZIP archive"),
             (("report.pdf", html, "report"), 400, "HTML"),
             (("big.md", b"# big\n" + b"word " * (UPLOAD_LIMIT // 5 + 1000), "report"), 413, "larger than the limit"),
             (("report.md", b"# fine\n", "essay"), 400, "report or a training log"))
    for (name, data, purpose), status, words in cases:
        response = upload(a, name, data, purpose)
        assert response.status_code == status, (name, response.text[-600:])
        message = error_of(response)
        assert words in message, message
        assert len(re.findall(r'class="error"', response.text)) == 1  # one clear message
    assert (count(live, PanelDocument), count(live, PanelBlob)) == before


# --------------------------------------------------------------------------- the panel open for scoring


def agree(level_strong: int, level_weak: int) -> dict[str, int]:
    return {c: (level_strong if k % 2 else level_weak + (k % 2)) for k, c in enumerate(CRITERIA)}


@pytest.fixture(scope="module")
def live(site: dict) -> dict:
    """Anchors uploaded and scored alike by the panel; A assigned to e1, e2 and e-conf, every other team to e1,
    e2 and e-out; the deadline passed; e-conf then declares an affiliation with A's consortium; round 1 open."""
    site_ = site["site"]
    assert site_.store is not None
    with site_.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for anchor in ctx.anchors:
            panel_documents.upload(s, ctx, f"# Anchor {anchor}\n\nA sample report.\n".encode(), f"{anchor}.md",
                                   "report", "sec", anchor_id=anchor)
        for team in ctx.teams:
            for expert in ("exp-one", "exp-two", "exp-conf" if team.id == TEAM_A else "exp-out"):
                panel.assign(s, ctx, team.id, expert, "sec")
        panel_steps.advance(s, ctx, "calibration", "sec")
    with site_.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for expert in ("exp-two", "exp-conf", "exp-out"):
            for anchor, scores in zip(ctx.anchors, ({c: 4 + (k % 2) for k, c in enumerate(CRITERIA)},
                                                    {c: 1 + (k % 2) for k, c in enumerate(CRITERIA)}), strict=True):
                panel.submit_review(s, ctx, expert, anchor, "calibration", scores,
                                    {c: "anchor note" for c in CRITERIA})
    # e1 scores the anchors through the pages
    e1 = site["clients"]["exp-one"]
    for anchor, base in zip(ctx.anchors, (4, 1), strict=True):
        url = f"{BASE}/anchors/{anchor}"
        form = {f"score_{c}": str(base + (k % 2)) for k, c in enumerate(CRITERIA)}
        form.update({f"just_{c}": "anchor note" for c in CRITERIA})
        response = post(e1, url, f"{url}/review", form)
        assert response.status_code == 303, response.text[-800:]
    pass_deadline(site_)
    team = ctx.team(TEAM_A)
    with site_.store.session() as s:
        panel.declare(s, "exp-conf", affiliations=[team.members[0]], relations=[], conflicts=[])
    with site_.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        panel_steps.advance(s, ctx, "round1", "sec")
        codes = panel.codes(s, ctx)
    return {**site, "codes": codes, "ctx": ctx}


def test_expert_dashboard_lists_assigned_submissions_by_code_only(live: dict) -> None:
    e1, conf = live["clients"]["exp-one"], live["clients"]["exp-conf"]
    code_a = live["codes"][TEAM_A]
    page = e1.get("/expert")
    assert page.status_code == 200
    assert f"Submission {code_a}" in page.text and "round 1" in page.text
    assert f"{BASE}/submissions/{code_a}" not in conf.get("/expert").text  # conflicted: not listed
    deadline = format_local(live["ctx"].panel.submission_deadline, "Asia/Seoul")
    assert "KST" in deadline and deadline in page.text  # deadlines in the programme's time zone
    assert live["clients"]["team-a"].get("/expert").status_code == 403


def test_unassigned_and_conflicted_experts_get_404_as_for_a_missing_code(live: dict) -> None:
    site_, clients, code_a = live["site"], live["clients"], live["codes"][TEAM_A]
    with site_.store.session(readonly=True) as s:
        pdf = next(d for d in panel_documents.submission(s, live["ctx"], TEAM_A) if d.kind == "pdf")
    missing = next(c for c in "ABCDEFGHIJ" if c not in live["codes"].values())
    e1 = clients["exp-one"]
    assert e1.get(f"{BASE}/submissions/{code_a}").status_code == 200
    png = e1.get(f"{BASE}/submissions/{code_a}/documents/{pdf.id}/pages/1.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["cache-control"].startswith("private") and png.content.startswith(b"\x89PNG")
    reference = e1.get(f"{BASE}/submissions/{missing}")
    assert reference.status_code == 404
    expected = error_of(reference).replace(f"&#39;{missing}&#39;", "CODE")
    for who in ("exp-out", "exp-conf"):
        client = clients[who]
        for url in (f"{BASE}/submissions/{code_a}", f"{BASE}/submissions/{code_a}/documents/{pdf.id}/pages/1.png"):
            response = client.get(url)
            assert response.status_code == 404, (who, url)
            assert error_of(response).replace(f"&#39;{code_a}&#39;", "CODE") == expected
        token = csrf_of(client.get("/expert").text)
        refused = client.post(f"{BASE}/submissions/{code_a}/review", data={"csrf_token": token, **review_form(3)})
        assert refused.status_code == 404
    # another team's document id under a code the expert may read: not that submission's document
    code_b = live["codes"][TEAM_B]
    assert e1.get(f"{BASE}/submissions/{code_b}/documents/{pdf.id}/pages/1.png").status_code == 404
    assert count(site_, PanelReview) == 8  # only the calibration scores


def test_blinded_pages_name_no_team_member_or_file(live: dict) -> None:
    e1, ctx = live["clients"]["exp-one"], live["ctx"]
    names = [n for t in ctx.teams for n in team_names(t)] + [n.rsplit(".", 1)[0] for n in A_FILES]
    dashboard = e1.get("/expert").text
    declaration = re.search(r'<section class="card" id="declaration">.*?</section>', dashboard, re.S)
    assert declaration is not None
    pages = [dashboard.replace(declaration.group(0), "")]
    pages += [e1.get(f"{BASE}/submissions/{code}").text for code in live["codes"].values()]
    pages += [e1.get(f"{BASE}/anchors/{a}").text for a in ctx.anchors]
    for html in pages:
        lowered = html.lower()
        leaked = [n for n in names if n.lower() in lowered]
        assert not leaked, leaked
    a_page = pages[1 + list(live["codes"]).index(TEAM_A)]
    assert "█████" in a_page and "<table>" in a_page and a_page.count("<svg") == 3
    assert "<script" not in a_page.lower()
    korean = e1.get(f"{BASE}/submissions/{live['codes'][TEAM_A]}?lang=ko").text
    assert f"제출물 {live['codes'][TEAM_A]}" in korean and "기술 독창성" in korean and "미흡" in korean
    assert e1.get("/expert?lang=en").status_code == 200  # back to English for the tests that follow


def test_round1_other_scores_hidden_second_submit_refused_csrf_and_escaping(live: dict) -> None:
    site_, e1, code_a = live["site"], live["clients"]["exp-one"], live["codes"][TEAM_A]
    with site_.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        panel.submit_review(s, ctx, "exp-two", TEAM_A, "1", {c: 2 for c in CRITERIA},
                            {c: "e2-secret-marker" for c in CRITERIA}, identified="no")
    url = f"{BASE}/submissions/{code_a}"
    before = e1.get(url).text
    assert "e2-secret-marker" not in before and "Submit and lock the review" in before
    no_csrf = e1.post(f"{url}/review", data=review_form(4, identified="no"))
    assert no_csrf.status_code == 403 and count(site_, PanelReview) == 9
    incomplete = post(e1, url, f"{url}/review", review_form(4, HOSTILE))  # no identification answer
    assert incomplete.status_code == 400 and "could you identify the team" in error_of(incomplete)
    assert "&lt;script&gt;" in incomplete.text and "<script>alert" not in incomplete.text  # kept, escaped
    locked = post(e1, url, f"{url}/review", review_form(4, HOSTILE, identified="unsure", identified_as=HOSTILE))
    assert locked.status_code == 303
    page = e1.get(locked.headers["location"]).text
    with site_.store.session(readonly=True) as s:
        mine = panel.review_of(s, live["ctx"], "1", TEAM_A, "exp-one")
    assert mine is not None and mine.content_sha256 in page and "Your review is locked." in page
    assert "&lt;script&gt;alert" in page and "<script>alert" not in page and "<b>bold</b>" not in page
    assert "e2-secret-marker" not in page  # still round 1: nobody else's scores
    again = post(e1, f"{BASE}/submissions/{live['codes'][TEAM_B]}", f"{url}/review",
                 review_form(5, identified="no"))
    assert again.status_code == 400 and "locked" in error_of(again)
    assert count(site_, PanelReview) == 10


def test_round2_distribution_discussion_and_revision(live: dict) -> None:
    site_, clients, code_a = live["site"], live["clients"], live["codes"][TEAM_A]
    e1 = clients["exp-one"]
    with site_.store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for team, expert in panel.missing_reviews(s, ctx, "1"):
            panel.submit_review(s, ctx, expert, team, "1", {c: 3 for c in CRITERIA}, {c: "ok" for c in CRITERIA},
                                identified="no")
        panel_steps.advance(s, ctx, "round2", "sec")
        panel.post_comment(s, ctx, TEAM_A, "exp-two", "e2 thinks the logs are fine")
    url = f"{BASE}/submissions/{code_a}"
    page = e1.get(url).text
    assert "How the panel scored in round 1" in page and "expert 1" in page
    assert "e2 thinks the logs are fine" in page and ">exp-two<" not in page and "e2-secret-marker" not in page
    posted = post(e1, url, f"{url}/comments", {"body": HOSTILE})
    assert posted.status_code == 303
    page = e1.get(url).text
    assert "&lt;script&gt;alert" in page and "<script>alert" not in page
    assert count(site_, PanelComment) == 2
    revised = post(e1, url, f"{url}/revise", review_form(3, "after discussion"))
    assert revised.status_code == 303, revised.text[-600:]
    page = e1.get(url).text
    assert "locked review (round 2)" in page
    with site_.store.session(readonly=True) as s:
        second = panel.review_of(s, live["ctx"], "2", TEAM_A, "exp-one")
    assert second is not None and second.review.identified == "unsure" and second.content_sha256 in page


def test_declaration_form_escapes_and_keeps_teams(live: dict) -> None:
    out = live["clients"]["exp-out"]
    value = f"{PROGRAM}/{TEAM_B}"
    response = post(out, "/expert", "/expert/declaration",
                    {"affiliations": HOSTILE + "\nUniversity of e-out", "relations": "", "conflicts": value})
    assert response.status_code == 303
    page = out.get("/expert").text
    assert "&lt;script&gt;alert" in page and "<script>alert" not in page
    assert re.search(rf'value="{re.escape(value)}" checked', page)
    bogus = post(out, "/expert", "/expert/declaration", {"affiliations": "x", "conflicts": "nope/nobody"})
    assert bogus.status_code == 400 and "unknown team" in error_of(bogus)


def test_frozen_submission_refuses_withdrawal(live: dict) -> None:
    site_, a = live["site"], live["clients"]["team-a"]
    page = a.get("/team/panel").text
    assert "frozen" in page and "Withdraw" not in page
    with site_.store.session(readonly=True) as s:
        target = panel_documents.submission(s, live["ctx"], TEAM_A)[0].id
    token = csrf_of(page)
    response = a.post(f"/team/panel/stages/{STAGE}/documents/{target}/withdraw", data={"csrf_token": token})
    assert response.status_code == 400 and "frozen" in error_of(response)
    late = upload(a, "late.md", b"# late\n")
    assert late.status_code == 400 and "deadline" in error_of(late)
