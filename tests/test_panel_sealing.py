"""The public audit log cannot unblind the panel: until the stage is decided, the panel's entries are published
sealed (place, time, links and hash kept; actor, row and payload withheld), and the whole entry with the decision.

The attack: an expert who locked a review of "Submission X" reads the log (pages, API, export, trail) to learn
which team that review, its documents or its discussion belong to, or who else reviews whom.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from panel_fixtures import build_decided_panel
from simsa.audit.chain import verify_chain
from simsa.audit.log import entries_from_export
from simsa.services import decisions, panel, programs
from web_support import PROGRAM, STAGE, LiveSite

PANEL_TABLES = ("panel_documents", "panel_assignments", "panel_codes", "panel_reviews", "panel_comments",
                "panel_events")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveSite, dict]]:
    work = tmp_path_factory.mktemp("sealing")
    live = LiveSite(f"sqlite:///{work / 'simsa.db'}").start()
    try:
        assert live.store is not None
        yield live, build_decided_panel(live.store, work, decide=False)
    finally:
        live.stop()


# A panel action (not the program file's `[stages.expert_panel.calibration]`, which is public).
PANEL_ACTION = re.compile(r"(?<![\w.])panel\.(?:review|assign|unassign|comment|document|code|round[12]|closed|blob|"
                          r"calibration)(?![\w\]])")


def _leaks(text: str, built: dict) -> list[str]:
    """Any panel row or action in what the public received (expert accounts and their declarations are public:
    they say who is on the panel, not who reviews whom)."""
    return [t for t in PANEL_TABLES if t in text] + PANEL_ACTION.findall(text)


def test_before_the_decision_the_public_log_withholds_the_panel(site: tuple[LiveSite, dict]) -> None:
    live, built = site
    expert = built["experts"][0]
    anyone, e = live.client(), live.signed_in(expert, built["password"])
    try:
        for client in (anyone, e):
            export = client.get("/api/v1/audit/export").json()
            assert export["sealed"] > 0
            sealed = [x for x in export["entries"] if x.get("sealed")]
            assert all(x["actor"] == "" and x["entity"] == "" and x["entity_id"] is None for x in sealed)
            assert not _leaks(json.dumps(export, ensure_ascii=False), built)
            # the chain still links through the sealed entries, and the head is the server's
            entries = entries_from_export(export)
            assert verify_chain(entries, export["head"]) == []
            download = client.get("/audit/export.json")
            assert download.status_code == 200 and not _leaks(download.text, built)
            page = client.get("/api/v1/audit", params={"limit": 500}).json()
            assert not _leaks(json.dumps(page), built)
            trail = client.get("/api/v1/audit/trail").json()
            assert not _leaks(json.dumps(trail), built)
            one = client.get(f"/api/v1/audit/{sealed[-1]['seq']}").json()
            assert one["sealed"] and one["payload"] == {"sealed": one["sealed"]}
            html = client.get("/audit", params={"page": 1}).text
            assert not _leaks(html, built)
            entry_page = client.get(f"/audit/{sealed[-1]['seq']}").text
            assert not _leaks(entry_page, built) and "published with the stage" in entry_page
            # a filter on what a sealed entry withholds finds nothing
            assert not client.get("/api/v1/audit/trail", params={"action": "panel.review"}).json()["entries"]
            assert "panel.review.lock" not in client.get("/audit", params={"action": "panel."}).text
        # the expert's own review cannot be traced to a team through the log
        with live.store.session(readonly=True) as s:  # type: ignore[union-attr]
            ctx = panel.context(s, PROGRAM, STAGE)
            own = [r for r in panel.reviews(s, ctx, "1") if r.expert == expert]
        assert own
        export = e.get("/api/v1/audit/export").json()
        for review in own:
            assert review.content_sha256 not in json.dumps(export)
    finally:
        anyone.close()
        e.close()


def test_the_secretariat_reads_everything_and_the_server_verifies_every_entry(site: tuple[LiveSite, dict]) -> None:
    live, built = site
    admin = live.signed_in(built["admin"], built["password"])
    try:
        export = admin.get("/api/v1/audit/export").json()
        assert "sealed" not in export and "panel_reviews" in json.dumps(export)
        assert verify_chain(entries_from_export(export), export["head"]) == []
        verified = admin.get("/api/v1/audit/verify").json()
        assert verified["ok"] is True
    finally:
        admin.close()


def test_after_the_decision_everything_is_published_and_matches_the_sealed_hashes(
        site: tuple[LiveSite, dict]) -> None:
    live, _ = site
    with live.client() as anyone:
        before = anyone.get("/api/v1/audit/export").json()
    with live.store.session() as s:  # type: ignore[union-attr]
        decisions.decide_and_store(s, programs.stored(s, PROGRAM), STAGE, "secretariat")
    with live.client() as anyone:
        after = anyone.get("/api/v1/audit/export").json()
    assert "sealed" not in after
    entries = entries_from_export(after)
    assert verify_chain(entries, after["head"]) == []  # every hash recomputed from the published content
    published = {x["seq"]: x for x in after["entries"]}
    for x in before["entries"]:  # what was sealed is now readable, under the hash committed before
        assert published[x["seq"]]["hash"] == x["hash"]
        if x.get("sealed"):
            assert published[x["seq"]]["entity"] in (*PANEL_TABLES, "panel_blobs")
    assert "panel_reviews" in json.dumps(after)


def test_an_edited_sealed_entry_fails_verification_of_the_published_log(tmp_path: Path,
                                                                        site: tuple[LiveSite, dict]) -> None:
    live, _ = site
    with live.client() as anyone:
        doc = anyone.get("/api/v1/audit/export").json()
    tampered = json.loads(json.dumps(doc))
    victim = next(x for x in tampered["entries"] if x["entity"] == "panel_reviews")
    victim["payload"]["row"]["expert"] = "someone-else"
    problems = verify_chain(entries_from_export(tampered), tampered["head"])
    assert any(p.kind == "edited" and p.seq == victim["seq"] for p in problems)
