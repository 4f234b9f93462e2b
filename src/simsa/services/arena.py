"""The user-review arena of a stage: frozen entrants, blind battles from a balanced schedule, votes and ratings.
One entry point per use case; the CLI, the web pages and the API are shells over these.

A battle is made by the server (the schedule picks the pair, the side and the category), belongs to one rater and
holds up to `max_turns` prompts with both entrants' answers. Its entrants are revealed only once its vote is
stored, and a battle takes one vote. A rater who leaves a battle unvoted gets the same battle back rather than a new
pair, so skipping cannot be used to fish for a favoured entrant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from simsa.accounts import Role
from simsa.accounts.service import AccountView
from simsa.arena.leak import LeakFilter
from simsa.arena.prompts import PromptKey, find_duplicate, prompt_key
from simsa.arena.schedule import Pick, ScheduleCounts, next_battle
from simsa.audit.chain import canonical
from simsa.audit.log import append, now_utc
from simsa.errors import InputError, NotFound
from simsa.program.arena_schema import Arena, GoldItem
from simsa.program.loader import LoadedProgram
from simsa.program.schema import Stage
from simsa.services import commitments, programs
from simsa.services.arena_answers import Answer, Entrants, entrants_for
from simsa.store.db import Store
from simsa.store.models import (
    ArenaBattle,
    ArenaExclusion,
    ArenaRating,
    ArenaSegment,
    ArenaTurn,
    ArenaVote,
)
from simsa.timeutil import as_utc, utc_text

CHOICES = ("left", "right", "tie", "both_bad")
MAX_PROMPT = 8000
MIN_PROMPT = 2
PENDING_MINUTES = 30  # an unvoted battle holds its place in the schedule this long
GOLD = "gold"
ENTRANTS = "entrants"
_LEAK_FILTERS: dict[tuple[str, str, str], LeakFilter] = {}
log = logging.getLogger("simsa.arena")


@dataclass(frozen=True)
class ArenaContext:
    """A stage's arena as the stored programme declares it."""

    loaded: LoadedProgram
    stage: Stage
    arena: Arena

    @property
    def key(self) -> str:
        return self.loaded.program.program.id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.loaded.program.program.timezone)

    def leak_filter(self) -> LeakFilter:
        """Every name that would identify an entrant: its team's names (English and Korean), members and models,
        the entrant's served model name, and the arena's extra leak terms (which belong to no one team). Built once
        per programme version (compiling the patterns is the costly part of a vote)."""
        cache_key = (self.key, self.stage.id, self.loaded.sha256)
        found = _LEAK_FILTERS.get(cache_key)
        if found is None:
            found = _LEAK_FILTERS[cache_key] = self._build_leak_filter()
        return found

    def _build_leak_filter(self) -> LeakFilter:
        terms: dict[str, list[str]] = {}
        for entrant in self.arena.entrants:
            team = self.loaded.program.team(entrant.team)
            names = [team.name, *(n for n in (team.name_ko,) if n), *team.members, *team.models]
            names += [m.split("/", 1)[1] for m in team.models if "/" in m]
            if entrant.model:
                names.append(entrant.model)
            terms[entrant.team] = [n for n in dict.fromkeys(names) if len(n.strip()) >= 3]
        if self.arena.leak_terms:
            terms["(declared)"] = list(self.arena.leak_terms)
        return LeakFilter.from_terms(terms)


def context(session: Session, key: str, stage_id: str) -> ArenaContext:
    """The arena of `stage_id` in the stored programme `key`; NotFound when there is no such stage or arena."""
    return context_of(programs.stored(session, key), stage_id)


def context_of(loaded: LoadedProgram, stage_id: str) -> ArenaContext:
    key = loaded.program.program.id
    try:
        stage = loaded.program.stage(stage_id)
    except KeyError:
        raise NotFound(f"programme {key!r} has no stage {stage_id!r}") from None
    if stage.arena is None:
        raise NotFound(f"stage {stage_id!r} of {key!r} has no arena (no [stages.arena] in the programme)")
    return ArenaContext(loaded=loaded, stage=stage, arena=stage.arena)


def arenas(session: Session) -> list[ArenaContext]:
    """Every stage with an arena, over all stored programmes."""
    out = []
    for loaded in programs.stored_programs(session):
        out += [ArenaContext(loaded, s, s.arena) for s in loaded.program.stages if s.arena is not None]
    return out


# ---------------------------------------------------------------------------------------------------- segments
@dataclass(frozen=True)
class Segment:
    id: int
    number: int
    manifest: Mapping[str, Any]
    manifest_sha256: str
    reason: str
    opened_at: dt.datetime
    opened_by: str

    def to_dict(self) -> dict:
        return {"number": self.number, "manifest_sha256": self.manifest_sha256, "manifest": dict(self.manifest),
                "reason": self.reason, "opened_at": utc_text(self.opened_at), "opened_by": self.opened_by}


def _segment(row: ArenaSegment) -> Segment:
    return Segment(row.id, row.number, json.loads(row.manifest), row.manifest_sha256, row.reason,
                   as_utc(row.opened_at), row.opened_by)


def segments(session: Session, ctx: ArenaContext) -> list[Segment]:
    rows = session.execute(select(ArenaSegment).where(ArenaSegment.program_key == ctx.key,
                                                      ArenaSegment.stage_id == ctx.stage.id)
                           .order_by(ArenaSegment.number)).scalars()
    return [_segment(r) for r in rows]


def current_segment(session: Session, ctx: ArenaContext) -> Segment | None:
    found = segments(session, ctx)
    return found[-1] if found else None


def manifest(ctx: ArenaContext, identities: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What a segment freezes: each entrant's identity and declared price, the system prompt and the decoding
    settings — everything that decides what an entrant answers."""
    missing = [t for t in ctx.arena.teams if t not in identities]
    if missing:
        raise InputError(f"no identity for entrant {missing[0]!r}")
    return {"system_prompt": ctx.arena.system_prompt, "decoding": ctx.arena.decoding.model_dump(),
            "entrants": [{"team": e.team, "identity": dict(identities[e.team]),
                          "price_per_million_tokens": e.price_per_million_tokens} for e in ctx.arena.entrants]}


def read_identities(ctx: ArenaContext, entrants: Entrants | None = None) -> dict[str, dict[str, Any]]:
    """Ask every entrant who it is now (outside any transaction: this calls the endpoints)."""
    entrants = entrants or entrants_for(ctx.key, ctx.stage.id, ctx.arena)
    return {team: entrants.identity(team) for team in ctx.arena.teams}


def freeze(session: Session, ctx: ArenaContext, identities: Mapping[str, Mapping[str, Any]], actor: str, *,
           reason: str = "", now: dt.datetime | None = None) -> tuple[Segment, bool]:
    """Freeze the entrants into the audit chain. The same manifest as the current segment changes nothing
    (returns it, False); a different one opens a new segment (True) — only with a reason once votes exist, since
    it splits the stage's votes into separately reported segments."""
    check_entrant_commitments(session, ctx, identities)
    doc = manifest(ctx, identities)
    digest = hashlib.sha256(canonical(doc).encode()).hexdigest()
    current = current_segment(session, ctx)
    if current is not None and current.manifest_sha256 == digest:
        return current, False
    if current is not None and _count_votes(session, ctx, current.id) and not reason.strip():
        raise InputError(f"the entrants changed since segment {current.number} was frozen and votes exist; a "
                         "change opens a new, separately reported segment: give the reason")
    when = as_utc(now) if now else now_utc()
    row = ArenaSegment(program_key=ctx.key, stage_id=ctx.stage.id, number=(current.number + 1) if current else 1,
                       manifest=canonical(doc), manifest_sha256=digest,
                       reason=reason.strip() or "entrants frozen before voting", opened_at=when, opened_by=actor)
    session.add(row)
    session.flush()
    append(session, actor=actor, action="arena.segment.freeze", row=row, at=when)
    return _segment(row), True


def check_entrant_commitments(session: Session, ctx: ArenaContext,
                              identities: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse to freeze an entrant whose served weights differ from the ones its team committed to (`simsa commit
    ... entrant=DIR`), or whose endpoint does not say which weights it serves."""
    for team, promised in sorted(commitments.entrant_commitments(session, ctx.key, ctx.stage.id).items()):
        if team not in identities:
            continue
        served = identities[team].get("sha256")
        where = f"commitment entrant:{promised.label} (#{promised.id}, recorded {promised.recorded_at})"
        if not served:
            raise InputError(f"entrant {team!r}: its endpoint does not publish the sha256 of the weights it serves, "
                             f"so it cannot be checked against {where}; freeze refused")
        if served != promised.sha256:
            raise InputError(f"entrant {team!r} serves weights sha256 {served}, not the {promised.sha256} of "
                             f"{where}; freeze refused")


def _count_votes(session: Session, ctx: ArenaContext, segment_id: int) -> int:
    return session.execute(select(func.count(ArenaVote.id)).join(ArenaBattle, ArenaBattle.id == ArenaVote.battle_id)
                           .where(ArenaBattle.segment_id == segment_id)).scalar_one()


def changed_entrants(segment: Segment, identities: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Entrants whose identity now differs from the frozen one."""
    frozen = {e["team"]: e["identity"] for e in segment.manifest.get("entrants", [])}
    return [t for t, ident in identities.items() if t in frozen and dict(ident) != frozen[t]]


# ---------------------------------------------------------------------------------------------------- battles
@dataclass(frozen=True)
class Turn:
    turn: int
    prompt: str
    prompt_source: str
    left: str
    right: str
    stats: Mapping[str, Any]
    answered_at: dt.datetime


@dataclass(frozen=True)
class Reveal:
    """Who was behind each side, shown only after the vote, with what was measured and the declared price."""

    left_team: str
    right_team: str
    left_stats: Sequence[Mapping[str, Any]]
    right_stats: Sequence[Mapping[str, Any]]
    left_price: float | None
    right_price: float | None

    def to_dict(self) -> dict:
        return {"left": {"team": self.left_team, "price_per_million_tokens": self.left_price,
                         "turns": [dict(s) for s in self.left_stats]},
                "right": {"team": self.right_team, "price_per_million_tokens": self.right_price,
                          "turns": [dict(s) for s in self.right_stats]}}


@dataclass(frozen=True)
class BattleView:
    """A battle as its rater sees it. Nothing here names or times an entrant until `vote` is set."""

    token: str
    category: str
    started_at: dt.datetime
    turns: tuple[Turn, ...]
    max_turns: int
    suggested_prompt: str | None
    vote: str | None = None
    vote_status: str | None = None
    vote_reason: str | None = None
    reveal: Reveal | None = None
    ratings: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)

    @property
    def can_ask(self) -> bool:
        return self.vote is None and len(self.turns) < self.max_turns

    @property
    def can_vote(self) -> bool:
        return self.vote is None and bool(self.turns)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "battle": self.token, "category": self.category, "started_at": utc_text(self.started_at),
            "turns": [{"turn": t.turn, "prompt": t.prompt, "left": t.left, "right": t.right} for t in self.turns],
            "max_turns": self.max_turns, "suggested_prompt": self.suggested_prompt, "voted": self.vote is not None}
        if self.vote is not None:
            out.update({"vote": self.vote, "vote_status": self.vote_status, "vote_reason": self.vote_reason,
                        "reveal": self.reveal.to_dict() if self.reveal else None,
                        "ratings": {k: dict(v) for k, v in self.ratings.items()}})
        return out


def check_rater(ctx: ArenaContext, rater: AccountView, now: dt.datetime | None = None) -> None:
    """Only an active, invited rater account of this programme (or of no particular programme) may vote."""
    if rater.role != Role.RATER:
        raise InputError("only invited rater accounts take part in the arena")
    if not rater.active or not rater.activated:
        raise InputError("this rater account is not active")
    if rater.program_key not in (None, ctx.key):
        raise NotFound(f"no arena of {ctx.key!r} for this account")


def window(ctx: ArenaContext, now: dt.datetime) -> None:
    if now < ctx.arena.opens:
        raise InputError(f"the arena opens at {utc_text(ctx.arena.opens)}")
    if now >= ctx.arena.closes:
        raise InputError(f"the arena closed at {utc_text(ctx.arena.closes)}")


def _day_start(ctx: ArenaContext, now: dt.datetime) -> dt.datetime:
    local = now.astimezone(ctx.tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def _battle(session: Session, ctx: ArenaContext, token: str, rater: str) -> ArenaBattle:
    """The rater's own battle. Another rater's battle, or a token that exists nowhere, is the same NotFound, so a
    token cannot be probed."""
    row = session.execute(select(ArenaBattle).where(ArenaBattle.token == token)).scalar_one_or_none()
    if row is None or row.rater != rater or row.program_key != ctx.key or row.stage_id != ctx.stage.id:
        raise NotFound("no such battle")
    return row


def _turns(session: Session, battle_id: int) -> list[ArenaTurn]:
    return list(session.execute(select(ArenaTurn).where(ArenaTurn.battle_id == battle_id)
                                .order_by(ArenaTurn.turn)).scalars())


def _vote_row(session: Session, battle_id: int) -> ArenaVote | None:
    return session.execute(select(ArenaVote).where(ArenaVote.battle_id == battle_id)).scalar_one_or_none()


def schedule_counts(session: Session, ctx: ArenaContext, segment_id: int, now: dt.datetime) -> ScheduleCounts:
    """What the schedule has handed out in the segment: voted battles and those still pending (started within
    `PENDING_MINUTES`, not voted); abandoned ones free their place."""
    since = now - dt.timedelta(minutes=PENDING_MINUTES)
    rows = session.execute(
        select(ArenaBattle.left_team, ArenaBattle.right_team, ArenaBattle.category, ArenaBattle.started_at,
               ArenaVote.id, ArenaVote.status)
        .outerjoin(ArenaVote, ArenaVote.battle_id == ArenaBattle.id)
        .where(ArenaBattle.segment_id == segment_id, ArenaBattle.kind == ENTRANTS)).all()
    counts = ScheduleCounts()
    for left, right, category, started, vote_id, status in rows:
        if vote_id is None and as_utc(started) < since:
            continue
        if status == "void":
            continue  # a voided battle is not served: its pair needs another vote
        counts.add(Pick(left=left, right=right, category=category))
    return counts


def _pending(session: Session, ctx: ArenaContext, rater: str, segment_id: int) -> ArenaBattle | None:
    return session.execute(
        select(ArenaBattle).outerjoin(ArenaVote, ArenaVote.battle_id == ArenaBattle.id)
        .where(ArenaBattle.program_key == ctx.key, ArenaBattle.stage_id == ctx.stage.id,
               ArenaBattle.rater == rater, ArenaBattle.segment_id == segment_id, ArenaVote.id.is_(None))
        .order_by(ArenaBattle.id.desc()).limit(1)).scalar_one_or_none()


def start_battle(session: Session, ctx: ArenaContext, rater: AccountView, *, now: dt.datetime | None = None,
                 rng: np.random.Generator | None = None) -> BattleView:
    """The rater's next battle: the unvoted one they already have, else a new one the schedule picks (every
    `gold_every`-th battle an attention check). Refused outside the voting window, before the entrants are frozen,
    and beyond the rater's daily cap (counted per calendar day in the programme's time zone)."""
    when = as_utc(now) if now else now_utc()
    check_rater(ctx, rater, when)
    window(ctx, when)
    segment = current_segment(session, ctx)
    if segment is None:
        raise InputError("voting has not opened: the secretariat has not frozen the entrants yet")
    name = rater.username
    pending = _pending(session, ctx, name, segment.id)
    if pending is not None:
        return _view(session, ctx, pending)
    started_today = session.execute(
        select(func.count(ArenaBattle.id)).where(ArenaBattle.rater == name, ArenaBattle.program_key == ctx.key,
                                                 ArenaBattle.stage_id == ctx.stage.id,
                                                 ArenaBattle.started_at >= _day_start(ctx, when))).scalar_one()
    if started_today >= ctx.arena.daily_cap:
        raise InputError(f"you have reached today's limit of {ctx.arena.daily_cap} battles; thank you — come back "
                         "tomorrow")
    rng = rng if rng is not None else np.random.default_rng()
    total = session.execute(select(func.count(ArenaBattle.id)).where(
        ArenaBattle.rater == name, ArenaBattle.program_key == ctx.key,
        ArenaBattle.stage_id == ctx.stage.id)).scalar_one()
    gold: GoldItem | None = None
    if ctx.arena.gold and ctx.arena.gold_every and (total + 1) % ctx.arena.gold_every == 0:
        gold = ctx.arena.gold[int(rng.integers(len(ctx.arena.gold)))]
    if gold is not None:
        left, right = ("good", "bad") if rng.random() < 0.5 else ("bad", "good")
        row = ArenaBattle(token=secrets.token_urlsafe(24), program_key=ctx.key, stage_id=ctx.stage.id,
                          segment_id=segment.id, rater=name, kind=GOLD, left_team=left, right_team=right,
                          category=GOLD, gold_id=gold.id, started_at=when)
    else:
        counts = schedule_counts(session, ctx, segment.id, when)
        pick = next_battle(ctx.arena.teams, ctx.arena.votes_per_pair, ctx.arena.categories, counts, rng)
        row = ArenaBattle(token=secrets.token_urlsafe(24), program_key=ctx.key, stage_id=ctx.stage.id,
                          segment_id=segment.id, rater=name, kind=ENTRANTS, left_team=pick.left,
                          right_team=pick.right, category=pick.category, gold_id=None, started_at=when)
    session.add(row)
    session.flush()
    append(session, actor=rater.actor, action="arena.battle.start", row=row, at=when)
    return _view(session, ctx, row)


def battle(session: Session, ctx: ArenaContext, token: str, rater: AccountView) -> BattleView:
    check_rater(ctx, rater)
    return _view(session, ctx, _battle(session, ctx, token, rater.username))


def _suggestion(ctx: ArenaContext, row: ArenaBattle) -> str | None:
    if row.kind == GOLD:
        return _gold(ctx, row).prompt
    pool = [p for p in ctx.arena.prompts if p.category == row.category]
    if not pool:
        return None
    return pool[int(hashlib.sha256(row.token.encode()).hexdigest(), 16) % len(pool)].text


def _gold(ctx: ArenaContext, row: ArenaBattle) -> GoldItem:
    return next(g for g in ctx.arena.gold if g.id == row.gold_id)


def _view(session: Session, ctx: ArenaContext, row: ArenaBattle) -> BattleView:
    turns = tuple(Turn(t.turn, t.prompt.decode(), t.prompt_source, t.answer_left.decode(), t.answer_right.decode(),
                       json.loads(t.stats), as_utc(t.answered_at)) for t in _turns(session, row.id))
    vote = _vote_row(session, row.id)
    base = BattleView(token=row.token, category=row.category, started_at=as_utc(row.started_at), turns=turns,
                      max_turns=1 if row.kind == GOLD else ctx.arena.max_turns, suggested_prompt=_suggestion(ctx, row))
    if vote is None:
        return base
    ratings = {r.side: {"usefulness": r.usefulness, "cost_efficiency": r.cost_efficiency}
               for r in session.execute(select(ArenaRating).where(ArenaRating.battle_id == row.id)).scalars()}
    return BattleView(**{**base.__dict__, "vote": vote.choice, "vote_status": vote.status, "vote_reason": vote.reason,
                         "reveal": _reveal(ctx, row, turns), "ratings": ratings})


def _reveal(ctx: ArenaContext, row: ArenaBattle, turns: Sequence[Turn]) -> Reveal:
    def price(team: str) -> float | None:
        return ctx.arena.entrant(team).price_per_million_tokens if team in ctx.arena.teams else None

    if row.kind == GOLD:
        return Reveal(f"attention check ({row.left_team} answer)", f"attention check ({row.right_team} answer)",
                      [], [], None, None)
    return Reveal(row.left_team, row.right_team, [t.stats.get("left", {}) for t in turns],
                  [t.stats.get("right", {}) for t in turns], price(row.left_team), price(row.right_team))


# ---------------------------------------------------------------------------------------------------- turns
@dataclass(frozen=True)
class TurnRequest:
    """What the answer step needs, read in one short transaction: the battle, the turn number, each side's
    conversation so far, and the prompt's duplicate key."""

    token: str
    battle_id: int
    kind: str
    turn: int
    left_team: str
    right_team: str
    left_messages: list[dict[str, str]]
    right_messages: list[dict[str, str]]
    prompt: str
    source: str
    key: PromptKey
    gold: GoldItem | None
    segment_id: int


def _clean_prompt(text: str) -> str:
    text = (text or "").replace("\r\n", "\n").replace("\x00", "").strip()
    if len(text) < MIN_PROMPT:
        raise InputError("write a prompt first (or take the suggested one)")
    if len(text) > MAX_PROMPT:
        raise InputError(f"the prompt is {len(text)} characters; at most {MAX_PROMPT}")
    return text


def _rater_prompt_keys(session: Session, ctx: ArenaContext, rater: str) -> list[PromptKey]:
    rows = session.execute(select(ArenaTurn.prompt_key).join(ArenaBattle, ArenaBattle.id == ArenaTurn.battle_id)
                           .where(ArenaBattle.rater == rater, ArenaBattle.program_key == ctx.key,
                                  ArenaBattle.stage_id == ctx.stage.id,
                                  ArenaTurn.prompt_source == "rater")).scalars()
    return [PromptKey.from_dict(json.loads(r)) for r in rows]


def prepare_turn(session: Session, ctx: ArenaContext, token: str, rater: AccountView, prompt: str, *,
                 use_suggested: bool = False, now: dt.datetime | None = None) -> TurnRequest:
    """Check a prompt for a battle before any entrant is asked: the battle is the rater's, unvoted and has turns
    left; the prompt is the right size and not a duplicate (exact or near) of one this rater wrote before."""
    when = as_utc(now) if now else now_utc()
    check_rater(ctx, rater, when)
    window(ctx, when)
    row = _battle(session, ctx, token, rater.username)
    if _vote_row(session, row.id) is not None:
        raise InputError("this battle has been voted on; start a new one")
    turns = _turns(session, row.id)
    max_turns = 1 if row.kind == GOLD else ctx.arena.max_turns
    if len(turns) >= max_turns:
        raise InputError(f"this battle has its {max_turns} prompt{'s' if max_turns > 1 else ''}; vote now")
    gold = _gold(ctx, row) if row.kind == GOLD else None
    suggestion = _suggestion(ctx, row)
    if gold is not None or (use_suggested and suggestion and not turns):
        text, source = suggestion or "", (f"gold:{gold.id}" if gold else "curated")
        if gold is None:
            source = "curated:" + next(p.id for p in ctx.arena.prompts if p.text == suggestion)
    else:
        text, source = _clean_prompt(prompt), "rater"
    key = prompt_key(text)
    if source == "rater":
        dup = find_duplicate(key, _rater_prompt_keys(session, ctx, rater.username), ctx.arena.near_duplicate)
        if dup is not None:
            how = "this prompt" if dup.kind == "exact" else f"a prompt {dup.similarity:.0%} the same as this one"
            raise InputError(f"you asked {how} before; write a different one (repeated prompts are refused)")
    system = [{"role": "system", "content": ctx.arena.system_prompt}]
    left_msgs, right_msgs = list(system), list(system)
    for t in turns:
        left_msgs += [{"role": "user", "content": t.prompt.decode()},
                      {"role": "assistant", "content": t.answer_left.decode()}]
        right_msgs += [{"role": "user", "content": t.prompt.decode()},
                       {"role": "assistant", "content": t.answer_right.decode()}]
    left_msgs.append({"role": "user", "content": text})
    right_msgs.append({"role": "user", "content": text})
    return TurnRequest(token=row.token, battle_id=row.id, kind=row.kind, turn=len(turns) + 1,
                       left_team=row.left_team, right_team=row.right_team, left_messages=left_msgs,
                       right_messages=right_msgs, prompt=text, source=source, key=key, gold=gold,
                       segment_id=row.segment_id)


def generate(ctx: ArenaContext, req: TurnRequest, entrants: Entrants | None = None) -> tuple[Answer, Answer]:
    """Both answers (outside any transaction). An attention check answers with its stored good and bad answers."""
    if req.gold is not None:
        good = Answer(req.gold.good, "stop", 0.0, None)
        bad = Answer(req.gold.bad, "stop", 0.0, None)
        return (good, bad) if req.left_team == "good" else (bad, good)
    entrants = entrants or entrants_for(ctx.key, ctx.stage.id, ctx.arena)
    return entrants.both((req.left_team, req.left_messages), (req.right_team, req.right_messages))


def record_turn(session: Session, ctx: ArenaContext, req: TurnRequest, answers: tuple[Answer, Answer],
                rater: AccountView, *, now: dt.datetime | None = None) -> BattleView:
    """Store a turn. A second request for the same turn (a double submit) is refused by the database."""
    when = as_utc(now) if now else now_utc()
    left, right = answers
    for side, ans in (("left", left), ("right", right)):
        if ans.error is not None:  # the error names the endpoint and model: it goes to the log, not to the rater
            log.warning("arena %s/%s battle %s: the %s entrant (%s) could not answer: %s", ctx.key, ctx.stage.id,
                        req.battle_id, side, req.left_team if side == "left" else req.right_team, ans.error)
            raise InputError(f"answer {'A' if side == 'left' else 'B'} could not be produced just now; try again in "
                             "a moment (the secretariat has been told)")
    row = ArenaTurn(program_key=ctx.key, stage_id=ctx.stage.id, battle_id=req.battle_id, turn=req.turn,
                    prompt_source=req.source, prompt=req.prompt.encode(), prompt_key=json.dumps(req.key.to_dict()),
                    answer_left=left.text.encode(), answer_right=right.text.encode(),
                    stats=json.dumps({"left": left.stats(), "right": right.stats()}), answered_at=when)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise InputError("this prompt was already answered (submitted twice?)") from None
    append(session, actor=rater.actor, action="arena.turn.answer", row=row, at=when)
    return _view(session, ctx, _battle(session, ctx, req.token, rater.username))


def _checked_turn(store: Store, key: str, stage_id: str, token: str, rater: AccountView, prompt: str,
                  use_suggested: bool, entrants: Entrants | None,
                  now: dt.datetime | None) -> tuple[ArenaContext, TurnRequest, Entrants | None]:
    """The turn's checks (`prepare_turn`, in a short read) and, for entrants, that neither changed since the
    segment was frozen (asked of the endpoints with no transaction held)."""
    with store.session(readonly=True) as session:
        ctx = context(session, key, stage_id)
        req = prepare_turn(session, ctx, token, rater, prompt, use_suggested=use_suggested, now=now)
        segment = current_segment(session, ctx)
    if req.gold is not None:
        return ctx, req, entrants
    entrants = entrants or entrants_for(ctx.key, ctx.stage.id, ctx.arena)
    if segment is not None:
        now_ids = {t: entrants.identity(t) for t in (req.left_team, req.right_team)}
        if changed_entrants(segment, now_ids):
            raise InputError("an entrant changed since the arena was frozen; voting on this pair is paused until "
                             "the secretariat opens a new segment")
    return ctx, req, entrants


def ask(store: Store, key: str, stage_id: str, token: str, rater: AccountView, prompt: str, *,
        use_suggested: bool = False, entrants: Entrants | None = None, now: dt.datetime | None = None) -> BattleView:
    """Ask both entrants of a battle: check (short transaction), generate (no transaction held), store. `now`
    stands for the clock in tests and example data; the turn is stamped when its answers are stored."""
    ctx, req, entrants = _checked_turn(store, key, stage_id, token, rater, prompt, use_suggested, entrants, now)
    answers = generate(ctx, req, entrants)
    with store.session() as session:
        ctx = context(session, key, stage_id)
        return record_turn(session, ctx, req, answers, rater, now=now)


# ---------------------------------------------------------------------------------------------------- votes
def vote(session: Session, ctx: ArenaContext, token: str, rater: AccountView, choice: str, *,
         now: dt.datetime | None = None) -> BattleView:
    """Store the rater's vote and reveal the entrants. Refused on another rater's battle, a battle without an
    answer, a second vote, or a vote faster than the minimum dwell time after the last answer. A vote on answers
    that name their entrant is stored void, with the reason, and does not count."""
    when = as_utc(now) if now else now_utc()
    if choice not in CHOICES:
        raise InputError(f"unknown vote {choice!r} (left, right, tie or both_bad)")
    check_rater(ctx, rater, when)
    row = _battle(session, ctx, token, rater.username)
    if _vote_row(session, row.id) is not None:
        raise InputError("you have voted on this battle already; a vote cannot be changed")
    turns = _turns(session, row.id)
    if not turns:
        raise InputError("there is nothing to vote on yet: ask a prompt first")
    window(ctx, when)
    dwell = (when - as_utc(turns[-1].answered_at)).total_seconds()
    if dwell < ctx.arena.min_dwell_seconds:
        raise InputError(f"please read both answers before voting (at least {ctx.arena.min_dwell_seconds:g} s)")
    status, reason = "counted", None
    if row.kind == GOLD:
        good_side = "left" if row.left_team == "good" else "right"
        status = "gold_pass" if choice == good_side else "gold_fail"
    else:
        reason = leak_reason(ctx, turns)
        if reason is not None:
            status = "void"
    vote_row = ArenaVote(program_key=ctx.key, stage_id=ctx.stage.id, battle_id=row.id, rater=rater.username,
                         choice=choice, status=status, reason=reason, dwell_seconds=dwell, voted_at=when)
    try:
        with session.begin_nested():
            session.add(vote_row)
            session.flush()
    except IntegrityError:
        raise InputError("you have voted on this battle already; a vote cannot be changed") from None
    append(session, actor=rater.actor, action="arena.vote", row=vote_row, at=when)
    return _view(session, ctx, row)


def leak_reason(ctx: ArenaContext, turns: Sequence[Any]) -> str | None:
    """Why a vote on these answers cannot count: an answer names an entrant (its own or another's)."""
    flt = ctx.leak_filter()
    for t in turns:
        for side, text in (("left", t.answer_left), ("right", t.answer_right)):
            found = flt.find(text.decode() if isinstance(text, bytes) else text)
            if found:
                leak = found[0]
                return f"the {side} answer names an entrant ({leak.term!r}), so the vote was not blind"
    return None


def rate(session: Session, ctx: ArenaContext, token: str, rater: AccountView, side: str,
         usefulness: int | None, cost_efficiency: int | None, *, now: dt.datetime | None = None) -> BattleView:
    """Optional ratings of one answer, after the vote only, once per side."""
    when = as_utc(now) if now else now_utc()
    if side not in ("left", "right"):
        raise InputError("side must be left or right")
    for name, value in (("usefulness", usefulness), ("cost efficiency", cost_efficiency)):
        if value is not None and (not isinstance(value, int) or not 1 <= value <= 5):
            raise InputError(f"{name} is rated 1 to 5")
    if usefulness is None and cost_efficiency is None:
        raise InputError("give a usefulness or cost-efficiency rating")
    check_rater(ctx, rater, when)
    row = _battle(session, ctx, token, rater.username)
    if _vote_row(session, row.id) is None:
        raise InputError("rate the answers after you vote")
    rating = ArenaRating(program_key=ctx.key, stage_id=ctx.stage.id, battle_id=row.id, side=side,
                         usefulness=usefulness, cost_efficiency=cost_efficiency, rated_at=when)
    try:
        with session.begin_nested():
            session.add(rating)
            session.flush()
    except IntegrityError:
        raise InputError(f"the {side} answer is rated already") from None
    append(session, actor=rater.actor, action="arena.rate", row=rating, at=when)
    return _view(session, ctx, row)


# ---------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class VoteRecord:
    """One stored vote with everything the statistics and the secretariat need."""

    vote_id: int
    battle: str
    segment: int
    rater: str
    kind: str
    left: str
    right: str
    category: str
    choice: str
    status: str
    reason: str | None
    excluded: str | None  # the secretariat's reason when the vote or its rater is excluded
    voted_at: dt.datetime
    dwell_seconds: float
    answers_left: tuple[str, ...]
    answers_right: tuple[str, ...]

    @property
    def counts(self) -> bool:
        return self.kind == ENTRANTS and self.status == "counted" and self.excluded is None

    @property
    def winner(self) -> str:
        """In `model_a` (left) / `model_b` (right) terms, as vote files write it."""
        return {"left": "model_a", "right": "model_b"}.get(self.choice, self.choice)

    def to_dict(self) -> dict:
        return {"vote": self.vote_id, "battle": self.battle, "segment": self.segment, "rater": self.rater,
                "kind": self.kind, "model_a": self.left, "model_b": self.right, "category": self.category,
                "winner": self.winner, "status": self.status, "reason": self.reason, "excluded": self.excluded,
                "voted_at": utc_text(self.voted_at), "dwell_seconds": round(self.dwell_seconds, 3)}


@dataclass(frozen=True)
class Exclusion:
    id: int
    rater: str | None
    vote_id: int | None
    decision: str
    reason: str
    evidence: Mapping[str, Any]
    decided_at: dt.datetime
    decided_by: str

    def to_dict(self) -> dict:
        return {"id": self.id, "rater": self.rater, "vote": self.vote_id, "decision": self.decision,
                "reason": self.reason, "evidence": dict(self.evidence), "decided_at": utc_text(self.decided_at),
                "decided_by": self.decided_by}


def exclusions(session: Session, ctx: ArenaContext) -> list[Exclusion]:
    rows = session.execute(select(ArenaExclusion).where(ArenaExclusion.program_key == ctx.key,
                                                        ArenaExclusion.stage_id == ctx.stage.id)
                           .order_by(ArenaExclusion.id)).scalars()
    return [Exclusion(r.id, r.rater, r.vote_id, r.decision, r.reason, json.loads(r.evidence), as_utc(r.decided_at),
                      r.decided_by) for r in rows]


def excluded_now(found: Sequence[Exclusion]) -> tuple[dict[str, str], dict[int, str]]:
    """The decisions in force: the latest per rater and per vote (a later `keep` lifts an `exclude`)."""
    raters: dict[str, str | None] = {}
    votes: dict[int, str | None] = {}
    for e in found:
        target: dict = raters if e.rater is not None else votes
        target[e.rater if e.rater is not None else e.vote_id] = e.reason if e.decision == "exclude" else None
    return ({k: v for k, v in raters.items() if v}, {k: v for k, v in votes.items() if v})


def vote_records(session: Session, ctx: ArenaContext) -> list[VoteRecord]:
    """Every vote of the stage's arena in the order cast, with the exclusions in force applied."""
    rows = session.execute(
        select(ArenaVote, ArenaBattle, ArenaSegment.number).join(ArenaBattle, ArenaBattle.id == ArenaVote.battle_id)
        .join(ArenaSegment, ArenaSegment.id == ArenaBattle.segment_id)
        .where(ArenaVote.program_key == ctx.key, ArenaVote.stage_id == ctx.stage.id)
        .order_by(ArenaVote.voted_at, ArenaVote.id)).all()
    turns: dict[int, list[tuple[str, str]]] = {}
    for t in session.execute(select(ArenaTurn.battle_id, ArenaTurn.answer_left, ArenaTurn.answer_right)
                             .where(ArenaTurn.program_key == ctx.key, ArenaTurn.stage_id == ctx.stage.id)
                             .order_by(ArenaTurn.battle_id, ArenaTurn.turn)):
        turns.setdefault(t[0], []).append((t[1].decode(), t[2].decode()))
    by_rater, by_vote = excluded_now(exclusions(session, ctx))
    out = []
    for v, b, number in rows:
        answered = turns.get(b.id, [])
        out.append(VoteRecord(vote_id=v.id, battle=b.token, segment=number, rater=v.rater, kind=b.kind,
                              left=b.left_team, right=b.right_team, category=b.category, choice=v.choice,
                              status=v.status, reason=v.reason, excluded=by_vote.get(v.id) or by_rater.get(v.rater),
                              voted_at=as_utc(v.voted_at), dwell_seconds=v.dwell_seconds,
                              answers_left=tuple(a for a, _ in answered),
                              answers_right=tuple(b_ for _, b_ in answered)))
    return out


def exclude(session: Session, ctx: ArenaContext, actor: str, *, rater: str | None = None, vote_id: int | None = None,
            decision: str = "exclude", reason: str, evidence: Mapping[str, Any] | None = None,
            now: dt.datetime | None = None) -> Exclusion:
    """Record the secretariat's decision on a rater or one vote. The votes stay; an excluded one stops counting."""
    if (rater is None) == (vote_id is None):
        raise InputError("name a rater or a vote")
    if decision not in ("exclude", "keep"):
        raise InputError("decision is exclude or keep")
    if not reason.strip():
        raise InputError("give the reason for the decision (it is published with the stage's result)")
    if vote_id is not None:
        found = session.execute(select(ArenaVote).where(ArenaVote.id == vote_id, ArenaVote.program_key == ctx.key,
                                                        ArenaVote.stage_id == ctx.stage.id)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no vote {vote_id} in this arena")
    elif not session.execute(select(ArenaVote.id).where(ArenaVote.rater == rater, ArenaVote.program_key == ctx.key,
                                                        ArenaVote.stage_id == ctx.stage.id).limit(1)).first():
        raise NotFound(f"rater {rater!r} has no votes in this arena")
    when = as_utc(now) if now else now_utc()
    row = ArenaExclusion(program_key=ctx.key, stage_id=ctx.stage.id, rater=rater, vote_id=vote_id, decision=decision,
                         reason=reason.strip()[:2000], evidence=json.dumps(dict(evidence or {}), sort_keys=True),
                         decided_at=when, decided_by=actor)
    session.add(row)
    session.flush()
    append(session, actor=actor, action=f"arena.{decision}", row=row, at=when)
    return exclusions(session, ctx)[-1]


def ratings(session: Session, ctx: ArenaContext) -> list[tuple[str, str, int | None, int | None]]:
    """(rater, team, usefulness, cost efficiency) for every rating of an entrant's answer."""
    rows = session.execute(select(ArenaRating, ArenaBattle).join(ArenaBattle, ArenaBattle.id == ArenaRating.battle_id)
                           .where(ArenaRating.program_key == ctx.key, ArenaRating.stage_id == ctx.stage.id,
                                  ArenaBattle.kind == ENTRANTS)).all()
    return [(b.rater, b.left_team if r.side == "left" else b.right_team, r.usefulness, r.cost_efficiency)
            for r, b in rows]


# ---------------------------------------------------------------------------------------------------- streaming
def ask_streaming(store: Store, key: str, stage_id: str, token: str, rater: AccountView, prompt: str, *,
                  use_suggested: bool = False, entrants: Entrants | None = None,
                  now: dt.datetime | None = None) -> Iterator[dict]:
    """`ask` with both answers streamed as they are generated, paced together (`Entrants.stream_both`), so the
    order and speed of arrival say nothing about who is who.

    The checks run at once, and a refusal is raised here exactly as `ask` raises it. The iterator returned then
    yields `{"side": "a"|"b", "text": piece}` (a is the left answer) while text may be shown, and last
    `{"done": True}` once the turn is stored, or `{"error": message}` when it cannot be (an entrant failed). No
    transaction is held while the entrants answer. Closing the iterator early (the rater left) stops both entrants
    and stores nothing: the battle keeps its turns and the rater may ask again.
    """
    ctx, req, entrants = _checked_turn(store, key, stage_id, token, rater, prompt, use_suggested, entrants, now)
    return _streamed_turn(store, key, stage_id, ctx, req, rater, entrants, now)


def _streamed_turn(store: Store, key: str, stage_id: str, ctx: ArenaContext, req: TurnRequest,
                   rater: AccountView, entrants: Entrants | None, now: dt.datetime | None) -> Iterator[dict]:
    answers: tuple[Answer, Answer] | None = None
    if req.gold is not None or entrants is None:
        answers = generate(ctx, req, entrants)  # an attention check's stored answers: shown at once
        for side, answer in zip(("a", "b"), answers, strict=True):
            if answer.text:
                yield {"side": side, "text": answer.text}
    else:
        for event in entrants.stream_both((req.left_team, req.left_messages), (req.right_team, req.right_messages)):
            if event.answers is not None:
                answers = event.answers
            elif event.text:
                yield {"side": "a" if event.side == "left" else "b", "text": event.text}
    assert answers is not None
    try:
        with store.session() as session:
            record_turn(session, context(session, key, stage_id), req, answers, rater, now=now)
    except InputError as exc:
        yield {"error": str(exc)}
        return
    yield {"done": True}
