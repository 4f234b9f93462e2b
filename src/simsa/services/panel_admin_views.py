"""What the secretariat's panel pages and the panel's API show, as typed read models: one call per page or
response, so routes stay thin and the visibility rules live in one place.

The admin's views carry everything (team names, experts' names, conflicts, a preview of the result); the expert's
view carries only that expert's own assignments by blind code and their own locked reviews; nobody else gets a view
of a panel before the stage's decision (`public_view` returns the stored anonymised result after it, else None).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from simsa.errors import SimsaError
from simsa.panel.conflicts import Conflict, Declaration
from simsa.program.schema import ExpertPanel
from simsa.services import decision_records, panel, panel_documents, panel_results, panel_steps
from simsa.services.panel import CALIBRATION, Comment, LockedReview, PanelContext, PhaseState
from simsa.services.panel_documents import DocumentRef
from simsa.services.panel_results import Calibration, PanelResult
from simsa.timeutil import utc_text

ASSIGNED, CONFLICTED, FREE = "assigned", "conflicted", "free"


def is_decided(session: Session, ctx: PanelContext) -> bool:
    """Whether the stage has a decision in force (only then may anyone but the admin see a panel result)."""
    return decision_records.effective(session, ctx.key, ctx.stage.id) is not None


# --------------------------------------------------------------------------- the list of panels


@dataclass(frozen=True)
class PanelSummary:
    """One stage's panel in the admin's list."""

    key: str
    program_name: str
    stage: str
    stage_name: str
    phase: str | None
    teams: int
    covered: int                # teams with at least the minimum of non-conflicted experts
    min_experts: int
    experts: int                # experts assigned to at least one team
    decided: bool

    def to_dict(self) -> dict:
        return {"program": self.key, "stage": self.stage, "phase": self.phase or "setup", "teams": self.teams,
                "covered": self.covered, "min_experts": self.min_experts, "experts": self.experts,
                "decided": self.decided}


def panel_summaries(session: Session) -> list[PanelSummary]:
    out = []
    for ctx in panel.panels(session):
        cover = panel.coverage(session, ctx)
        out.append(PanelSummary(
            key=ctx.key, program_name=ctx.loaded.program.program.name, stage=ctx.stage.id,
            stage_name=ctx.stage.name, phase=panel.phase(session, ctx).phase, teams=len(cover),
            covered=sum(1 for _, n in cover if n >= ctx.panel.min_experts), min_experts=ctx.panel.min_experts,
            experts=len(panel.assigned_experts(session, ctx)), decided=is_decided(session, ctx)))
    return out


# --------------------------------------------------------------------------- one panel, for the admin


@dataclass(frozen=True)
class AnchorView:
    anchor: str
    documents: tuple[DocumentRef, ...]


@dataclass(frozen=True)
class ExpertView:
    """An expert's declaration and the conflicts it gives with this stage's teams."""

    expert: str
    declaration: Declaration | None
    conflicts: tuple[Conflict, ...]


@dataclass(frozen=True)
class Cell:
    """One (team, expert) pair of the assignment matrix."""

    expert: str
    state: str                  # assigned | conflicted | free
    reasons: tuple[str, ...]    # why conflicted
    locked: bool                # a round-1 review is locked (the assignment cannot be removed)


@dataclass(frozen=True)
class TeamRow:
    team: str
    name: str
    code: str | None
    cells: tuple[Cell, ...]
    experts: int
    short: bool
    documents: tuple[DocumentRef, ...]


@dataclass(frozen=True)
class RoundProgress:
    round: str
    expected: int
    missing: tuple[tuple[str, str], ...]  # (team, expert)

    @property
    def locked(self) -> int:
        return self.expected - len(self.missing)

    def to_dict(self) -> dict:
        return {"round": self.round, "expected": self.expected, "locked": self.locked,
                "missing": [{"team": t, "expert": e} for t, e in self.missing]}


@dataclass(frozen=True)
class ThreadView:
    team: str
    name: str
    code: str | None
    comments: tuple[Comment, ...]


@dataclass(frozen=True)
class PanelAdminView:
    """Everything on the admin's page of one stage's panel."""

    key: str
    program_name: str
    stage: str
    stage_name: str
    timezone: str
    panel: ExpertPanel
    phase: PhaseState
    next_step: str | None
    blockers: tuple[str, ...]
    deadline: dt.datetime
    frozen: bool
    anchors: tuple[AnchorView, ...]
    experts: tuple[ExpertView, ...]
    teams: tuple[TeamRow, ...]
    calibration: Calibration | None
    progress: tuple[RoundProgress, ...]
    threads: tuple[ThreadView, ...]
    result: PanelResult | None
    result_note: str | None
    decided: bool

    @property
    def expert_names(self) -> tuple[str, ...]:
        return tuple(e.expert for e in self.experts)

    @property
    def short_teams(self) -> tuple[TeamRow, ...]:
        return tuple(t for t in self.teams if t.short)

    def team_name(self, team_id: str) -> str:
        return next((t.name for t in self.teams if t.team == team_id), team_id)


def _progress(session: Session, ctx: PanelContext, current: str | None) -> tuple[RoundProgress, ...]:
    if current not in ("round1", "round2", "closed"):
        return ()
    expected = len(panel.assignments(session, ctx))
    out = [RoundProgress("1", expected, tuple(panel.missing_reviews(session, ctx, "1")))]
    if ctx.panel.consensus_round and current in ("round2", "closed"):
        out.append(RoundProgress("2", expected, tuple(panel.missing_reviews(session, ctx, "2"))))
    return tuple(out)


def _preview(session: Session, ctx: PanelContext, current: str | None) -> tuple[PanelResult | None, str | None]:
    """The result as it would be computed now (the admin only), or why there is none yet."""
    if current not in ("round1", "round2", "closed"):
        return None, None
    try:
        return panel_results.compute(session, ctx, names=True), None
    except SimsaError as exc:
        return None, str(exc)


def panel_admin(session: Session, key: str, stage_id: str) -> PanelAdminView:
    """The admin's page of a stage's panel (NotFound for a stage without one)."""
    ctx = panel.context(session, key, stage_id)
    state = panel.phase(session, ctx)
    step = panel_steps.next_step(ctx, state.phase)
    pairs = set(panel.assignments(session, ctx))
    names = sorted(set(panel.experts(session)) | {e for _, e in pairs})  # a deactivated expert's assignments too
    conflicted = panel.conflicts(session, ctx, names)
    locked = {(r.subject, r.expert) for r in panel.reviews(session, ctx, "1")}
    codes = panel.codes(session, ctx)
    experts = tuple(ExpertView(e, panel.declaration(session, e),
                               tuple(c for t in ctx.teams for c in conflicted.get((e, t.id), ())))
                    for e in names)
    rows = []
    for team in ctx.teams:
        cells = []
        for e in names:
            reasons = tuple(c.reason for c in conflicted.get((e, team.id), ()))
            state_of = ASSIGNED if (team.id, e) in pairs else (CONFLICTED if reasons else FREE)
            cells.append(Cell(e, state_of, reasons, (team.id, e) in locked))
        n = sum(1 for c in cells if c.state == ASSIGNED)
        rows.append(TeamRow(team.id, team.name, codes.get(team.id), tuple(cells), n, n < ctx.panel.min_experts,
                            tuple(panel_documents.submission(session, ctx, team.id))))
    anchors = tuple(AnchorView(a, tuple(panel_documents.anchor_documents(session, ctx, a))) for a in ctx.anchors)
    threads = tuple(ThreadView(t.id, t.name, codes.get(t.id), tuple(panel.thread(session, ctx, t.id)))
                    for t in ctx.teams)
    result, note = _preview(session, ctx, state.phase)
    return PanelAdminView(
        key=ctx.key, program_name=ctx.loaded.program.program.name, stage=ctx.stage.id, stage_name=ctx.stage.name,
        timezone=ctx.loaded.program.program.timezone, panel=ctx.panel, phase=state, next_step=step,
        blockers=tuple(panel_steps.blockers(session, ctx, step)) if step else (),
        deadline=ctx.panel.submission_deadline, frozen=panel.deadline_passed(ctx), anchors=anchors,
        experts=experts, teams=tuple(rows),
        calibration=panel_results.calibration(session, ctx) if ctx.anchors and state.phase else None,
        progress=_progress(session, ctx, state.phase), threads=threads, result=result, result_note=note,
        decided=is_decided(session, ctx))


# --------------------------------------------------------------------------- the API's views


@dataclass(frozen=True)
class AdminPanelState:
    """The panel's state for the admin's API token: steps, coverage, assignments, calibration, progress."""

    key: str
    stage: str
    phase: PhaseState
    next_step: str | None
    blockers: tuple[str, ...]
    min_experts: int
    coverage: tuple[tuple[str, int], ...]
    assignments: tuple[tuple[str, str], ...]
    codes: dict[str, str]
    calibration: Calibration | None
    progress: tuple[RoundProgress, ...]
    decided: bool

    def to_dict(self) -> dict:
        return {"program": self.key, "stage": self.stage, "view": "admin", "phase": self.phase.phase or "setup",
                "since": utc_text(self.phase.at) if self.phase.at else None, "next": self.next_step,
                "blockers": list(self.blockers), "min_experts": self.min_experts,
                "coverage": [{"team": t, "experts": n, "short": n < self.min_experts} for t, n in self.coverage],
                "assignments": [{"team": t, "expert": e, "code": self.codes.get(t)} for t, e in self.assignments],
                "calibration": None if self.calibration is None else self.calibration.to_dict(),
                "progress": [p.to_dict() for p in self.progress], "decided": self.decided}


def admin_state(session: Session, ctx: PanelContext) -> AdminPanelState:
    state = panel.phase(session, ctx)
    step = panel_steps.next_step(ctx, state.phase)
    return AdminPanelState(
        key=ctx.key, stage=ctx.stage.id, phase=state, next_step=step,
        blockers=tuple(panel_steps.blockers(session, ctx, step)) if step else (), min_experts=ctx.panel.min_experts,
        coverage=tuple((t.id, n) for t, n in panel.coverage(session, ctx)),
        assignments=tuple(panel.assignments(session, ctx)), codes=panel.codes(session, ctx),
        calibration=panel_results.calibration(session, ctx) if ctx.anchors and state.phase else None,
        progress=_progress(session, ctx, state.phase), decided=is_decided(session, ctx))


@dataclass(frozen=True)
class ExpertAssignment:
    """A submission assigned to an expert, named as the expert may see it."""

    code: str | None
    label: str
    round1_locked: bool
    round2_locked: bool

    def to_dict(self) -> dict:
        return {"submission": self.code, "label": self.label, "round1_locked": self.round1_locked,
                "round2_locked": self.round2_locked}


@dataclass(frozen=True)
class ExpertPanelState:
    """An expert's own view of a panel: the step, their assignments by blind code, the anchors they score, and their
    own locked reviews — nothing of other experts, no aggregate."""

    key: str
    stage: str
    phase: str | None
    expert: str
    assignments: tuple[ExpertAssignment, ...]
    anchors: tuple[str, ...]
    reviews: tuple[dict, ...]

    def to_dict(self) -> dict:
        return {"program": self.key, "stage": self.stage, "view": "expert", "phase": self.phase or "setup",
                "expert": self.expert, "assignments": [a.to_dict() for a in self.assignments],
                "anchors": list(self.anchors), "reviews": list(self.reviews)}


def own_review(session: Session, ctx: PanelContext, review: LockedReview) -> dict:
    """An expert's locked review as shown to that expert: the team by its blind code, never its id."""
    data = review.to_dict()
    if review.round != CALIBRATION:
        data["subject"] = panel.codes(session, ctx).get(review.subject)
        data["label"] = panel.label(session, ctx, review.subject, blind=True)
    return data


def expert_state(session: Session, ctx: PanelContext, expert: str) -> ExpertPanelState:
    state = panel.phase(session, ctx).phase
    codes = panel.codes(session, ctx)
    mine = [r for r in panel.reviews(session, ctx) if r.expert == expert]
    done = {(r.round, r.subject) for r in mine}
    assigned = tuple(ExpertAssignment(codes.get(t), panel.label(session, ctx, t, blind=True), ("1", t) in done,
                                      ("2", t) in done)
                     for t in panel.teams_of(session, ctx, expert))
    on_panel = expert in panel.assigned_experts(session, ctx)
    return ExpertPanelState(key=ctx.key, stage=ctx.stage.id, phase=state, expert=expert,
                            assignments=tuple(sorted(assigned, key=lambda a: a.label)),
                            anchors=tuple(ctx.anchors) if on_panel else (),
                            reviews=tuple(own_review(session, ctx, r) for r in mine))


@dataclass(frozen=True)
class PublicPanelState:
    """After the decision, for anyone: the step and the stored anonymised result (None: the panel never ran)."""

    key: str
    stage: str
    phase: str | None
    result: dict | None

    def to_dict(self) -> dict:
        return {"program": self.key, "stage": self.stage, "view": "public", "phase": self.phase or "setup",
                "result": self.result}


def public_view(session: Session, ctx: PanelContext) -> PublicPanelState | None:
    """The public's view of a panel: only once the stage is decided (None before: no aggregate leaks early)."""
    if not is_decided(session, ctx):
        return None
    return PublicPanelState(ctx.key, ctx.stage.id, panel.phase(session, ctx).phase,
                            panel_results.stored_result(session, ctx.key, ctx.stage.id))
