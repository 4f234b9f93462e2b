"""The "expert panel" section of stage reports and of the public stage page, drawn from a stage decided with a real
closed panel (built through the services in `panel_fixtures`): agreement with Krippendorff's reading, ICCs or why
not, anonymised severities with outlier flags, identification rate, round-2 shift, both aggregates and which one
counts, the rubric's and the result document's sha256 — in HTML and Markdown, English and Korean — and never an
expert's username."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from panel_fixtures import EXPERTS, build_decided_panel
from simsa.audit.chain import canonical
from simsa.report import panel_section
from simsa.report.render import render_report
from simsa.services import panel_results
from web_support import LiveSite


@dataclass
class Built:
    live: LiveSite
    info: dict

    @property
    def decision(self) -> dict:
        return self.info["decision"]

    @property
    def doc(self) -> dict:
        return self.info["decision"]["expert_panel"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    work = tmp_path_factory.mktemp("panel-report")
    live = LiveSite(f"sqlite:///{work / 'simsa.db'}").start()
    try:
        assert live.store is not None
        yield Built(live=live, info=build_decided_panel(live.store, work))
    finally:
        live.stop()


def section(text: str, start: str, end: str) -> str:
    """The part of a document from `start` up to the next `end` after it."""
    i = text.index(start)
    j = text.find(end, i + len(start))
    return text[i:] if j < 0 else text[i:j]


def no_usernames(text: str) -> None:
    for name in EXPERTS:
        assert name not in text, f"expert username {name} leaked"


# ---------------------------------------------------------------- the decision carries the panel's result


def test_decision_carries_the_anonymised_result_and_its_hash(built: Built) -> None:
    doc = built.doc
    assert doc["schema"] == "simsa.panel.result/1"
    assert doc["experts"] == ["E1", "E2", "E3", "E4", "E5"]
    digest = hashlib.sha256(canonical(doc).encode("utf-8")).hexdigest()
    assert built.decision["expert_panel_sha256"] == digest
    with built.live.store.session(readonly=True) as s:  # type: ignore[union-attr]
        assert panel_results.stored_result(s, built.info["program"], built.info["stage"]) == doc
    no_usernames(json.dumps(built.decision))


# ---------------------------------------------------------------- HTML


def test_html_report_has_the_panel_section(built: Built) -> None:
    html = render_report(built.decision, [], [], "html", "en")
    no_usernames(html)
    part = section(html, '<section id="expert-panel">', "</section>")
    doc = built.doc
    agreement = doc["agreement"]
    assert "<h2>Expert panel</h2>" in part
    assert f"<strong>{agreement['alpha']:.3f}</strong>" in part
    low, high = agreement["alpha_interval"]
    assert f"[{low:.3f}, {high:.3f}]" in part
    # the fixture's experts disagree (one lenient, two harsh): Krippendorff's reading says so, as a warning
    assert agreement["alpha"] < 0.667
    assert "the experts did not agree: read the points with caution" in part
    assert 'class="notice fragile xp-verdict"' in part
    icc = agreement["icc"]
    assert f"{icc['icc_a1']:.3f}" in part and f"{icc['icc_c1']:.3f}" in part
    for rater in agreement["raters"]:
        assert f"<td class=\"name\">{rater['id']}" in part
    yes = sum(t["identified"]["yes"] for t in doc["teams"])
    answers = sum(sum(t["identified"].values()) for t in doc["teams"])
    assert yes == 3 and answers == 25
    assert f"recognised the team in {yes} of {answers} reviews (12%)" in part
    assert doc["rubric_sha256"] in part and built.decision["expert_panel_sha256"] in part
    assert part.count("<svg") == 2  # the totals dot plot and the severity chart
    assert 'aria-label="Each expert\'s total per team, with the panel\'s aggregate"' in part
    assert 'aria-label="Severity of each expert"' in part
    # both aggregates per team, the one that counts marked, with its standard error
    assert "Raw aggregate <span class=\"tag\">counts</span>" in part
    for team in doc["teams"]:
        assert f"{team['raw']:.2f}" in part and f"{team['value']:.2f} ± {team['stderr']:.2f}" in part


def test_html_report_in_korean_and_both(built: Built) -> None:
    ko = render_report(built.decision, [], [], "html", "ko")
    part = section(ko, '<section id="expert-panel">', "</section>")
    assert "<h2>전문가 평가단</h2>" in part
    assert "전문가들의 평가가 일치하지 않았습니다" in part
    assert "평가 25건 중 3건에서 팀을 알아보았다고 답했습니다(12%)" in part
    assert "Expert panel" not in part
    no_usernames(ko)
    both = render_report(built.decision, [], [], "html", "both")
    part = section(both, '<section id="expert-panel">', "</section>")
    assert "Expert panel" in part and "전문가 평가단" in part
    no_usernames(both)


# ---------------------------------------------------------------- Markdown


def test_markdown_report_has_the_panel_section(built: Built) -> None:
    md = render_report(built.decision, [], [], "md", "en")
    no_usernames(md)
    part = section(md, "## Expert panel", "\n## ")
    doc = built.doc
    assert f"**Krippendorff's α (interval)**: **{doc['agreement']['alpha']:.3f}**" in part
    assert "> **⚠ α < 0.667: the experts did not agree: read the points with caution.**" in part
    assert "Rule: the mean of the experts' totals (0–100); the raw aggregate counts" in part
    revised = sum(t["round2_revised"] for t in doc["teams"])
    shifts = [r["shift"] for r in doc["round_shift"]]
    assert revised == 4
    assert f"{revised} of {len(shifts)} reviews were revised in round 2; mean shift " \
           f"+{sum(shifts) / len(shifts):.2f} points." in part
    rows = {line.split(" | ")[0].lstrip("| "): line for line in part.splitlines() if line.startswith("| Team ")}
    baekdu = next(t for t in doc["teams"] if t["team"] == "baekdu")
    assert rows["Team Baekdu"].endswith(f"| {baekdu['round2_revised']} / 5 | +{baekdu['mean_shift']:.2f} |")
    assert f"`{doc['rubric_sha256']}`" in part and f"`{built.decision['expert_panel_sha256']}`" in part
    for i in range(1, 6):
        assert re.search(rf"^\| E{i} \| [+−]\d", part, re.M)
    # the section sits with the report's other sections, after the robustness analysis
    assert md.index("## Robustness") < md.index("## Expert panel") < md.index("## Appeals")


def test_markdown_report_in_korean(built: Built) -> None:
    md = render_report(built.decision, [], [], "md", "ko")
    part = section(md, "## 전문가 평가단", "\n## ")
    assert "크리펜도르프 α (등간 척도)" in part
    assert "평가 25건 중 4건이 2라운드에서 수정되었습니다" in part
    assert "| 백두팀 | 5 |" in part
    no_usernames(md)


def test_json_report_passes_the_panel_through(built: Built) -> None:
    doc = json.loads(render_report(built.decision, [], [], "json", "both"))
    assert doc["decision"]["expert_panel"] == built.doc
    assert doc["decision"]["expert_panel_sha256"] == built.decision["expert_panel_sha256"]


def test_no_panel_no_section(built: Built) -> None:
    bare = {k: v for k, v in built.decision.items() if not k.startswith("expert_panel")}
    for lang in ("en", "ko"):
        assert 'id="expert-panel"' not in render_report(bare, [], [], "html", lang)
        md = render_report(bare, [], [], "md", lang)
        assert "## Expert panel" not in md and "## 전문가 평가단" not in md


# ---------------------------------------------------------------- the view model's readings


def _view(decision: dict, lang: str = "en") -> dict:
    view = panel_section.panel_view(decision, lambda t: [str(t)], lang, [])
    assert view is not None
    return view


@pytest.mark.parametrize(("alpha", "reading"), [(0.91, "good"), (0.8, "good"), (0.7, "tentative"),
                                                (0.667, "tentative"), (0.5, "poor"), (None, "undefined")])
def test_krippendorff_readings(built: Built, alpha: float | None, reading: str) -> None:
    decision = copy.deepcopy(built.decision)
    decision["expert_panel"]["agreement"]["alpha"] = alpha
    view = _view(decision)
    assert view["verdict"] == reading == panel_section.verdict(alpha)
    html = render_report(decision, [], [], "html", "en")
    part = section(html, '<section id="expert-panel">', "</section>")
    assert ("notice fragile" in part) is (reading == "poor")
    assert ("⚠" in part) is (reading in ("poor", "tentative"))


def test_icc_reasons_outliers_and_published_names(built: Built) -> None:
    decision = copy.deepcopy(built.decision)
    doc = decision["expert_panel"]
    doc["agreement"].update(icc=None, n_missing=3)
    doc["agreement"]["raters"][4]["outlier"] = True
    view = _view(decision)
    assert view["icc"] is None
    assert view["icc_reason"] == ["The ICCs are not defined: 3 of 25 expert × team cells are empty (not every expert "
                                  "scored every team), and they need complete data."]
    assert view["outliers"] == ["Flagged as outliers: E5."]
    md = render_report(decision, [], [], "md", "en")
    assert "| ⚑ E5 |" in md
    html = render_report(decision, [], [], "html", "en")
    assert "⚑ E5 <span class=\"tag\">outlier</span>" in html
    # a programme that publishes its experts' names: the document holds names, and the report says so
    doc["experts"] = ["Dr. Kim", "Dr. Lee", "Dr. Park", "Dr. Choi", "Dr. Jung"]
    for rater, name in zip(doc["agreement"]["raters"], doc["experts"], strict=True):
        rater["id"] = name
    view = _view(decision)
    assert view["named"] and "publishes the experts' names" in view["intro"][0]
    assert "| Dr. Kim |" in render_report(decision, [], [], "md", "en")


def test_hostile_text_in_a_stored_document_stays_inert(built: Built) -> None:
    decision = copy.deepcopy(built.decision)
    decision["expert_panel"]["agreement"]["raters"][0]["id"] = "<script>alert(1)</script>"
    decision["expert_panel"]["criteria_alpha"] = {"x|<b>": 0.5}
    html = render_report(decision, [], [], "html", "en")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = render_report(decision, [], [], "md", "en")
    assert not re.search(r"(?<!\\)<(script|b)>", md)  # Markdown shows \< as a literal <
    assert "\\<script>alert(1)\\</script>" in md and "x\\|\\<b>" in md


# ---------------------------------------------------------------- the public stage page


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_public_stage_page_shows_the_section(built: Built, lang: str) -> None:
    info = built.info
    with built.live.client() as client:
        page = client.get(f"/programs/{info['program']}/stages/{info['stage']}?lang={lang}")
    assert page.status_code == 200
    html = page.text
    no_usernames(html)
    part = section(html, '<section id="expert-panel">', "</section>")
    alpha = built.doc["agreement"]["alpha"]
    assert f"<strong>{alpha:.3f}</strong>" in part
    assert built.decision["expert_panel_sha256"] in part and built.doc["rubric_sha256"] in part
    assert part.count("<svg") == 2
    if lang == "ko":
        assert "전문가 평가단" in part and "평가 25건 중 3건에서 팀을 알아보았다고" in part
    else:
        assert "Expert panel" in part and "recognised the team in 3 of 25 reviews" in part
        assert "the experts did not agree: read the points with caution" in part


def test_public_report_downloads_carry_the_section(built: Built) -> None:
    info = built.info
    base = f"/programs/{info['program']}/stages/{info['stage']}"
    with built.live.client() as client:
        md = client.get(f"{base}/report.md")
        html = client.get(f"{base}/report.html")
    assert md.status_code == 200 and "## Expert panel" in md.text
    assert html.status_code == 200 and '<section id="expert-panel">' in html.text
    no_usernames(md.text + html.text)


def test_fixture_builder_can_stop_before_the_decision(tmp_path: Path) -> None:
    from simsa.services import decision_records
    from simsa.store.db import Store

    store = Store(f"sqlite:///{tmp_path / 'simsa.db'}")
    try:
        info = build_decided_panel(store, tmp_path, decide=False)
        assert info["decision"] is None and info["result"]["schema"] == "simsa.panel.result/1"
        with store.session(readonly=True) as s:
            assert decision_records.effective(s, info["program"], info["stage"]) is None
            assert panel_results.stored_result(s, info["program"], info["stage"]) is None
    finally:
        store.dispose()
