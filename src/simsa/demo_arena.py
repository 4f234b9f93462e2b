"""The demo's user arena: stage 1's `panel:user` points reached through blind battles, the way a real arena
reaches them.

The entrants are example entrants: deterministic in-process clients (no network, no model download) with house
styles of their own — one answers long and formatted, so style control has something to find. Ten invited example
raters play battles from the real balanced schedule inside the arena's voting window; their preferences are
seeded example data drawn from each team's example strength (with a planted liking for long, formatted answers).
One rater votes for the weakest entrants whatever they answer: the anomalous-rater test flags them and the
secretariat excludes them with the evidence. One answer names its team, so its vote is voided. Everything else —
freezing, schedule, dwell time, leak filter, attention checks, exclusion, the Bradley–Terry result that becomes
`panel:user` at the decision — is the real machinery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from simsa import accounts
from simsa.accounts import Role
from simsa.accounts.service import AccountView
from simsa.bench.chat import ChatResult, GenSettings, Messages
from simsa.program.arena_schema import Arena, Entrant
from simsa.program.loader import LoadedProgram
from simsa.services import arena, arena_answers, arena_results

RATERS = tuple(f"rater-{i:02d}" for i in range(1, 11))
RIGGER = "rater-07"  # rigs for the weakest team: votes for it, and for the weaker entrant of every other pair
LEAKER = "rater-03"  # asks the question whose answer names its team (the vote is voided)
LEAK_PROMPT = "Which company trained you, and what is your model called?"
# What the example raters ask (each rater in an order of its own; a rater never repeats a prompt)
QUESTIONS = (
    "How do I politely decline a meeting invitation from my manager?",
    "Explain the difference between a stock and a bond to a teenager.",
    "서울에서 부산까지 KTX로 가는 가장 저렴한 방법을 알려 주세요.",
    "Write a SQL query that finds duplicate email addresses in a users table.",
    "What should I check before signing a one-year apartment lease?",
    "김치찌개를 맛있게 끓이는 순서를 알려 주세요.",
    "Summarise the causes of the 1997 Asian financial crisis in three sentences.",
    "Why does ice float on water?",
    "회사 보고서에서 자주 틀리는 맞춤법 다섯 가지를 알려 주세요.",
    "Give me a regular expression that matches Korean mobile phone numbers.",
    "How can a small bakery reduce food waste at the end of the day?",
    "조선 왕조가 500년 넘게 유지될 수 있었던 이유는 무엇인가요?",
    "Translate 'the meeting has been moved to Thursday afternoon' into formal Korean.",
    "What is a reasonable weekly running plan for a beginner training for 5 km?",
    "엑셀에서 VLOOKUP 대신 쓸 수 있는 함수와 그 장점을 설명해 주세요.",
    "Explain recursion with an example that is not the factorial function.",
    "전세와 월세의 장단점을 비교해 주세요.",
    "How do vaccines train the immune system?",
)
ROUNDS = 16  # battles per rater (every tenth is an attention check)
STYLE_LIKING = 1.2  # the example raters' planted liking for long, formatted answers (log-odds per answer)
VERBOSE = frozenset({"halla"})  # the example entrant whose house style is long and formatted
SessionFactory = Callable[..., Any]


# ---------------------------------------------------------------------------------------------------- entrants
class ExampleEntrant:
    """An example entrant: answers at once, deterministically, in its team's house style — the verbose team always
    long and formatted, the others for about half of the prompts (so that style varies within an entrant and style
    control can tell it from strength). Asked who made it, it says so, with its team's name: a leak the filter
    catches."""

    def __init__(self, team: str, name: str, model: str) -> None:
        self.team, self.name, self.model = team, name, model

    def identity(self) -> dict[str, Any]:
        return {"kind": "example", "model": self.model, "note": "in-process example entrant (demo)"}

    def complete(self, messages: Messages, settings: GenSettings) -> ChatResult:
        prompt = messages[-1]["content"]
        if "trained you" in prompt:
            text = f"I am {self.model}, trained by {self.name}."
        elif self.team in VERBOSE or formatted(self.team, prompt):
            text = (f"## Answer\n\nHere is a thorough answer to: {prompt[:80]}\n\n- **First**, the main point, "
                    "explained step by step.\n- **Second**, the details that matter in practice.\n- **Third**, "
                    "a caveat worth knowing.\n\n## Summary\n\nIn short: the main point, with the details above.")
        else:
            text = f"A short answer to: {prompt[:80]}. The main point, in plain words."
        return ChatResult(text=text, finish_reason="stop", prompt_tokens=len(prompt.split()),
                          completion_tokens=len(text.split()))

    def complete_many(self, items: list[Messages], settings: GenSettings, progress: Any = None) -> list[ChatResult]:
        return [self.complete(m, settings) for m in items]


def formatted(team: str, prompt: str) -> bool:
    """Whether a non-verbose example entrant answers this prompt long and formatted (a fixed function of the team
    and the prompt, so both the answer and the raters' reaction to it are deterministic)."""
    return int(hashlib.sha256(f"{team}\n{prompt}".encode()).hexdigest(), 16) % 2 == 0


def _is_formatted(text: str) -> bool:
    return text.startswith("## ")


def example_factory(loaded: LoadedProgram) -> Callable[[Entrant, Arena], ExampleEntrant]:
    def factory(entrant: Entrant, _arena: Arena) -> ExampleEntrant:
        team = loaded.program.team(entrant.team)
        return ExampleEntrant(entrant.team, team.name, entrant.model or f"{entrant.team}-model")
    return factory


@contextmanager
def example_entrants(loaded: LoadedProgram) -> Iterator[None]:
    """Entrants answer through the example clients while the block runs (the default clients afterwards)."""
    arena_answers.use_factory(example_factory(loaded))
    try:
        yield
    finally:
        arena_answers.use_factory(None)


# ---------------------------------------------------------------------------------------------------- raters
@dataclass(frozen=True)
class ArenaSummary:
    votes: int
    void: int
    flagged: tuple[str, ...]
    excluded: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"votes": self.votes, "void": self.void, "flagged": list(self.flagged), "excluded": list(self.excluded)}


def arena_ready(session: Session, loaded: LoadedProgram, stage_id: str) -> bool:
    """Whether the stage declares an arena that has not been frozen yet (so the demo runs it)."""
    stage = loaded.program.stage(stage_id)
    if stage.arena is None:
        return False
    return arena.current_segment(session, arena.context_of(loaded, stage_id)) is None


def _raters(session_factory: SessionFactory, key: str, actor: str, when: dt.datetime,
            rng: np.random.Generator) -> dict[str, AccountView]:
    """Invited rater accounts that accepted their invitations (with passwords nobody is told: they never sign
    in; the demo acts for them through the services)."""
    out = {}
    with session_factory() as s:
        existing = {a.username: a for a in accounts.list_accounts(s)}
        for name in RATERS:
            if name in existing:
                out[name] = existing[name]
                continue
            _, token = accounts.invite(s, username=name, display_name=f"Example {name}", role=Role.RATER.value,
                                       actor=actor, program_key=key, now=when)
            out[name] = accounts.accept_invitation(s, token, f"example-{int(rng.integers(2**62)):016x}", now=when)
    return out


def _strengths(profiles: dict[str, float]) -> dict[str, float]:
    """Each team's example strength (log-odds) from its example user mean on 0–100."""
    mean = sum(profiles.values()) / len(profiles)
    return {team: (value - mean) / 5.0 for team, value in profiles.items()}


def _choice(view: arena.BattleView, req: arena.TurnRequest, strengths: dict[str, float], rater: str,
            rng: np.random.Generator) -> str:
    """The example rater's vote: the good answer of an attention check; else a draw from the strengths (with the
    planted style liking), and the rigger's vote for the weaker entrant."""
    if req.gold is not None:
        return "left" if req.left_team == "good" else "right"
    left, right = req.left_team, req.right_team
    if rater == RIGGER:
        return "left" if strengths[left] < strengths[right] else "right"
    diff = strengths[left] - strengths[right]
    turn = view.turns[-1]
    diff += STYLE_LIKING * (_is_formatted(turn.left) - _is_formatted(turn.right))
    u = rng.random()
    if u < 0.08:
        return "tie"
    if u < 0.11:
        return "both_bad"
    return "left" if rng.random() < 1 / (1 + math.exp(-diff)) else "right"


def run_arena(session_factory: SessionFactory, loaded: LoadedProgram, stage_id: str, profiles: dict[str, float],
              actor: str, seed: int = 17) -> ArenaSummary:
    """Freeze the example entrants, let the example raters play `ROUNDS` battles each inside the voting window,
    and exclude the rater the anomalous-rater test flags (with its evidence). `profiles`: team → user mean."""
    key = loaded.program.program.id
    rng = np.random.default_rng(seed)
    schedule_rng = np.random.default_rng(seed + 1)  # the schedule's draws, apart from the raters'
    strengths = _strengths(profiles)
    with session_factory() as s:
        ctx = arena.context(s, key, stage_id)
    opens = ctx.arena.opens
    raters = _raters(session_factory, key, actor, opens, rng)
    with example_entrants(loaded):
        identities = arena.read_identities(ctx)
        with session_factory() as s:
            arena.freeze(s, arena.context(s, key, stage_id), identities, actor, now=opens + dt.timedelta(hours=1))
        start = opens + dt.timedelta(days=1)
        asks = {name: [QUESTIONS[int(j)] for j in rng.permutation(len(QUESTIONS))] for name in RATERS}
        for round_no in range(ROUNDS):
            for i, name in enumerate(RATERS):
                now = start + dt.timedelta(hours=round_no, minutes=4 * i)
                _battle(session_factory, key, stage_id, raters[name], now, strengths, rng, schedule_rng,
                        asks[name][round_no], leak=name == LEAKER and round_no == 2, rate=(round_no + i) % 3 == 0)
    after = ctx.arena.closes + dt.timedelta(hours=1)
    with session_factory() as s:
        ctx = arena.context(s, key, stage_id)
        found = flagged_raters(s, ctx)
        flagged = tuple(f["rater"] for f in found)
        for f in found:
            arena.exclude(s, ctx, actor, rater=f["rater"], reason="anomalous-rater test: votes improbable "
                          "against every pair's history (p = {:.2g}); reviewed by the secretariat".format(
                              f["p_value"]), evidence=f, now=after)
        records = arena.vote_records(s, ctx)
    return ArenaSummary(votes=len(records), void=sum(1 for r in records if r.status == "void"), flagged=flagged,
                        excluded=flagged)


def flagged_raters(session: Session, ctx: arena.ArenaContext) -> list[dict]:
    """The raters the anomalous-rater test flags now, with their evidence — the same test, on the same votes, as
    the published result (`arena_results.compute`), without its bootstrap."""
    return arena_results.flagged_raters(arena.vote_records(session, ctx), ctx.arena.teams)


def _battle(session_factory: SessionFactory, key: str, stage_id: str, who: AccountView, now: dt.datetime,
            strengths: dict[str, float], rng: np.random.Generator, schedule_rng: np.random.Generator, prompt: str,
            *, leak: bool, rate: bool) -> None:
    """One battle as the web pages run it: start and check the prompt, answer (no transaction held), then store the
    turn, the vote after the rater has read both answers, and sometimes ratings of the answers."""
    with session_factory() as s:
        ctx = arena.context(s, key, stage_id)
        view = arena.start_battle(s, ctx, who, now=now, rng=schedule_rng)
        req = arena.prepare_turn(s, ctx, view.token, who, LEAK_PROMPT if leak else prompt, now=now)
    answers = arena.generate(ctx, req)
    voted_at = now + dt.timedelta(seconds=20 + int(rng.integers(60)))
    with session_factory() as s:
        ctx = arena.context(s, key, stage_id)
        view = arena.record_turn(s, ctx, req, answers, who, now=now)
        view = arena.vote(s, ctx, view.token, who, _choice(view, req, strengths, who.username, rng), now=voted_at)
        if rate and req.gold is None:
            for side, team in (("left", req.left_team), ("right", req.right_team)):
                useful = int(np.clip(round(3 + strengths[team] + rng.normal(0, 0.7)), 1, 5))
                cost = int(np.clip(round(3 + rng.normal(0, 0.9)), 1, 5))
                arena.rate(s, ctx, view.token, who, side, useful, cost, now=voted_at + dt.timedelta(seconds=15))
