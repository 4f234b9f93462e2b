"""The expert panel of a stage: declarations, assignments, blind codes, the panel's steps, locked reviews and the
discussion. One entry point per use case; the CLI and the web pages are shells over these.

Steps: (set-up: documents, declarations, assignments) → `calibration` (when the rubric names anchors) → `round1`
(opens only after the submission deadline, with agreement on the anchors at the threshold and every team at the
minimum of non-conflicted experts) → `round2` (discussion and revised scores, when the consensus round is on) →
`closed` (the aggregate becomes `panel:expert` when the stage is decided).
Which step comes next, what blocks it and moving to it are in `panel_steps`, which also reads the documents and
the calibration built on this module.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from simsa.accounts import Role
from simsa.audit.chain import canonical
from simsa.audit.log import append, now_utc
from simsa.errors import InputError, NotFound
from simsa.panel.balance import Balanced, balance
from simsa.panel.conflicts import Conflict, Declaration, conflict_map
from simsa.panel.rubric import Review, check_review, read_content, rubric_sha256
from simsa.program.loader import LoadedProgram
from simsa.program.schema import ExpertPanel, Stage, Team
from simsa.services import programs
from simsa.store.models import (
    Account,
    PanelAssignment,
    PanelCode,
    PanelComment,
    PanelDeclaration,
    PanelEvent,
    PanelReview,
)
from simsa.timeutil import as_utc, utc_text

PHASES = ("calibration", "round1", "round2", "closed")
CALIBRATION = "calibration"
MAX_DECLARED = 50
MAX_DECLARED_CHARS = 300
MAX_COMMENT = 10_000


@dataclass(frozen=True)
class PanelContext:
    """A stage's panel as the stored programme declares it."""

    loaded: LoadedProgram
    stage: Stage
    panel: ExpertPanel

    @property
    def key(self) -> str:
        return self.loaded.program.program.id

    @property
    def teams(self) -> list[Team]:
        """The teams the panel reviews: the stage's declared participants, else every team that has joined by this
        stage (teams eliminated earlier still appear until the previous decision is read: the admin unassigns)."""
        program = self.loaded.program
        if self.stage.participants is not None:
            return [program.team(t) for t in self.stage.participants]
        idx = program.stage_index(self.stage.id)
        return [t for t in program.teams if t.joins_at is None or program.stage_index(t.joins_at) <= idx]

    def team(self, team_id: str) -> Team:
        for t in self.teams:
            if t.id == team_id:
                return t
        raise NotFound(f"team {team_id!r} is not reviewed in stage {self.stage.id!r}")

    @property
    def anchors(self) -> list[str]:
        return list(self.panel.calibration.anchors) if self.panel.calibration else []


def context(session: Session, key: str, stage_id: str) -> PanelContext:
    """The panel of `stage_id` in the stored programme `key`; NotFound when there is no such stage or panel."""
    return context_of(programs.stored(session, key), stage_id)


def context_of(loaded: LoadedProgram, stage_id: str) -> PanelContext:
    """The panel of `stage_id` as `loaded` declares it (a programme file read but not necessarily stored)."""
    key = loaded.program.program.id
    try:
        stage = loaded.program.stage(stage_id)
    except KeyError:
        raise NotFound(f"programme {key!r} has no stage {stage_id!r}") from None
    if stage.expert_panel is None:
        raise NotFound(f"stage {stage_id!r} of {key!r} has no expert panel (no [stages.expert_panel] in the "
                       "programme)")
    return PanelContext(loaded=loaded, stage=stage, panel=stage.expert_panel)


def panels(session: Session) -> list[PanelContext]:
    """Every stage with an expert panel, over all stored programmes."""
    out = []
    for loaded in programs.stored_programs(session):
        for stage in loaded.program.stages:
            if stage.expert_panel is not None:
                out.append(PanelContext(loaded=loaded, stage=stage, panel=stage.expert_panel))
    return out


# ---------------------------------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class PhaseState:
    phase: str | None  # None: being set up
    at: dt.datetime | None
    details: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"phase": self.phase or "setup", "since": utc_text(self.at) if self.at else None,
                "details": dict(self.details)}


def phase(session: Session, ctx: PanelContext) -> PhaseState:
    row = session.execute(select(PanelEvent).where(PanelEvent.program_key == ctx.key,
                                                   PanelEvent.stage_id == ctx.stage.id)
                          .order_by(PanelEvent.id.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        return PhaseState(None, None)
    return PhaseState(row.phase, as_utc(row.at), json.loads(row.details or "{}"))


def deadline_passed(ctx: PanelContext, now: dt.datetime | None = None) -> bool:
    return (now or now_utc()) >= ctx.panel.submission_deadline


# ---------------------------------------------------------------------------------------------------- declarations
def _clean_list(items: Sequence[str], what: str) -> tuple[str, ...]:
    out = []
    for raw in items:
        item = " ".join(str(raw).split())
        if not item:
            continue
        if len(item) > MAX_DECLARED_CHARS:
            raise InputError(f"a declared {what} is {len(item)} characters; at most {MAX_DECLARED_CHARS}")
        if item not in out:
            out.append(item)
    if len(out) > MAX_DECLARED:
        raise InputError(f"{len(out)} {what}s declared; at most {MAX_DECLARED}")
    return tuple(out)


def declare(session: Session, expert: str, *, affiliations: Sequence[str], relations: Sequence[str],
            conflicts: Sequence[str], actor: str | None = None) -> Declaration:
    """Record what an expert declares (it replaces their earlier declaration, which stays as history)."""
    decl = Declaration(expert=expert, affiliations=_clean_list(affiliations, "affiliation"),
                       relations=_clean_list(relations, "relation"), conflicts=_clean_list(conflicts, "conflict"))
    row = PanelDeclaration(expert=expert, affiliations=json.dumps(list(decl.affiliations), ensure_ascii=False),
                           relations=json.dumps(list(decl.relations), ensure_ascii=False),
                           conflicts=json.dumps(list(decl.conflicts), ensure_ascii=False), declared_at=now_utc())
    session.add(row)
    session.flush()
    append(session, actor=actor or expert, action="panel.declare", row=row)
    return decl


def declaration(session: Session, expert: str) -> Declaration | None:
    return declarations(session, [expert]).get(expert)


def declarations(session: Session, names: Sequence[str]) -> dict[str, Declaration]:
    """The declaration in force (the newest) of each of `names` that has declared, in one query."""
    if not names:
        return {}
    newest = (select(func.max(PanelDeclaration.id)).where(PanelDeclaration.expert.in_(list(names)))
              .group_by(PanelDeclaration.expert))
    rows = session.execute(select(PanelDeclaration).where(PanelDeclaration.id.in_(newest))).scalars()
    return {r.expert: Declaration(expert=r.expert, affiliations=tuple(json.loads(r.affiliations)),
                                  relations=tuple(json.loads(r.relations)), conflicts=tuple(json.loads(r.conflicts)))
            for r in rows}


def experts(session: Session) -> list[str]:
    """Every active expert account, by username."""
    return list(session.execute(select(Account.username).where(Account.role == Role.EXPERT.value,
                                                               Account.active.is_(True))
                                .order_by(Account.username)).scalars())


def conflicts(session: Session, ctx: PanelContext, names: Sequence[str] | None = None
              ) -> dict[tuple[str, str], list[Conflict]]:
    """(expert, team) → declared conflicts, over every expert (or `names`). An expert who has not declared
    anything yet is conflicted with every team: no assignment before a declaration."""
    names = experts(session) if names is None else list(names)
    declared = declarations(session, names)
    decls = []
    out: dict[tuple[str, str], list[Conflict]] = {}
    for name in names:
        decl = declared.get(name)
        if decl is None:
            for team in ctx.teams:
                out[(name, team.id)] = [Conflict(name, team.id, "has not declared affiliations and relations yet")]
        else:
            decls.append(decl)
    out.update(conflict_map(decls, ctx.key, ctx.teams))
    return out


def is_conflicted(session: Session, ctx: PanelContext, expert: str, team_id: str) -> bool:
    return bool(conflicts(session, ctx, [expert]).get((expert, team_id)))


# ---------------------------------------------------------------------------------------------------- assignments
def _current_assignments(session: Session, ctx: PanelContext) -> list[PanelAssignment]:
    later = aliased(PanelAssignment)
    return list(session.execute(select(PanelAssignment).where(
        PanelAssignment.program_key == ctx.key, PanelAssignment.stage_id == ctx.stage.id,
        ~exists().where(later.supersedes_id == PanelAssignment.id)).order_by(PanelAssignment.id)).scalars())


def assignments(session: Session, ctx: PanelContext) -> list[tuple[str, str]]:
    """(team, expert) pairs in force, conflicted ones excluded (a declaration made after assigning still counts)."""
    pairs = [(r.team_id, r.expert) for r in _current_assignments(session, ctx) if not r.removed]
    found = conflicts(session, ctx, sorted({e for _, e in pairs}))
    return [(t, e) for t, e in pairs if (e, t) not in found]


def assigned_experts(session: Session, ctx: PanelContext) -> list[str]:
    return sorted({e for _, e in assignments(session, ctx)})


def teams_of(session: Session, ctx: PanelContext, expert: str) -> list[str]:
    return [t for t, e in assignments(session, ctx) if e == expert]


def coverage(session: Session, ctx: PanelContext) -> list[tuple[Team, int]]:
    pairs = assignments(session, ctx)
    return [(t, sum(1 for tt, _ in pairs if tt == t.id)) for t in ctx.teams]


def assign(session: Session, ctx: PanelContext, team_id: str, expert: str, actor: str) -> PanelAssignment:
    """Assign an expert to a team; refused for a conflicted expert (with the conflict) or a non-expert."""
    ctx.team(team_id)
    if expert not in experts(session):
        raise NotFound(f"no active expert account {expert!r}")
    found = conflicts(session, ctx, [expert]).get((expert, team_id))
    if found:
        raise InputError(f"{expert} may not review {team_id}: " + "; ".join(c.reason for c in found))
    if phase(session, ctx).phase in ("round2", "closed"):
        raise InputError("assignments are fixed once round 2 has opened")
    current = {(r.team_id, r.expert): r for r in _current_assignments(session, ctx)}
    prev = current.get((team_id, expert))
    if prev is not None and not prev.removed:
        raise InputError(f"{expert} is already assigned to {team_id}")
    row = PanelAssignment(program_key=ctx.key, stage_id=ctx.stage.id, team_id=team_id, expert=expert,
                          assigned_at=now_utc(), assigned_by=actor, supersedes_id=prev.id if prev else None,
                          removed=False)
    session.add(row)
    session.flush()
    append(session, actor=actor, action="panel.assign", row=row)
    return row


def unassign(session: Session, ctx: PanelContext, team_id: str, expert: str, actor: str) -> PanelAssignment:
    current = {(r.team_id, r.expert): r for r in _current_assignments(session, ctx)}
    prev = current.get((team_id, expert))
    if prev is None or prev.removed:
        raise NotFound(f"{expert} is not assigned to {team_id}")
    if _review_row(session, ctx, "1", team_id, expert) is not None:
        raise InputError(f"{expert} has locked a review of {team_id}; a locked review stays in the panel")
    row = PanelAssignment(program_key=ctx.key, stage_id=ctx.stage.id, team_id=team_id, expert=expert,
                          assigned_at=now_utc(), assigned_by=actor, supersedes_id=prev.id, removed=True)
    session.add(row)
    session.flush()
    append(session, actor=actor, action="panel.unassign", row=row)
    return row


def auto_assign(session: Session, ctx: PanelContext, actor: str) -> Balanced:
    """Assign experts so every team reaches the minimum of non-conflicted experts, load spread evenly."""
    names = experts(session)
    conflicted = set(conflicts(session, ctx, names))
    # A pair the admin removed is not handed back by balancing: it counts as excluded, like a conflict.
    conflicted |= {(r.expert, r.team_id) for r in _current_assignments(session, ctx) if r.removed}
    result = balance([t.id for t in ctx.teams], names, assignments(session, ctx), conflicted, ctx.panel.min_experts)
    for team_id, expert in result.added:
        assign(session, ctx, team_id, expert, actor)
    return result


# ---------------------------------------------------------------------------------------------------- blind codes
def ensure_codes(session: Session, ctx: PanelContext) -> dict[str, str]:
    """Give every team a random blind code (A, B, …) once; kept with a nonce so the log does not reveal it."""
    have = codes(session, ctx)
    missing = [t.id for t in ctx.teams if t.id not in have]
    if not missing:
        return have
    free = [c for c in _code_names(len(ctx.teams) + len(have)) if c not in have.values()]
    secrets.SystemRandom().shuffle(free)
    for team_id, code in zip(missing, free, strict=False):
        content = canonical({"code": code, "nonce": secrets.token_hex(16)}).encode()
        row = PanelCode(program_key=ctx.key, stage_id=ctx.stage.id, team_id=team_id, content=content)
        session.add(row)
        session.flush()
        append(session, actor="simsa", action="panel.code", row=row)
        have[team_id] = code
    return have


def _code_names(n: int) -> list[str]:
    letters = string.ascii_uppercase
    if n <= len(letters):
        return list(letters[:n])
    return [a + b for a in letters for b in letters][:n]


def codes(session: Session, ctx: PanelContext) -> dict[str, str]:
    """team → blind code."""
    rows = session.execute(select(PanelCode).where(PanelCode.program_key == ctx.key,
                                                   PanelCode.stage_id == ctx.stage.id)).scalars()
    return {r.team_id: json.loads(r.content.decode())["code"] for r in rows}


def label(session: Session, ctx: PanelContext, team_id: str, *, blind: bool) -> str:
    """How a team is named to an expert: its blind code under blinding, else its name."""
    if blind and ctx.panel.blinding:
        code = codes(session, ctx).get(team_id)
        return f"Submission {code}" if code else "Submission"
    return ctx.team(team_id).name


def team_by_code(session: Session, ctx: PanelContext, code: str) -> str:
    for team_id, c in codes(session, ctx).items():
        if c == code:
            return team_id
    raise NotFound(f"no submission {code!r} in stage {ctx.stage.id!r}")


# ---------------------------------------------------------------------------------------------------- reviews
@dataclass(frozen=True)
class LockedReview:
    id: int
    round: str
    subject: str
    expert: str
    review: Review
    rubric_sha256: str
    submitted_at: dt.datetime
    content_sha256: str

    def to_dict(self) -> dict:
        return {"id": self.id, "round": self.round, "subject": self.subject, "expert": self.expert,
                **self.review.to_dict(), "rubric_sha256": self.rubric_sha256,
                "submitted_at": utc_text(self.submitted_at), "content_sha256": self.content_sha256}


def _locked(row: PanelReview) -> LockedReview:
    import hashlib

    return LockedReview(id=row.id, round=row.round, subject=row.subject, expert=row.expert,
                        review=read_content(row.content), rubric_sha256=row.rubric_sha256,
                        submitted_at=as_utc(row.submitted_at), content_sha256=hashlib.sha256(row.content).hexdigest())


def _review_row(session: Session, ctx: PanelContext, rnd: str, subject: str, expert: str) -> PanelReview | None:
    return session.execute(select(PanelReview).where(
        PanelReview.program_key == ctx.key, PanelReview.stage_id == ctx.stage.id, PanelReview.round == rnd,
        PanelReview.subject == subject, PanelReview.expert == expert)).scalar_one_or_none()


def review_of(session: Session, ctx: PanelContext, rnd: str, subject: str, expert: str) -> LockedReview | None:
    row = _review_row(session, ctx, rnd, subject, expert)
    return None if row is None else _locked(row)


def reviews(session: Session, ctx: PanelContext, rnd: str | None = None) -> list[LockedReview]:
    """Locked reviews of the stage (one round, or all), in the order they were locked."""
    query = select(PanelReview).where(PanelReview.program_key == ctx.key, PanelReview.stage_id == ctx.stage.id)
    if rnd is not None:
        query = query.where(PanelReview.round == rnd)
    return [_locked(r) for r in session.execute(query.order_by(PanelReview.id)).scalars()]


def missing_reviews(session: Session, ctx: PanelContext, rnd: str) -> list[tuple[str, str]]:
    done = {(r.subject, r.expert) for r in reviews(session, ctx, rnd)}
    return [(t, e) for t, e in assignments(session, ctx) if (t, e) not in done]


def submit_review(session: Session, ctx: PanelContext, expert: str, subject: str, rnd: str,
                  scores: Mapping[str, object], justifications: Mapping[str, str], *, identified: str | None = None,
                  identified_as: str | None = None, now: dt.datetime | None = None,
                  nonce: str | None = None) -> LockedReview:
    """Lock an expert's review of a team (round "1" or "2") or of a calibration anchor (round "calibration").

    Refused unless the panel is in that round, the expert is assigned (and not conflicted) or, for calibration,
    takes part in the panel; a second submission for the same round and subject is refused — a locked review
    never changes (round 2 is stored beside round 1, not over it). The review is locked with a random nonce
    unless `nonce` is given (seeded example data only).
    """
    state = phase(session, ctx).phase
    if rnd == CALIBRATION:
        if subject not in ctx.anchors:
            raise NotFound(f"no calibration anchor {subject!r} in stage {ctx.stage.id!r}")
        if state != CALIBRATION:
            raise InputError("calibration scoring is not open" + (" (live scoring has begun)" if state else ""))
        if expert not in assigned_experts(session, ctx):
            raise InputError(f"{expert} is not on the panel of {ctx.stage.id!r}")
    elif rnd in ("1", "2"):
        wanted = "round1" if rnd == "1" else "round2"
        if state != wanted:
            raise InputError(f"round {rnd} is not open (the panel is {state or 'being set up'})")
        if (subject, expert) not in assignments(session, ctx):
            raise InputError(f"{expert} is not assigned to review this submission")
        if rnd == "2" and _review_row(session, ctx, "1", subject, expert) is None:
            raise InputError("round 2 revises a locked round-1 review, and there is none")
    else:
        raise InputError(f"unknown round {rnd!r} (calibration, 1 or 2)")
    if _review_row(session, ctx, rnd, subject, expert) is not None:
        raise InputError("this review is locked: it was submitted already and cannot be changed")
    review = check_review(ctx.panel, scores, justifications, identified=identified, identified_as=identified_as,
                          live=rnd != CALIBRATION)
    if nonce is not None:  # only seeded example data (the demo) passes one, so two runs give identical records
        review = replace(review, nonce=nonce)
    when = as_utc(now) if now else now_utc()
    row = PanelReview(program_key=ctx.key, stage_id=ctx.stage.id, round=rnd, subject=subject, expert=expert,
                      rubric_sha256=rubric_sha256(ctx.panel), content=review.content(), submitted_at=when)
    session.add(row)
    session.flush()
    append(session, actor=expert, action="panel.review.lock", row=row, at=when)
    return _locked(row)


# ---------------------------------------------------------------------------------------------------- discussion
@dataclass(frozen=True)
class Comment:
    id: int
    author: str
    body: str
    posted_at: dt.datetime
    hidden: bool
    hidden_reason: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "author": self.author, "body": None if self.hidden else self.body,
                "posted_at": utc_text(self.posted_at), "hidden": self.hidden, "hidden_reason": self.hidden_reason}


def thread(session: Session, ctx: PanelContext, team_id: str) -> list[Comment]:
    rows = list(session.execute(select(PanelComment).where(
        PanelComment.program_key == ctx.key, PanelComment.stage_id == ctx.stage.id,
        PanelComment.team_id == team_id).order_by(PanelComment.id)).scalars())
    hides = {r.hides_id: _text_of(r.body) for r in rows if r.hides_id is not None}
    return [Comment(id=r.id, author=r.author, body=_text_of(r.body), posted_at=as_utc(r.posted_at),
                    hidden=r.id in hides, hidden_reason=hides.get(r.id))
            for r in rows if r.hides_id is None]


def _sealed_text(text: str, nonce: str | None = None) -> bytes:
    """A message as stored: with a random nonce, so its sha256 in the public log cannot be matched to a guess."""
    return canonical({"text": text, "nonce": nonce or secrets.token_hex(16)}).encode("utf-8")


def _text_of(body: bytes) -> str:
    return str(json.loads(body.decode("utf-8"))["text"])


def post_comment(session: Session, ctx: PanelContext, team_id: str, author: str, body: str, *,
                 moderator: bool = False, nonce: str | None = None) -> Comment:
    """Add a message to a team's discussion: open in round 2 to its assigned experts (and the moderator)."""
    ctx.team(team_id)
    text = body.strip()
    if not text:
        raise InputError("the message is empty")
    if len(text) > MAX_COMMENT:
        raise InputError(f"the message is {len(text):,} characters; at most {MAX_COMMENT:,}")
    if phase(session, ctx).phase != "round2":
        raise InputError("the discussion is open during round 2 only")
    if not moderator:
        if (team_id, author) not in assignments(session, ctx):
            raise InputError(f"{author} is not assigned to review this submission")
        if _review_row(session, ctx, "1", team_id, author) is None:
            raise InputError("lock your round-1 review before joining the discussion")
    row = PanelComment(program_key=ctx.key, stage_id=ctx.stage.id, team_id=team_id, author=author,
                       body=_sealed_text(text, nonce), posted_at=now_utc())
    session.add(row)
    session.flush()
    append(session, actor=author, action="panel.comment", row=row)
    return Comment(id=row.id, author=author, body=text, posted_at=as_utc(row.posted_at), hidden=False,
                   hidden_reason=None)


def hide_comment(session: Session, ctx: PanelContext, comment_id: int, reason: str, actor: str) -> None:
    """Moderation: hide a message (it stays in the store, with who hid it and why)."""
    target = session.get(PanelComment, comment_id)
    if target is None or target.program_key != ctx.key or target.stage_id != ctx.stage.id or target.hides_id:
        raise NotFound(f"no message {comment_id} in this panel")
    why = reason.strip()
    if not why:
        raise InputError("say why the message is hidden")
    if session.execute(select(PanelComment).where(PanelComment.hides_id == comment_id)).scalar_one_or_none():
        raise InputError(f"message {comment_id} is hidden already")
    row = PanelComment(program_key=ctx.key, stage_id=ctx.stage.id, team_id=target.team_id, author=actor,
                       body=_sealed_text(why[:MAX_COMMENT]), posted_at=now_utc(), hides_id=comment_id)
    session.add(row)
    session.flush()
    append(session, actor=actor, action="panel.comment.hide", row=row)


def round1_distribution(session: Session, ctx: PanelContext, team_id: str, expert: str) -> dict[str, list[int]]:
    """For round 2: the panel's round-1 levels per criterion for a team, without names, shown to an assigned
    expert only after they locked their own round-1 review (so nobody anchors on the others before scoring)."""
    if (team_id, expert) not in assignments(session, ctx) or _review_row(session, ctx, "1", team_id, expert) is None:
        raise InputError("lock your own round-1 review first")
    if phase(session, ctx).phase not in ("round2", "closed"):
        raise InputError("the panel's round-1 scores are shown in round 2")
    rows = [r for r in reviews(session, ctx, "1") if r.subject == team_id]
    return {c.id: sorted(int(r.review.scores[c.id]) for r in rows) for c in ctx.panel.criteria}


def as_matrix(rows: Sequence[tuple[str, str, float]]) -> tuple[np.ndarray, list[str], list[str]]:
    """(rater, item, value) triples as a raters × items matrix with nan for missing cells."""
    raters = sorted({r for r, _, _ in rows})
    items = sorted({i for _, i, _ in rows})
    ri = {r: k for k, r in enumerate(raters)}
    ii = {i: k for k, i in enumerate(items)}
    values = np.full((len(raters), len(items)), np.nan)
    for r, i, v in rows:
        values[ri[r], ii[i]] = v
    return values, raters, items
