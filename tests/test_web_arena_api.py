"""The arena's JSON API over a real server and store, with scripted entrants: a rater's blind battle (nothing that
names or times an entrant in any body or header before the vote), voided votes, every refusal (a second vote,
another rater's battle, the daily cap, other roles), strict bodies, and the secretariat's state, result, votes,
freezing and exclusions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from arena_support import ScriptedClient, arena_program_text, scripted_factory
from simsa.audit.log import verify
from simsa.program.loader import LoadedProgram, parse_program
from simsa.services import arena_answers, programs
from web_support import PROGRAM, STAGE, TEAMS, LiveSite

API = "/api/v1"
ARENA = f"{API}/programs/{PROGRAM}/stages/{STAGE}/arena"
BATTLES = f"{ARENA}/battles"
RATERS = ("r-ahn", "r-baek", "r-cho")
OTHERS = {"halla-lead": "team", "ex-kim": "expert", "pub-lee": "public"}
CAP = 3
TIMING = ("latency", "first_token", "tokens_per_second", "completion_tokens", "price_per_million", "answered_at",
          "dwell", "finish_reason")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:800])
    body = response.json()
    assert set(body) >= {"error", "exit_code", "status"} and body["status"] == status
    return body["error"]


def identity_words(loaded: LoadedProgram) -> list[str]:
    """Everything that would tell a rater who answered: team ids and names (both languages), members, models,
    the entrants' served model names and the scripted clients' identities."""
    words: set[str] = set()
    arena = loaded.program.stage(STAGE).arena
    assert arena is not None
    for entrant in arena.entrants:
        team = loaded.program.team(entrant.team)
        words |= {team.id, team.name, *(n for n in (team.name_ko,) if n), *team.members, *team.models}
        words |= {m.split("/", 1)[1] for m in team.models if "/" in m}
        words |= {f"{team.id}-model", entrant.model or team.id}
    return sorted(words)


@dataclass
class ArenaSite:
    site: LiveSite
    loaded: LoadedProgram
    tokens: dict[str, str]
    seen: list[httpx.Response] = field(default_factory=list)  # every rater response before a vote

    def client(self, who: str | None = None) -> httpx.Client:
        return self.site.client(headers=bearer(self.tokens[who]) if who else {})

    def leaks(self, response: httpx.Response) -> list[str]:
        """Identity words and timing fields found anywhere in a response's headers or body."""
        text = "\n".join([f"{k}: {v}" for k, v in response.headers.items()] + [response.text]).lower()
        found = [w for w in identity_words(self.loaded) if w.lower() in text]
        return found + [t for t in TIMING if t in text]


@pytest.fixture
def arena_site(sqlite_site: LiveSite) -> Iterator[ArenaSite]:
    now = dt.datetime.now(dt.UTC)
    text = arena_program_text(now - dt.timedelta(days=1), now + dt.timedelta(days=1),
                              changes={"min_dwell_seconds = 5": "min_dwell_seconds = 0",
                                       "daily_cap = 40": f"daily_cap = {CAP}", "gold_every = 10": "gold_every = 0"})
    loaded = parse_program(text, "k-ai-2026.toml")
    assert sqlite_site.store is not None
    with sqlite_site.store.session() as s:
        programs.register(s, loaded, "test")
    sqlite_site.account("sec")
    for name in RATERS:
        sqlite_site.account(name, "rater")
    for name, role in OTHERS.items():
        sqlite_site.account(name, role, team="halla" if role == "team" else None)
    tokens = {name: sqlite_site.api_token(name) for name in ("sec", *RATERS, *OTHERS)}
    arena_answers.use_factory(scripted_factory())
    try:
        yield ArenaSite(sqlite_site, loaded, tokens)
    finally:
        arena_answers.use_factory(None)


def freeze(a: ArenaSite) -> dict:
    with a.client("sec") as c:
        response = c.post(f"{ARENA}/freeze", json={})
    assert response.status_code == 201, response.text
    return response.json()


def battle(a: ArenaSite, who: str, prompt: str | None = None) -> dict:
    """Start (or resume) a battle and ask one prompt; every response is kept for the leak check."""
    with a.client(who) as c:
        started = c.post(BATTLES)
        assert started.status_code == 201, started.text
        token = started.json()["battle"]
        body = {"prompt": prompt} if prompt else {"use_suggested": True}
        asked = c.post(f"{BATTLES}/{token}/turns", json=body)
        assert asked.status_code == 201, asked.text
        shown = c.get(f"{BATTLES}/{token}")
        assert shown.status_code == 200, shown.text
    a.seen += [started, asked, shown]
    return asked.json()


# --------------------------------------------------------------------------- a rater's battle


def test_a_blind_battle_through_the_api(arena_site: ArenaSite) -> None:
    a = arena_site
    frozen = freeze(a)
    assert frozen["opened"] and frozen["segment"]["number"] == 1 and frozen["changed"] == []
    assert {e["team"] for e in frozen["segment"]["manifest"]["entrants"]} == set(TEAMS)

    view = battle(a, "r-ahn", "How do I keep basil alive on a windowsill in winter?")
    assert view["voted"] is False and len(view["turns"]) == 1 and view["max_turns"] == 3
    assert set(view) == {"battle", "category", "started_at", "turns", "max_turns", "suggested_prompt", "voted"}
    turn = view["turns"][0]
    assert turn["prompt"].startswith("How do I keep basil") and turn["left"] and turn["right"]
    token = view["battle"]
    with a.client("r-ahn") as c:
        again = c.post(BATTLES)  # an unvoted battle comes back, not a new pair
        second = c.post(f"{BATTLES}/{token}/turns", json={"prompt": "And what about rosemary indoors?"})
        early = c.post(f"{BATTLES}/{token}/ratings", json={"side": "left", "usefulness": 4})
        a.seen += [again, second, early]
        assert again.status_code == 201 and again.json()["battle"] == token
        assert second.status_code == 201 and [t["turn"] for t in second.json()["turns"]] == [1, 2]
        assert "after you vote" in assert_error(early, 400)

        for response in a.seen:
            assert a.leaks(response) == [], (response.request.url, a.leaks(response))

        voted = c.post(f"{BATTLES}/{token}/vote", json={"choice": "left"})
        assert voted.status_code == 201, voted.text
        out = voted.json()
        assert out["voted"] and out["vote"] == "left" and out["vote_status"] == "counted"
        reveal = out["reveal"]
        assert {reveal["left"]["team"], reveal["right"]["team"]} <= set(TEAMS)
        assert reveal["left"]["team"] != reveal["right"]["team"]
        assert len(reveal["left"]["turns"]) == 2 and "latency_seconds" in reveal["left"]["turns"][0]
        assert reveal["left"]["price_per_million_tokens"] == a.loaded.program.stage(STAGE).arena.entrant(
            reveal["left"]["team"]).price_per_million_tokens
        assert a.leaks(voted)  # the reveal names the entrants: the leak check can fail

        twice = c.post(f"{BATTLES}/{token}/vote", json={"choice": "right"})
        assert "voted on this battle already" in assert_error(twice, 400)
        after = c.post(f"{BATTLES}/{token}/turns", json={"prompt": "One more question after the vote"})
        assert "voted on" in assert_error(after, 400)
        rated = c.post(f"{BATTLES}/{token}/ratings", json={"side": "right", "usefulness": 4, "cost_efficiency": 2})
        assert rated.status_code == 201 and rated.json()["ratings"] == {
            "right": {"usefulness": 4, "cost_efficiency": 2}}
        assert "rated already" in assert_error(
            c.post(f"{BATTLES}/{token}/ratings", json={"side": "right", "usefulness": 1}), 400)
        shown = c.get(f"{BATTLES}/{token}").json()
        assert shown["vote"] == "left" and shown["reveal"] == reveal

        new = c.post(BATTLES)  # the next battle is a new one, blind again
        assert new.status_code == 201 and new.json()["battle"] != token and a.leaks(new) == []


def test_a_vote_on_answers_that_name_an_entrant_is_void(arena_site: ArenaSite) -> None:
    a = arena_site
    freeze(a)
    arena_answers.use_factory(scripted_factory(leaking=frozenset(TEAMS)))  # every answer signs with a team name
    view = battle(a, "r-baek", "Summarise the plot of a heist film in two sentences.")
    with a.client("r-baek") as c:
        voted = c.post(f"{BATTLES}/{view['battle']}/vote", json={"choice": "right"}).json()
    assert voted["vote_status"] == "void" and "names an entrant" in voted["vote_reason"]
    with a.client("sec") as c:
        votes = c.get(f"{ARENA}/votes").json()["votes"]
        state = c.get(ARENA).json()
    assert [(v["rater"], v["status"]) for v in votes] == [("r-baek", "void")]
    assert votes[0]["reason"] == voted["vote_reason"]
    assert state["votes"]["void"] == 1 and state["votes"]["counted"] == 0
    assert sum(p["void"] for p in state["pairs"]) == 1 and sum(p["scheduled"] for p in state["pairs"]) == 0


class Unreachable(ScriptedClient):
    """An entrant whose endpoint is down; its client's error names the endpoint and the served model."""

    def complete(self, messages, settings):  # type: ignore[no-untyped-def]
        raise ConnectionError(f"cannot reach http://127.0.0.1:8101/v1 serving {self.team}-model")


def test_an_entrant_that_cannot_answer_is_not_named(arena_site: ArenaSite) -> None:
    a = arena_site
    freeze(a)
    arena_answers.use_factory(lambda entrant, _arena: Unreachable(entrant.team))
    with a.client("r-ahn") as c:
        token = c.post(BATTLES).json()["battle"]
        refused = c.post(f"{BATTLES}/{token}/turns", json={"prompt": "Is anyone there at all?"})
    assert "could not be produced" in assert_error(refused, 400)
    assert a.leaks(refused) == []


def test_another_raters_battle_is_not_found_like_a_random_token(arena_site: ArenaSite) -> None:
    a = arena_site
    freeze(a)
    token = battle(a, "r-ahn", "Which houseplants tolerate low light best?")["battle"]
    with a.client("r-baek") as c:
        for path, body in (("", None), ("/turns", {"prompt": "Steal this battle please"}),
                           ("/vote", {"choice": "left"}), ("/ratings", {"side": "left", "usefulness": 5})):
            for probe in (token, "x" * len(token)):
                url = f"{BATTLES}/{probe}{path}"
                response = c.get(url) if body is None else c.post(url, json=body)
                assert assert_error(response, 404) == "no such battle", (path, probe)
    with a.client("r-ahn") as c:  # the battle is untouched
        mine = c.get(f"{BATTLES}/{token}").json()
    assert mine["voted"] is False and len(mine["turns"]) == 1


def test_the_daily_cap(arena_site: ArenaSite) -> None:
    a = arena_site
    freeze(a)
    with a.client("r-cho") as c:
        for i in range(CAP):
            topic = ("sourdough starters", "tidal power in Korea", "the history of hanji paper")[i]
            token = battle(a, "r-cho", f"Tell me about {topic}.")["battle"]
            assert c.post(f"{BATTLES}/{token}/vote", json={"choice": "tie"}).status_code == 201
        assert "today's limit of 3" in assert_error(c.post(BATTLES), 400)


def test_only_raters_battle_and_only_the_secretariat_reads_the_arena(arena_site: ArenaSite) -> None:
    a = arena_site
    freeze(a)
    token = battle(a, "r-ahn", "Explain compound interest to a teenager.")["battle"]
    rater_calls = [("post", BATTLES, None), ("get", f"{BATTLES}/{token}", None),
                   ("post", f"{BATTLES}/{token}/turns", {"prompt": "Another prompt entirely"}),
                   ("post", f"{BATTLES}/{token}/vote", {"choice": "left"}),
                   ("post", f"{BATTLES}/{token}/ratings", {"side": "left", "usefulness": 3})]
    admin_calls = [("get", ARENA, None), ("get", f"{ARENA}/result", None), ("get", f"{ARENA}/votes", None),
                   ("post", f"{ARENA}/freeze", {"reason": "x"}),
                   ("post", f"{ARENA}/exclusions", {"rater": "r-ahn", "decision": "exclude", "reason": "x"})]
    for who in OTHERS:  # a team, an expert, a public account: refused, whatever the token
        with a.client(who) as c:
            for method, url, body in rater_calls + admin_calls:
                response = c.get(url) if method == "get" else c.post(url, json=body)
                assert "this needs the role" in assert_error(response, 403), (who, url)
    with a.client("sec") as c:  # the secretariat does not vote
        for method, url, body in rater_calls:
            response = c.get(url) if method == "get" else c.post(url, json=body)
            assert_error(response, 403)
    with a.client("r-baek") as c:  # a rater does not read the arena's state
        for method, url, body in admin_calls:
            response = c.get(url) if method == "get" else c.post(url, json=body)
            assert_error(response, 403)
    with a.client() as c:  # no token
        for method, url, body in rater_calls + admin_calls:
            response = c.get(url) if method == "get" else c.post(url, json=body)
            assert_error(response, 401)
    c = a.site.signed_in("r-ahn")  # a browser's cookie reads, but cannot write through the API
    try:
        assert c.get(f"{BATTLES}/{token}").status_code == 200
        assert "API token" in assert_error(c.post(f"{BATTLES}/{token}/vote", json={"choice": "left"}), 401)
    finally:
        c.close()
    with a.client("r-ahn") as c:
        assert c.get(f"{BATTLES}/{token}").json()["voted"] is False
        assert_error(c.post(f"{API}/programs/{PROGRAM}/stages/stage-2/arena/battles"), 404)


def test_bodies_are_strict(arena_site: ArenaSite) -> None:
    a = arena_site
    freeze(a)
    token = battle(a, "r-ahn", "Plan a three-day trip to Gyeongju.")["battle"]
    bad = [("/turns", {"prompt": "x", "use_suggested": True}), ("/turns", {}), ("/turns", {"prompt": ""}),
           ("/turns", {"prompt": "y" * 8001}), ("/turns", {"prompt": "fine", "model": "baekdu"}),
           ("/turns", {"prompt": 42}), ("/turns", {"use_suggested": "true"}),
           ("/vote", {"choice": "A"}), ("/vote", {"choice": "left", "reveal": True}), ("/vote", {}),
           ("/ratings", {"side": "middle", "usefulness": 3}), ("/ratings", {"side": "left", "usefulness": 6}),
           ("/ratings", {"side": "left", "usefulness": "3"}), ("/ratings", {"side": "left"}),
           ("/turns", {"prompt": "nul \x00 inside"})]
    with a.client("r-ahn") as c:
        for path, body in bad:
            assert_error(c.post(f"{BATTLES}/{token}{path}", json=body), 422)
        assert c.get(f"{BATTLES}/{token}").json()["voted"] is False  # nothing got through
    with a.client("sec") as c:
        for body in ({"rater": "r-ahn", "vote": 1, "decision": "exclude", "reason": "x"},
                     {"decision": "exclude", "reason": "x"},
                     {"rater": "r-ahn", "decision": "delete", "reason": "x"},
                     {"rater": "r-ahn", "decision": "exclude", "reason": ""},
                     {"rater": "r-ahn", "decision": "exclude", "reason": "x",
                      "evidence": {f"k{i}": i for i in range(51)}},
                     {"rater": "r-ahn", "decision": "exclude", "reason": "x", "evidence": {"k": [1, 2]}}):
            assert_error(c.post(f"{ARENA}/exclusions", json=body), 422)
        assert_error(c.post(f"{ARENA}/freeze", json={"reason": "r" * 2001}), 422)


# --------------------------------------------------------------------------- the secretariat


def test_the_secretariat_state_result_votes_and_exclusions(arena_site: ArenaSite) -> None:
    a = arena_site
    with a.client("sec") as c:
        before = c.get(ARENA).json()
        assert before["segment"] is None and before["open"] is True and before["votes"]["total"] == 0
        with a.client("r-ahn") as r:
            assert "not frozen" in assert_error(r.post(BATTLES), 400)
    freeze(a)
    assert freeze(a)["opened"] is False  # unchanged entrants: nothing happens
    choices = ("left", "right", "tie", "both_bad")
    for i, who in enumerate(RATERS * 2):
        token = battle(a, who, f"Prompt {i}: {['tea', 'rivers', 'chess', 'bread', 'kites', 'jazz'][i]} facts")["battle"]
        with a.client(who) as r:
            assert r.post(f"{BATTLES}/{token}/vote", json={"choice": choices[i % 4]}).status_code == 201
    pending = battle(a, "r-ahn", "A pending battle about lighthouses")  # started and asked, not voted
    with a.client("sec") as c:
        state = c.get(ARENA).json()
        assert state["segment"]["number"] == 1 and state["segments"] == 1 and state["raters"] == 3
        assert state["votes"] == {"counted": 6, "void": 0, "gold_pass": 0, "gold_fail": 0, "excluded": 0,
                                  "total": 6}
        assert state["pending"] == 1 and sum(p["scheduled"] for p in state["pairs"]) == 7
        assert sum(p["counted"] for p in state["pairs"]) == 6 and len(state["pairs"]) == 10
        assert max(p["scheduled"] for p in state["pairs"]) == 1  # the schedule spreads 7 battles over 10 pairs
        assert all(p["left_a"] + p["left_b"] == p["scheduled"] for p in state["pairs"])

        votes = c.get(f"{ARENA}/votes").json()["votes"]
        assert [v["rater"] for v in votes] == list(RATERS * 2)
        assert [v["winner"] for v in votes] == ["model_a", "model_b", "tie", "both_bad", "model_a", "model_b"]
        assert pending["battle"] not in {v["battle"] for v in votes}

        result = c.get(f"{ARENA}/result")
        assert result.status_code == 200, result.text
        doc = result.json()
        assert doc["program"] == PROGRAM and doc["votes"]["counted"] == 6 and len(doc["pairs"]) == 10

        excluded = c.post(f"{ARENA}/exclusions", json={"rater": "r-baek", "decision": "exclude",
                                                        "reason": "voted without reading",
                                                        "evidence": {"median_dwell_seconds": 0.4}})
        assert excluded.status_code == 201, excluded.text
        assert excluded.json()["decided_by"].endswith("sec") and excluded.json()["evidence"] == {
            "median_dwell_seconds": 0.4}
        one = c.post(f"{ARENA}/exclusions", json={"vote": votes[0]["vote"], "decision": "exclude",
                                                   "reason": "a duplicate of an earlier vote"})
        assert one.status_code == 201
        after = c.get(f"{ARENA}/votes").json()["votes"]
        assert len(after) == 6  # nothing is deleted
        assert {v["vote"]: v["excluded"] for v in after if v["excluded"]} == {
            votes[0]["vote"]: "a duplicate of an earlier vote",
            **{v["vote"]: "voted without reading" for v in votes if v["rater"] == "r-baek"}}
        assert c.get(ARENA).json()["votes"]["excluded"] == 3
        kept = c.post(f"{ARENA}/exclusions", json={"rater": "r-baek", "decision": "keep", "reason": "explained"})
        assert kept.status_code == 201 and c.get(ARENA).json()["votes"]["excluded"] == 1
        assert "no votes" in assert_error(c.post(f"{ARENA}/exclusions", json={
            "rater": "nobody", "decision": "exclude", "reason": "x"}), 404)
        assert_error(c.post(f"{ARENA}/exclusions", json={"vote": 999999, "decision": "exclude", "reason": "x"}), 404)
        assert "no arena" in assert_error(c.get(f"{API}/programs/{PROGRAM}/stages/stage-2/arena"), 404)
    assert a.site.store is not None
    with a.site.store.session(readonly=True) as s:
        assert verify(s).ok


def test_openapi_documents_the_arena_routes() -> None:
    from fastapi.routing import APIRoute

    from simsa.web.app import create_app
    from simsa.web.routes.api import arena as arena_routes
    from simsa.web.settings import WebSettings

    class NoStore:
        pass

    schema = create_app(WebSettings(access_log=False), store=NoStore()).openapi()  # type: ignore[arg-type]
    routes = [r for r in arena_routes.router.routes if isinstance(r, APIRoute)]
    assert len(routes) == 10
    for route in routes:
        for method in route.methods:
            operation = schema["paths"][API + route.path][method.lower()]
            assert operation["summary"] and {"200", "201"} & set(operation["responses"]), route.path
            assert operation["tags"] == ["arena"]
            if method == "POST":
                assert operation["security"] == [{"api_token": []}], route.path
                assert {"401", "403", "404", "422"} <= set(operation["responses"]), route.path
    components = schema["components"]["schemas"]
    assert components["TurnIn"]["additionalProperties"] is False
    assert components["TurnIn"]["properties"]["prompt"]["anyOf"][0]["maxLength"] == 8000
    assert components["ExclusionIn"]["properties"]["evidence"]["maxProperties"] == 50
    assert re.fullmatch(r"[A-Za-z]+", components["Battle"]["title"])
