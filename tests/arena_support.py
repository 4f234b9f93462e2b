"""The example programme with its arena open at a time the test controls, scripted entrants that answer at once
(each with its own house style, so style control has something to find), rater accounts, and whole battles run
through the real services."""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from helpers import EXAMPLE
from simsa import accounts
from simsa.bench.chat import ChatResult, GenSettings, Messages
from simsa.program.arena_schema import Arena, Entrant
from simsa.services import arena
from simsa.store.db import Store

PROGRAM = "k-ai-2026"
STAGE = "stage-1"
OPENS_LINE = "opens = 2025-12-01T09:00:00+09:00"
CLOSES_LINE = "closes = 2026-01-10T18:00:00+09:00"
PASSWORD = "correct horse battery staple"
TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")


def arena_program_text(opens: dt.datetime, closes: dt.datetime, *, changes: dict[str, str] | None = None) -> str:
    """The example programme's text with stage 1's arena open from `opens` to `closes` (and other lines replaced)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for line, when, key in ((OPENS_LINE, opens, "opens"), (CLOSES_LINE, closes, "closes")):
        assert line in text
        text = text.replace(line, f"{key} = {when.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    for old, new in (changes or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def write_arena_program(folder: Path, opens: dt.datetime, closes: dt.datetime, *,
                        changes: dict[str, str] | None = None) -> Path:
    path = folder / "k-ai-2026.toml"
    path.write_text(arena_program_text(opens, closes, changes=changes), encoding="utf-8")
    return path


class ScriptedClient:
    """A stand-in for an entrant's endpoint: answers at once, deterministically, in the team's own style. `leak`
    makes it sign its answers with its team's name (an identity leak the filter must catch)."""

    def __init__(self, team: str, *, leak: bool = False, identity: dict[str, Any] | None = None) -> None:
        self.team = team
        self.leak = leak
        self._identity = identity or {"kind": "scripted", "model": f"{team}-model", "sha256": f"{team:0<64}"[:64]}
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def complete(self, messages: Messages, settings: GenSettings) -> ChatResult:
        self.calls += 1
        prompt = messages[-1]["content"]
        body = f"Here is my answer to: {prompt[:60]}"
        if self.team in ("baekdu", "seorak"):  # a verbose, formatted house style
            body = f"## Answer\n\n- **Point one**: {body}\n- **Point two**: more detail here\n- a third point"
        if self.leak:
            body += "\n\n(Answered by Team Halla's model.)"
        return ChatResult(text=body, finish_reason="stop", prompt_tokens=10, completion_tokens=len(body.split()))

    def complete_many(self, items: list[Messages], settings: GenSettings, progress: Any = None) -> list[ChatResult]:
        return [self.complete(m, settings) for m in items]


def scripted_factory(leaking: frozenset[str] = frozenset()):
    def factory(entrant: Entrant, _arena: Arena) -> ScriptedClient:
        return ScriptedClient(entrant.team, leak=entrant.team in leaking)
    return factory


def rater(store: Store, username: str, role: str = "rater", *, team: str | None = None) -> accounts.AccountView:
    with store.session() as s:
        _, token = accounts.invite(s, username=username, display_name=username.title(), role=role, actor="test",
                                   program_key=PROGRAM if role == "team" else None, team_id=team)
    with store.session() as s:
        return accounts.accept_invitation(s, token, PASSWORD)


def freeze(store: Store, entrants: arena.Entrants | None = None) -> arena.Segment:
    with store.session(readonly=True) as s:
        ctx = arena.context(s, PROGRAM, STAGE)
    identities = arena.read_identities(ctx, entrants)
    with store.session() as s:
        return arena.freeze(s, arena.context(s, PROGRAM, STAGE), identities, "admin:test")[0]


def play(store: Store, who: accounts.AccountView, choose, *, now: dt.datetime, prompt: str | None = None,
         entrants: arena.Entrants | None = None, dwell: float = 10.0, rng=None) -> arena.BattleView:
    """One whole battle through the services at time `now`: start, one prompt, vote `choose(view)` after `dwell`
    (`rng` draws the schedule's choices; by default one seeded by the rater and the time, so every run of a test
    meets the same pairs)."""
    if rng is None:
        rng = np.random.default_rng([zlib.crc32(who.username.encode()), int(now.timestamp())])
    with store.session() as s:
        view = arena.start_battle(s, arena.context(s, PROGRAM, STAGE), who, now=now, rng=rng)
    with store.session(readonly=True) as s:
        ctx = arena.context(s, PROGRAM, STAGE)
        req = arena.prepare_turn(s, ctx, view.token, who, prompt or f"question {view.token[:10]} from {who.username}",
                                 use_suggested=prompt is None, now=now)
    answers = arena.generate(ctx, req, entrants)
    with store.session() as s:
        ctx = arena.context(s, PROGRAM, STAGE)
        view = arena.record_turn(s, ctx, req, answers, who, now=now)
    with store.session() as s:
        ctx = arena.context(s, PROGRAM, STAGE)
        return arena.vote(s, ctx, view.token, who, choose(view, req), now=now + dt.timedelta(seconds=dwell))


def ctx_of(site: Any) -> arena.ArenaContext:
    """The arena of stage 1 as the store of a live site (anything with `.store`) holds it now."""
    assert site.store is not None
    with site.store.session(readonly=True) as s:
        return arena.context(s, PROGRAM, STAGE)
