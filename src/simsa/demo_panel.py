"""The demo's expert panel: stage 1's `panel:expert` points reached the way a real panel reaches them.

Ten example experts (invited accounts) declare their affiliations — one of them is conflicted with a team and is
never assigned to it — and are assigned five per team. Each team submits a technical report and a training log
before the deadline; the experts calibrate on two anchor documents, score every criterion of the rubric blind in
round 1, and some revise in round 2 after discussion. Their levels are seeded example data drawn around each team's
example profile; everything else (locking, agreement, aggregation, the decision's `panel:expert`) is the real
machinery. Times fall between the submission deadline and the decision.
"""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
from sqlalchemy.orm import Session

from simsa import accounts
from simsa.accounts import Role
from simsa.program.loader import LoadedProgram
from simsa.services import panel, panel_documents, panel_steps

EXPERT_NAMES = tuple(f"expert-{i:02d}" for i in range(1, 11))
AFFILIATIONS = ("Seoul National University", "KAIST", "Korea University", "Yonsei University", "POSTECH",
                "Jeju Speech Lab", "ETRI", "Sungkyunkwan University", "Hanyang University", "UNIST")
ANCHOR_LEVELS = {"anchor-strong": 4.6, "anchor-weak": 1.4}


def _report(team_name: str, members: list[str], steps: int) -> bytes:
    lines = [f"# {team_name}: technical report", "",
             f"Consortium: {', '.join(members)}.", "",
             "## Model", "", "A decoder-only Korean language model trained from re-initialised weights.", "",
             "## Training", "", f"{steps} optimisation steps; the log is attached (loss, tokens, learning rate).", "",
             "| item | value |", "|---|---|", f"| steps | {steps} |", "| sequence length | 64 |", ""]
    return "\n".join(lines).encode("utf-8")


def _log(steps: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    out.write("step,tokens,loss,lr\n")
    vocab_loss = math.log(4096)
    for s in range(1, steps + 1):
        lr = 3e-4 * min(1.0, s / 20) * (0.5 * (1 + math.cos(math.pi * s / steps)))
        loss = 2.5 + (vocab_loss - 2.5) * math.exp(-s / (steps / 4)) + float(rng.normal(0, 0.02))
        out.write(f"{s},{s * 16 * 64},{loss:.5f},{lr:.3e}\n")
    return out.getvalue().encode("utf-8")


def _anchor(anchor: str) -> bytes:
    quality = "strong" if "strong" in anchor else "weak"
    return (f"# Calibration anchor ({quality})\n\nA {quality} technical report from an earlier programme, used to "
            "align the experts' reading of the rubric before live scoring.\n").encode()


def _nonce(rng: np.random.Generator) -> str:
    """Seeded like the rest of the example data, so that two demos give identical records."""
    return f"{int(rng.integers(2**62)):016x}"


def _levels(ctx: panel.PanelContext, centre: float, rng: np.random.Generator, severity: float) -> tuple[dict, dict]:
    scores, notes = {}, {}
    for crit in ctx.panel.criteria:
        raw = centre + severity + float(rng.normal(0, 0.35))
        level = min(crit.levels, key=lambda lv: abs(lv.value - raw))
        scores[crit.id] = level.value
        notes[crit.id] = f"Level {level.value}: {level.description}"
    return scores, notes


def run_panel(session_factory, loaded: LoadedProgram, stage_id: str, profiles: dict[str, float],
              training: dict[str, tuple[int, int]], actor: str, decided_at: dt.datetime, seed: int = 13) -> None:
    """Run the stage's expert panel from set-up to closing; `profiles`: team → expert mean on 0–100."""
    key = loaded.program.program.id
    rng = np.random.default_rng(seed)
    nonces = np.random.default_rng(seed + 1)  # a stream of its own: the levels drawn do not depend on it
    with session_factory() as s:
        ctx = panel.context(s, key, stage_id)
        deadline = ctx.panel.submission_deadline
        existing = {a.username for a in accounts.list_accounts(s)}
        for name, affiliation in zip(EXPERT_NAMES, AFFILIATIONS, strict=True):
            if name not in existing:
                accounts.invite(s, username=name, display_name=f"Example {name}", role=Role.EXPERT.value,
                                actor=actor)
            panel.declare(s, name, affiliations=[affiliation], relations=[], conflicts=[], actor=actor)
        for team in ctx.teams:
            steps, team_seed = training.get(team.id, (100, 0))
            uploaded = deadline - dt.timedelta(days=2)
            panel_documents.upload(s, ctx, _report(team.name, team.members, steps), f"{team.id}-report.md",
                                   "report", actor, team_id=team.id, now=uploaded)
            panel_documents.upload(s, ctx, _log(steps, team_seed), f"{team.id}-train.csv", "log", actor,
                                   team_id=team.id, now=uploaded)
        for anchor in ctx.anchors:
            panel_documents.upload(s, ctx, _anchor(anchor), f"{anchor}.md", "report", actor, anchor_id=anchor,
                                   now=deadline - dt.timedelta(days=3))
        panel.auto_assign(s, ctx, actor)
    step = deadline + dt.timedelta(hours=1)
    severity = {name: float(rng.normal(0, 0.2)) for name in EXPERT_NAMES}
    with session_factory() as s:
        ctx = panel.context(s, key, stage_id)
        if ctx.anchors:
            panel_steps.advance(s, ctx, "calibration", actor, now=step)
            for expert in panel.assigned_experts(s, ctx):
                for anchor in ctx.anchors:
                    centre = ANCHOR_LEVELS.get(anchor, 3.0)
                    panel.submit_review(s, ctx, expert, anchor, "calibration",
                                        *_levels(ctx, centre, rng, severity[expert] / 2), now=step,
                                        nonce=_nonce(nonces))
    with session_factory() as s:
        ctx = panel.context(s, key, stage_id)
        panel_steps.advance(s, ctx, "round1", actor, now=step + dt.timedelta(hours=2))
        for team_id, expert in panel.assignments(s, ctx):
            centre = 1 + 4 * profiles.get(team_id, 50.0) / 100
            identified = "yes" if rng.random() < 0.15 else "no"
            panel.submit_review(s, ctx, expert, team_id, "1", *_levels(ctx, centre, rng, severity[expert]),
                                identified=identified, now=step + dt.timedelta(days=1), nonce=_nonce(nonces))
    with session_factory() as s:
        ctx = panel.context(s, key, stage_id)
        if ctx.panel.consensus_round:
            panel_steps.advance(s, ctx, "round2", actor, now=step + dt.timedelta(days=2))
            for team_id, expert in panel.assignments(s, ctx):
                if severity[expert] < -0.2:  # the harshest experts revise towards the panel after discussion
                    first = panel.review_of(s, ctx, "1", team_id, expert)
                    assert first is not None
                    scores = dict(first.review.scores)
                    crit = min(ctx.panel.criteria, key=lambda c: scores[c.id])
                    panel.post_comment(s, ctx, team_id, expert, f"On a second reading I raise my score for "
                                                                f"{crit.name.lower()}.", nonce=_nonce(nonces))
                    higher = [lv.value for lv in crit.levels if lv.value > scores[crit.id]]
                    scores[crit.id] = higher[0] if higher else scores[crit.id]
                    panel.submit_review(s, ctx, expert, team_id, "2", scores, dict(first.review.justifications),
                                        identified=first.review.identified, now=step + dt.timedelta(days=3),
                                        nonce=_nonce(nonces))
        panel_steps.advance(s, ctx, "closed", actor, now=min(step + dt.timedelta(days=4), decided_at))


def expert_panel_ready(session: Session, loaded: LoadedProgram, stage_id: str) -> bool:
    """Whether the stage declares an expert panel that has not been opened yet (so the demo runs it)."""
    stage = loaded.program.stage(stage_id)
    if stage.expert_panel is None:
        return False
    return panel.phase(session, panel.context(session, loaded.program.program.id, stage_id)).phase is None
