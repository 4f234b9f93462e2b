"""The arena under load: many raters battling at once through the API of a real server (a performance script, not
a test; tests/test_web_arena_load.py runs a smaller version of it on PostgreSQL).

    .venv/bin/python benchmarks/arena_load.py [--raters 100] [--votes 20] [--db URL] [--json]

The server is `simsa web` in this process (uvicorn on 127.0.0.1, in a thread) over a fresh database holding the
example programme with stage 1's arena open, no minimum reading time and a daily cap above `--votes`. The entrants
are scripted stand-ins that answer at once, so the load falls on the web application and the store, not on models.

Each rater has an API token of their own and plays `--votes` whole battles, one after another, all raters at once
(asyncio clients, one connection each): start a battle, ask a prompt of their own (every one different), vote. The
schedule makes every 10th battle of a rater an attention check (`gold_every`). Then the database is checked: every
acknowledged vote is stored exactly once and no unacknowledged one is, every battle has its vote, each rater has
`--votes` votes; the schedule is balanced (voted battles per pair of entrants within ±1 of each other, each pair's
left/right positions within ±1); `audit verify` passes.

`--db`: omitted, a fresh SQLite file; a PostgreSQL URL, a fresh database on that server (dropped after).
Clients and server share this machine's cores (and one Python process): the figures are what one machine serves to
itself.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
for folder in (HERE, TESTS):  # web_load's helpers, and the test suite's arena and web support
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from web_load import fresh_database, percentile, run_async

from arena_support import PROGRAM, STAGE, TEAMS, arena_program_text, scripted_factory
from web_support import LiveSite

GOLD_EVERY = 10
ARENA = f"/api/v1/programs/{PROGRAM}/stages/{STAGE}/arena"
CHOICES = ("left", "right", "tie", "both_bad")
VOCABULARY = """
apple river garden winter copper lantern violin meadow harbour pencil thunder orchid canyon ribbon
marble falcon pepper glacier velvet compass walnut saddle kettle prism tunnel beacon cotton ember
mirror oyster quartz rocket spruce tablet umbrella vapour whistle yogurt zipper anchor basket candle
dolphin engine feather goblet hammer island jacket kernel ladder magnet needle oracle paddle quiver
raisin signal teapot uniform valley wallet bridge cactus donkey eclipse fabric gravel helmet iceberg
jigsaw kitten lemon mango nickel olive parrot quilt radish salmon tomato turnip violet window yarrow
almond bamboo cherry dragon forest ginger hazel indigo jasmine koala lilac maple nutmeg onion poppy
sesame thistle vanilla willow acorn barley cobalt daisy fennel hollow ivory juniper kelp lotus
"""
WORDS = VOCABULARY.split()


def prompt_text(rng: random.Random, rater: int, index: int) -> str:
    """A question unlike any other this rater asks (the arena refuses exact and near repeats)."""
    words = rng.sample(WORDS, 9)
    return f"Rater {rater} question {index}: how are {', '.join(words[:4])} and {' '.join(words[4:])} related?"


# --------------------------------------------------------------------------- setting up


@dataclass
class Setup:
    site: LiveSite
    admin_token: str
    tokens: dict[str, str]  # rater → API token
    quota: int              # votes wanted per pair
    categories: list[str]


def start_site(db_url: str, raters: int, votes_each: int) -> Setup:
    """A server over `db_url` with the arena open, the entrants frozen, and `raters` rater accounts with tokens."""
    from simsa.program.loader import parse_program
    from simsa.services import arena_answers, programs

    now = dt.datetime.now(dt.UTC)
    quota = -(-raters * votes_each // 10)  # the votes would fill 10 pairs to here at most
    text = arena_program_text(now - dt.timedelta(days=1), now + dt.timedelta(days=1), changes={
        "min_dwell_seconds = 5": "min_dwell_seconds = 0", "daily_cap = 40": f"daily_cap = {max(40, votes_each)}",
        "votes_per_pair = 30": f"votes_per_pair = {quota}", "gold_every = 10": f"gold_every = {GOLD_EVERY}"})
    arena_answers.use_factory(scripted_factory())
    site = LiveSite(db_url).start()
    try:
        assert site.store is not None
        loaded = parse_program(text, "k-ai-2026.toml")
        with site.store.session() as s:
            programs.register(s, loaded, "load")
        site.account("load-admin")
        admin = site.api_token("load-admin")
        tokens = {}
        for i in range(raters):
            name = f"rater-{i:03d}"
            site.account(name, "rater")
            tokens[name] = site.api_token(name)
        frozen = httpx.post(f"{site.url}{ARENA}/freeze", json={}, headers={"Authorization": f"Bearer {admin}"},
                            timeout=60)
        if frozen.status_code != 201:
            raise RuntimeError(f"freezing the entrants failed: {frozen.status_code} {frozen.text[:300]}")
    except BaseException:
        site.stop()
        arena_answers.use_factory(None)
        raise
    arena = loaded.program.stage(STAGE).arena
    assert arena is not None
    return Setup(site, admin, tokens, quota, list(arena.categories))


# --------------------------------------------------------------------------- the load


@dataclass
class LoadResult:
    raters: int
    votes_each: int
    seconds: float
    acknowledged: int
    errors: int
    votes_per_s: float
    requests_per_s: float
    latency_ms: dict[str, dict[str, float]]
    error_samples: list[str] = field(default_factory=list)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (rater, battle token) of every 201 vote

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("acked")
        return out


async def rater_load(base: str, tokens: dict[str, str], votes_each: int, seed: int) -> LoadResult:
    """Every rater at once, each playing `votes_each` whole battles in turn."""
    latencies: dict[str, list[float]] = {"start": [], "ask": [], "vote": []}
    acked: list[tuple[str, str]] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def call(client: httpx.AsyncClient, kind: str, url: str, body: dict | None) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            errors.append(f"{kind} {url}: {type(exc).__name__}: {exc}")
            return None
        latencies[kind].append(time.perf_counter() - began)
        if response.status_code != 201:
            errors.append(f"{kind} {url}: {response.status_code} {response.text[:200]}")
            return None
        return response

    async def rater(number: int, name: str, token: str) -> None:
        rng = random.Random(seed * 100_003 + number)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for i in range(votes_each):
                started = await call(client, "start", f"{ARENA}/battles", None)
                if started is None:
                    return
                battle = started.json()["battle"]
                asked = await call(client, "ask", f"{ARENA}/battles/{battle}/turns",
                                   {"prompt": prompt_text(rng, number, i)})
                if asked is None:
                    return
                voted = await call(client, "vote", f"{ARENA}/battles/{battle}/vote", {"choice": rng.choice(CHOICES)})
                if voted is None:
                    return
                acked.append((name, battle))

    began = time.perf_counter()
    await asyncio.gather(*(rater(i, name, token) for i, (name, token) in enumerate(sorted(tokens.items()))))
    seconds = time.perf_counter() - began
    requests = sum(len(v) for v in latencies.values())
    return LoadResult(raters=len(tokens), votes_each=votes_each, seconds=round(seconds, 2), acknowledged=len(acked),
                      errors=len(errors), votes_per_s=round(len(acked) / seconds, 1),
                      requests_per_s=round(requests / seconds, 1),
                      latency_ms={k: {"p50": round(percentile(v, 50) * 1000, 1),
                                      "p95": round(percentile(v, 95) * 1000, 1),
                                      "p99": round(percentile(v, 99) * 1000, 1)} for k, v in latencies.items()},
                      error_samples=errors[:5], acked=acked)


# --------------------------------------------------------------------------- checking the store


@dataclass
class ArenaCheck:
    stored: int
    battles: int
    unvoted_battles: int
    gold: int
    per_rater: dict[int, int]  # votes a rater has → how many raters have that many
    lost: list[str]
    duplicated: list[str]
    unacknowledged_stored: list[str]
    pair_votes: dict[str, int]
    left_right: dict[str, list[int]]
    max_vote_spread: int
    max_left_right_difference: int
    max_category_spread: int
    audit_ok: bool
    audit_entries: int
    audit_problems: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def check_store(db_url: str, acked: list[tuple[str, str]], quota: int, categories: list[str]) -> ArenaCheck:
    """What the database holds after the load, read straight from the arena's tables, and `audit verify`."""
    from sqlalchemy import func, select

    from simsa.arena.schedule import ScheduleCounts
    from simsa.audit.log import verify
    from simsa.store.db import Store
    from simsa.store.models import ArenaBattle, ArenaVote

    store = Store(db_url)
    try:
        with store.session(readonly=True) as s:
            votes = s.execute(select(ArenaVote.rater, ArenaBattle.token, ArenaBattle.kind, ArenaBattle.left_team,
                                     ArenaBattle.right_team, ArenaBattle.category)
                              .join(ArenaBattle, ArenaBattle.id == ArenaVote.battle_id)).all()
            battles = s.execute(select(func.count(ArenaBattle.id))).scalar_one()
            verification = verify(s)
    finally:
        store.dispose()
    stored = Counter((rater, token) for rater, token, *_ in votes)
    acknowledged = Counter(acked)
    entrants = [(left, right, category) for _, _, kind, left, right, category in votes if kind == "entrants"]
    report = ScheduleCounts.from_battles(entrants).balance_report(TEAMS, quota, categories)
    return ArenaCheck(
        stored=len(votes), battles=battles, unvoted_battles=battles - len(votes),
        gold=sum(1 for v in votes if v[2] == "gold"),
        per_rater=dict(Counter(Counter(rater for rater, *_ in votes).values())),
        lost=[key[1] for key in acknowledged if key not in stored][:10],
        duplicated=[key[1] for key in stored | acknowledged if stored[key] > 1 or acknowledged[key] > 1][:10],
        unacknowledged_stored=[key[1] for key in stored if key not in acknowledged][:10],
        pair_votes={f"{p.a}-{p.b}": p.votes for p in report.pairs},
        left_right={f"{p.a}-{p.b}": [p.left_a, p.left_b] for p in report.pairs},
        max_vote_spread=report.max_vote_spread, max_left_right_difference=report.max_left_right_difference,
        max_category_spread=report.max_category_spread, audit_ok=verification.ok,
        audit_entries=verification.entries, audit_problems=[str(p) for p in verification.problems][:5])


# --------------------------------------------------------------------------- the whole run


def run_arena_load(db_url: str, *, raters: int, votes_each: int, seed: int = 7) -> dict:
    """Serve `db_url`, run the raters, ask the API for the arena's state, check the store; the figures as a
    dict."""
    from simsa.services import arena_answers

    setup = start_site(db_url, raters, votes_each)
    try:
        load = run_async(rater_load(setup.site.url, setup.tokens, votes_each, seed))
        shown = httpx.get(f"{setup.site.url}{ARENA}", headers={"Authorization": f"Bearer {setup.admin_token}"},
                          timeout=60)
        shown.raise_for_status()
        state = shown.json()
    finally:
        setup.site.stop()
        arena_answers.use_factory(None)
    check = check_store(db_url, load.acked, setup.quota, setup.categories)
    return {"backend": "postgresql" if db_url.startswith("postgresql") else "sqlite", "cores": os.cpu_count(),
            "load": load.to_dict(), "check": check.to_dict(),
            "state": {"votes": state["votes"], "pending": state["pending"],
                      "pairs": {f"{p['a']}-{p['b']}": p["counted"] for p in state["pairs"]}}}


def ok(result: dict, raters: int, votes_each: int) -> bool:
    load, check = result["load"], result["check"]
    return (load["errors"] == 0 and load["acknowledged"] == raters * votes_each
            and check["stored"] == raters * votes_each and check["unvoted_battles"] == 0
            and check["per_rater"] == {votes_each: raters} and not check["lost"] and not check["duplicated"]
            and not check["unacknowledged_stored"] and check["max_vote_spread"] <= 1
            and check["max_left_right_difference"] <= 1 and check["audit_ok"]
            and result["state"]["pairs"] == check["pair_votes"] and result["state"]["pending"] == 0)


def show(result: dict) -> None:
    load, check = result["load"], result["check"]
    print(f"arena on {result['backend']}, {result['cores']} cores (clients and server in one process)")
    print(f"{load['raters']} raters × {load['votes_each']} votes: {load['acknowledged']} votes in "
          f"{load['seconds']:.1f} s = {load['votes_per_s']:.1f} votes/s, {load['requests_per_s']:.1f} requests/s, "
          f"{load['errors']} errors")
    for kind, lat in load["latency_ms"].items():
        print(f"    {kind:<6} p50 {lat['p50']:7.1f} ms, p95 {lat['p95']:7.1f} ms, p99 {lat['p99']:7.1f} ms")
    for sample in load["error_samples"]:
        print(f"    error: {sample}")
    print(f"check: {check['stored']} votes stored ({check['gold']} attention checks) over {check['battles']} "
          f"battles, {len(check['lost'])} lost, {len(check['duplicated'])} duplicated, "
          f"{len(check['unacknowledged_stored'])} stored unacknowledged; votes per rater {check['per_rater']}")
    print(f"schedule: voted battles per pair {min(check['pair_votes'].values())}–{max(check['pair_votes'].values())}"
          f" (spread {check['max_vote_spread']}), left/right difference ≤ {check['max_left_right_difference']}, "
          f"category spread ≤ {check['max_category_spread']}")
    print(f"audit verify {'OK' if check['audit_ok'] else 'FAILED'} ({check['audit_entries']} entries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=int, default=100, help="raters battling at once")
    parser.add_argument("--votes", type=int, default=20, help="whole battles (votes) per rater")
    parser.add_argument("--db", default=None, help="PostgreSQL server URL (a fresh database is made on it) or a "
                                                   "new SQLite URL (default: a fresh SQLite file)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    if opts.raters < 1 or opts.votes < 1:
        parser.error("--raters and --votes must be ≥ 1")
    os.environ.setdefault("SIMSA_ARGON2_FAST", "1")  # accounts are made here by the hundred; not what is measured
    with tempfile.TemporaryDirectory(prefix="simsa-arena-load-") as tmp, fresh_database(opts.db, Path(tmp)) as db:
        result = run_arena_load(db, raters=opts.raters, votes_each=opts.votes, seed=opts.seed)
    if opts.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        show(result)
    if not ok(result, opts.raters, opts.votes):
        sys.exit(1)


if __name__ == "__main__":
    main()
