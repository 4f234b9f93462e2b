"""The arena's services on a real store: the arena in the program file, frozen entrants and segments, battles from
the balanced schedule, every refusal a rater can run into, identity leaks voiding votes, attention checks, the
public audit log's seals, and the arena's result becoming `panel:user` at the decision."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from arena_support import (
    PROGRAM,
    STAGE,
    TEAMS,
    ScriptedClient,
    arena_program_text,
    freeze,
    play,
    rater,
    scripted_factory,
    write_arena_program,
)
from helpers import write_bench_scores
from simsa.audit.log import export, verify
from simsa.demo import write_example_scores
from simsa.errors import DataMissingError, InputError, NotFound, ProgramFileError
from simsa.program.loader import parse_program
from simsa.services import arena, arena_results, decisions, programs, score_files
from simsa.services import gates as gate_service
from simsa.services import scores as score_service
from simsa.services.arena_answers import Entrants
from simsa.store.db import Store
from simsa.store.models import ArenaBattle, ArenaVote

UTC = dt.UTC
NOW = dt.datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 12:00 in Seoul, inside the window below
OPENS = NOW - dt.timedelta(days=2)
CLOSES = NOW + dt.timedelta(days=3)
FAST = {"bootstrap = 1000": "bootstrap = 200"}


def _store(tmp_path: Path, **changes: str) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'arena.db'}")
    store.upgrade()
    path = write_arena_program(tmp_path, OPENS, CLOSES, changes={**FAST, **changes})
    with store.session() as s:
        programs.for_writing(s, str(path), "admin:test")
    return store


def _ctx(store: Store) -> arena.ArenaContext:
    with store.session(readonly=True) as s:
        return arena.context(s, PROGRAM, STAGE)


def _entrants(store: Store, leaking: frozenset[str] = frozenset()) -> Entrants:
    return Entrants(_ctx(store).arena, scripted_factory(leaking))


def _parse_error(text: str) -> str:
    with pytest.raises(ProgramFileError) as err:
        parse_program(text, "k-ai-2026.toml")
    return str(err.value)


# --------------------------------------------------------------------------- the program file
def test_program_file_declares_the_arena():
    program = parse_program(arena_program_text(OPENS, CLOSES), "k-ai-2026.toml").program
    a = program.stage(STAGE).arena
    assert a is not None and a.teams == list(TEAMS)
    assert a.opens == OPENS and a.opens.tzinfo == UTC
    assert a.entrant("jiri").price_per_million_tokens == 0.25 and a.votes_per_pair == 30
    assert {p.category for p in a.prompts} == set(a.categories)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('team = "halla"\n    endpoint', 'team = "baekdu"\n    endpoint', "one variant per team per stage"),
    ('team = "jiri"\n    endpoint', 'team = "jiri2"\n    endpoint', "entrant team 'jiri2' is not a team"),
    ('endpoint = "http://127.0.0.1:8101/v1"', 'endpoint = "ftp://127.0.0.1/v1"', "not an http(s) URL"),
    ('model = "baekdu-32b"\n', 'model = "baekdu-32b"\n    model_dir = "models/baekdu"\n', "exactly one of endpoint"),
    ("opens = 2026-01-03T03:00:00Z", "opens = 2026-01-03T03:00:00", "has no UTC offset"),
    ('category = "writing"\n    text = "Write', 'category = "poetry"\n    text = "Write', "not in categories"),
    ("votes_per_pair = 30", "votes_per_pair = 0", "votes_per_pair"),
])
def test_program_file_refuses_a_bad_arena(old: str, new: str, expected: str):
    text = arena_program_text(OPENS, CLOSES)
    assert old in text, old
    assert expected in _parse_error(text.replace(old, new, 1))


def test_an_arena_needs_a_panel_user_criterion_to_feed():
    text = arena_program_text(OPENS, CLOSES).replace('source = "panel:user"\n  normalisation = "relative_to_best"',
                                                     'source = "manual:user"\n  normalisation = "relative_to_best"', 1)
    assert "has an arena but no criterion with source 'panel:user'" in _parse_error(text)


# --------------------------------------------------------------------------- freezing
def test_freezing_is_idempotent_and_a_change_opens_a_segment_only_with_a_reason(tmp_path: Path):
    store = _store(tmp_path)
    ents = _entrants(store)
    first = freeze(store, ents)
    assert first.number == 1 and [e["team"] for e in first.manifest["entrants"]] == list(TEAMS)
    assert first.manifest["system_prompt"].startswith("You are a helpful assistant")
    assert freeze(store, ents).id == first.id  # nothing changed, nothing new
    who = rater(store, "mina")
    play(store, who, lambda v, r: "left", now=NOW, entrants=ents)
    changed = arena.read_identities(_ctx(store), ents)
    changed["halla"] = {**changed["halla"], "sha256": "f" * 64}  # the team swapped its weights
    assert arena.changed_entrants(first, changed) == ["halla"]
    with store.session() as s, pytest.raises(InputError, match="give the reason"):
        arena.freeze(s, arena.context(s, PROGRAM, STAGE), changed, "admin:test")
    with store.session() as s:
        second, opened = arena.freeze(s, arena.context(s, PROGRAM, STAGE), changed, "admin:test",
                                      reason="Team Halla replaced its model after a safety fix")
    assert opened and second.number == 2 and second.manifest_sha256 != first.manifest_sha256


def test_an_entrant_that_changed_since_the_freeze_is_not_asked(tmp_path: Path):
    store = _store(tmp_path)
    freeze(store, _entrants(store))
    swapped = Entrants(_ctx(store).arena, lambda e, _a: ScriptedClient(
        e.team, identity={"kind": "scripted", "model": "x", "sha256": "0" * 64}))
    who = rater(store, "mina")
    with store.session() as s:
        view = arena.start_battle(s, arena.context(s, PROGRAM, STAGE), who, now=NOW)
    with pytest.raises(InputError, match="changed since the arena was frozen"):
        arena.ask(store, PROGRAM, STAGE, view.token, who, "Tell me about Jeju.", entrants=swapped, now=NOW)


# --------------------------------------------------------------------------- battles and refusals
def test_a_battle_is_blind_until_the_vote_and_then_reveals(tmp_path: Path):
    store = _store(tmp_path)
    ents = _entrants(store)
    freeze(store, ents)
    who = rater(store, "mina")
    with store.session() as s:
        view = arena.start_battle(s, arena.context(s, PROGRAM, STAGE), who, now=NOW)
    before = json.dumps(view.to_dict())
    for team in TEAMS:
        assert team not in before
    assert "latency" not in before and "price" not in before
    voted = play(store, who, lambda v, r: "right", now=NOW + dt.timedelta(minutes=1), entrants=ents)
    assert voted.token == view.token  # the unvoted battle came back rather than a new pair
    after = voted.to_dict()
    assert after["vote"] == "right" and after["vote_status"] == "counted"
    assert {after["reveal"]["left"]["team"], after["reveal"]["right"]["team"]} <= set(TEAMS)
    assert after["reveal"]["left"]["price_per_million_tokens"] > 0
    assert after["reveal"]["left"]["turns"][0]["completion_tokens"] > 0


def test_every_refusal_a_rater_can_meet(tmp_path: Path):
    store = _store(tmp_path, **{"daily_cap = 40": "daily_cap = 3", "gold_every = 10": "gold_every = 0"})
    ents = _entrants(store)
    who, other = rater(store, "mina"), rater(store, "joon")
    team_account = rater(store, "halla-lead", "team", team="halla")
    expert = rater(store, "dr-kim", "expert")
    ctx = _ctx(store)
    with store.session() as s, pytest.raises(InputError, match="not frozen the entrants"):
        arena.start_battle(s, ctx, who, now=NOW)
    freeze(store, ents)
    for account in (team_account, expert):
        with store.session() as s, pytest.raises(InputError, match="only invited rater accounts"):
            arena.start_battle(s, ctx, account, now=NOW)
    with store.session() as s, pytest.raises(InputError, match="opens at"):
        arena.start_battle(s, ctx, who, now=OPENS - dt.timedelta(seconds=1))
    with store.session() as s, pytest.raises(InputError, match="closed at"):
        arena.start_battle(s, ctx, who, now=CLOSES)
    with store.session() as s:
        view = arena.start_battle(s, ctx, who, now=NOW)
    with store.session() as s, pytest.raises(InputError, match="nothing to vote on yet"):
        arena.vote(s, ctx, view.token, who, "left", now=NOW)
    with store.session() as s, pytest.raises(NotFound, match="no such battle"):  # another rater's battle
        arena.battle(s, ctx, view.token, other)
    with store.session() as s, pytest.raises(NotFound, match="no such battle"):  # a made-up token: the same answer
        arena.battle(s, ctx, "x" * 32, other)
    with store.session(readonly=True) as s, pytest.raises(InputError, match="at most 8000"):
        arena.prepare_turn(s, ctx, view.token, who, "x" * 8001, now=NOW)
    req_view = play(store, who, lambda v, r: "tie", now=NOW, prompt="How do I cook rice in a pot?", entrants=ents)
    assert req_view.vote == "tie"
    with store.session() as s, pytest.raises(InputError, match="voted on this battle already"):
        arena.vote(s, ctx, view.token, who, "left", now=NOW + dt.timedelta(minutes=1))
    with store.session(readonly=True) as s, pytest.raises(InputError, match="has been voted on"):
        arena.prepare_turn(s, ctx, view.token, who, "one more question?", now=NOW)
    with store.session() as s:  # the same prompt, reworded in case and spacing only, in a new battle
        nxt = arena.start_battle(s, ctx, who, now=NOW + dt.timedelta(minutes=2))
    with store.session(readonly=True) as s, pytest.raises(InputError, match="before; write a different one"):
        arena.prepare_turn(s, ctx, nxt.token, who, "how do I cook RICE   in a pot", now=NOW)
    with store.session(readonly=True) as s:
        req = arena.prepare_turn(s, ctx, nxt.token, who, "Explain photosynthesis to a child.", now=NOW)
    with store.session() as s:
        arena.record_turn(s, ctx, req, arena.generate(ctx, req, ents), who, now=NOW + dt.timedelta(minutes=2))
    with store.session() as s, pytest.raises(InputError, match="please read both answers"):
        arena.vote(s, ctx, nxt.token, who, "left", now=NOW + dt.timedelta(minutes=2, seconds=2))
    with store.session() as s, pytest.raises(InputError, match="unknown vote"):
        arena.vote(s, ctx, nxt.token, who, "A", now=NOW + dt.timedelta(minutes=3))
    with store.session() as s, pytest.raises(InputError, match="after you vote"):
        arena.rate(s, ctx, nxt.token, who, "left", 4, 3)
    with store.session() as s:
        arena.vote(s, ctx, nxt.token, who, "left", now=NOW + dt.timedelta(minutes=3))
    with store.session() as s:
        rated = arena.rate(s, ctx, nxt.token, who, "left", 4, 3)
    assert rated.ratings["left"] == {"usefulness": 4, "cost_efficiency": 3}
    with store.session() as s, pytest.raises(InputError, match="rated already"):
        arena.rate(s, ctx, nxt.token, who, "left", 5, None)
    with store.session() as s, pytest.raises(InputError, match="rated 1 to 5"):
        arena.rate(s, ctx, nxt.token, who, "right", 6, None)
    play(store, who, lambda v, r: "left", now=NOW + dt.timedelta(minutes=5), entrants=ents)  # the third today
    with store.session() as s, pytest.raises(InputError, match="today's limit of 3"):
        arena.start_battle(s, ctx, who, now=NOW + dt.timedelta(minutes=6))
    with store.session() as s:  # a new calendar day in Seoul (UTC 15:00 is midnight there)
        arena.start_battle(s, ctx, who, now=NOW.replace(hour=15, minute=1))


def test_an_answer_that_names_its_team_voids_the_vote(tmp_path: Path):
    store = _store(tmp_path, **{"gold_every = 10": "gold_every = 0"})
    ents = _entrants(store, leaking=frozenset({"halla"}))
    freeze(store, ents)
    who = rater(store, "mina")
    seen = []
    for i in range(12):
        view = play(store, who, lambda v, r: "left", now=NOW + dt.timedelta(minutes=i), entrants=ents)
        seen.append(view)
    with_halla = [v for v in seen if "halla" in (v.reveal.left_team, v.reveal.right_team)]
    assert with_halla and all(v.vote_status == "void" for v in with_halla)
    assert "names an entrant" in (with_halla[0].vote_reason or "") and "Team Halla" in with_halla[0].vote_reason
    assert all(v.vote_status == "counted" for v in seen if v not in with_halla)
    with store.session(readonly=True) as s:
        records = arena.vote_records(s, _ctx(store))
    assert sum(1 for r in records if r.status == "void") == len(with_halla)  # kept, with the reason


def test_attention_checks_are_served_and_scored_but_never_ranked(tmp_path: Path):
    store = _store(tmp_path, **{"gold_every = 10": "gold_every = 3"})
    ents = _entrants(store)
    freeze(store, ents)
    who = rater(store, "mina")
    views = []
    for i in range(6):
        def choose(view, req, i=i):  # pick the good answer on the first check, the bad one on the second
            if req.gold is None:
                return "left"
            good = "left" if req.left_team == "good" else "right"
            bad = "right" if good == "left" else "left"
            return good if i == 2 else bad
        views.append(play(store, who, choose, now=NOW + dt.timedelta(minutes=i), entrants=ents))
    assert [v.vote_status for v in views] == ["counted", "counted", "gold_pass", "counted", "counted", "gold_fail"]
    assert views[2].turns[0].prompt == "대한민국의 수도는 어디인가요?"
    assert "attention check" in views[2].reveal.left_team
    with store.session(readonly=True) as s:
        assert sum(1 for r in arena.vote_records(s, _ctx(store)) if r.counts) == 4


def test_the_schedule_keeps_pairs_sides_and_categories_balanced(tmp_path: Path):
    store = _store(tmp_path, **{"gold_every = 10": "gold_every = 0", "daily_cap = 40": "daily_cap = 200",
                                "votes_per_pair = 30": "votes_per_pair = 4"})
    ents = _entrants(store)
    freeze(store, ents)
    raters = [rater(store, f"rater{i}") for i in range(4)]
    rng = np.random.default_rng(7)
    abandoned = 0
    for i in range(48):
        who = raters[i % 4]
        when = NOW + dt.timedelta(minutes=i)
        if rng.random() < 0.1:  # a battle left unvoted: its place frees after 30 minutes
            with store.session() as s:
                arena.start_battle(s, arena.context(s, PROGRAM, STAGE), who, now=when)
            abandoned += 1
            continue
        play(store, who, lambda v, r: "left", now=when, entrants=ents)
    assert abandoned
    with store.session(readonly=True) as s:
        ctx = arena.context(s, PROGRAM, STAGE)
        counted = [r for r in arena.vote_records(s, ctx) if r.counts]
    per_pair: dict[frozenset, list] = {}
    for r in counted:
        per_pair.setdefault(frozenset((r.left, r.right)), []).append(r)
    totals = [len(v) for v in per_pair.values()]
    assert len(per_pair) == 10 and max(totals) - min(totals) <= 1, totals
    for pair, rs in per_pair.items():
        a = sorted(pair)[0]
        lefts = sum(1 for r in rs if r.left == a)
        assert abs(2 * lefts - len(rs)) <= 2, (pair, lefts, len(rs))


# --------------------------------------------------------------------------- the record
def test_arena_entries_are_sealed_in_the_public_log_until_the_decision(tmp_path: Path):
    store = _store(tmp_path)
    ents = _entrants(store)
    freeze(store, ents)
    who = rater(store, "mina")
    play(store, who, lambda v, r: "left", now=NOW, entrants=ents)
    from simsa.services import audit_seal

    with store.session(readonly=True) as s:
        public = export(s, audit_seal.sealer(s).shown)
        full = export(s)
        assert verify(s).ok
    assert "seorak" in json.dumps(full) or "halla" in json.dumps(full)
    text = json.dumps(public)
    battle_entries = [e for e in public["entries"] if e.get("sealed")]
    assert len(battle_entries) == 3  # battle, turn, vote
    for team in TEAMS:
        # the frozen segment names every team (it is public); no battle entry may
        assert all(team not in json.dumps(e) for e in battle_entries)
    assert "the user arena of k-ai-2026 / stage-1" in text


def _record_rest_of_stage(store: Store, tmp_path: Path) -> None:
    """Benchmarks, the example expert scores and the originality gates, as the demo records them."""
    from simsa.program.loader import load_program

    loaded = load_program(tmp_path / "k-ai-2026.toml")
    bench_csv = tmp_path / "bench.json"
    write_bench_scores(bench_csv)
    scores_csv = tmp_path / "scores.csv"
    write_example_scores(scores_csv)
    with store.session() as s:
        score_service.record(s, loaded, score_files.parse_file(bench_csv), "admin:test")
        score_service.record(s, loaded, score_files.parse_file(scores_csv), "admin:test")
        for team in TEAMS:
            gate_service.record_result(s, loaded, stage_id=STAGE, team_id=team, gate_id="originality", passed=True,
                                       evidence="lineage: independent", actor="admin:test")


def test_the_arena_result_becomes_panel_user_at_the_decision(tmp_path: Path):
    store = _store(tmp_path, **{"gold_every = 10": "gold_every = 0", "daily_cap = 40": "daily_cap = 500",
                                'ranking = "style_controlled"': 'ranking = "raw"'})
    ents = _entrants(store)
    freeze(store, ents)
    schedule_rng = np.random.default_rng(11)
    strength = {"baekdu": 1.6, "halla": 0.8, "jiri": 0.0, "seorak": -0.8, "taebaek": -1.6}
    rng = np.random.default_rng(3)
    raters = [rater(store, f"rater{i}") for i in range(6)]

    def choose(view, req):
        p = 1 / (1 + np.exp(strength[req.right_team] - strength[req.left_team]))
        u = rng.random()
        return "tie" if u < 0.08 else ("left" if rng.random() < p else "right")

    for i in range(150):
        play(store, raters[i % 6], choose, now=NOW + dt.timedelta(minutes=i), entrants=ents, rng=schedule_rng)
    _record_rest_of_stage(store, tmp_path)
    with store.session(readonly=True) as s:
        loaded = programs.stored(s, PROGRAM)
    with store.session() as s, pytest.raises(DataMissingError, match="open until"):
        decisions.decide_and_store(s, loaded, STAGE, "admin:test", at=NOW)
    with store.session() as s:
        decision = decisions.decide_and_store(s, loaded, STAGE, "admin:test", at=CLOSES + dt.timedelta(hours=1))
    doc = decision["user_arena"]
    assert doc["votes"]["counted"] == 150 and doc["segment"] == 1
    order = [s["team"] for s in doc["scores"]]
    assert order[0] == "baekdu" and order[-1] == "taebaek"
    assert doc["raw"]["ratings"][0]["lower"] < doc["raw"]["ratings"][0]["rating"] < doc["raw"]["ratings"][0]["upper"]
    assert doc["style_controlled"] is not None and doc["ranking"] == "raw" and len(doc["pairs"]) == 10
    with store.session(readonly=True) as s:  # the result is deterministic: recomputed, it has the same digest
        assert decision["user_arena_sha256"] == arena_results.digest(arena_results.compute(s, _ctx(store)))
    with store.session(readonly=True) as s:
        rows = score_service.current_rows(s, PROGRAM, [STAGE])
        arena_rows = {team: row for (_st, team, src, who), row in rows.items() if src == "panel:user"
                      and who == "arena" and not row.voided}
        others = [row for (_st, _t, src, who), row in rows.items() if src == "panel:user" and who != "arena"
                  and not row.voided]
        n_votes = s.execute(select(func.count(ArenaVote.id))).scalar_one()
        n_battles = s.execute(select(func.count(ArenaBattle.id))).scalar_one()
        assert verify(s).ok
    assert set(arena_rows) == set(TEAMS) and not others  # only the arena counts now
    assert arena_rows["baekdu"].stderr and 50 < arena_rows["baekdu"].value <= 100
    assert n_votes == n_battles == 150
    user_points = {t["team"]: t["breakdown"]["user"]["points"] for t in decision["teams"]}
    assert max(user_points, key=user_points.get) == "baekdu" and user_points["baekdu"] == 25.0  # relative_to_best
    assert decision["teams"][0]["breakdown"]["user"]["source"] == "panel:user"


def test_stage_status_shows_the_arena_instead_of_user_scores_and_blocks_while_voting(tmp_path: Path):
    from simsa.services.status import stage_status

    now = dt.datetime.now(UTC)
    store = Store(f"sqlite:///{tmp_path / 'arena.db'}")
    store.upgrade()
    path = write_arena_program(tmp_path, now - dt.timedelta(days=1), now + dt.timedelta(days=1), changes=FAST)
    with store.session() as s:
        loaded = programs.for_writing(s, str(path), "admin:test").loaded
    with store.session(readonly=True) as s:  # not frozen: panel:user is an ordinary (missing) score
        before = stage_status(s, loaded, STAGE)
    assert not [b for b in before.blockers if b.kind == "arena_open"]
    freeze(store, _entrants(store))
    with store.session(readonly=True) as s:
        status = stage_status(s, loaded, STAGE)
    blocker = next(b for b in status.blockers if b.kind == "arena_open")
    assert "open until" in blocker.message
    cells = [c for t in status.teams for c in t.cells if c.source == "panel:user"]
    assert cells and all(c.arena == "voting" and c.value is None and c.missing is None for c in cells)
    assert not [b for b in status.blockers if b.kind == "missing_score" and b.source == "panel:user"]


USER_LEAF = '''  points = 25
  source = "panel:user"
  normalisation = "relative_to_best"
'''
USER_SPLIT = '''  points = 25

    [[stages.criteria.children]]
    id = "user-arena"
    name = "Arena"
    points = 20
    source = "panel:user"
    normalisation = "relative_to_best"

    [[stages.criteria.children]]
    id = "usefulness"
    name = "Usefulness ratings"
    points = 5
    source = "manual:usefulness"
    normalisation = "absolute"
    raw_range = [0, 100]
'''


def test_ratings_feed_their_own_criterion_when_the_program_says_so(tmp_path: Path):
    text = arena_program_text(OPENS, CLOSES, changes={USER_LEAF: USER_SPLIT})
    bad = text.replace('score = "expected_win_rate"', 'rating_sources = { usefulness = "manual:usefulnes" }\n  '
                       'score = "expected_win_rate"')
    assert "feeds no criterion" in _parse_error(bad) and "did you mean 'manual:usefulness'" in _parse_error(bad)
    store = _store(tmp_path, **{USER_LEAF: USER_SPLIT, "gold_every = 10": "gold_every = 0",
                                "daily_cap = 40": "daily_cap = 500",
                                'score = "expected_win_rate"': 'rating_sources = { usefulness = "manual:usefulness" }'
                                                               '\n  score = "expected_win_rate"'})
    ents = _entrants(store)
    freeze(store, ents)
    raters = [rater(store, f"rater{i}") for i in range(4)]
    rng = np.random.default_rng(5)
    for i in range(60):
        who = raters[i % 4]
        view = play(store, who, lambda v, r: "left" if rng.random() < 0.5 else "right",
                    now=NOW + dt.timedelta(minutes=i), entrants=ents, rng=rng)
        with store.session() as s:
            ctx = arena.context(s, PROGRAM, STAGE)
            for side, team in (("left", view.reveal.left_team), ("right", view.reveal.right_team)):
                arena.rate(s, ctx, view.token, who, side, 5 if team == "baekdu" else 2, None)
    _record_rest_of_stage(store, tmp_path)
    with store.session(readonly=True) as s:
        loaded = programs.stored(s, PROGRAM)
    with store.session() as s:
        decision = decisions.decide_and_store(s, loaded, STAGE, "admin:test", at=CLOSES + dt.timedelta(hours=1))
    fed = {r["team"]: r for r in decision["user_arena"]["rating_scores"]}
    assert fed["baekdu"]["value"] == 100.0 and fed["baekdu"]["stderr"] == 0.0
    assert fed["halla"]["value"] == 25.0 and fed["halla"]["source"] == "manual:usefulness"
    points = {t["team"]: t["breakdown"]["usefulness"]["points"] for t in decision["teams"]}
    assert points["baekdu"] == 5.0 and points["halla"] == 1.25
    with store.session(readonly=True) as s:
        rows = score_service.current_rows(s, PROGRAM, [STAGE])
    usefulness = [row for (_st, _t, src, who), row in rows.items() if src == "manual:usefulness" and not row.voided]
    assert len(usefulness) == 5 and all(r.rater == "arena" for r in usefulness)
