"""What a rater's arena pages show, as typed read models: the arenas open to them and one blind battle.

Blindness is decided here, once: before the vote a battle page carries the category, the prompts and both answers
(sanitised, with any entrant's name masked) and nothing else — no team, model, endpoint, measured speed or time
of an answer. After the vote the reveal adds who was on each side, what was measured and the declared price.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import nh3
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from simsa.accounts.service import AccountView
from simsa.arena.leak import LeakFilter
from simsa.audit.log import now_utc
from simsa.errors import InputError
from simsa.panel.markdown_view import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown
from simsa.services import arena
from simsa.services.arena import ArenaContext, BattleView
from simsa.store.models import ArenaBattle, ArenaVote
from simsa.timeutil import as_utc

MASK = "▇▇▇"
# Answers come from models: no link (a link could tell its author who reads, or take a rater off the site).
ANSWER_TAGS = frozenset(ALLOWED_TAGS - {"a"})
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _pick(lang: str, en: str, ko: str | None) -> str:
    return ko if lang == "ko" and ko else en


def answer_html(text: str, leaks: LeakFilter | None = None) -> str:
    """Sanitised HTML for a model's answer (Markdown, never raw HTML, no links), with every span the leak filter
    finds replaced by a mask when `leaks` is given."""
    text = CONTROL.sub("", text)
    if leaks is not None:
        for leak in reversed(leaks.find(text)):
            text = text[:leak.start] + MASK + text[leak.end:]
    html = render_markdown(text)
    return nh3.clean(html, tags=set(ANSWER_TAGS),
                     attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items() if k in ANSWER_TAGS})


# --------------------------------------------------------------------------- the rater's home


@dataclass(frozen=True)
class ArenaCard:
    """One arena on a rater's home page. `state` is open, not_yet, closed or not_frozen."""

    key: str
    program_name: str
    stage: str
    stage_name: str
    opens: dt.datetime
    closes: dt.datetime
    timezone: str
    state: str
    votes_today: int
    started_today: int
    daily_cap: int
    in_progress: str | None  # the token of the rater's unvoted battle, if any

    @property
    def url(self) -> str:
        return f"/arena/{self.key}/{self.stage}"

    @property
    def can_start(self) -> bool:
        return self.state == "open" and (self.in_progress is not None or self.started_today < self.daily_cap)


@dataclass(frozen=True)
class RaterHome:
    cards: tuple[ArenaCard, ...]


def day_start(ctx: ArenaContext, now: dt.datetime) -> dt.datetime:
    """Midnight of `now`'s calendar day in the programme's time zone (the daily cap's day)."""
    local = now.astimezone(ctx.tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def _state(session: Session, ctx: ArenaContext, now: dt.datetime) -> str:
    if now < ctx.arena.opens:
        return "not_yet"
    if now >= ctx.arena.closes:
        return "closed"
    return "open" if arena.current_segment(session, ctx) is not None else "not_frozen"


def _card(session: Session, ctx: ArenaContext, rater: AccountView, lang: str, now: dt.datetime) -> ArenaCard:
    since = day_start(ctx, now)
    mine = (ArenaBattle.rater == rater.username, ArenaBattle.program_key == ctx.key,
            ArenaBattle.stage_id == ctx.stage.id)
    started = session.execute(select(func.count(ArenaBattle.id)).where(*mine, ArenaBattle.started_at >= since)
                              ).scalar_one()
    voted = session.execute(select(func.count(ArenaVote.id)).where(
        ArenaVote.rater == rater.username, ArenaVote.program_key == ctx.key, ArenaVote.stage_id == ctx.stage.id,
        ArenaVote.voted_at >= since)).scalar_one()
    segment = arena.current_segment(session, ctx)
    pending = None
    if segment is not None:
        pending = session.execute(
            select(ArenaBattle.token).outerjoin(ArenaVote, ArenaVote.battle_id == ArenaBattle.id)
            .where(*mine, ArenaBattle.segment_id == segment.id, ArenaVote.id.is_(None))
            .order_by(ArenaBattle.id.desc()).limit(1)).scalar_one_or_none()
    program = ctx.loaded.program.program
    return ArenaCard(key=ctx.key, program_name=_pick(lang, program.name, program.name_ko),
                     stage=ctx.stage.id, stage_name=_pick(lang, ctx.stage.name, ctx.stage.name_ko),
                     opens=ctx.arena.opens, closes=ctx.arena.closes, timezone=program.timezone,
                     state=_state(session, ctx, now), votes_today=voted, started_today=started,
                     daily_cap=ctx.arena.daily_cap, in_progress=pending)


def rater_home(session: Session, rater: AccountView, lang: str, *, now: dt.datetime | None = None) -> RaterHome:
    """The arenas this rater may vote in (their programme's, or every programme's for a rater of none)."""
    when = as_utc(now) if now else now_utc()
    cards = [_card(session, ctx, rater, lang, when) for ctx in arena.arenas(session)
             if rater.program_key in (None, ctx.key)]
    return RaterHome(tuple(cards))


# --------------------------------------------------------------------------- one battle


@dataclass(frozen=True)
class TurnView:
    number: int
    prompt: str
    left_html: str
    right_html: str


@dataclass(frozen=True)
class RevealSide:
    """One side after the vote: who it was, what was measured over its answers, its declared price, and the
    rater's ratings of it."""

    side: str  # left | right
    team: str
    team_name: str
    latency_seconds: float | None
    tokens_per_second: float | None
    price_per_million_tokens: float | None
    usefulness: int | None
    cost_efficiency: int | None
    rated: bool


@dataclass(frozen=True)
class BattlePage:
    """A battle as its rater's page shows it. Nothing names or times an entrant while `voted` is False."""

    key: str
    stage: str
    program_name: str
    stage_name: str
    token: str
    category: str
    turns: tuple[TurnView, ...]
    max_turns: int
    suggested_prompt: str | None
    masked: bool  # an answer named an entrant and was masked (the vote will be void)
    voted: bool
    vote: str | None
    vote_status: str | None
    vote_reason: str | None
    reveal: tuple[RevealSide, RevealSide] | None
    gold: bool

    @property
    def url(self) -> str:
        return f"/arena/{self.key}/{self.stage}/b/{self.token}"

    @property
    def can_ask(self) -> bool:
        return not self.voted and len(self.turns) < self.max_turns

    @property
    def can_vote(self) -> bool:
        return not self.voted and bool(self.turns)

    @property
    def can_rate(self) -> bool:
        return self.voted and not self.gold and self.reveal is not None and not all(s.rated for s in self.reveal)


def _shown_category(ctx: ArenaContext, view: BattleView) -> str:
    """An attention check is dressed as an ordinary battle: it shows one of the arena's categories, chosen by
    its token, so the page does not tell the rater it is a check."""
    if view.category in ctx.arena.categories:
        return view.category
    cats = ctx.arena.categories
    return cats[int(hashlib.sha256(view.token.encode()).hexdigest(), 16) % len(cats)]


def _mean(values: Sequence[float | None]) -> float | None:
    found = [float(v) for v in values if v is not None]
    return sum(found) / len(found) if found else None


def _reveal_side(ctx: ArenaContext, view: BattleView, side: str, lang: str) -> RevealSide:
    assert view.reveal is not None
    r = view.reveal
    team = r.left_team if side == "left" else r.right_team
    stats = r.left_stats if side == "left" else r.right_stats
    price = r.left_price if side == "left" else r.right_price
    name = team
    if team in ctx.arena.teams:
        found = ctx.loaded.program.team(team)
        name = _pick(lang, found.name, found.name_ko)
    latency = sum(float(s["latency_seconds"]) for s in stats if s.get("latency_seconds") is not None) \
        if stats else None
    rating = view.ratings.get(side, {})
    return RevealSide(side=side, team=team, team_name=name, latency_seconds=latency,
                      tokens_per_second=_mean([s.get("tokens_per_second") for s in stats]),
                      price_per_million_tokens=price, usefulness=rating.get("usefulness"),
                      cost_efficiency=rating.get("cost_efficiency"), rated=side in view.ratings)


def battle_page_of(ctx: ArenaContext, view: BattleView, lang: str) -> BattlePage:
    """The page model of a battle view: masked before the vote, revealed after it."""
    voted = view.vote is not None
    leaks = None if voted else ctx.leak_filter()
    masked = False
    turns = []
    for turn in view.turns:
        if leaks is not None and (leaks.find(turn.left) or leaks.find(turn.right)):
            masked = True
        turns.append(TurnView(turn.turn, turn.prompt, answer_html(turn.left, leaks), answer_html(turn.right, leaks)))
    program = ctx.loaded.program.program
    reveal = None
    if voted and view.reveal is not None:
        reveal = (_reveal_side(ctx, view, "left", lang), _reveal_side(ctx, view, "right", lang))
    return BattlePage(key=ctx.key, stage=ctx.stage.id,
                      program_name=_pick(lang, program.name, program.name_ko),
                      stage_name=_pick(lang, ctx.stage.name, ctx.stage.name_ko), token=view.token,
                      category=_shown_category(ctx, view), turns=tuple(turns),
                      max_turns=view.max_turns, suggested_prompt=view.suggested_prompt if not view.turns else None,
                      masked=masked, voted=voted, vote=view.vote, vote_status=view.vote_status,
                      vote_reason=view.vote_reason, reveal=reveal, gold=view.category == arena.GOLD and
                      view.category not in ctx.arena.categories)


def battle_page(session: Session, key: str, stage: str, token: str, rater: AccountView, lang: str) -> BattlePage:
    """The rater's own battle (another rater's, or an unknown token, is the same NotFound)."""
    ctx = arena.context(session, key, stage)
    return battle_page_of(ctx, arena.battle(session, ctx, token, rater), lang)


def start(session: Session, key: str, stage: str, rater: AccountView) -> str:
    """Start (or resume) the rater's battle; its token."""
    ctx = arena.context(session, key, stage)
    return arena.start_battle(session, ctx, rater).token


def vote(session: Session, key: str, stage: str, token: str, rater: AccountView, choice: str) -> None:
    ctx = arena.context(session, key, stage)
    arena.vote(session, ctx, token, rater, choice)


def _level(value: str, what: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if value not in {"1", "2", "3", "4", "5"}:
        raise InputError(f"{what} is rated 1 to 5, not {value[:20]!r}")
    return int(value)


def rate_from_form(session: Session, key: str, stage: str, token: str, rater: AccountView,
                   fields: dict[str, str]) -> int:
    """Store the ratings a form gives (`usefulness_left`, `cost_efficiency_left`, and the same for right) for
    each side that has one and is not rated yet; how many sides were rated."""
    ctx = arena.context(session, key, stage)
    current = arena.battle(session, ctx, token, rater)
    done = 0
    for side in ("left", "right"):
        what = "A" if side == "left" else "B"
        useful = _level(fields.get(f"usefulness_{side}", ""), f"usefulness of answer {what}")
        cost = _level(fields.get(f"cost_efficiency_{side}", ""), f"cost efficiency of answer {what}")
        if (useful is None and cost is None) or side in current.ratings:
            continue
        arena.rate(session, ctx, token, rater, side, useful, cost)
        done += 1
    if not done:
        raise InputError("choose a rating for answer A or B first")
    return done
