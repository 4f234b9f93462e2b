"""`simsa arena status|freeze|result|export|exclude|rate` run in-process against a real store: freezing and
segments, the secretariat's view of votes and flagged raters, exclusions with the anomalous-rater test's evidence,
and an export that `simsa arena rate` reads back to the arena's own ranking."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import cli_inproc
from arena_support import PROGRAM, STAGE, TEAMS, ScriptedClient, play, rater, scripted_factory, write_arena_program
from cli_inproc import Ran
from simsa.program.arena_schema import Arena, Entrant
from simsa.services import arena_answers, programs
from simsa.store.db import Store

OPENS = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
CLOSES = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
STRENGTH = {"baekdu": 2.0, "halla": 1.0, "jiri": 0.0, "seorak": -1.0, "taebaek": -2.0}
HONEST = tuple(f"rater-{c}" for c in "abcdefgh")
RIGGER = "rater-x"


def run(db: str, *args: str) -> Ran:
    return cli_inproc.run("arena", *args, db=db, actor="admin:sec", columns=200)


def refused(ran: Ran, *words: str) -> None:
    assert ran.code == 2, ran.stdout
    for word in words:
        assert word in ran.stderr, ran.stderr


@pytest.fixture
def arena_db(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    db = f"sqlite:///{tmp_path / 'simsa.db'}"
    store = Store(db)
    path = write_arena_program(tmp_path, OPENS, CLOSES)
    with store.session() as s:
        programs.for_writing(s, str(path), "test")
    arena_answers.use_factory(scripted_factory())
    try:
        yield db, store
    finally:
        arena_answers.use_factory(None)
        store.dispose()


def _play(store: Store, rounds: int = 16) -> None:
    rng = np.random.default_rng(3)
    who = {name: rater(store, name) for name in (*HONEST, RIGGER)}

    def choose(name: str):  # type: ignore[no-untyped-def]
        def pick(_view, req) -> str:  # type: ignore[no-untyped-def]
            if req.gold is not None:
                return "left" if req.left_team == "good" else "right"
            left, right = STRENGTH[req.left_team], STRENGTH[req.right_team]
            if name == RIGGER:  # always the weaker entrant
                return "left" if left < right else "right"
            return "left" if rng.random() < 1 / (1 + np.exp(right - left)) else "right"
        return pick

    start = OPENS + dt.timedelta(days=3)
    schedule = np.random.default_rng(4)  # the schedule's draws too, so the same pairs meet on every run
    for k in range(rounds):
        for i, name in enumerate(who):
            play(store, who[name], choose(name), now=start + dt.timedelta(hours=k, minutes=5 * i), rng=schedule)


def test_arena_run_from_the_command_line(arena_db: tuple[str, Store], tmp_path: Path) -> None:
    db, store = arena_db
    before = run(db, "status", PROGRAM, "--stage", STAGE, "--json").json()
    assert before["segment"] is None and before["votes"] == {}
    text = run(db, "status", PROGRAM, "--stage", STAGE)
    assert text.code == 0 and "not frozen yet" in text.stdout

    frozen = run(db, "freeze", PROGRAM, "--stage", STAGE, "--json").json()
    assert frozen["opened"] is True and frozen["segment"]["number"] == 1
    entrants = frozen["segment"]["manifest"]["entrants"]
    assert [e["identity"]["model"] for e in entrants] == [f"{t}-model" for t in TEAMS]
    again = run(db, "freeze", PROGRAM, "--stage", STAGE)
    assert again.code == 0 and "unchanged" in again.stdout

    _play(store)
    status = run(db, "status", PROGRAM, "--stage", STAGE, "--json").json()
    counted = status["votes"]["counted"]
    assert sum(p["votes"] for p in status["pairs"]) == counted > 0
    assert all(p["quota"] == 30 and p["missing"] == 30 - p["votes"] for p in status["pairs"])
    assert status["votes"]["gold_pass"] == 9  # every tenth battle of each rater
    assert [f["rater"] for f in status["flagged_raters"]] == [RIGGER]
    table = run(db, "status", PROGRAM, "--stage", STAGE)
    assert "1 rater(s) flagged" in table.stdout and RIGGER in table.stdout

    # the secretariat excludes the flagged rater, with the test's evidence recorded
    refused(run(db, "exclude", PROGRAM, "--stage", STAGE, "--rater", RIGGER, "--vote", "1", "--reason", "x"),
            "name a rater (--rater) or a vote (--vote)")
    refused(run(db, "exclude", PROGRAM, "--stage", STAGE, "--rater", "nobody", "--reason", "x"), "no votes")
    decided = run(db, "exclude", PROGRAM, "--stage", STAGE, "--rater", RIGGER, "--reason",
                  "anomalous votes", "--json").json()
    assert decided["decision"] == "exclude" and decided["evidence"]["anomalous_rater_test"]["rater"] == RIGGER
    assert decided["evidence"]["anomalous_rater_test"]["flagged"] is True
    after = run(db, "status", PROGRAM, "--stage", STAGE, "--json").json()
    assert after["votes"]["counted"] + after["votes"]["excluded"] == counted
    assert after["votes"]["excluded"] > 0 and after["exclusions"][0]["rater"] == RIGGER

    result = run(db, "result", PROGRAM, "--stage", STAGE, "--json").json()
    assert result["votes"]["counted"] == after["votes"]["counted"]
    assert result["ranking"] == "style_controlled" and result["raw"] and result["style_controlled"]
    assert result["raw"]["ratings"][0]["model"] == "baekdu"
    # (the scripted entrants' house styles are fixed per team, so the style-controlled order is barely identified
    # here: it is checked against `arena rate` below, not against the truth)
    assert set(result["style_controlled"]["coef"]) == {"length", "headers", "lists", "bold"}
    assert any(reason.startswith("excluded by the secretariat") for reason in result["exclusions"])
    words = run(db, "result", PROGRAM, "--stage", STAGE)
    assert "style-controlled (counts)" in words.stdout and "panel:user (expected win rate)" in words.stdout

    # every vote, with why it does not count; and the counted ones, which `arena rate` turns into the ranking
    everything = tmp_path / "all.csv"
    run(db, "export", PROGRAM, "--stage", STAGE, "--out", str(everything), "--json").json()
    rows = list(csv.DictReader(everything.open(encoding="utf-8")))
    assert len(rows) == status["votes"]["counted"] + status["votes"]["gold_pass"]
    assert {r["counts"] for r in rows if r["rater"] == RIGGER} == {"no"}
    assert {r["excluded"] for r in rows if r["rater"] == RIGGER} == {"anomalous votes"}
    assert {r["status"] for r in rows if r["kind"] == "gold"} == {"gold_pass"}
    counted_csv = tmp_path / "counted.csv"
    run(db, "export", PROGRAM, "--stage", STAGE, "--out", str(counted_csv), "--counted")
    assert sum(1 for _ in counted_csv.open(encoding="utf-8")) == result["votes"]["counted"] + 1
    for style, key in ((True, "style_controlled"), (False, "raw")):
        args = ["rate", str(counted_csv), "--seed", "20260101", "--bootstrap", "1000", "--json"]
        again = run(db, *args, *(["--style"] if style else [])).json()
        want = {r["model"]: r for r in result[key]["ratings"]}
        for r in again["ratings"]:
            assert r["rating"] == pytest.approx(want[r["model"]]["rating"], abs=1e-6)
            assert r["lower"] == pytest.approx(want[r["model"]]["lower"], abs=1e-6)
            assert r["rank"] == want[r["model"]]["rank"]
    stdout = run(db, "export", PROGRAM, "--stage", STAGE)
    assert stdout.stdout.startswith("vote,battle,segment,rater,kind,category,model_a,model_b,winner,length_a,")

    # keeping the rater lifts the exclusion
    run(db, "exclude", PROGRAM, "--stage", STAGE, "--rater", RIGGER, "--reason", "reviewed again", "--keep")
    assert run(db, "status", PROGRAM, "--stage", STAGE, "--json").json()["votes"]["counted"] == counted


def test_a_changed_entrant_opens_a_new_segment_only_with_a_reason(arena_db: tuple[str, Store]) -> None:
    db, store = arena_db
    assert run(db, "freeze", PROGRAM, "--stage", STAGE).code == 0
    who = rater(store, "rater-a")
    play(store, who, lambda _v, _r: "left", now=OPENS + dt.timedelta(days=2))

    def changed(entrant: Entrant, _arena: Arena) -> ScriptedClient:
        ident = {"kind": "scripted", "model": f"{entrant.team}-model", "sha256": "f" * 64} if \
            entrant.team == "jiri" else None
        return ScriptedClient(entrant.team, identity=ident)

    arena_answers.use_factory(changed)
    refused(run(db, "freeze", PROGRAM, "--stage", STAGE), "the entrants changed since segment 1", "give the reason")
    opened = run(db, "freeze", PROGRAM, "--stage", STAGE, "--reason", "jiri redeployed", "--json").json()
    assert opened["opened"] is True and opened["segment"]["number"] == 2 and opened["changed_entrants"] == ["jiri"]
    status = run(db, "status", PROGRAM, "--stage", STAGE, "--json").json()
    assert status["segment"]["number"] == 2 and status["segments"] == 2 and status["votes"] == {}
    # the earlier segment's vote is still exported, with its segment
    rows = run(db, "export", PROGRAM, "--stage", STAGE, "--json").json()["votes"]
    assert [r["segment"] for r in rows] == [1]


def test_unknown_stage_and_stage_without_arena(arena_db: tuple[str, Store]) -> None:
    db, _ = arena_db
    refused(run(db, "status", PROGRAM, "--stage", "stage-9"), "has no stage 'stage-9'")
    refused(run(db, "result", PROGRAM, "--stage", "stage-2"), "has no arena")
    empty = run(db, "result", PROGRAM, "--stage", STAGE, "--json").json()
    assert empty["problem"] and empty["raw"] is None
