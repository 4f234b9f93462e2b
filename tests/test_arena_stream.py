"""Streamed, paced battles against two real served models of different speed.

One tiny model is served twice by the serve-model app on loopback, each in a process of its own: as is, and slowed
(a pause before every forward pass, longest before the first token). Both answers of a battle stream at the slower
side's pace: no text appears before the slower side's first token, and while both run neither side shows more than
the other, whichever side is the fast one (`Entrants.stream_both`). `ask_streaming` stores the turn the rater saw;
the web endpoint refuses like the form post (no CSRF 403, another rater's battle 404, a team account 403, a refused
prompt 400 with its error event), streams events that carry no name and no timing, and a rater who leaves mid-way
stops both entrants and stores nothing. Last, the battle page's script streams into the page in a real browser.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from arena_support import arena_program_text, ctx_of, freeze, rater
from served_models import address, launch, one_thread, stop
from simsa.bench.chat import GenSettings, OpenAIChatClient
from simsa.bench.tinymodels import TinySpec, build_tiny_model
from simsa.errors import InputError, NotFound
from simsa.program.arena_schema import Arena, Entrant
from simsa.program.loader import parse_program
from simsa.services import arena, arena_answers, programs
from simsa.services.arena_answers import Answer, Entrants
from simsa.store.models import ArenaBattle
from web_support import PROGRAM, STAGE, LiveSite, csrf_of

PROMPTS = ("Tell me about the sea.", "바다에 대해 말해 주세요.", "What is a good breakfast?", "좋은 아침 식사는?",
           "Describe a city at night.", "밤의 도시를 묘사해 주세요.")
BASE = f"/arena/{PROGRAM}/{STAGE}"


# `simsa serve-model`'s app with a pause before every forward pass, read from a file the test rewrites (seconds:
# before the first token, before each next one), in a process of its own as `simsa serve-model` runs (sampling
# draws on the process's random generator: two models sampling in one process would disturb each other's answers).
SLOWED = """
import json, socket, sys, time
from pathlib import Path
from simsa.bench.server import create_app
from simsa.cli.serve_cmd import serve, server_url
directory, name, pauses = sys.argv[1], sys.argv[2], Path(sys.argv[3])
app = create_app(Path(directory), name=name)
def pause(module, args, kwargs):
    ids = kwargs.get("input_ids", args[0] if args else None)
    first, step = json.loads(pauses.read_text())
    time.sleep(first if ids is not None and ids.shape[-1] > 1 else step)
app.state.served.model.register_forward_pre_hook(pause, with_kwargs=True)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(64)
serve(app, sock, lambda: print(json.dumps({"url": server_url(sock), "model": name}), flush=True))
"""


@dataclass
class Served:
    url: str
    name: str
    proc: subprocess.Popen[str]
    pauses: Path

    def pause(self, first: float, step: float) -> None:
        self.pauses.write_text(json.dumps([first, step]))

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url.removesuffix("/v1") + "/health", timeout=30).json()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """The tiny model served twice: as is, and slowed (0.25 s before the first token, 0.03 s before each next)."""
    with one_thread():
        tiny = build_tiny_model(tmp_path_factory.getbasetemp() / "stream-tiny" / "tiny-ko", TinySpec(steps=50))
    folder = tmp_path_factory.mktemp("pauses")
    pauses = {"fast": (0.0, 0.0), "slow": (0.25, 0.03)}
    for name, (first, step) in pauses.items():
        (folder / name).write_text(json.dumps([first, step]))
    procs = {name: launch([sys.executable, "-c", SLOWED, str(tiny), f"{name}-model", str(folder / name)], api_key="")
             for name in pauses}
    try:
        served = {}
        for name, proc in procs.items():
            info = address(proc, "a model server")
            served[name] = Served(info["url"], info["model"], proc, folder / name)
        yield served
    finally:
        stop(*procs.values())


ROUTE: dict[str, str] = {}  # team -> which server answers for it (the tests switch it)
DEFAULT_ROUTE = {"baekdu": "fast", "jiri": "fast", "taebaek": "fast", "halla": "slow", "seorak": "slow"}


class Routed(OpenAIChatClient):
    """An entrant's client that asks whichever server `ROUTE` names for its team now; its identity (what the
    segment freezes) is the team's, whichever server answers."""

    def __init__(self, team: str, models: dict[str, Served]) -> None:
        self.team = team
        self.models = models
        super().__init__("http://127.0.0.1:9/v1", "unused", timeout=30, max_retries=0)

    @property  # type: ignore[override]
    def base_url(self) -> str:
        return self.models[ROUTE[self.team]].url

    @base_url.setter
    def base_url(self, value: str) -> None:
        pass

    @property  # type: ignore[override]
    def model(self) -> str:
        return self.models[ROUTE[self.team]].name

    @model.setter
    def model(self, value: str) -> None:
        pass

    def identity(self) -> dict[str, Any]:
        return {"kind": "test", "team": self.team}


class Unreachable(Routed):
    """An entrant whose endpoint refuses connections."""

    @property  # type: ignore[override]
    def base_url(self) -> str:
        return "http://127.0.0.1:9/v1"

    @base_url.setter
    def base_url(self, value: str) -> None:
        pass

    @property  # type: ignore[override]
    def model(self) -> str:
        return "gone"

    @model.setter
    def model(self, value: str) -> None:
        pass


def factory_for(models: dict[str, Served]):  # type: ignore[no-untyped-def]
    def factory(entrant: Entrant, _arena: Arena) -> OpenAIChatClient:
        return Routed(entrant.team, models)
    return factory


@contextmanager
def routed(**changes: str) -> Iterator[None]:
    saved = dict(ROUTE)
    ROUTE.update(changes)
    try:
        yield
    finally:
        ROUTE.clear()
        ROUTE.update(saved)


@pytest.fixture(scope="module")
def site(models: dict[str, Served], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The arena open since an hour ago, sampled answers of at most 40 tokens, no dwell time and no attention
    checks; entrants answer from the served models; raters and a team account, signed in."""
    folder = tmp_path_factory.mktemp("arena-stream")
    live = LiveSite(f"sqlite:///{folder / 'simsa.db'}", settings_changes={"login_rate": 10_000}).start()
    now = dt.datetime.now(dt.UTC)
    text = arena_program_text(now - dt.timedelta(hours=1), now + dt.timedelta(days=1), changes={
        "max_tokens = 512": "max_tokens = 40", "temperature = 0.7": "temperature = 1.0",
        "min_dwell_seconds = 5": "min_dwell_seconds = 0", "gold_every = 10": "gold_every = 0"})
    assert live.store is not None
    with live.store.session() as s:
        programs.register(s, parse_program(text, f"{PROGRAM}.toml"), "test")
    ROUTE.update(DEFAULT_ROUTE)
    arena_answers.use_factory(factory_for(models))
    raters = {name: rater(live.store, name) for name in ("rater-one", "rater-two", "rater-web", "rater-js",
                                                         "rater-leave")}
    live.account("team-a", "team", team="baekdu")
    freeze(live.store)
    clients = {name: live.signed_in(name, "correct horse battery staple")
               for name in ("rater-web", "rater-two", "team-a", "rater-leave")}
    try:
        yield {"site": live, "raters": raters, "clients": clients}
    finally:
        arena_answers.use_factory(None)
        ROUTE.clear()
        for client in clients.values():
            client.close()
        live.stop()


def start(live: LiveSite, who: Any) -> str:
    assert live.store is not None
    with live.store.session() as s:
        return arena.start_battle(s, arena.context(s, PROGRAM, STAGE), who).token


def messages(ctx: arena.ArenaContext, prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": ctx.arena.system_prompt}, {"role": "user", "content": prompt}]


@pytest.fixture(scope="module")
def prompts(site: dict, models: dict[str, Served]) -> list[str]:
    """Prompts the tiny model answers at some length (the servers serve the same weights: the fast one is asked),
    longest first."""
    ctx = ctx_of(site["site"])
    d = ctx.arena.decoding
    settings = GenSettings(max_tokens=d.max_tokens, temperature=d.temperature, top_p=d.top_p, seed=d.seed)
    with OpenAIChatClient(models["fast"].url, models["fast"].name, max_retries=0) as client:
        lengths = {p: client.complete(messages(ctx, p), settings).completion_tokens or 0 for p in PROMPTS}
    found = sorted((p for p in PROMPTS if lengths[p] >= 15), key=lambda p: -lengths[p])
    assert len(found) >= 3, f"the tiny model answers these prompts too briefly: {lengths}"
    return found


# --------------------------------------------------------------------------- pacing two real entrants


@pytest.mark.parametrize("fast_side", ["left", "right"])
def test_stream_both_shows_both_sides_at_the_slower_pace(site: dict, models: dict[str, Served], prompts: list[str],
                                                         fast_side: str) -> None:
    ctx = ctx_of(site["site"])
    first, second = prompts[:2]
    entrants = Entrants(ctx.arena, factory_for(models))
    fast, slow = ("baekdu", messages(ctx, first)), ("halla", messages(ctx, second))
    left, right = (fast, slow) if fast_side == "left" else (slow, fast)
    begun = time.perf_counter()
    seen: list[tuple[float, str, str]] = []
    answers = None
    for event in entrants.stream_both(left, right):
        if event.final:
            answers = event.answers
        else:
            assert event.side is not None and event.text
            seen.append((time.perf_counter() - begun, event.side, event.text))
    assert answers is not None
    by_side = dict(zip(("left", "right"), answers, strict=True))
    for side in ("left", "right"):
        assert "".join(text for _, s, text in seen if s == side) == by_side[side].text
        assert by_side[side].error is None and by_side[side].first_token_seconds is not None
    slow_side = "right" if fast_side == "left" else "left"
    quick, slowed = by_side[fast_side], by_side[slow_side]
    assert slowed.first_token_seconds >= 0.25  # the pause before the slow side's first token
    assert quick.first_token_seconds < slowed.first_token_seconds and quick.latency_seconds < slowed.latency_seconds
    # Nothing is shown before the slower side's first token, although the fast side had text long before.
    assert seen[0][0] >= slowed.first_token_seconds
    # Where a release is surely complete (before each left piece, after right-after-right and at the end), both
    # sides show the same length, unless the side showing less has shown all of its answer.
    totals = {"left": len(by_side["left"].text), "right": len(by_side["right"].text)}
    shown = {"left": 0, "right": 0}
    checked = 0
    for i, (_, side, text) in enumerate(seen):
        boundary = side == "left" or (i > 0 and seen[i - 1][1] == "right")
        if boundary and i > 0:
            low = min(shown, key=shown.__getitem__)
            assert shown["left"] == shown["right"] or shown[low] == totals[low], (i, shown, totals)
            checked += 1
        shown[side] += len(text)
    assert shown == totals and checked >= 3
    # The answer is what the entrant answers without streaming.
    d = ctx.arena.decoding
    settings = GenSettings(max_tokens=d.max_tokens, temperature=d.temperature, top_p=d.top_p, seed=d.seed)
    assert entrants.client(fast[0]).complete(fast[1], settings).text == quick.text


def test_a_client_without_streaming_answers_in_one_piece(site: dict, models: dict[str, Served]) -> None:
    from arena_support import ScriptedClient

    ctx = ctx_of(site["site"])
    scripted = Entrants(ctx.arena, lambda e, a: ScriptedClient(e.team))
    mixed = Entrants(ctx.arena, lambda e, a: ScriptedClient(e.team) if e.team == "jiri" else
                     factory_for(models)(e, a))
    for entrants in (scripted, mixed):
        events = list(entrants.stream_both(("jiri", messages(ctx, "hi there")), ("taebaek", messages(ctx, "hi"))))
        left, right = events[-1].answers or ()
        assert left.text == "Here is my answer to: hi there" and left.completion_tokens == 7
        assert "".join(e.text for e in events[:-1] if e.side == "left") == left.text
        assert "".join(e.text for e in events[:-1] if e.side == "right") == right.text and right.text


# --------------------------------------------------------------------------- the service


def test_ask_streaming_stores_the_turn_the_rater_saw(site: dict, prompts: list[str]) -> None:
    live: LiveSite = site["site"]
    who = site["raters"]["rater-one"]
    other = site["raters"]["rater-two"]
    token = start(live, who)
    prompt = prompts[0]
    with pytest.raises(NotFound):  # another rater's battle: refused before any event, as `ask` refuses it
        arena.ask_streaming(live.store, PROGRAM, STAGE, token, other, prompt)  # type: ignore[arg-type]
    events = list(arena.ask_streaming(live.store, PROGRAM, STAGE, token, who, prompt))  # type: ignore[arg-type]
    assert events[-1] == {"done": True}
    assert all(set(e) == {"side", "text"} and e["side"] in ("a", "b") for e in events[:-1])
    assert live.store is not None
    with live.store.session(readonly=True) as s:
        view = arena.battle(s, ctx_of(live), token, who)
    [turn] = view.turns
    assert turn.prompt == prompt
    assert turn.left == "".join(e["text"] for e in events[:-1] if e["side"] == "a") != ""
    assert turn.right == "".join(e["text"] for e in events[:-1] if e["side"] == "b") != ""
    for side in ("left", "right"):  # measured while streaming, kept for after the vote
        stats = turn.stats[side]
        assert 0 < stats["time_to_first_token_seconds"] <= stats["latency_seconds"]
    assert "latency" not in json.dumps(view.to_dict()) and "first_token" not in json.dumps(view.to_dict())
    with pytest.raises(InputError, match="asked this prompt before"):
        arena.ask_streaming(live.store, PROGRAM, STAGE, token, who, prompt)  # type: ignore[arg-type]
    # An entrant that cannot answer: the stream ends with an error that names no one, and nothing is stored.
    broken = Entrants(ctx_of(live).arena, lambda e, a: Unreachable(e.team, {}))
    failed = list(arena.ask_streaming(live.store, PROGRAM, STAGE, token, who, prompts[1],  # type: ignore[arg-type]
                                      entrants=broken))
    assert list(failed[-1]) == ["error"] and "could not be produced" in failed[-1]["error"]
    assert not [t for t in identity_terms(ctx_of(live), {}) if t.casefold() in failed[-1]["error"].casefold()]
    with live.store.session(readonly=True) as s:
        assert len(arena.battle(s, ctx_of(live), token, who).turns) == 1


# --------------------------------------------------------------------------- the web endpoint


def sse_events(body: str) -> list[dict]:
    blocks = [b for b in body.split("\n\n") if b]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), body[:500]
    return [json.loads(b.removeprefix("data: ")) for b in blocks]


def identity_terms(ctx: arena.ArenaContext, models: dict[str, Served]) -> list[str]:
    terms = [*ctx.arena.leak_terms, *(m.name for m in models.values()),
             *(":" + m.url.rsplit(":", 1)[1].split("/")[0] for m in models.values())]
    for e in ctx.arena.entrants:
        team = ctx.loaded.program.team(e.team)
        terms += [e.team, team.name, *team.members, *team.models]
    return terms


def test_the_stream_endpoint_refuses_like_the_form_and_streams_a_blind_turn(site: dict, models: dict[str, Served],
                                                                          prompts: list[str]) -> None:
    live: LiveSite = site["site"]
    me, other, team = (site["clients"][n] for n in ("rater-web", "rater-two", "team-a"))
    token = start(live, site["raters"]["rater-web"])
    url = f"{BASE}/b/{token}/stream"
    csrf = csrf_of(me.get(f"{BASE}/b/{token}").text)
    prompt = prompts[0]
    assert me.post(url, data={"prompt": prompt}).status_code == 403  # no CSRF token
    assert me.post(url, data={"prompt": prompt, "csrf_token": "forged" + csrf[6:]}).status_code == 403
    other_csrf = csrf_of(other.get("/account").text)
    assert other.post(url, data={"prompt": prompt, "csrf_token": other_csrf}).status_code == 404
    team_csrf = csrf_of(team.get("/account").text)
    assert team.post(url, data={"prompt": prompt, "csrf_token": team_csrf}).status_code == 403
    assert live.client().post(url, data={"prompt": prompt}).status_code in (401, 403)

    refused = me.post(url, data={"prompt": "x", "csrf_token": csrf})
    assert refused.status_code == 400 and refused.headers["content-type"].startswith("text/event-stream")
    assert list(sse_events(refused.text)[0]) == ["error"]

    with me.stream("POST", url, data={"prompt": prompt, "csrf_token": csrf}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["cache-control"] == "no-store"
        body = resp.read().decode()
    events = sse_events(body)
    assert events[-1] == {"done": True} and all(set(e) == {"side", "text"} for e in events[:-1])
    lowered = (body + json.dumps(dict(resp.headers))).casefold()
    leaked = [t for t in identity_terms(ctx_of(live), models) if t.casefold() in lowered]
    assert not leaked, leaked
    for timing in ("latency", "first_token", "tokens_per_second", "seconds", "server-timing"):
        assert timing not in lowered
    assert live.store is not None
    with live.store.session(readonly=True) as s:
        [turn] = arena.battle(s, ctx_of(live), token, site["raters"]["rater-web"]).turns
    assert turn.left == "".join(e["text"] for e in events[:-1] if e["side"] == "a")
    assert turn.right == "".join(e["text"] for e in events[:-1] if e["side"] == "b")
    page = me.get(f"{BASE}/b/{token}")
    assert page.status_code == 200 and 'value="left"' in page.text  # the vote form, as after the form post


# Distinct questions for battles voted away: near-duplicate prompts ("filler question 0", "… 1") are refused.
FILLERS = ("Name a river that flows through Seoul.", "What is seventeen times three?",
           "Which planet has the most moons?", "Translate 'good morning' into Korean.",
           "How many strings does a gayageum traditionally have?", "Who wrote the novel Pachinko?",
           "What colour do you get by mixing blue and yellow?", "Give one use of a binary search tree.",
           "When did the Joseon dynasty begin?", "Why is the sky blue at noon?",
           "Suggest a name for a small black cat.", "What does HTTP stand for?")


def test_a_rater_who_leaves_mid_stream_stops_both_entrants(site: dict, models: dict[str, Served],
                                                           prompts: list[str]) -> None:
    """Both sides on slowed servers of their own (the fast one slowed too): the rater reads the first paced piece
    and leaves; both generations stop and no turn is stored."""
    live: LiveSite = site["site"]
    assert live.store is not None
    me = site["clients"]["rater-leave"]
    who = site["raters"]["rater-leave"]
    split = {"baekdu": "fast", "jiri": "fast", "taebaek": "fast", "halla": "slow", "seorak": "slow"}
    # The schedule picks the pair: take a battle whose entrants are on different servers.
    for attempt in range(len(FILLERS)):
        token = start(live, who)
        with live.store.session(readonly=True) as s:
            battle = s.execute(select(ArenaBattle).where(ArenaBattle.token == token)).scalar_one()
        if split[battle.left_team] != split[battle.right_team]:
            break
        with live.store.session() as s:  # vote it away (no dwell time here) and take the next one
            ctx = arena.context(s, PROGRAM, STAGE)
            arena.record_turn(s, ctx, arena.prepare_turn(s, ctx, token, who, FILLERS[attempt]),
                              (Answer("a", "stop", 0.1, 1), Answer("b", "stop", 0.1, 1)), who)
            arena.vote(s, ctx, token, who, "tie")
    else:
        pytest.fail("the schedule never paired entrants on different servers")
    csrf = csrf_of(me.get(f"{BASE}/b/{token}").text)
    prompt = prompts[0]
    before = {name: models[name].health()["streams_cancelled"] for name in ("fast", "slow")}
    for name in ("fast", "slow"):  # slow enough that neither can finish before the rater leaves, on a busy machine
        models[name].pause(0.25, 0.3)
    try:
        with routed(**split):
            with me.stream("POST", f"{BASE}/b/{token}/stream", data={"prompt": prompt, "csrf_token": csrf}) as resp:
                assert resp.status_code == 200
                for line in resp.iter_lines():
                    if line.startswith("data: "):
                        break  # the answers have begun: leave
            deadline = time.monotonic() + 30
            while (now := {n: models[n].health()["streams_cancelled"] for n in before}) != {n: before[n] + 1
                                                                                              for n in before}:
                assert time.monotonic() < deadline, (before, now)
                time.sleep(0.05)
    finally:
        models["fast"].pause(0.0, 0.0)
        models["slow"].pause(0.25, 0.03)
    time.sleep(0.3)
    with live.store.session(readonly=True) as s:
        assert arena.battle(s, ctx_of(live), token, who).turns == ()


# --------------------------------------------------------------------------- the page's script in a browser


def test_the_battle_page_streams_into_the_page_with_script(site: dict, prompts: list[str], browser) -> None:  # type: ignore[no-untyped-def]
    from browser import new_context

    live: LiveSite = site["site"]
    who = site["raters"]["rater-js"]
    token = start(live, who)
    prompt = prompts[0]
    page = new_context(browser, live.url).new_page()
    page.goto("/login")
    page.get_by_label("Username").fill("rater-js")
    page.get_by_label("Password").fill("correct horse battery staple")
    with page.expect_navigation():
        page.locator("main").get_by_role("button", name="Sign in").click()
    page.goto(f"{BASE}/b/{token}")
    # The battle page carries the script and the forms' stream URL; record what the live boxes show.
    page.evaluate("""() => {
        new MutationObserver(() => {
            const a = document.getElementById("answer-a"), b = document.getElementById("answer-b");
            if (a && b) sessionStorage.setItem("live", JSON.stringify([a.textContent, b.textContent,
                a.innerHTML === a.textContent.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")]));
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    page.fill("textarea[name=prompt]", prompt)
    with page.expect_navigation(url=re.compile(r"done=done_ar_asked")):
        page.locator("textarea[name=prompt]").evaluate("t => t.form.requestSubmit()")
    page.wait_for_selector("button[value=left]")
    live_text = json.loads(page.evaluate("() => sessionStorage.getItem('live')"))
    assert live.store is not None
    with live.store.session(readonly=True) as s:
        [turn] = arena.battle(s, ctx_of(live), token, who).turns
    assert live_text == [turn.left, turn.right, True]  # streamed in full, as text, before the page reloaded
