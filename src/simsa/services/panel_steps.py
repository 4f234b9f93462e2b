"""The expert panel's steps: which step comes next, what still blocks it, and moving to it.

Apart from the panel itself (simsa.services.panel) because the checks before a step read the anchor documents
(panel_documents) and the calibration agreement (panel_results), which are built on the panel's context and reviews.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from simsa.audit.chain import canonical
from simsa.audit.log import append, now_utc
from simsa.errors import InputError
from simsa.panel.rubric import rubric_sha256
from simsa.services import panel_documents, panel_results
from simsa.services.panel import (
    CALIBRATION,
    PHASES,
    PanelContext,
    PhaseState,
    assigned_experts,
    coverage,
    deadline_passed,
    ensure_codes,
    missing_reviews,
    phase,
)
from simsa.store.models import PanelEvent
from simsa.timeutil import as_utc, utc_text


def next_step(ctx: PanelContext, current: str | None) -> str | None:
    """The step the panel can move to from `current`; None once closed."""
    steps = _next_phases(ctx, current)
    return steps[0] if steps else None


def _next_phases(ctx: PanelContext, current: str | None) -> list[str]:
    order = [p for p in PHASES if (p != CALIBRATION or ctx.anchors) and (p != "round2" or ctx.panel.consensus_round)]
    if current is None:
        return order[:1]
    idx = order.index(current)
    return order[idx + 1: idx + 2]


def blockers(session: Session, ctx: PanelContext, target: str, now: dt.datetime | None = None) -> list[str]:
    """Why the panel cannot move to `target` now (empty: it can)."""
    current = phase(session, ctx).phase
    if target not in _next_phases(ctx, current):
        allowed = _next_phases(ctx, current)
        return [f"the panel is {'being set up' if current is None else 'in ' + current}; the next step is "
                f"{allowed[0] if allowed else 'none: it is closed'}"]
    out: list[str] = []
    experts = assigned_experts(session, ctx)
    if target == CALIBRATION:
        bare = [a for a in ctx.anchors if not panel_documents.anchor_documents(session, ctx, a)]
        if bare:
            out.append(f"upload the calibration anchor documents first: {', '.join(bare)}")
        if not experts:
            out.append("assign experts first")
    if target == "round1":
        if not deadline_passed(ctx, now):
            out.append(f"submissions are open until {utc_text(ctx.panel.submission_deadline)}")
        short = [f"{t.id} ({n})" for t, n in coverage(session, ctx) if n < ctx.panel.min_experts]
        if short:
            out.append(f"teams below the minimum of {ctx.panel.min_experts} non-conflicted experts: "
                       f"{', '.join(short)}")
        if ctx.anchors:
            cal = panel_results.calibration(session, ctx)
            if cal.missing:
                out.append("calibration not finished: " + ", ".join(cal.missing))
            elif cal.alpha is None or not cal.alpha >= cal.threshold:
                shown = "undefined" if cal.alpha is None else f"{cal.alpha:.3f}"
                out.append(f"calibration agreement α = {shown} is below the threshold {cal.threshold:.3f}; "
                           "discuss the anchors with the experts who deviate and have them re-score")
    if target in ("round2", "closed") and current == "round1":
        missing = missing_reviews(session, ctx, "1")
        if missing:
            out.append(f"{len(missing)} round-1 review(s) not locked yet: " + ", ".join(
                f"{e} → {t}" for t, e in missing[:10]) + (" …" if len(missing) > 10 else ""))
    return out


def advance(session: Session, ctx: PanelContext, target: str, actor: str, now: dt.datetime | None = None
            ) -> PhaseState:
    """Move the panel to its next step, refusing (with every reason) when it may not move yet."""
    problems = blockers(session, ctx, target, now)
    if problems:
        raise InputError(f"the panel of {ctx.stage.id!r} cannot move to {target}: " + "; ".join(problems))
    details: dict[str, object] = {"rubric_sha256": rubric_sha256(ctx.panel)}
    if target == "round1" and ctx.anchors:
        cal = panel_results.calibration(session, ctx)
        details["calibration_alpha"] = cal.alpha
        details["calibration_threshold"] = cal.threshold
    if target in (CALIBRATION, "round1") or (target == "round2" and not ctx.anchors):
        ensure_codes(session, ctx)
    when = as_utc(now) if now else now_utc()
    row = PanelEvent(program_key=ctx.key, stage_id=ctx.stage.id, phase=target, details=canonical(details), at=when,
                     by=actor)
    session.add(row)
    session.flush()
    append(session, actor=actor, action=f"panel.{target}", row=row, at=when)
    return PhaseState(target, when, details)
