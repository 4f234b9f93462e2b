"""Ecosystem signals against a real loopback hub (tests/hub_server.py) and a real store: snapshots of a programme's
hub models, raw answers stored once by sha256, byte-identical offline replay and tampering caught, 429s waited
out, a missing or slow model recorded as an error while the others are kept, `ecosystem:<metric>` scores recorded
and decided on, and the report escaping what comes from outside."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants
from huggingface_hub.utils import close_session
from sqlalchemy import func, select, update

from hub_server import FakeHub
from simsa.audit import log as audit_log
from simsa.ecosystem import (
    KINDS,
    METRICS,
    EcosystemError,
    HubReader,
    Limits,
    ModelSignals,
    metric,
    parse_model,
    reparse,
)
from simsa.errors import InputError
from simsa.report import ecosystem_section
from simsa.services import ecosystem
from simsa.store.db import Store
from simsa.store.models import EcosystemAnswer, EcosystemSnapshot, Score
from test_record_integrity import cli

PROGRAM = """
[program]
id = "eco-prog"
name = "Ecosystem programme"

[[teams]]
id = "a"
name = "Alpha <b>Lab</b>"
licence = "mit"
models = ["org/alpha"]

[[teams]]
id = "b"
name = "Beta"
licence = "mit"
models = ["org/beta", "org/beta-small@v1"]

[[teams]]
id = "c"
name = "Gamma"
licence = "mit"
models = ["./gamma-local"]

[[stages]]
id = "s1"
name = "Stage 1"
start = 2026-01-01
end = 2026-02-01
tie_breakers = ["team_order"]

[stages.elimination]
advance_best = 2

[stages.robustness]
draws = 0

[[stages.criteria]]
id = "downloads"
name = "Downloads"
points = 30
source = "ecosystem:downloads_30d"
normalisation = "relative_to_best"
missing = "zero"

[[stages.criteria]]
id = "likes"
name = "Likes"
points = 20
source = "ecosystem:likes"
normalisation = "relative_to_best"
missing = "zero"
"""

STATS = {  # repo -> hub numbers; the derivative repos declare their base with a relation, as the hub tags them
    "org/alpha": {"downloads": 1000, "downloads_all_time": 5000, "likes": 5, "trending_score": 1.5},
    "org/beta": {"downloads": 200, "downloads_all_time": 900, "likes": 30, "trending_score": 4.0,
                 "bases": [("finetune", "org/alpha")]},
    "org/beta-small": {"downloads": 100, "downloads_all_time": 100, "likes": 20, "trending_score": 0.5,
                       "card_data": {"base_model": "<script>alert(1)</script>"}},
    "fans/alpha-ft1": {"bases": [("finetune", "org/alpha")]},
    "fans/alpha-ft2": {"bases": [("finetune", "org/alpha")]},
    "fans/alpha-gguf": {"bases": [("quantized", "org/alpha")]},
    "fans/alpha-lora": {"bases": [("adapter", "org/alpha")]},
    "fans/beta-merge": {"bases": [("merge", "org/beta"), ("merge", "org/alpha")]},
}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A loopback hub holding the programme's models; huggingface_hub reads no token and is online."""
    server = FakeHub()
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for repo, stats in STATS.items():
        server.model(repo, downloads=stats.get("downloads", 1), downloads_all_time=stats.get("downloads_all_time", 1),
                     likes=stats.get("likes", 0), trending_score=stats.get("trending_score", 0.0),
                     bases=stats.get("bases"), card_data=stats.get("card_data"))
    close_session()
    try:
        yield server
    finally:
        close_session()
        server.close()


class Sleeps:
    """A stand-in for time.sleep that records what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _reader(hub: FakeHub, sleeps: Sleeps | None = None, **limits: float) -> HubReader:
    return HubReader(endpoint=hub.endpoint, limits=Limits(**{"min_interval": 0.0, **limits}),  # type: ignore[arg-type]
                     sleep=sleeps or Sleeps())


def _program(tmp: Path, text: str = PROGRAM) -> Path:
    path = tmp / "eco.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _derived(kind: str, base: str) -> int:
    return sum((kind, base) in s.get("bases", []) for s in STATS.values())


def _clock(day: int) -> ecosystem.Clock:
    return lambda: dt.datetime(2026, 1, day, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))


# --------------------------------------------------------------------------- pure


def test_every_metric_says_what_it_counts_in_both_languages() -> None:
    for m in METRICS.values():
        assert m.note_en and m.note_ko and m.name_ko and m.source == f"ecosystem:{m.name}"
    assert "CI" in metric("downloads_30d").label("en") and "30" in metric("downloads_30d").label("en")
    assert "opaque" in metric("trending_score").label("en") and "likes" in metric("trending_score").label("en")
    assert "self-reported" in metric("finetunes").label("en")
    with pytest.raises(InputError, match=r"unknown ecosystem metric 'download_30d' \(did you mean 'downloads_30d'"):
        metric("ecosystem:download_30d")


# --------------------------------------------------------------------------- snapshots


def test_snapshot_reads_each_teams_models_and_stores_each_answer_once(db_url: str, hub: FakeHub,
                                                                     tmp_path: Path) -> None:
    prog = str(_program(tmp_path))
    store = Store(db_url)
    with store.session() as session:
        first = ecosystem.take_snapshot(session, prog, endpoint=hub.endpoint, token=None, actor="tester",
                                        clock=_clock(10), reader=_reader(hub))
    snap = first.snapshot
    by_repo = {m.repo_id: m for t in snap.teams for m in t.models}
    assert set(by_repo) == {"org/alpha", "org/beta", "org/beta-small"}
    for repo, model in by_repo.items():
        stats = STATS[repo]
        assert (model.downloads_30d, model.downloads_all_time, model.likes, model.trending_score) == (
            stats["downloads"], stats["downloads_all_time"], stats["likes"], stats["trending_score"])
        assert model.derivatives == {k: _derived(k, repo) for k in KINDS}
        assert model.sha == hub.repos[repo].refs["main"]
        assert model.last_modified is not None and model.last_modified.tzinfo == dt.UTC
    assert by_repo["org/beta"].declared_base_models == ("org/alpha",)
    assert [(e.team, e.ref) for e in snap.errors] == [("c", "./gamma-local")]
    assert snap.taken_at == dt.datetime(2026, 1, 10, 0, 0, tzinfo=dt.UTC)
    distinct = {a.sha256 for a in snap.answers()}
    assert first.answers_stored == len(distinct) < len(snap.answers())  # empty lists answer many questions

    with store.session() as session:
        second = ecosystem.take_snapshot(session, prog, endpoint=hub.endpoint, token=None, actor="tester",
                                         clock=_clock(11), reader=_reader(hub))
    assert (second.answers_stored, second.answers_reused) == (0, len(distinct))
    with store.session(readonly=True) as session:
        assert session.execute(select(func.count()).select_from(EcosystemAnswer)).scalar_one() == len(distinct)
        rows = session.execute(select(EcosystemSnapshot).order_by(EcosystemSnapshot.id)).scalars().all()
        assert [r.id for r in rows] == [first.id, second.id]
        assert all(r.taken_at.tzinfo == dt.UTC for r in rows)
        assert rows[0].sha256 == hashlib.sha256(rows[0].body.encode()).hexdigest() == first.sha256
        answer = session.execute(select(EcosystemAnswer).limit(1)).scalar_one()
        assert answer.fetched_at.tzinfo == dt.UTC and hashlib.sha256(answer.content).hexdigest() == answer.sha256
        actions = [e.action for e in audit_log.load_entries(session)]
        assert actions.count("ecosystem.snapshot") == 2 and actions.count("ecosystem.answer") == len(distinct)
        assert audit_log.verify(session).ok
        downloads = ecosystem.series(session, "eco-prog", "downloads_30d")
    assert [p.snapshot_id for p in downloads.points] == [first.id, second.id]
    assert downloads.points[0].values == {"a": 1000.0, "b": 300.0, "c": None}
    store.dispose()


def test_replay_offline_is_byte_identical_and_a_changed_answer_is_named(db_url: str, hub: FakeHub,
                                                                      tmp_path: Path) -> None:
    prog = str(_program(tmp_path))
    store = Store(db_url)
    with store.session() as session:
        taken = ecosystem.take_snapshot(session, prog, endpoint=hub.endpoint, token=None, actor="tester",
                                        reader=_reader(hub))
    hub.close()  # offline from here: replay reads only the store
    requests = len(hub.log)
    with store.session(readonly=True) as session:
        body = session.get(EcosystemSnapshot, taken.id).body  # type: ignore[union-attr]
        again = ecosystem.replay(session, taken.id)
    assert again.ok and again.replayed.to_json() == body and again.replayed_sha256 == taken.sha256
    assert len(hub.log) == requests

    info = next(m for t in taken.snapshot.teams for m in t.models if m.repo_id == "org/alpha").answers[0]
    forged = json.dumps({**json.loads(info.content), "downloads": 999999}).encode()
    with store.session() as session:
        session.execute(update(EcosystemAnswer).where(EcosystemAnswer.sha256 == info.sha256).values(content=forged))
    with store.session(readonly=True) as session:
        tampered = ecosystem.replay(session, taken.id)
    assert not tampered.ok
    assert any(info.sha256 in p and hashlib.sha256(forged).hexdigest() in p for p in tampered.problems)
    assert any("downloads_30d" in d and "999999" in d for d in tampered.differences)
    code, out = cli(db_url, "ecosystem", "replay", prog, str(taken.id))
    assert code == 1 and "does not replay" in out and "downloads_30d" in out
    store.dispose()


def test_a_rate_limit_is_waited_out_as_the_hub_asks_and_counted(sqlite_url: str, hub: FakeHub,
                                                                tmp_path: Path) -> None:
    prog = str(_program(tmp_path))
    sleeps = Sleeps()
    hub.rate_limit_next, hub.retry_after = 2, "3"
    store = Store(sqlite_url)
    with store.session() as session:
        taken = ecosystem.take_snapshot(session, prog, endpoint=hub.endpoint, token=None, actor="tester",
                                        reader=_reader(hub, sleeps))
    assert taken.snapshot.rate_limited == 2 and sleeps.waits == [3.0, 3.0]
    assert len(hub.requests("hub", "/api/")) == 2 + len(taken.snapshot.answers())
    assert {m.repo_id for t in taken.snapshot.teams for m in t.models} == {"org/alpha", "org/beta",
                                                                           "org/beta-small"}

    hub.rate_limit_next = 10  # more than the retries allowed: a clear error, and the hub is not asked again
    sleeps = Sleeps()
    before = len(hub.log)
    with store.session() as session, pytest.raises(EcosystemError, match=r"rate limiting \(HTTP 429\) after 2 "):
        ecosystem.take_snapshot(session, prog, endpoint=hub.endpoint, token=None, actor="tester",
                                reader=_reader(hub, sleeps, max_retries=2))
    assert len(hub.log) - before == 3 and sleeps.waits == [3.0, 3.0]

    hub.rate_limit_next, hub.retry_after = 1, "600"  # a wait beyond the total allowed is not made
    sleeps = Sleeps()
    reader = _reader(hub, sleeps, max_wait=60)
    with pytest.raises(EcosystemError, match="429"):
        reader.model_info("org/alpha")
    assert sleeps.waits == [] and reader.rate_limited == 1
    store.dispose()


def test_a_missing_or_slow_model_is_recorded_and_the_others_are_kept(sqlite_url: str, hub: FakeHub,
                                                                     tmp_path: Path) -> None:
    text = PROGRAM.replace('models = ["org/alpha"]', 'models = ["org/alpha", "org/missing", "org/slow"]')
    prog = str(_program(tmp_path, text))
    hub.model("org/slow", downloads=7)
    hub.stall["org/slow"] = 1.0
    store = Store(sqlite_url)
    with store.session() as session:
        taken = ecosystem.take_snapshot(session, prog, endpoint=hub.endpoint, token=None, actor="tester",
                                        reader=_reader(hub, timeout=0.2))
        missing = next(e for e in taken.snapshot.errors if e.ref == "org/missing")
        slow = next(e for e in taken.snapshot.errors if e.ref == "org/slow")
        stored = session.execute(select(EcosystemAnswer).where(
            EcosystemAnswer.sha256 == missing.answers[0].sha256)).scalar_one()
        assert ecosystem.replay(session, taken.id).ok
    assert "org/missing" in missing.message and "404" in missing.message and stored.status == 404
    assert "org/slow" in slow.message and "did not answer within 0.2 s" in slow.message and slow.transport
    team_a = taken.snapshot.team("a")
    assert team_a is not None and [m.repo_id for m in team_a.models] == ["org/alpha"]
    store.dispose()


def test_derivative_lists_are_followed_page_by_page(hub: FakeHub) -> None:
    reader = _reader(hub, page_size=1)
    answers = reader.read_model("a", "org/alpha")
    assert isinstance(answers, list)
    finetune_pages = [a for a in answers if a.query.startswith("derivatives:finetune")]
    assert len(finetune_pages) == _derived("finetune", "org/alpha")  # one per page, each linked to the next
    model = parse_model("a", "org/alpha", answers)
    assert isinstance(model, ModelSignals) and model.derivatives["finetune"] == _derived("finetune", "org/alpha")
    assert reparse({"program": "p", "taken_at": "2026-01-10T00:00:00.000000Z", "endpoint": hub.endpoint,
                    "library_version": "x", "teams": [{"team": "a", "models": [model.to_dict()]}], "errors": []},
                   {a.sha256: a.content for a in answers}).teams[0].models[0] == model


# --------------------------------------------------------------------------- scores, decision, report (CLI)


def test_ecosystem_scores_are_recorded_with_provenance_and_decided(db_url: str, hub: FakeHub,
                                                                   tmp_path: Path) -> None:
    prog = str(_program(tmp_path))
    code, out = cli(db_url, "ecosystem", "record", prog, "--stage", "s1")
    assert code == 2 and "no ecosystem snapshot" in out
    code, out = cli(db_url, "ecosystem", "snapshot", prog, "--endpoint", hub.endpoint, "--min-interval", "0",
                    "--json")
    assert code == 0, out
    taken = json.loads(out[out.index("{"):])
    code, out = cli(db_url, "ecosystem", "record", prog, "--stage", "s1", "--json")
    assert code == 0, out
    recorded = json.loads(out[out.index("{"):])
    assert recorded["snapshot_id"] == taken["id"] and {"team": "c", "source": "ecosystem:likes"} in recorded["missing"]

    store = Store(db_url)
    with store.session(readonly=True) as session:
        rows = session.execute(select(Score).order_by(Score.id)).scalars().all()
        assert audit_log.verify(session).ok
    values = {(r.team_id, r.source): r.value for r in rows}
    models = {t["team"]: t["models"] for t in taken["snapshot"]["teams"]}
    for team in ("a", "b"):
        assert values[(team, "ecosystem:downloads_30d")] == sum(m["downloads_30d"] for m in models[team])
        assert values[(team, "ecosystem:likes")] == sum(m["likes"] for m in models[team])
    assert not any(team == "c" for team, _ in values)
    evidence = rows[0].evidence or ""
    assert f"#{taken['id']}" in evidence and taken["sha256"] in evidence
    assert taken["snapshot"]["taken_at"][:19] in evidence.replace("Z", "")  # the snapshot's UTC time
    assert "file requests" in evidence and all(r.recorded_at.tzinfo == dt.UTC for r in rows)
    store.dispose()

    code, out = cli(db_url, "stage", "decide", prog, "s1", "--json")
    assert code == 0, out
    decision = json.loads(out[out.index("{"):])
    points = {t["team"]: t["total"] for t in decision["teams"]}
    expected = {team: 30 * values[(team, "ecosystem:downloads_30d")] / max(
        values[(t, "ecosystem:downloads_30d")] for t in ("a", "b")) + 20 * values[(team, "ecosystem:likes")] / max(
        values[(t, "ecosystem:likes")] for t in ("a", "b")) for team in ("a", "b")}
    assert points["a"] == pytest.approx(expected["a"], abs=0.01) and points["b"] == pytest.approx(expected["b"],
                                                                                                  abs=0.01)
    assert points["c"] == 0 and set(decision["advanced"]) == {"a", "b"}
    assert {t["breakdown"]["downloads"]["grade"] for t in decision["teams"] if t["team"] != "c"} == {"heuristic"}

    # The stage's report carries the signals its points rest on: series, tree and what each number is.
    for fmt in ("html", "md", "json"):
        out_file = tmp_path / f"report.{fmt}"
        code, out = cli(db_url, "report", prog, "s1", "--format", fmt, "-o", str(out_file), "--lang", "en")
        assert code == 0, out
        text = out_file.read_text(encoding="utf-8")
        if fmt == "json":
            section = json.loads(text)["ecosystem"]
            assert [s["source"] for s in section["series"]] == ["ecosystem:downloads_30d", "ecosystem:likes"]
            assert section["latest"]["id"] == taken["id"] and section["latest"]["sha256"] == taken["sha256"]
        else:
            assert "file requests" in text and "self-reported" in text and "Evidence grade" in text
            assert "heuristic" in text and "org/beta-small" in text
    assert 'class="chart" role="img"' in (tmp_path / "report.html").read_text(encoding="utf-8")

    code, out = cli(db_url, "ecosystem", "show", prog, "--metric", "downloads_30d", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["series"][0]["points"][0]["values"]["a"] == values[("a", "ecosystem:downloads_30d")]
    code, out = cli(db_url, "ecosystem", "show", prog, "--metric", "likez")
    assert code == 2 and "did you mean 'likes'" in out
    code, out = cli(db_url, "ecosystem", "replay", prog, str(taken["id"]), "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_an_unknown_metric_in_a_programme_is_refused_when_loading(sqlite_url: str, hub: FakeHub,
                                                                  tmp_path: Path) -> None:
    prog = str(_program(tmp_path, PROGRAM.replace('"ecosystem:likes"', '"ecosystem:lkes"')))
    for command in (("ecosystem", "snapshot", prog, "--endpoint", hub.endpoint), ("program", "check", prog)):
        code, out = cli(sqlite_url, *command)
        assert code != 0 and "source 'ecosystem:lkes' names no ecosystem metric" in out, out
        assert "eco.toml:49: stages[0].criteria[1].source:" in out and "(did you mean 'likes'?)" in out
    assert not hub.log  # refused before the hub was asked anything


def test_the_report_escapes_what_comes_from_outside(sqlite_url: str, hub: FakeHub, tmp_path: Path) -> None:
    text = PROGRAM.replace('models = ["./gamma-local"]', 'models = ["<img src=x onerror=alert(2)>"]')
    prog = str(_program(tmp_path, text))
    for _ in range(2):
        code, out = cli(sqlite_url, "ecosystem", "snapshot", prog, "--endpoint", hub.endpoint, "--min-interval", "0")
        assert code == 0, out
    page = tmp_path / "eco.html"
    code, out = cli(sqlite_url, "ecosystem", "report", prog, "--out", str(page))
    assert code == 0, out
    html = page.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<b>Lab</b>" not in html and "Alpha &lt;b&gt;Lab&lt;/b&gt;" in html
    assert html.count('class="chart" role="img"') == len(METRICS)
    for m in METRICS.values():
        assert m.note_en.replace("'", "&#x27;") in html and m.note_ko in html
    assert "self-reported" in html and "opaque" in html

    store = Store(sqlite_url)
    with store.session(readonly=True) as session:
        view = ecosystem.report_view(session, prog, ["downloads_30d"])
    store.dispose()
    md = ecosystem_section.markdown(view, "en")
    assert re.search(r"(?<!\\)<", md) is None and "\\<script>alert(1)\\</script>" in md and "CI" in md
    assert len(view.series[0].points) == 2


def test_the_public_page_shows_series_tree_and_labels_escaped(sqlite_site, hub: FakeHub,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    text = PROGRAM.replace('models = ["./gamma-local"]', 'models = ["<img src=x onerror=alert(2)>"]')
    prog = str(_program(tmp_path, text))
    for _ in range(2):
        code, out = cli(sqlite_site.db_url, "ecosystem", "snapshot", prog, "--endpoint", hub.endpoint,
                        "--min-interval", "0")
        assert code == 0, out
    with sqlite_site.client() as client:
        overview = client.get("/programs/eco-prog", params={"lang": "en"})
        assert overview.status_code == 200 and 'href="/programs/eco-prog/ecosystem"' in overview.text
        for lang, words in (("en", ("file requests", "self-reported", "opaque")), ("ko", ("파일 요청", "자기 신고"))):
            page = client.get("/programs/eco-prog/ecosystem", params={"lang": lang})
            assert page.status_code == 200
            html = page.text
            assert all(w in html for w in words), lang
            assert html.count('class="chart" role="img"') == len(METRICS)
            assert ("2 snapshot(s)" if lang == "en" else "스냅숏 2개") in html
            assert ("<th>snapshot</th><th>taken</th>" if lang == "en" else "<th>스냅숏</th><th>수집 시각</th>") in html
            assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
            assert "<img src=x" not in html and "<b>Lab</b>" not in html
            assert "org/beta-small" in html
        data = client.get("/programs/eco-prog/ecosystem.json").json()
        assert len(data["series"]) == len(METRICS) and len(data["series"][0]["points"]) == 2
        tree = {m["repo_id"]: m for t in data["latest"]["snapshot"]["teams"] for m in t["models"]}
        assert tree["org/alpha"]["derivatives"] == {"finetune": 3, "adapter": 1, "quantized": 1, "merge": 1}
        assert client.get("/programs/no-such/ecosystem").status_code == 404
