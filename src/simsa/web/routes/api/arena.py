"""A stage's user-review arena over the API: a rater's blind battles (start or resume, ask, vote, rate) and the
secretariat's view (state, live result, votes, freezing the entrants, exclusions).

Only rater accounts battle and only the secretariat reads the arena's state; anyone else is refused (403) before
any battle is looked up, so a refusal says nothing about a token. A rater's battle token is theirs alone: another
rater's token answers 404 exactly as a token that exists nowhere. Nothing a rater is sent before their vote names
or times an entrant (the services' BattleView guarantees it; the tests grep every body and header). Entrants are
asked with no database transaction held (services.arena.ask), so a slow entrant holds no lock.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Annotated, TypedDict

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

import simsa.web.api_arena_models as m
from simsa.accounts import AccountView, Role
from simsa.audit.log import now_utc
from simsa.services import arena, arena_results
from simsa.services.arena import ArenaContext
from simsa.timeutil import utc_text
from simsa.web.deps import ReadSession, Viewer, require, require_writer, store
from simsa.web.routes.api.common import DOCUMENT_TOKEN, ERRORS, Admin, BoundedRoute, actor, reading, writing

router = APIRouter(route_class=BoundedRoute, tags=["arena"], responses=ERRORS, dependencies=DOCUMENT_TOKEN)
ARENA = "/programs/{key}/stages/{stage}/arena"
BATTLES = ARENA + "/battles"
BATTLE = BATTLES + "/{token}"

Rater = Annotated[Viewer, Depends(require_writer(Role.RATER))]          # writes: an API token
RaterReading = Annotated[Viewer, Depends(require(Role.RATER))]          # reads: a token or a signed-in rater
AdminReading = Annotated[Viewer, Depends(require(Role.ADMIN))]


class _BattleOut(TypedDict):
    """The response options every battle route shares, typed so that they can be splatted into a route."""

    response_model: type[m.Battle]
    response_model_exclude_unset: bool


BATTLE_OUT: _BattleOut = {"response_model": m.Battle, "response_model_exclude_unset": True}


def _account(who: Viewer) -> AccountView:
    assert who.account is not None
    return who.account


# --------------------------------------------------------------------------------------------- raters


@router.post(BATTLES, status_code=201, summary="Start a battle, or resume your unvoted one (a rater)", **BATTLE_OUT)
def start(request: Request, key: str, stage: str, who: Rater) -> dict:
    """The schedule, not the rater, picks the pair, the sides and the category. A rater with an unvoted battle
    gets that battle back (skipping cannot fish for an entrant). Refused outside the voting window, before the
    entrants are frozen, and beyond the daily cap."""
    with writing(request) as session:
        ctx = arena.context(session, key, stage)
        return arena.start_battle(session, ctx, _account(who)).to_dict()


@router.get(BATTLE, summary="One of your battles (a rater)", **BATTLE_OUT)
def show(key: str, stage: str, token: str, who: RaterReading, session: ReadSession) -> dict:
    """Another rater's battle is 404, as a token that exists nowhere."""
    return arena.battle(session, arena.context(session, key, stage), token, _account(who)).to_dict()


@router.post(BATTLE + "/turns", status_code=201, summary="Ask both entrants (a rater)", **BATTLE_OUT)
def ask(request: Request, key: str, stage: str, token: str, body: m.TurnIn, who: Rater) -> dict:
    """Both answers, side by side, anonymous. Refused after the vote, past the battle's turns, and for a prompt
    this rater asked (or nearly asked) before. No transaction is held while the entrants answer."""
    return arena.ask(store(request), key, stage, token, _account(who), body.prompt or "",
                     use_suggested=body.use_suggested).to_dict()


@router.post(BATTLE + "/vote", status_code=201, summary="Vote, and see who answered (a rater)", **BATTLE_OUT)
def vote(request: Request, key: str, stage: str, token: str, body: m.VoteIn, who: Rater) -> dict:
    """One vote a battle, never changed; refused before the minimum reading time. A vote on answers that name an
    entrant is stored void, with the reason, and does not count. The response reveals the entrants."""
    with writing(request) as session:
        ctx = arena.context(session, key, stage)
        return arena.vote(session, ctx, token, _account(who), body.choice).to_dict()


@router.post(BATTLE + "/ratings", status_code=201, summary="Rate one answer after the vote (a rater)", **BATTLE_OUT)
def rate(request: Request, key: str, stage: str, token: str, body: m.RatingIn, who: Rater) -> dict:
    with writing(request) as session:
        ctx = arena.context(session, key, stage)
        return arena.rate(session, ctx, token, _account(who), body.side, body.usefulness,
                          body.cost_efficiency).to_dict()


# --------------------------------------------------------------------------------------------- secretariat


def _state(session: Session, ctx: ArenaContext) -> dict:
    """Votes of the current segment by status and per pair, beside what the schedule has handed out."""
    now = now_utc()
    segment = arena.current_segment(session, ctx)
    records = [r for r in arena.vote_records(session, ctx) if segment is not None and r.segment == segment.number]
    statuses = Counter(r.status for r in records)
    votes = {s: statuses.get(s, 0) for s in ("counted", "void", "gold_pass", "gold_fail")}
    votes["excluded"] = sum(1 for r in records if r.excluded is not None)
    votes["total"] = len(records)
    entrants = [r for r in records if r.kind == arena.ENTRANTS]
    scheduled = arena.schedule_counts(session, ctx, segment.id, now) if segment is not None else None
    voted_battles = sum(1 for r in entrants if r.status != "void")
    pairs: list[dict[str, str | int]] = []
    handed_out = 0
    for a, b in combinations(sorted(ctx.arena.teams), 2):
        mine = [r for r in entrants if {r.left, r.right} == {a, b}]
        handed = scheduled.pair_total(a, b) if scheduled else 0
        handed_out += handed
        pairs.append({"a": a, "b": b, "scheduled": handed,
                      "counted": sum(1 for r in mine if r.counts),
                      "void": sum(1 for r in mine if r.status == "void"),
                      "excluded": sum(1 for r in mine if r.excluded is not None),
                      "left_a": scheduled.left_count((a, b), a) if scheduled else 0,
                      "left_b": scheduled.left_count((a, b), b) if scheduled else 0})
    return {"program": ctx.key, "stage": ctx.stage.id, "opens": utc_text(ctx.arena.opens),
            "closes": utc_text(ctx.arena.closes), "open": ctx.arena.opens <= now < ctx.arena.closes,
            "segment": segment.to_dict() if segment else None, "segments": segment.number if segment else 0,
            "votes_per_pair": ctx.arena.votes_per_pair, "votes": votes, "raters": len({r.rater for r in records}),
            "pending": max(0, handed_out - voted_battles), "pairs": pairs}


@router.get(ARENA, response_model=m.ArenaState, summary="The arena's state (admin)")
def state(key: str, stage: str, who: AdminReading, session: ReadSession) -> dict:
    return _state(session, arena.context(session, key, stage))


@router.get(ARENA + "/result", response_model=m.ArenaResult, summary="The arena's live result (admin)")
def result(key: str, stage: str, who: AdminReading, session: ReadSession) -> dict:
    """Computed now from the current segment's counted votes (bootstrap intervals: this takes a moment). The
    stage's decision stores it and publishes it as panel:user."""
    return arena_results.compute(session, arena.context(session, key, stage)).to_dict()


@router.get(ARENA + "/votes", response_model=m.VoteList, summary="Every vote, with its status (admin)")
def votes(key: str, stage: str, who: AdminReading, session: ReadSession) -> dict:
    """In the order cast, every segment: voided and excluded votes stay, with the reason."""
    ctx = arena.context(session, key, stage)
    return {"program": ctx.key, "stage": ctx.stage.id,
            "votes": [r.to_dict() for r in arena.vote_records(session, ctx)]}


@router.post(ARENA + "/freeze", response_model=m.Frozen, status_code=201,
             summary="Freeze the entrants into the audit chain (admin)")
def freeze(request: Request, key: str, stage: str, body: m.FreezeIn, who: Admin) -> dict:
    """Each entrant is asked who it is (no transaction held), then the manifest is frozen: unchanged, nothing
    happens; changed once votes exist, a new, separately reported segment opens, only with a reason."""
    with reading(request) as session:
        ctx = arena.context(session, key, stage)
    identities = arena.read_identities(ctx)
    with writing(request) as session:
        ctx = arena.context(session, key, stage)
        before = arena.current_segment(session, ctx)
        segment, opened = arena.freeze(session, ctx, identities, actor(who), reason=body.reason)
        changed = arena.changed_entrants(before, identities) if before is not None else []
        return {"segment": segment.to_dict(), "opened": opened, "changed": changed}


@router.post(ARENA + "/exclusions", response_model=m.ExclusionOut, status_code=201,
             summary="Exclude (or keep) a rater or one vote (admin)")
def exclude(request: Request, key: str, stage: str, body: m.ExclusionIn, who: Admin) -> dict:
    """Nothing is deleted: an excluded vote stays, marked with the reason, and stops counting; a later `keep`
    lifts an exclusion."""
    with writing(request) as session:
        ctx = arena.context(session, key, stage)
        return arena.exclude(session, ctx, actor(who), rater=body.rater, vote_id=body.vote, decision=body.decision,
                             reason=body.reason, evidence=body.evidence).to_dict()
