"""The "user arena" section of stage reports and of the public stage page, drawn from a stage decided with a real
arena (battles played through the services with scripted entrants): both rankings with intervals, panel:user
values, votes per pair, votes not counted by reason, the vote-drop and rigging figures, segments, the ratings, the
result's sha256 — in HTML and Markdown, English and Korean — and never a rater's username."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from arena_support import PROGRAM, STAGE, TEAMS, freeze, play, rater, scripted_factory, write_arena_program
from helpers import write_bench_scores
from simsa.audit.chain import canonical
from simsa.demo import write_example_scores
from simsa.report import arena_section
from simsa.report.render import render_report
from simsa.services import arena, arena_answers, corrections, decisions, gates, programs
from simsa.services.score_files import read_score_file
from web_support import LiveSite

OPENS = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
CLOSES = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
DECIDED = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
RATERS = ("rater-ann", "rater-bo", "rater-cy", "rater-dee")
STRENGTH = {"baekdu": 1.2, "halla": 0.6, "jiri": 0.0, "seorak": -0.5, "taebaek": -1.2}


@dataclass
class Built:
    live: LiveSite
    decision: dict

    @property
    def doc(self) -> dict:
        return self.decision["user_arena"]


def _ready(store, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """Stage 1's other scores (benchmarks, expert panel rows) and gate results, as a secretariat records them."""
    path = write_arena_program(folder, OPENS, CLOSES)
    with store.session() as s:
        programs.for_writing(s, str(path), "test")
    write_example_scores(folder / "panel.csv", users=False)
    write_bench_scores(folder / "bench.json")
    with store.session() as s:
        for name in ("panel.csv", "bench.json"):
            corrections.import_scores(s, PROGRAM, read_score_file(folder / name).items, "test", source_name=name)
        for team in TEAMS:
            gates.record_result(s, PROGRAM, stage_id=STAGE, team_id=team, gate_id="originality", passed=True,
                                evidence="lineage check", actor="test")


def _play(store) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    who = {name: rater(store, name) for name in RATERS}

    def choose(_view, req):  # type: ignore[no-untyped-def]
        if req.gold is not None:
            return "left" if req.left_team == "good" else "right"
        diff = STRENGTH[req.left_team] - STRENGTH[req.right_team]
        if rng.random() < 0.1:
            return "tie"
        return "left" if rng.random() < 1 / (1 + np.exp(-diff)) else "right"

    start = OPENS + dt.timedelta(days=2)
    for k in range(24):
        for i, name in enumerate(RATERS):
            play(store, who[name], choose, now=start + dt.timedelta(hours=k, minutes=5 * i))  # curated prompts
    arena_answers.use_factory(scripted_factory(frozenset({"halla"})))  # halla signs its answers for a while
    try:
        for k in range(20):
            view = play(store, who[RATERS[0]], choose, now=start + dt.timedelta(days=1, minutes=5 * k))
            if view.vote_status == "void":
                break
    finally:
        arena_answers.use_factory(scripted_factory())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    work = tmp_path_factory.mktemp("arena-report")
    live = LiveSite(f"sqlite:///{work / 'simsa.db'}").start()
    arena_answers.use_factory(scripted_factory())
    try:
        store = live.store
        assert store is not None
        _ready(store, work)
        freeze(store)
        _play(store)
        with store.session() as s:
            ctx = arena.context(s, PROGRAM, STAGE)
            vote_id = next(r.vote_id for r in arena.vote_records(s, ctx) if r.counts)
            arena.exclude(s, ctx, "admin:test", vote_id=vote_id, reason="rater reported a mistaken click",
                          now=CLOSES + dt.timedelta(hours=2))
        with store.session() as s:
            loaded = programs.stored(s, PROGRAM)
            decision = decisions.decide_and_store(s, loaded, STAGE, "test", at=DECIDED)
        yield Built(live=live, decision=decision)
    finally:
        arena_answers.use_factory(None)
        live.stop()


def section(text: str, start: str = '<section id="user-arena">', end: str = "</section>") -> str:
    i = text.index(start)
    j = text.find(end, i + len(start))
    return text[i:] if j < 0 else text[i:j]


def no_raters(text: str) -> None:
    for name in RATERS:
        assert name not in text, f"rater username {name} leaked"


# ---------------------------------------------------------------- the decision


def test_decision_carries_the_arena_result_and_its_hash(built: Built) -> None:
    doc = built.doc
    assert doc["kind"] == "simsa.arena.result/1"
    assert built.decision["user_arena_sha256"] == hashlib.sha256(canonical(doc).encode("utf-8")).hexdigest()
    # the vote on answers where halla signed its name is void
    assert doc["exclusions"]["identity leak"] == doc["votes"]["void"] == 1
    assert doc["exclusions"]["excluded by the secretariat: rater reported a mistaken click"] == 1
    assert doc["votes"]["gold_pass"] >= len(RATERS) * 2  # every tenth battle of a rater is an attention check
    user = {t["team"]: t["breakdown"]["user"] for t in built.decision["teams"]}
    for s in doc["scores"]:
        assert user[s["team"]]["raw"] == pytest.approx(s["value"])


# ---------------------------------------------------------------- HTML and Markdown


def test_html_report_has_the_arena_section(built: Built) -> None:
    html = render_report(built.decision, [], [], "html", "en")
    no_raters(html)
    part = section(html)
    doc = built.doc
    assert "<h2>User arena</h2>" in part
    assert f"{doc['votes']['counted']} counted votes from {doc['votes']['raters']} invited raters" in part
    for r in doc["style_controlled"]["ratings"]:
        assert f"{r['rating']:.0f} [{r['lower']:.0f}, {r['upper']:.0f}]" in part
    for r in doc["raw"]["ratings"]:
        assert f"{r['rating']:.0f} [{r['lower']:.0f}, {r['upper']:.0f}]" in part
    for s in doc["scores"]:
        assert f"{s['value']:.2f} ± {s['stderr']:.2f}" in part
    # the counted ranking is marked, the table follows its order
    assert 'Style-controlled rating [95% interval] <span class="tag">counts</span>' in part
    order = [r["model"] for r in doc["style_controlled"]["ratings"]]
    names = {t["team"]: t["name"] for t in built.decision["teams"]}
    positions = [part.index(f'<td class="name">{names[m]}') for m in order]
    assert positions == sorted(positions)
    assert part.count("<svg") == 2
    assert 'aria-label="Arena ratings with 95% intervals, raw and style-controlled"' in part
    assert 'aria-label="Counted votes per pair of entrants"' in part
    for p in doc["pairs"]:
        assert f"{names[p['a']]} – {names[p['b']]}" in part
        assert f"{p['votes']} / {p['quota']}" in part
    assert "identity leak" in part and "rater reported a mistaken click" in part
    assert doc["segments"][0]["manifest_sha256"] in part and built.decision["user_arena_sha256"] in part
    assert "Votes to drop to change the top rank" in part


def test_html_report_in_korean(built: Built) -> None:
    part = section(render_report(built.decision, [], [], "html", "ko"))
    assert "<h2>사용자 평가 아레나</h2>" in part and "대결 쌍별 투표 수" in part and "스타일 보정" in part
    assert "User arena" not in part


def test_markdown_report_has_the_arena_section(built: Built) -> None:
    md = render_report(built.decision, [], [], "md", "en")
    no_raters(md)
    part = section(md, "## User arena", "\n## ")
    doc = built.doc
    assert "### Ranking with intervals" in part and "### Votes per pair" in part
    assert "### How many votes would change the result" in part and "### Segments" in part
    top = doc["style_controlled"]["ratings"][0]
    assert f"| 1 | Team {top['model'].title()} |" in part
    assert f"`{built.decision['user_arena_sha256']}`" in part
    ko = section(render_report(built.decision, [], [], "md", "ko"), "## 사용자 평가 아레나", "\n## ")
    assert "### 구간" in ko


def test_fragile_figures_warn(built: Built) -> None:
    decision = copy.deepcopy(built.decision)
    rob = decision["user_arena"]["robustness"]
    rob["drop_top"] = {**rob["drop_top"], "votes_needed": 1, "fraction": 0.005, "warning": True, "verified": True}
    part = section(render_report(decision, [], [], "html", "en"))
    assert "Fewer than 1% of the votes suffice to change the result" in part
    assert "1 of" in part and "(0.50%)" in part
    calm = copy.deepcopy(built.decision)
    for key in ("drop_cut", "drop_top", "rigging"):
        if isinstance(calm["user_arena"]["robustness"].get(key), dict):
            calm["user_arena"]["robustness"][key]["warning"] = False
    calm["user_arena"]["robustness"]["warning"] = False
    assert "Fewer than 1% of the votes" not in section(render_report(calm, [], [], "html", "en"))


def test_no_arena_no_section_and_a_problem_is_said(built: Built) -> None:
    bare = {k: v for k, v in built.decision.items() if k not in ("user_arena", "user_arena_sha256")}
    assert '<section id="user-arena">' not in render_report(bare, [], [], "html", "en")
    assert "User arena" not in render_report(bare, [], [], "md", "en")
    broken = copy.deepcopy(built.decision)
    broken["user_arena"].update(raw=None, style_controlled=None, scores=[], problem="no ranking yet: no votes")
    part = section(render_report(broken, [], [], "html", "en"))
    assert "The arena has no ranking: no ranking yet: no votes" in part and "<svg" not in part


def test_hostile_text_stays_inert(built: Built) -> None:
    decision = copy.deepcopy(built.decision)
    decision["user_arena"]["exclusions"] = {"<script>alert(1)</script> | **x**": 2}
    html = render_report(decision, [], [], "html", "en")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    md = render_report(decision, [], [], "md", "en")
    assert "\\<script>alert(1)\\</script> \\| \\*\\*x\\*\\*" in md  # the report's Markdown escaping


def test_view_model_orders_by_the_counted_ranking(built: Built) -> None:
    view = arena_section.arena_view(built.decision, lambda t: [str(t)], "en")
    assert view is not None
    assert [r["team_id"] for r in view["rows"]] == [r["model"] for r in built.doc["style_controlled"]["ratings"]]
    raw_first = copy.deepcopy(built.decision)
    raw_first["user_arena"]["ranking"] = "raw"
    view = arena_section.arena_view(raw_first, lambda t: [str(t)], "en")
    assert view is not None and view["counted"] == "raw"
    assert [r["team_id"] for r in view["rows"]] == [r["model"] for r in built.doc["raw"]["ratings"]]


# ---------------------------------------------------------------- the public stage page


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_public_stage_page_shows_the_section(built: Built, lang: str) -> None:
    with built.live.client() as client:
        page = client.get(f"/programs/{PROGRAM}/stages/{STAGE}?lang={lang}")
    assert page.status_code == 200
    html = page.text
    no_raters(html)
    part = section(html)
    assert built.decision["user_arena_sha256"] in part
    assert part.count("<svg") == 2
    for s in built.doc["scores"]:
        assert f"{s['value']:.2f} ± {s['stderr']:.2f}" in part
    assert ("사용자 평가 아레나" if lang == "ko" else "User arena") in part


def test_public_report_downloads_carry_the_section(built: Built) -> None:
    base = f"/programs/{PROGRAM}/stages/{STAGE}"
    with built.live.client() as client:
        md = client.get(f"{base}/report.md")
        html = client.get(f"{base}/report.html")
    assert md.status_code == 200 and "## User arena" in md.text
    assert html.status_code == 200 and '<section id="user-arena">' in html.text
    no_raters(md.text + html.text)
