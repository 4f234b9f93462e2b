"""Reports rendered from a live decision: the example programme decided through the services, appealed and
re-decided, then rendered in every format and language. These tests notice when `stage decide` changes shape.

The frozen fixture in tests/data covers odd and hostile input; here every expectation is read off the decision the
services produced, so a renamed or dropped key fails a test instead of silently emptying a report section.
"""

from __future__ import annotations

import datetime as dt
import html.parser
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import EXAMPLE, write_bench_scores
from simsa.cli.decision_display import decision_text
from simsa.demo import write_example_scores
from simsa.program.loader import load_program
from simsa.report.formats import fmt_points, fmt_prob, fmt_raw
from simsa.report.labels import LABELS, label
from simsa.report.render import render_report
from simsa.services import appeals as appeal_service
from simsa.services import corrections, programs, score_files
from simsa.services import decisions as decision_service
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.services.reports import ReportInputs, report_inputs
from simsa.store.db import Store, sqlite_url

STAGE = "stage-1"
DECIDED = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
FILED = dt.datetime(2026, 1, 17, 14, 3, tzinfo=dt.UTC)
RESOLVED = dt.datetime(2026, 1, 21, 10, 0, tzinfo=dt.UTC)
FAILING = "jiri"
ORIGINALITY_FAIL = "Weight forensics: 96.8% of transformer layers match foreign-lab/base-7b (example evidence)"
ORIGINALITY_PASS = "independent of every registered reference model (example evidence)"
GROUNDS = "전문가 평가 점수 한 건이 잘못된 평가표에서 옮겨 적혔습니다."
RESOLUTION = "Transcription error confirmed; expert score corrected."
HANGUL = re.compile(r"[\uac00-\ud7a3]")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")


@dataclass(frozen=True)
class Live:
    db: str                 # the database the decisions are recorded in
    first: dict             # the decision as first recorded
    inputs: ReportInputs    # the decision in force (after the upheld appeal), its appeals and history
    rendered: dict[tuple[str, str], str]


VOID_REASON = "평가자 이해충돌 (user-07)"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("live-report")
    db = sqlite_url(work / "simsa.db")
    store = Store(db)
    loaded = load_program(EXAMPLE)
    write_example_scores(work / "panel.csv")
    write_bench_scores(work / "bench.json")
    try:
        with store.session() as s:
            version, _ = programs.register(s, loaded, "test")
            for name in ("panel.csv", "bench.json"):
                score_service.add(s, version, loaded.program, score_files.parse_file(work / name), "test")
            for team in ("baekdu", "halla", "jiri", "seorak", "taebaek"):
                failed = team == FAILING
                gate_service.record(s, version, loaded.program, stage_id=STAGE, team_id=team, gate_id="originality",
                                    passed=not failed, evidence=ORIGINALITY_FAIL if failed else ORIGINALITY_PASS,
                                    link="https://example.org/forensics/jiri" if failed else None, actor="test",
                                    example=True)
        with store.session() as s:
            first = decision_service.decide_and_store(s, loaded, STAGE, "test", at=DECIDED)
        cut_on_points = next(c["team"] for c in first["robustness"]["cuts"] if c["cause"] == "points")
        with store.session() as s:
            appeal = appeal_service.file(s, loaded, STAGE, cut_on_points, GROUNDS, "test", FILED)
            appeal_id = appeal.id
        with store.session() as s:
            version, _ = programs.register(s, loaded, "test")
            correction = score_service.ScoreInput(stage=STAGE, team=cut_on_points, source="panel:expert", value=95.0,
                                                  rater="expert-01", note="corrected transcription")
            score_service.add(s, version, loaded.program, [correction], "test")
            conflicted = next(r for r in score_service.history(s, "k-ai-2026", STAGE, FAILING)
                              if r.source == "panel:user" and r.rater == "user-07")
            corrections.void_score(s, "k-ai-2026", conflicted.id, VOID_REASON, "test")
        with store.session() as s:
            appeal_service.resolve(s, loaded, appeal_id, True, RESOLUTION, "test", RESOLVED)
        with store.session() as s:
            inputs = report_inputs(s, "k-ai-2026", STAGE)
    finally:
        store.dispose()
    rendered = {(fmt, lang): render_report(inputs.decision, inputs.appeals, inputs.history, fmt, lang,
                                           inputs.timezone)
                for fmt in ("md", "html", "json") for lang in ("en", "ko", "both")}
    yield Live(db=db, first=first, inputs=inputs, rendered=rendered)


def visible_text(page: str) -> str:
    """What a reader of the HTML sees (and a screen reader reads): text nodes and labels, not markup or CSS."""

    class Text(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.skip += tag in ("style", "script")
            self.parts += [v for k, v in attrs if k in ("aria-label", "title", "alt") and v]

        def handle_endtag(self, tag: str) -> None:
            self.skip -= tag in ("style", "script")

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(page)
    return "\n".join(parser.parts)


# ---------------------------------------------------------------- the decision the services made


def test_live_decision_went_through_appeal(live: Live) -> None:
    d = live.inputs.decision
    assert d["decision_id"] == 2 and d["supersedes"] == 1 and d["appeal_id"] == 1
    assert [h["decision_id"] for h in live.inputs.history] == [1]
    assert [a["status"] for a in live.inputs.appeals] == ["upheld"]
    assert d["timezone"] == live.inputs.timezone == "Asia/Seoul"
    assert d["decided_at"] == "2026-01-21T10:00:00Z"  # stored in UTC
    assert FAILING in d["eliminated"]


def test_fragility_flag_follows_the_threshold(live: Live) -> None:
    for d in (live.first, live.inputs.decision):
        rob = d["robustness"]
        assert rob["fragile_above"] == 0.2
        assert rob["fragile"] is (rob["resampling"]["p_decision_changes"] > 0.2)
    # the example's benchmark scores are close and carry standard errors: the first decision is fragile
    assert live.first["robustness"]["fragile"] is True


# ---------------------------------------------------------------- content read off the live decision


@pytest.mark.parametrize("lang", ["en", "ko", "both"])
@pytest.mark.parametrize("fmt", ["md", "html"])
def test_every_team_total_and_status(live: Live, fmt: str, lang: str) -> None:
    text = live.rendered[fmt, lang]
    for team in live.inputs.decision["teams"]:
        if lang in ("en", "both"):
            assert team["name"] in text
        if lang in ("ko", "both"):
            assert team["name_ko"] in text
        assert fmt_points(team["total"]) in text
        assert label(team["status"], lang) in text


def test_markdown_leaderboard_matches_the_decision(live: Live) -> None:
    md = live.rendered["md", "en"]
    section = md.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in section.splitlines() if ln.startswith("| ")]
    teams = live.inputs.decision["teams"]
    tops = [c for c in live.inputs.decision["criteria"] if c["depth"] == 0]
    assert [r[:3] for r in rows[2:]] == [[str(t["rank"]), t["name"], fmt_points(t["total"])] for t in teams]
    for row, team in zip(rows[2:], teams, strict=True):
        assert row[3:3 + len(tops)] == [f"{fmt_points(team['breakdown'][c['id']]['points'])} / {c['points']:g}"
                                        for c in tops]
        assert row[-1] == label(team["status"], "en")


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_cuts_gates_and_reasons(live: Live, fmt: str) -> None:
    d = live.inputs.decision
    names = {t["team"]: t for t in d["teams"]}
    for lang, name_key, reason_key in (("en", "name", "reason"), ("ko", "name_ko", "reason_ko")):
        text = live.rendered[fmt, lang]
        text = visible_text(text) if fmt == "html" else text.replace("\\", "")
        for cut in d["robustness"]["cuts"]:
            assert names[cut["team"]][name_key] in text
            assert names[cut["team"]][reason_key] in text
            if cut["cause"] == "points":
                assert fmt_points(cut["margin_points"]) in text
            assert fmt_prob(cut["p_changes"]) in text
        for team in d["teams"]:
            for gate in team["gates"].values():
                evidence = gate["evidence_ko"] if lang == "ko" and gate["evidence_ko"] else gate["evidence"]
                assert evidence in text
    html_text = live.rendered["html", "en"]
    assert "https://example.org/forensics/jiri" in html_text and "<a " not in html_text


def test_reasons_name_teams_not_ids(live: Live) -> None:
    d = live.inputs.decision
    ids = [t["team"] for t in d["teams"]]
    texts = [t[k] for t in d["teams"] for k in ("reason", "reason_ko", "tie_break", "tie_break_ko") if t[k]]
    for text in texts:
        assert not any(re.search(rf"\b{tid}\b", text) for tid in ids), text
    behind = [t for t in d["teams"] if "points behind" in t["reason"]]
    assert behind, "a team was cut on points"
    last_in = next(t for t in reversed(d["teams"]) if t["status"] == "advanced")
    assert all(t["reason"].endswith(f"behind {last_in['name']}.") for t in behind)
    assert all(f"{last_in['name_ko']}에" in t["reason_ko"] for t in behind)


def test_raw_aggregates_per_team_and_source(live: Live) -> None:
    d = live.inputs.decision
    md = live.rendered["md", "en"]
    section = md.split(f"## {label('raw_scores', 'en')}", 1)[1].split("\n## ", 1)[0]
    leaves = [c for c in d["criteria"] if c["source"]]
    for team in d["teams"]:
        for leaf in leaves:
            b = team["breakdown"][leaf["id"]]
            assert {"raw", "stderr", "n"} <= b.keys()
            assert fmt_raw(b["raw"], b["stderr"], b["n"]) in section
    experts = d["teams"][0]["breakdown"]["expert"]
    assert experts["n"] == 10 and experts["stderr"] > 0  # ten raters; their spread gives the standard error
    html_text = visible_text(live.rendered["html", "ko"])
    assert label("raw_scores", "ko") in html_text and "n=49" in html_text


def test_robustness_and_fragility_shown(live: Live) -> None:
    d = live.inputs.decision
    p = fmt_prob(d["robustness"]["resampling"]["p_decision_changes"])
    for lang in ("en", "ko"):
        for fmt in ("md", "html"):
            text = live.rendered[fmt, lang]
            assert f"{label('p_decision_changes', lang)}" in text and p in text
            assert (label("fragile_title", lang) in text) is d["robustness"]["fragile"]
    p_first = fmt_prob(live.first["robustness"]["resampling"]["p_decision_changes"])
    for fmt in ("md", "html"):
        for lang in ("en", "ko"):
            top = render_report(live.first, [], [], fmt, lang).split(label("leaderboard", lang), 1)[0]
            assert label("fragile_title", lang) in top and p_first in top


def test_times_shown_in_programme_zone_and_json_stays_utc(live: Live) -> None:
    md = live.rendered["md", "en"]
    assert "**Decided at**: 2026-01-21 19:00 KST (UTC+09:00)" in md
    assert "**Times shown in**: Asia/Seoul" in md
    deadline = live.inputs.decision["appeal_deadline"]
    assert f"**Appeal deadline**: {deadline} 23:59 KST (UTC+09:00)" in md
    assert "2026-01-17 23:03 KST (UTC+09:00)" in md  # appeal filed
    assert "2026-01-21 19:00 KST (UTC+09:00)" in md  # appeal resolved, and decision 2
    assert "2026-01-15 18:00 KST (UTC+09:00)" in md  # decision 1 in the history
    doc = json.loads(live.rendered["json", "en"])
    assert doc["timezone"] == "Asia/Seoul" and doc["decision"] == live.inputs.decision
    assert doc["appeals"][0]["filed_at"] == "2026-01-17T14:03:00Z" and doc["history"][0]["decided_at"].endswith("Z")


def test_korean_labels_in_korean_report(live: Live) -> None:
    for fmt in ("md", "html"):
        text = live.rendered[fmt, "ko"]
        for key in ("leaderboard", "points_by_criterion", "raw_scores", "gate_results", "decision", "robustness",
                    "resampling", "weights", "cuts", "appeals", "history", "timezone", "appeal_deadline"):
            assert LABELS[key][1] in text, key
        assert "1차 평가" in text and "독자 AI 파운데이션 모델 프로젝트" in text


def untranslated(text: str, allowed: list[str]) -> list[str]:
    """Latin words left once names, ids and recorded data are removed: what a Korean reader would find untranslated.

    Acronyms and units in capitals (AI, NIA, KST, UTC, SHA) are names, not sentences, and so are allowed.
    """
    for item in sorted(set(allowed), key=len, reverse=True):
        text = text.replace(item, " ")
    words = LATIN_WORD.findall(text)
    return [w for w in words if not (w.isupper() or w in ("n",))]


def allowed_data(d: dict, appeals: list[dict], program_text: str) -> list[str]:
    """Strings that are data, not report prose: ids, sources, hashes, recorded evidence and declarations."""
    out = [d["program"]["id"], d["program"]["sha256"], d["stage"], d["timezone"], d["schema"], "simsa.report/1",
           "simsa"]
    out += [t["team"] for t in d["teams"]] + [c["id"] for c in d["criteria"]] + [c["source"] for c in d["criteria"]
                                                                                 if c["source"]]
    for t in d["teams"]:
        for gate in t["gates"].values():
            if gate["source"] == "recorded":
                out.append(gate["evidence"])  # recorded evidence is kept in the language it was recorded in
            if gate["link"]:
                out.append(gate["link"])
    out += [a["resolution"] for a in appeals if a["resolution"]] + [a["grounds"] for a in appeals]
    # voided records: what was voided, by whom and why, as recorded
    out += [x for v in d.get("voided", []) for x in (v["what"], v["rater"], v["reason"], v["by"])]
    # components, sources and licences as the program file declares them
    out += re.findall(r'^\s*(?:component|source|licence)\s*=\s*"([^"]+)"', program_text, flags=re.M)
    return [x for x in out if x]


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_korean_report_has_no_untranslated_english(live: Live, fmt: str) -> None:
    d, appeals = live.inputs.decision, live.inputs.appeals
    text = live.rendered[fmt, "ko"]
    text = visible_text(text) if fmt == "html" else text.replace("\\", "")
    leftover = untranslated(text, allowed_data(d, appeals, EXAMPLE.read_text(encoding="utf-8")))
    assert not leftover, sorted(set(leftover))
    assert HANGUL.search(text)


def test_untranslated_check_bites(live: Live) -> None:
    """The check above finds an English sentence that slips into the Korean report."""
    d = json.loads(json.dumps(live.inputs.decision))
    d["robustness"]["resampling"]["note"] = "something new"
    d["teams"][-1]["reason_ko"] = "Eliminated on points: rank 5 of 5"
    text = render_report(d, [], [], "md", "ko")
    assert {"Eliminated", "on", "points", "rank", "of"} <= set(untranslated(text, allowed_data(d, [], "")))


# ---------------------------------------------------------------- every key the report reads exists


class Recorder(dict):
    """A dict that notes every key the renderer asks for, and whether the decision had it."""

    def __init__(self, data: dict, path: str, log: list[tuple[str, str, bool]]) -> None:
        super().__init__({k: track(v, f"{path}.{k}", log) for k, v in data.items()})
        self._path, self._log = path, log

    def _note(self, key: object) -> None:
        self._log.append((self._path, str(key), dict.__contains__(self, key)))

    def __getitem__(self, key: object) -> object:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: object, default: object = None) -> object:
        self._note(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)


def track(value: object, path: str, log: list[tuple[str, str, bool]]) -> object:
    if isinstance(value, dict):
        return Recorder(value, path, log)
    if isinstance(value, list):
        return [track(v, f"{path}[]", log) for v in value]
    return value


# Keys a decision may rightly lack: only gate eliminations list failed gates.
# Keys only some decisions have: a cut's failed gates; the expert panel's and the user arena's results (stages
# decided with a panel or an arena).
OPTIONAL = {("decision.robustness.cuts[]", "gates_failed"), ("decision", "expert_panel"),
            ("decision", "expert_panel_sha256"), ("decision", "user_arena"), ("decision", "user_arena_sha256")}


def keys_read(decision: dict, langs: tuple[str, ...] = ("en", "ko", "both")
              ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(keys the report read, keys it read that the decision lacks), over both formats and the languages."""
    log: list[tuple[str, str, bool]] = []
    for fmt in ("md", "html"):
        for lang in langs:
            render_report(track(decision, "decision", log), [], [], fmt, lang)  # type: ignore[arg-type]
    path = re.compile(r"\.(baekdu|halla|jiri|seorak|taebaek|gaya)\b")  # team-keyed maps: one path for all
    read = {(path.sub(".<team>", p), k) for p, k, _ in log}
    missing = {(path.sub(".<team>", p), k) for p, k, present in log if not present}
    return read, missing - OPTIONAL


def test_report_reads_only_keys_the_decision_has(live: Live) -> None:
    read, missing = keys_read(live.inputs.decision)
    assert not missing, sorted(missing)
    for key in ("teams", "robustness", "criteria", "gate_definitions", "timezone", "decided_at", "appeal_deadline"):
        assert ("decision", key) in read
    for key in ("name_ko", "total", "rank", "breakdown", "gates", "status", "reason", "reason_ko", "tie_break_ko"):
        assert ("decision.teams[]", key) in read
    for key in ("raw", "stderr", "n", "points"):
        assert ("decision.teams[].breakdown.expert", key) in read
    assert ("decision.robustness", "fragile") in read and ("decision.teams[].gates.licence", "evidence_ko") in read


@pytest.mark.parametrize("where, key", [
    ("", "decided_at"), ("", "timezone"), ("", "gate_definitions"), ("teams", "total"), ("teams", "reason_ko"),
    ("teams", "breakdown"), ("robustness", "fragile"), ("robustness", "cuts"), ("resampling", "p_decision_changes"),
    ("breakdown", "stderr"), ("gates", "evidence_ko"),
])
def test_a_renamed_key_is_noticed(live: Live, where: str, key: str) -> None:
    d = json.loads(json.dumps(live.inputs.decision))
    holders = {"": [d], "teams": d["teams"], "robustness": [d["robustness"]],
               "resampling": [d["robustness"]["resampling"]],
               "breakdown": [b for t in d["teams"] for b in t["breakdown"].values() if "raw" in b],
               "gates": [g for t in d["teams"] for g in t["gates"].values()]}[where]
    for holder in holders:
        holder[f"{key}_renamed"] = holder.pop(key)
    _, missing = keys_read(d, ("both",))
    assert key in {k for _, k in missing}


# ---------------------------------------------------------------- the command line shows the same decision


def test_cli_text_in_korean_with_fragility_warning(live: Live) -> None:
    text = decision_text(live.first, "ko")
    assert text.fragile is not None and text.fragile.startswith("불안정한 결정")
    assert fmt_prob(live.first["robustness"]["resampling"]["p_decision_changes"]) in text.fragile
    assert "2026-01-15 18:00 KST (UTC+09:00)" in text.meta
    assert [r[1] for r in text.rows] == [t["name_ko"] for t in live.first["teams"]]
    assert [r[-1] for r in text.rows] == [t["reason_ko"] for t in live.first["teams"]]
    assert text.columns[:3] == ["순위", "팀", "총점"] and "벤치마크 평가 /40" in text.columns
    lines = "\n".join([text.title, text.meta, *text.robustness, text.footer])
    assert "1차 평가" in lines and "이의신청 마감일" in lines
    leftover = untranslated("\n".join([lines, text.fragile]), allowed_data(live.first, [], ""))
    assert not leftover, leftover
    en = decision_text(live.first, "en")
    assert en.fragile and en.fragile.startswith("Fragile decision") and "20.0%" in en.fragile
    assert [r[1] for r in en.rows] == [t["name"] for t in live.first["teams"]]
    calm = json.loads(json.dumps(live.first))
    calm["robustness"]["fragile"] = False
    assert decision_text(calm, "en").fragile is None


def test_dry_run_of_a_live_decision(live: Live) -> None:
    """A dry run (no decision id) renders as such."""
    d = json.loads(json.dumps(live.inputs.decision))
    d["decision_id"] = None
    for fmt in ("md", "html"):
        text = render_report(d, [], [], fmt, "ko")
        assert label("dry_run", "ko") in text


def cli(*args: str, db: str, env: dict[str, str] | None = None) -> str:
    """Run the command line in-process; one store per command and the language reset, as in a real process."""
    from typer.testing import CliRunner

    from simsa.cli.context import STATE
    from simsa.cli.main import app

    try:
        result = CliRunner().invoke(app, ["--db", db, *args], env={"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    finally:
        if STATE._store is not None:
            STATE._store.dispose()
            STATE._store = None
        STATE.lang = "en"
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.mark.parametrize("args, env, expected", [
    ((), {}, "both"), (("--lang", "ko"), {}, "ko"), ((), {"SIMSA_LANG": "ko"}, "ko"),
    (("--lang", "ko"), {}, "en"),
])
def test_report_language_follows_the_global_option(live: Live, tmp_path: Path, args: tuple[str, ...],
                                                   env: dict[str, str], expected: str) -> None:
    own = ("--lang", "en") if expected == "en" else ()
    out = cli(*args, "report", "k-ai-2026", STAGE, "--format", "md", "-o", str(tmp_path / "r.md"), *own, "--json",
              db=live.db, env=env)
    assert json.loads(out)["lang"] == expected
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert (LABELS["leaderboard"][1] in md) is (expected != "en")
    assert (LABELS["leaderboard"][0] in md) is (expected != "ko")


def test_cli_show_and_appeals_in_korean(live: Live) -> None:
    shown = cli("--lang", "ko", "stage", "show", "k-ai-2026", STAGE, "--decision", "1", db=live.db)
    assert "불안정한 결정" in shown and "2026-01-15 18:00 KST (UTC+09:00)" in shown
    assert all(t["name_ko"] in shown for t in live.first["teams"])
    listed = cli("--lang", "ko", "stage", "appeal", "list", "k-ai-2026", STAGE, db=live.db)
    appealed = next(t for t in live.first["teams"] if t["team"] == live.inputs.appeals[0]["team"])
    assert appealed["name_ko"] in listed
    assert "2026-01-17 23:03 KST (UTC+09:00)" in listed and "2026-01-21 19:00 KST (UTC+09:00)" in listed
    shown_json = json.loads(cli("--lang", "ko", "stage", "show", "k-ai-2026", STAGE, "--json", db=live.db))
    assert shown_json == live.inputs.decision  # JSON is the record, in UTC, whatever the language


def test_voided_records_are_shown_as_voided(live: Live) -> None:
    [void] = live.inputs.decision["voided"]
    assert (void["kind"], void["team"], void["what"], void["rater"], void["reason"]) == (
        "score", FAILING, "panel:user", "user-07", VOID_REASON)
    for lang, title in (("en", "Voided records"), ("ko", "무효 처리된 기록")):
        md = live.rendered[("md", lang)]
        assert f"## {title}" in md and VOID_REASON in md and f"#{void['voids']}" in md
        page = visible_text(live.rendered[("html", lang)])
        assert title in page and VOID_REASON in page
