"""The user-review arena's pages through HTTP as a browser uses them, and attacks on them: learning an entrant
before the vote from any response (body, headers, comments, form fields, timing), voting twice, on another
rater's battle, without CSRF or beyond the daily cap, voting as a team, an expert, the secretariat or the public,
HTML in prompts and answers, and an answer that names its team. The secretariat's pages: freezing the entrants,
the live state and ranking, exclusions, and a changed entrant that needs a new segment.

One live site serves the module; scripted entrants (tests/arena_support.py) answer in the server's thread.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from arena_support import ScriptedClient, arena_program_text, ctx_of, play, rater
from simsa.program.arena_schema import Arena, Entrant
from simsa.program.loader import parse_program
from simsa.services import arena, arena_answers, programs
from simsa.store.models import ArenaBattle, ArenaExclusion, ArenaRating, ArenaSegment, ArenaVote
from web_support import PROGRAM, STAGE, LiveSite, csrf_of

CAP = 4
HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)> 1+1?"
DISTINCT = ("Why is the sky blue?", "How do bees make honey from flowers?", "Explain compound interest simply.",
            "What should I pack for a weekend hike in autumn?", "Suggest a name for a bakery.")
BASE = f"/arena/{PROGRAM}/{STAGE}"
ADMIN = f"/admin/arenas/{PROGRAM}/{STAGE}"
RATERS = ("rater-one", "rater-two", "rater-cap", "rater-html", "rater-leak", "rater-more")
LEAKING: set[str] = set()  # teams whose scripted answers sign themselves (changed by the leak test)
IDENTITY_VERSION = {"n": 0}
TOKEN = re.compile(r"[A-Za-z0-9_\-]{30,}")  # bumped to make every entrant report a new identity


class Switchable(ScriptedClient):
    """A scripted entrant whose leaking and identity the tests switch while the server runs."""

    def identity(self) -> dict:
        ident = super().identity()
        return {**ident, "revision": IDENTITY_VERSION["n"]} if IDENTITY_VERSION["n"] else ident

    def complete(self, messages, settings):  # type: ignore[no-untyped-def]
        self.leak = self.team in LEAKING
        return super().complete(messages, settings)


def factory(entrant: Entrant, _arena: Arena) -> Switchable:
    return Switchable(entrant.team)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The arena open since an hour ago for a day, no dwell time, a cap of 4 battles a day, every third battle an
    attention check; a secretariat, six raters, a team account and an expert, all signed in."""
    work = tmp_path_factory.mktemp("web-arena")
    live = LiveSite(f"sqlite:///{work / 'simsa.db'}", settings_changes={"login_rate": 10_000}).start()
    now = dt.datetime.now(dt.UTC)
    text = arena_program_text(now - dt.timedelta(hours=1), now + dt.timedelta(days=1), changes={
        "min_dwell_seconds = 5": "min_dwell_seconds = 0", "daily_cap = 40": f"daily_cap = {CAP}",
        "gold_every = 10": "gold_every = 3"})
    assert live.store is not None
    with live.store.session() as s:
        programs.register(s, parse_program(text, f"{PROGRAM}.toml"), "test")
    live.account("sec")
    for name in RATERS:
        live.account(name, "rater")
    live.account("team-a", "team", team="baekdu")
    live.account("expert-x", "expert")
    arena_answers.use_factory(factory)
    clients = {name: live.signed_in(name) for name in ("sec", *RATERS, "team-a", "expert-x")}
    for client in clients.values():
        client.get("/?lang=en")
    try:
        yield {"site": live, "clients": clients}
    finally:
        arena_answers.use_factory(None)
        for client in clients.values():
            client.close()
        live.stop()


def count(live: LiveSite, model: type) -> int:
    assert live.store is not None
    with live.store.session(readonly=True) as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def error_of(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text, re.S)
    assert found is not None, response.text[-1500:]
    return found.group(1)


def identity_terms(ctx: arena.ArenaContext) -> list[str]:
    """Everything that would name an entrant: team ids and names (English, Korean, Korean without 팀), members,
    models, the served model names, the endpoints' ports and the declared leak terms."""
    terms: list[str] = list(ctx.arena.leak_terms)
    for e in ctx.arena.entrants:
        team = ctx.loaded.program.team(e.team)
        terms += [e.team, team.name, *team.members, *team.models, *(m.split("/", 1)[1] for m in team.models)]
        if team.name_ko:
            terms += [team.name_ko, team.name_ko.removesuffix("팀")]
        if e.model:
            terms.append(e.model)
        if e.endpoint:
            port = re.search(r":(\d+)", e.endpoint.split("//", 1)[1])
            assert port is not None
            terms += [f":{port.group(1)}", e.endpoint]
    return sorted(set(terms))


def assert_blind(ctx: arena.ArenaContext, *responses: httpx.Response) -> None:
    """No response body or header names an entrant or carries a timing field."""
    terms = identity_terms(ctx)
    for r in responses:
        text = r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        text = TOKEN.sub("", text).casefold()  # random tokens (battle, CSRF) could spell a short name by chance
        named = [term for term in terms if term.casefold() in text]
        assert not named, (r.request.url, named)
        for timing in ("latency", "tokens_per_second", "tokens/s", "server-timing", "answered_at", "first_token"):
            assert timing not in text, (r.request.url, timing)


def start(client: httpx.Client) -> tuple[str, httpx.Response]:
    home = client.get("/arena")
    response = client.post(f"{BASE}/battle", data={"csrf_token": csrf_of(home.text)})
    assert response.status_code == 303, response.text[-800:]
    location = response.headers["location"]
    assert location.startswith(f"{BASE}/b/")
    return location.removeprefix(f"{BASE}/b/"), response


def ask(client: httpx.Client, token: str, prompt: str = "", suggested: bool = False) -> httpx.Response:
    page = client.get(f"{BASE}/b/{token}")
    data = {"csrf_token": csrf_of(page.text), "prompt": prompt}
    if suggested:
        data["use_suggested"] = "1"
    return client.post(f"{BASE}/b/{token}/ask", data=data)


def vote(client: httpx.Client, token: str, choice: str) -> httpx.Response:
    page = client.get(f"{BASE}/b/{token}")
    return client.post(f"{BASE}/b/{token}/vote", data={"csrf_token": csrf_of(page.text), "choice": choice})


def battle_row(live: LiveSite, token: str) -> ArenaBattle:
    assert live.store is not None
    with live.store.session(readonly=True) as s:
        return s.execute(select(ArenaBattle).where(ArenaBattle.token == token)).scalar_one()


# --------------------------------------------------------------------------- the secretariat opens the arena


def test_raters_wait_until_the_secretariat_freezes_the_entrants(site: dict) -> None:
    live, sec, rater = site["site"], site["clients"]["sec"], site["clients"]["rater-one"]
    home = rater.get("/arena")
    assert home.status_code == 200 and "waiting for the secretariat" in home.text and "Start a battle" not in home.text
    listing = sec.get("/admin/arenas")
    assert listing.status_code == 200 and f'href="{ADMIN}"' in listing.text and "not frozen" in listing.text
    assert 'href="/admin/arenas"' in sec.get("/admin").text
    page = sec.get(ADMIN)
    assert page.status_code == 200 and "not frozen" in page.text
    assert sec.post(f"{ADMIN}/freeze", data={}).status_code == 403  # no CSRF: nothing frozen
    assert count(live, ArenaSegment) == 0
    response = sec.post(f"{ADMIN}/freeze", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303 and "done_ar_frozen" in response.headers["location"]
    page = sec.get(response.headers["location"])
    with live.store.session(readonly=True) as s:
        segment = arena.current_segment(s, arena.context(s, PROGRAM, STAGE))
    assert segment is not None and segment.number == 1
    assert segment.manifest_sha256 in page.text and "baekdu-model" in page.text  # the manifest is shown
    again = sec.post(f"{ADMIN}/freeze", data={"csrf_token": csrf_of(page.text)})
    assert "done_ar_unchanged" in again.headers["location"] and count(live, ArenaSegment) == 1
    home = rater.get("/arena")
    assert "Start a battle" in home.text and f"0 of {CAP} battles started" in home.text


# --------------------------------------------------------------------------- a blind battle


def test_a_battle_is_blind_until_the_vote_then_reveals_and_takes_ratings(site: dict) -> None:
    live, client = site["site"], site["clients"]["rater-one"]
    ctx = ctx_of(live)
    home = client.get("/arena")
    token, started = start(client)
    first = client.get(f"{BASE}/b/{token}")
    assert first.status_code == 200
    row = battle_row(live, token)
    assert row.kind == arena.ENTRANTS
    pool = [p.text for p in ctx.arena.prompts if p.category == row.category]
    suggestion = next(text for text in pool if text in first.text)
    assert "Use this prompt" in first.text and "answers are generated together" in first.text
    # one script, the site's own file, that only streams the answers; the forms work without it, and no script
    # is inline (the CSP allows only same-origin files)
    assert re.findall(r"<script[^>]*>", first.text) == ['<script src="/static/arena.js" defer>']
    assert 'data-stream-url="' in first.text and "/stream" in first.text
    asked = ask(client, token, suggested=True)
    assert asked.status_code == 303, asked.text[-800:]
    shown = client.get(asked.headers["location"])
    assert "Answer A" in shown.text and "Answer B" in shown.text and "A is better" in shown.text
    assert shown.text.count('class="ar-answer"') == 2 and "Here is my answer to" in shown.text
    if {"baekdu", "seorak"} & {row.left_team, row.right_team}:  # a formatted house style: Markdown rendered
        assert "<h2>Answer</h2>" in shown.text and "<strong>Point one</strong>" in shown.text
    follow = ask(client, token, "And in one sentence, please?")
    assert follow.status_code == 303
    shown_ko = client.get(f"{BASE}/b/{token}?lang=ko")
    assert "답변 A" in shown_ko.text
    client.get("/arena?lang=en")
    assert f'<p class="ar-prompt">{suggestion}</p>' in shown.text  # the suggested prompt was asked
    assert_blind(ctx, home, started, first, asked, shown, follow, shown_ko)
    assert not re.search(r"<!--", shown.text)

    voted = vote(client, token, "left")
    assert voted.status_code == 303
    assert_blind(ctx, voted)  # the redirect itself names no one
    after = client.get(voted.headers["location"])
    row = battle_row(live, token)
    left, right = ctx.loaded.program.team(row.left_team), ctx.loaded.program.team(row.right_team)
    reveal = after.text[after.text.index('id="reveal"'):]
    assert reveal.index(left.name) < reveal.index(right.name)  # A is the left entrant, B the right
    assert "You voted: A is better" in after.text and "Your vote counts." in after.text
    for price in (ctx.arena.entrant(row.left_team).price_per_million_tokens,
                  ctx.arena.entrant(row.right_team).price_per_million_tokens):
        assert f"{price:.2f}" in reveal
    assert "Tokens per second" in reveal and "A is better</button>" not in after.text  # no second vote form

    form = {"csrf_token": csrf_of(after.text), "usefulness_left": "4", "cost_efficiency_left": "5",
            "usefulness_right": "2"}
    rated = client.post(f"{BASE}/b/{token}/rate", data=form)
    assert rated.status_code == 303
    assert count(live, ArenaRating) == 2
    again = client.post(f"{BASE}/b/{token}/rate", data=form)
    assert again.status_code == 400 and count(live, ArenaRating) == 2
    bad = client.post(f"{BASE}/b/{token}/rate", data={**form, "usefulness_left": "9"})
    assert bad.status_code == 400 and "1 to 5" in error_of(bad)
    assert "usefulness 4, cost efficiency 5" in client.get(f"{BASE}/b/{token}").text


def test_a_battle_takes_one_vote(site: dict) -> None:
    live, client = site["site"], site["clients"]["rater-two"]
    token, _ = start(client)
    assert ask(client, token, "What is a good name for a cat?").status_code == 303
    page = client.get(f"{BASE}/b/{token}")
    csrf = csrf_of(page.text)
    assert client.post(f"{BASE}/b/{token}/vote", data={"csrf_token": csrf, "choice": "right"}).status_code == 303
    before = count(live, ArenaVote)
    second = client.post(f"{BASE}/b/{token}/vote", data={"csrf_token": csrf, "choice": "left"})
    assert second.status_code == 400 and "cannot be changed" in error_of(second)
    assert count(live, ArenaVote) == before
    late = client.post(f"{BASE}/b/{token}/ask", data={"csrf_token": csrf, "prompt": "one more thing?"})
    assert late.status_code == 400 and "voted on" in error_of(late)


def test_another_raters_battle_is_the_same_404_as_a_random_token(site: dict) -> None:
    live, owner, other = site["site"], site["clients"]["rater-more"], site["clients"]["rater-two"]
    token, _ = start(owner)
    assert ask(owner, token, "Is tea better than coffee?").status_code == 303
    csrf = csrf_of(other.get("/arena").text)
    random_token = "A" * 32
    before = count(live, ArenaVote)
    for suffix, data in (("", None), ("/vote", {"choice": "left"}), ("/ask", {"prompt": "leak it"}),
                         ("/rate", {"usefulness_left": "5"})):
        answers = []
        for t in (token, random_token):
            url = f"{BASE}/b/{t}{suffix}"
            r = other.get(url) if data is None else other.post(url, data={"csrf_token": csrf, **data})
            answers.append((r.status_code, error_of(r)))
        assert answers[0] == answers[1] and answers[0][0] == 404, (suffix, answers)
    assert count(live, ArenaVote) == before
    assert "Is tea better" not in other.get(f"{BASE}/b/{token}").text


def test_a_vote_without_the_csrf_token_is_refused(site: dict) -> None:
    live, client = site["site"], site["clients"]["rater-more"]
    token, _ = start(client)  # the unvoted battle of the previous test comes back
    before = count(live, ArenaVote)
    assert client.post(f"{BASE}/b/{token}/vote", data={"choice": "left"}).status_code == 403
    assert client.post(f"{BASE}/b/{token}/vote", data={"choice": "left", "csrf_token": "x" * 43}).status_code == 403
    assert count(live, ArenaVote) == before
    assert vote(client, token, "tie").status_code == 303


def test_the_daily_cap_stops_new_battles(site: dict) -> None:
    live, client = site["site"], site["clients"]["rater-cap"]
    ctx = ctx_of(live)
    kinds = []
    for i in range(CAP):
        token, _ = start(client)
        kinds.append(battle_row(live, token).kind)
        page = client.get(f"{BASE}/b/{token}")
        if kinds[-1] == arena.GOLD:  # an attention check looks like any battle: a category, a suggestion
            assert "gold" not in page.text.casefold() and "attention" not in page.text.casefold()
            assert re.search(r"Category: (Writing|Knowledge|Reasoning|Coding)", page.text)
        asked = ask(client, token, DISTINCT[i])
        assert asked.status_code == 303, error_of(asked)
        assert vote(client, token, "both_bad").status_code == 303
    assert arena.GOLD in kinds
    home = client.get("/arena")
    assert f"{CAP} of {CAP} battles started" in home.text and "reached today&#39;s limit" in home.text
    before = count(live, ArenaBattle)
    refused = client.post(f"{BASE}/battle", data={"csrf_token": csrf_of(home.text)})
    assert refused.status_code == 400 and f"limit of {CAP} battles" in error_of(refused)
    assert count(live, ArenaBattle) == before
    assert ctx.arena.daily_cap == CAP


@pytest.mark.parametrize("who", ["team-a", "expert-x", "sec", None])
def test_only_raters_take_part(site: dict, who: str | None) -> None:
    live = site["site"]
    rater = site["clients"]["rater-two"]
    token, _ = start(rater)
    client = site["clients"][who] if who else live.client()
    before = count(live, ArenaVote)
    page = client.get("/arena")
    csrf = csrf_of(client.get("/account" if who else "/login").text)
    if who is None:
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    else:
        assert page.status_code == 403
    for url, data in ((f"{BASE}/battle", {}), (f"{BASE}/b/{token}/ask", {"prompt": "hello there"}),
                      (f"{BASE}/b/{token}/vote", {"choice": "left"})):
        r = client.post(url, data={"csrf_token": csrf, **data})
        assert r.status_code == (401 if who is None else 403), (who, url, r.status_code)
    assert client.get(f"{BASE}/b/{token}").status_code == (303 if who is None else 403)
    assert count(live, ArenaVote) == before
    if who != "sec":
        assert client.get(ADMIN).status_code in (303, 403)


def test_html_in_prompts_and_answers_is_shown_as_text(site: dict) -> None:
    client = site["clients"]["rater-html"]
    token, _ = start(client)
    assert ask(client, token, HOSTILE).status_code == 303
    page = client.get(f"{BASE}/b/{token}")
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert" in page.text  # the prompt and the echoing answers, escaped
    assert page.text.count("&lt;script&gt;") >= 3
    too_short = ask(client, token, " ")
    assert too_short.status_code == 400 and "&lt;script&gt;alert" in too_short.text


def test_an_answer_that_names_its_team_is_masked_and_its_vote_void(site: dict) -> None:
    live, client = site["site"], site["clients"]["rater-leak"]
    ctx = ctx_of(live)
    LEAKING.update(ctx.arena.teams)
    try:
        token, _ = start(client)
        asked = ask(client, token, "Who made you, and what can you do?")
        assert asked.status_code == 303
        page = client.get(f"{BASE}/b/{token}")
    finally:
        LEAKING.clear()
    assert "the name is hidden" in page.text and "▇▇▇" in page.text
    assert_blind(ctx, asked, page)
    voted = vote(client, token, "left")
    after = client.get(voted.headers["location"])
    assert "does not count" in after.text and "names an entrant" in after.text
    with live.store.session(readonly=True) as s:
        row = s.execute(select(ArenaVote).order_by(ArenaVote.id.desc()).limit(1)).scalar_one()
    assert row.status == "void" and "names an entrant" in (row.reason or "")
    assert "Team Halla" in after.text  # after the vote the answers are shown as written


# --------------------------------------------------------------------------- the secretariat's view


def test_the_secretariat_sees_the_live_state_and_ranking_and_decides_exclusions(site: dict) -> None:
    live, sec = site["site"], site["clients"]["sec"]
    assert live.store is not None
    outcomes = iter(["left", "right", "tie"] * 20)
    for i in range(5):  # more voters through the services, so a ranking exists
        who = rater(live.store, f"rater-extra-{i}")
        for _k in range(CAP):
            play(live.store, who, lambda _view, _req: next(outcomes), now=dt.datetime.now(dt.UTC),
                 prompt=None, dwell=0)
    page = sec.get(ADMIN)
    assert page.status_code == 200, page.text[-1500:]
    for words in ("Votes per pair", "Votes by status", "names an entrant", "rater-cap", f'{ADMIN}/ranking'):
        assert words in page.text, words
    ranking = sec.get(f"{ADMIN}/ranking")
    assert ranking.status_code == 200, ranking.text[-1500:]
    for words in ("Live ranking", "Raw Bradley", "Style-controlled", "Robustness", "counts for the score"):
        assert words in ranking.text, words
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([a-z]+)</td>', ranking.text)
    assert len(rows) == 10 and {team for _, team in rows} == set(ctx_of(live).arena.teams)
    rater_one = site["clients"]["rater-one"]
    for rater_page in (rater_one.get("/arena"), rater_one.get(ADMIN), rater_one.get(f"{ADMIN}/ranking")):
        assert "Bradley" not in rater_page.text and "Live ranking" not in rater_page.text
    assert rater_one.get(f"{ADMIN}/ranking").status_code == 403
    csrf = csrf_of(page.text)
    missing = sec.post(f"{ADMIN}/exclusions", data={"csrf_token": csrf, "rater": "rater-cap", "decision": "exclude",
                                                    "reason": " "})
    assert missing.status_code == 400 and "reason" in error_of(missing)
    assert count(live, ArenaExclusion) == 0
    done = sec.post(f"{ADMIN}/exclusions", data={"csrf_token": csrf, "rater": "rater-cap", "decision": "exclude",
                                                 "reason": "voted both bad on every battle"})
    assert done.status_code == 303
    with live.store.session(readonly=True) as s:
        ctx = arena.context(s, PROGRAM, STAGE)
        excl = arena.exclusions(s, ctx)
        records = arena.vote_records(s, ctx)
    assert len(excl) == 1 and excl[0].rater == "rater-cap" and "gold_pass" in excl[0].evidence
    assert all(r.excluded for r in records if r.rater == "rater-cap")
    one = next(r for r in records if r.rater == "rater-one")
    unknown = sec.post(f"{ADMIN}/exclusions", data={"csrf_token": csrf, "vote": "999999", "decision": "exclude",
                                                    "reason": "typo"})
    assert unknown.status_code == 400 and "no vote 999999" in error_of(unknown)
    kept = sec.post(f"{ADMIN}/exclusions", data={"csrf_token": csrf, "vote": str(one.vote_id), "decision": "keep",
                                                 "reason": "checked by hand"})
    assert kept.status_code == 303
    shown = sec.get(ADMIN).text
    assert "voted both bad on every battle" in shown and "checked by hand" in shown
    assert "excluded by the secretariat" in shown


def test_a_changed_entrant_opens_a_new_segment_only_with_a_reason(site: dict) -> None:
    live, sec, rater = site["site"], site["clients"]["sec"], site["clients"]["rater-two"]
    IDENTITY_VERSION["n"] = 1
    try:
        token, _ = start(rater)  # the battle of an earlier test, still unvoted
        paused = ask(rater, token, "Tell me about mountains in winter?")
        assert paused.status_code == 400 and "changed since the arena was frozen" in error_of(paused)
        page = sec.get(ADMIN)
        checked = sec.post(f"{ADMIN}/check", data={"csrf_token": csrf_of(page.text)})
        assert checked.status_code == 200 and "Changed since the current segment was frozen" in checked.text
        refused = sec.post(f"{ADMIN}/freeze", data={"csrf_token": csrf_of(page.text)})
        assert refused.status_code == 400 and "give the reason" in error_of(refused)
        assert count(live, ArenaSegment) == 1
        opened = sec.post(f"{ADMIN}/freeze", data={"csrf_token": csrf_of(page.text),
                                                   "reason": "halla redeployed after an outage"})
        assert opened.status_code == 303 and count(live, ArenaSegment) == 2
        shown = sec.get(ADMIN).text
        assert "halla redeployed after an outage" in shown and "Segment 2" in shown
    finally:
        IDENTITY_VERSION["n"] = 0


def test_a_cheating_raters_evidence_names_their_own_votes() -> None:
    """The secretariat's rater rows: a rater who always votes against a pair's clear history is flagged, and the
    most surprising votes shown are that rater's own stored votes (by vote number)."""
    from simsa.services import arena_admin_views

    now = dt.datetime.now(dt.UTC)

    def record(i: int, who: str, left: str, right: str, choice: str) -> arena.VoteRecord:
        return arena.VoteRecord(vote_id=1000 + i, battle=f"b{i}", segment=1, rater=who, kind=arena.ENTRANTS,
                                left=left, right=right, category="writing", choice=choice, status="counted",
                                reason=None, excluded=None, voted_at=now, dwell_seconds=9.0, answers_left=(),
                                answers_right=())

    records = []
    for i in range(60):  # honest raters: baekdu nearly always beats halla
        left, right = ("baekdu", "halla") if i % 2 else ("halla", "baekdu")
        winner = "baekdu" if i % 10 else "halla"
        records.append(record(i, f"honest-{i % 6}", left, right, "left" if left == winner else "right"))
    for i in range(60, 80):  # the cheater: always halla
        left, right = ("baekdu", "halla") if i % 2 else ("halla", "baekdu")
        records.append(record(i, "cheater", left, right, "left" if left == "halla" else "right"))
    tests = arena_admin_views.rater_tests(records, ["baekdu", "halla"])
    assert tests["cheater"].flagged and not any(t.flagged for name, t in tests.items() if name != "cheater")
    ctx = arena.context_of(parse_program(arena_program_text(now, now + dt.timedelta(days=1)), "p.toml"), STAGE)
    rows = arena_admin_views.rater_rows(records, ctx, {})
    assert rows[0].rater == "cheater" and rows[0].flagged and rows[0].surprising
    own = {r.vote_id for r in records if r.rater == "cheater"}
    assert all(s.vote_id in own and s.voted == "halla" for s in rows[0].surprising)
