"""The stage report: real rendering of a five-team example decision in every format and language."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from simsa.errors import InputError
from simsa.report.formats import fmt_deadline, fmt_raw, raw_parts
from simsa.report.labels import LABELS, label
from simsa.report.plots import short
from simsa.report.render import fmt_points, fmt_prob, fmt_time, render_report

SAMPLE = Path(__file__).parent / "data" / "sample_decision.json"
HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_EVIDENCE = '"><img src=x onerror=alert(1)>'
KOREAN_GROUNDS = "독자성 판정에 사용된 기준 모델이 잘못 식별되었습니다."

APPEALS = [
    {"id": 1, "team": "jiri", "filed_at": "2026-01-17T14:03:00Z",
     "grounds": "The expert-panel score was transcribed from the wrong rubric sheet (69.40, not 72.80).",
     "status": "upheld", "resolved_at": "2026-01-21T10:00:00Z",
     "resolution": "Transcription error confirmed; expert score corrected and the stage re-decided.",
     "new_decision_id": 4},
    {"id": 2, "team": "seorak", "filed_at": "2026-01-23T08:30:00Z", "grounds": KOREAN_GROUNDS,
     "status": "pending", "resolved_at": None, "resolution": None, "new_decision_id": None},
]
HISTORY = [
    {"decision_id": 2, "decided_at": "2026-01-15T09:00:00Z", "advanced": ["baekdu", "halla", "taebaek"],
     "eliminated": ["seorak", "jiri"], "appeal_id": None},
]


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


@pytest.fixture
def decision(sample: dict) -> dict:
    return copy.deepcopy(sample)


@pytest.fixture(scope="module")
def rendered(sample: dict) -> dict[tuple[str, str], str]:
    """Each format in each language, rendered once for the whole module."""
    return {(fmt, lang): render_report(sample, APPEALS, HISTORY, fmt, lang)
            for fmt in ("md", "html") for lang in ("en", "ko", "both")}


def svg_count(html: str) -> int:
    return len(re.findall(r"<svg\b", html))


def leaderboard_rows(md: str) -> list[list[str]]:
    """Body rows of the first Markdown table after the leaderboard heading."""
    section = md.split("## Leaderboard", 1)[1]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:] if ln.startswith("| ")][:5]


# ---------------------------------------------------------------- the fixture itself


def test_sample_is_consistent(sample: dict) -> None:
    teams = sample["teams"]
    assert [t["rank"] for t in teams] == [1, 2, 3, 4, 5]
    for t in teams:
        top = sum(t["breakdown"][c]["points"] for c in ("benchmarks", "expert", "user"))
        assert top == pytest.approx(t["total"], abs=0.005)
        leaves = sum(t["breakdown"][c]["points"] for c in ("nia", "global", "team_chosen"))
        assert leaves == pytest.approx(t["breakdown"]["benchmarks"]["points"], abs=0.005)
    gate_out = [t for t in teams if not t["gates"]["originality"]["passed"]]
    assert [t["team"] for t in gate_out] == ["seorak"] and gate_out[0]["rank"] <= 4
    assert sample["eliminated"] == ["seorak", "taebaek"] and sample["example_data"] is True


# ---------------------------------------------------------------- content


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("lang", ["en", "ko", "both"])
def test_every_team_appears(rendered: dict, sample: dict, fmt: str, lang: str) -> None:
    text = rendered[fmt, lang]
    for team in sample["teams"]:
        if lang in ("en", "both"):
            assert team["name"] in text
        if lang in ("ko", "both"):
            assert team["name_ko"] in text


def test_markdown_leaderboard_in_rank_order(rendered: dict, sample: dict) -> None:
    rows = leaderboard_rows(rendered["md", "en"])
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r[1] for r in rows] == [t["name"] for t in sample["teams"]]
    assert [r[2] for r in rows] == ["84.62", "80.15", "77.40", "74.88", "73.46"]
    assert rows[0][3] == "34.30 / 40"
    assert rows[2][-1] == "Eliminated" and rows[2][4 + 2] == "✗"


def test_markdown_has_every_section(rendered: dict) -> None:
    md = rendered["md", "en"]
    for key in ("leaderboard", "gate_results", "decision", "robustness", "resampling", "weights", "cuts",
                "appeals", "history"):
        assert label(key, "en") in md
    assert "18.1%" in md and "±54.5%" in md and "> 100%" in md
    assert "2026-02-01" in md
    assert "Team Jiri: now advancing; Team Taebaek: now eliminated" in md
    assert "<svg" not in md and "<img" not in md


def test_decision_section_gives_reasons(rendered: dict, sample: dict) -> None:
    for fmt in ("md", "html"):
        text = rendered[fmt, "en"]
        for t in sample["teams"]:
            if t["status"] == "eliminated":
                assert t["reason"] in text
        assert "Weight forensics: 96.8% of transformer layers" in text


# ---------------------------------------------------------------- HTML is one safe, offline file


@pytest.mark.parametrize("lang", ["en", "ko", "both"])
def test_html_is_self_contained(rendered: dict, lang: str) -> None:
    html = rendered["html", lang]
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in html
    assert f'<html lang="{"en" if lang == "en" else "ko"}">' in html
    assert svg_count(html) == 2
    assert not EXTERNAL.search(html)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html and "url(http" not in html
    assert "<?xml" not in html and "<!--" not in html


def test_evidence_links_are_not_clickable(rendered: dict) -> None:
    html = rendered["html", "en"]
    assert "https://example.org/forensics/seorak-stage-1" in html
    assert "<a " not in html


def test_hostile_strings_are_escaped(decision: dict) -> None:
    decision["teams"][0]["name"] = HOSTILE_NAME
    decision["teams"][0]["name_ko"] = "$x^$ | pipe"
    decision["teams"][1]["gates"]["originality"]["evidence"] = HOSTILE_EVIDENCE
    decision["teams"][1]["gates"]["licence"]["link"] = "javascript:alert(1)"
    appeals = [{**APPEALS[0], "grounds": HOSTILE_EVIDENCE, "team": HOSTILE_NAME}]
    html = render_report(decision, appeals, [], "html", "both")
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert svg_count(html) == 2
    md = render_report(decision, appeals, [], "md", "both")
    assert not re.search(r"(?<!\\)<(script|/script|img)", md)
    rows = leaderboard_rows(md)
    assert len({len(r) for r in rows}) == 1
    assert rows[0][1] == r"\<script>alert(1)\</script> · $x^$ \| pipe"


# ---------------------------------------------------------------- languages


def test_english_has_no_hangul(rendered: dict) -> None:
    for fmt in ("md", "html"):
        text = rendered[fmt, "en"].replace(KOREAN_GROUNDS, "")
        assert not HANGUL.search(text), HANGUL.search(text)


def test_korean_uses_korean_labels(rendered: dict) -> None:
    for fmt in ("md", "html"):
        text = rendered[fmt, "ko"]
        for key in ("leaderboard", "total", "eliminated", "advanced", "appeals", "history", "robustness"):
            assert LABELS[key][1] in text
        assert "Leaderboard" not in text and "Eliminated" not in text
    assert "1차 평가" in rendered["md", "ko"]


def test_both_languages_side_by_side(rendered: dict) -> None:
    md = rendered["md", "both"]
    assert "Total · 총점" in md and "Eliminated · 탈락" in md
    assert "Example data — not real scores · 예시 데이터" in md
    html = rendered["html", "both"]
    assert "Stage 1 evaluation" in html and "1차 평가" in html


def test_label_helper() -> None:
    assert label("total", "en") == "Total"
    assert label("total", "ko") == "총점"
    assert label("total", "both") == "Total · 총점"
    assert label("rule_advance_best", "ko", n=4) == "상위 4개 팀이 진출합니다."
    assert all(isinstance(en, str) and isinstance(ko, str) and en and ko for en, ko in LABELS.values())


# ---------------------------------------------------------------- JSON


def test_json_round_trips(sample: dict) -> None:
    text = render_report(sample, APPEALS, HISTORY, "json")
    doc = json.loads(text)
    assert doc == {"schema": "simsa.report/1", "timezone": "UTC", "decision": sample, "appeals": APPEALS,
                   "history": HISTORY}
    assert text == json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True)
    assert "백두팀" in text


# ---------------------------------------------------------------- graceful with partial input


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("robustness"),
    lambda d: d.update(robustness=None),
    lambda d: d["robustness"].update(resampling=None),
    lambda d: d["robustness"].pop("weights"),
    lambda d: d["robustness"].update(cuts=None),
    lambda d: d["robustness"]["resampling"].update(teams={}, p_decision_changes=None, note=None),
    lambda d: d["robustness"]["weights"].update(min_abs_pct=None, categories=[
        {"criterion": "expert", "increase_pct": None, "decrease_pct": None, "flips": []}]),
], ids=["no-key", "null", "no-resampling", "no-weights", "no-cuts", "empty-teams", "nothing-flips"])
def test_partial_robustness_does_not_crash(decision: dict, mutate) -> None:
    mutate(decision)
    md = render_report(decision, [], [], "md", "both")
    html = render_report(decision, [], [], "html", "both")
    assert "Robustness" in md and "Robustness" in html
    rob = decision.get("robustness") or {}
    assert svg_count(html) == (2 if rob.get("resampling") or rob.get("weights") else 1)


def test_missing_robustness_says_so(decision: dict) -> None:
    del decision["robustness"]
    for fmt in ("md", "html"):
        assert label("robustness_missing", "en") in render_report(decision, [], [], fmt, "en")


def test_nothing_within_searched_range(decision: dict) -> None:
    decision["robustness"]["weights"].update(min_abs_pct=None)
    md = render_report(decision, [], [], "md", "en")
    assert "none within ±100%" in md


def test_no_appeals_and_no_history(sample: dict) -> None:
    for fmt in ("md", "html"):
        text = render_report(sample, [], [], fmt, "en")
        assert label("no_appeals", "en") in text
        assert label("no_history", "en") in text


def test_team_without_gates(decision: dict) -> None:
    decision["teams"][3]["gates"] = {}
    del decision["teams"][4]["gates"]
    md = render_report(decision, [], [], "md", "en")
    assert md.count(label("no_gates", "en")) == 2
    assert leaderboard_rows(md)[3][6:8] == ["—", "—"]
    assert svg_count(render_report(decision, [], [], "html", "en")) == 2


def test_long_names(decision: dict) -> None:
    long_name = "Consortium for Very Large Sovereign Foundation Models " * 4
    decision["teams"][0]["name"] = long_name.strip()
    html = render_report(decision, [], [], "html", "en")
    assert long_name.strip() in html
    assert short(long_name) != long_name and short(long_name).endswith("…")
    assert short(long_name) in html
    assert long_name.strip() in render_report(decision, [], [], "md", "en")


def test_dry_run_and_minimal_decision() -> None:
    minimal = {"schema": "simsa.decision/1", "program": {"id": "p"}, "stage": "s", "decision_id": None,
               "teams": [{"team": "a", "total": 1, "rank": 1, "status": "advanced"}]}
    for fmt in ("md", "html"):
        text = render_report(minimal, [], [], fmt, "en")
        assert "dry run" in text and "1.00" in text


# ---------------------------------------------------------------- example-data notice


@pytest.mark.parametrize("flag", [True, False])
def test_example_notice_iff_example_data(decision: dict, flag: bool) -> None:
    decision["example_data"] = flag
    for lang, notice in (("en", "Example data — not real scores"), ("ko", "예시 데이터")):
        for fmt in ("md", "html"):
            assert (notice in render_report(decision, [], [], fmt, lang)) is flag


# ---------------------------------------------------------------- API contract and formatting


def test_rejects_unknown_format_and_language(sample: dict) -> None:
    with pytest.raises(InputError):
        render_report(sample, [], [], "pdf")
    with pytest.raises(InputError):
        render_report(sample, [], [], "md", "fr")


def test_html_is_reproducible(sample: dict) -> None:
    assert render_report(sample, APPEALS, HISTORY, "html") == render_report(sample, APPEALS, HISTORY, "html")


def test_number_formats() -> None:
    assert fmt_points(77.4) == "77.40" and fmt_points(None) == "—" and fmt_points("x") == "—"
    assert fmt_prob(0.181) == "18.1%" and fmt_prob(0) == "0.0%" and fmt_prob(1) == "100.0%"
    assert fmt_prob(0.0001) == "<0.1%" and fmt_prob(0.99999) == ">99.9%" and fmt_prob(None) == "—"
    assert fmt_time("2026-01-15T09:00:00Z") == "2026-01-15 09:00 UTC"
    assert fmt_time("2026-01-15T18:00:00+09:00") == "2026-01-15 09:00 UTC"
    assert fmt_time("2026-01-15T09:00:00Z", "Asia/Seoul") == "2026-01-15 18:00 KST (UTC+09:00)"
    assert fmt_time("2026-01-15T09:00:00", "Asia/Seoul") == "2026-01-15 18:00 KST (UTC+09:00)"  # naive = UTC
    assert fmt_time("2026-07-15T09:00:00Z", "America/Sao_Paulo") == "2026-07-15 06:00 UTC-03:00"
    assert fmt_time("2026-01-15T09:00:00Z", "Europe/London") == "2026-01-15 09:00 GMT (UTC+00:00)"
    assert fmt_time("2026-02-01") == "2026-02-01" and fmt_time("soon") == "soon" and fmt_time(None) == "—"
    assert fmt_deadline("2026-01-25", "Asia/Seoul", "Asia/Seoul") == "2026-01-25 23:59 KST (UTC+09:00)"
    assert fmt_deadline("2026-01-25", "UTC", "Asia/Seoul") == "2026-01-26 08:59 KST (UTC+09:00)"
    assert fmt_deadline(None, "UTC", "UTC") == "—" and fmt_deadline("soon", "UTC", "UTC") == "soon"
    assert fmt_raw(79.512, 2.2, 10) == "79.51 ± 2.20 (n=10)" and fmt_raw(0.7, None, 1) == "0.700 (n=1)"
    assert raw_parts(0.7, 0.02, 1) == ("0.700", "± 0.020 · n=1") and fmt_raw(None, None, 0) == "—"


# ---------------------------------------------------------------- time zone, fragility, gate sources


def test_times_in_the_programme_zone(decision: dict) -> None:
    decision["timezone"] = "Asia/Seoul"
    appeals = [{**APPEALS[0], "filed_at": "2026-01-17T14:03:00Z", "resolved_at": "2026-01-21T10:00:00Z"}]
    md = render_report(decision, appeals, HISTORY, "md", "en")
    assert "**Decided at**: 2026-01-22 18:00 KST (UTC+09:00)" in md
    assert "**Times shown in**: Asia/Seoul" in md
    assert "**Appeal deadline**: 2026-02-01 23:59 KST (UTC+09:00)" in md
    assert "2026-01-17 23:03 KST (UTC+09:00)" in md and "2026-01-21 19:00 KST (UTC+09:00)" in md
    assert "| #2 | 2026-01-15 18:00 KST (UTC+09:00) |" in md
    assert json.loads(render_report(decision, [], [], "json"))["timezone"] == "Asia/Seoul"
    decision["timezone"] = "UTC"  # the deadline's day is a UTC day; shown in the zone asked for
    md = render_report(decision, [], [], "md", "en", timezone="Asia/Seoul")
    assert "**Decided at**: 2026-01-22 18:00 KST" in md and "**Appeal deadline**: 2026-02-02 08:59 KST" in md


@pytest.mark.parametrize("fragile", [True, False])
def test_fragile_warning_box_comes_first(decision: dict, fragile: bool) -> None:
    decision["robustness"].update(fragile=fragile, fragile_above=0.1)
    for lang, title in (("en", "Fragile decision"), ("ko", "불안정한 결정")):
        md = render_report(decision, [], [], "md", lang)
        html = render_report(decision, [], [], "html", lang)
        assert (title in md) is fragile and (title in html) is fragile
        if fragile:
            assert md.index(title) < md.index(label("example_notice", lang)) < md.index(label("leaderboard", lang))
            assert html.index('class="notice fragile" role="alert"') < html.index('id="leaderboard"')
            assert "18.1%" in md.split(label("summary", lang))[0] and "10.0%" in md.split(label("summary", lang))[0]


def test_gate_sources_and_korean_evidence(decision: dict) -> None:
    gate = decision["teams"][0]["gates"]["licence"]
    gate.update(source="program file", evidence="model licence mit", evidence_ko="모델 라이선스 mit")
    decision["teams"][0]["gates"]["originality"]["source"] = "recorded"
    ko = render_report(decision, [], [], "md", "ko")
    assert "모델 라이선스 mit" in ko and "model licence mit" not in ko
    assert "출처: 사업 정의 파일의 신고 내용" in ko and "출처: 기록된 심사 결과" in ko
    en = render_report(decision, [], [], "md", "en")
    assert "model licence mit" in en and "Source: program file declarations" in en
    both = render_report(decision, [], [], "html", "both")
    assert "model licence mit" in both and "모델 라이선스 mit" in both
