"""What a stage's panel concluded: calibration agreement, each team's aggregate with its standard error, the
experts' agreement and severity, how often experts recognised the team, and how far round 2 moved the scores.

The aggregate becomes the stage's `panel:expert` score when the stage is decided — not before: until then no score
of the panel is in the store's score table or the public log, so nobody (a conflicted expert included) can read
an aggregate or a ranking from them. The result document (anonymised: experts are E1, E2, … unless the programme
publishes names) is stored with the decision as evidence, and the report's "expert panel" section is drawn from it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from simsa.audit.chain import canonical
from simsa.errors import DataMissingError
from simsa.panel.aggregate import aggregate, severity_adjusted
from simsa.panel.agreement import agreement_report, krippendorff_alpha
from simsa.panel.rubric import rubric_sha256, total
from simsa.program.loader import LoadedProgram
from simsa.program.schema import PANEL_SOURCE
from simsa.services import panel as panel_service
from simsa.services import panel_documents, programs
from simsa.services.panel import CALIBRATION, LockedReview, PanelContext, as_matrix

RESULT_KIND = "simsa.panel.result/1"
BOOTSTRAP_ROUNDS = 1000


@dataclass(frozen=True)
class Calibration:
    """Agreement on the anchor documents: α over (anchor, criterion) items, who has not scored, who deviates."""

    alpha: float | None
    threshold: float
    missing: tuple[str, ...]
    deviations: tuple[dict, ...]

    @property
    def passed(self) -> bool:
        return not self.missing and self.alpha is not None and self.alpha >= self.threshold

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "threshold": self.threshold, "passed": self.passed,
                "missing": list(self.missing), "experts": list(self.deviations)}


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def calibration(session: Session, ctx: PanelContext) -> Calibration:
    threshold = ctx.panel.calibration.threshold if ctx.panel.calibration else 0.0
    experts = panel_service.assigned_experts(session, ctx)
    done = panel_service.reviews(session, ctx, CALIBRATION)
    have = {(r.expert, r.subject) for r in done}
    missing = tuple(f"{e} → {a}" for e in experts for a in ctx.anchors if (e, a) not in have)
    rows = [(r.expert, f"{r.subject}/{cid}", float(v)) for r in done if r.expert in experts
            for cid, v in r.review.scores.items()]
    if not rows:
        return Calibration(None, threshold, missing, ())
    values, raters, _ = as_matrix(rows)
    report = agreement_report(values, raters, [str(i) for i in range(values.shape[1])],
                              ctx.panel.agreement_level, rounds=200, seed=0)
    alpha = _finite(krippendorff_alpha(values, ctx.panel.agreement_level))
    return Calibration(alpha, threshold, missing, tuple(report.to_dict()["raters"]))


@dataclass(frozen=True)
class TeamResult:
    team: str
    experts: int
    totals: tuple[float, ...]           # each expert's final total (0–100), in the anonymised experts' order
    raw: float
    adjusted: float
    value: float                         # what counts (raw or adjusted), on 0–100
    stderr: float | None
    identified: dict[str, int]
    round2_revised: int
    mean_shift: float | None             # mean (final − round 1) over this team's experts
    documents: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"team": self.team, "experts": self.experts, "totals": [round(t, 6) for t in self.totals],
                "raw": round(self.raw, 6), "adjusted": round(self.adjusted, 6), "value": round(self.value, 6),
                "stderr": None if self.stderr is None else round(self.stderr, 6), "identified": self.identified,
                "round2_revised": self.round2_revised,
                "mean_shift": None if self.mean_shift is None else round(self.mean_shift, 6),
                "documents": list(self.documents)}


@dataclass(frozen=True)
class PanelResult:
    """The panel's conclusion for a stage, anonymised, as stored with the decision."""

    program: str
    stage: str
    rubric_sha256: str
    aggregation: str
    counts: str
    teams: tuple[TeamResult, ...]
    agreement: dict          # over experts × teams totals (alpha, interval, ICCs, severities, outliers)
    criteria_alpha: dict     # criterion → α of the levels
    identification_rate: float | None
    shifts: tuple[dict, ...]  # per expert and team: round-1 total, final total, shift
    experts: tuple[str, ...]  # E1, E2, … (or names, when the programme publishes them)
    review_hashes: tuple[dict, ...]  # every locked review counted: expert (anonymised), team, round, sha256
    criteria: tuple[dict, ...] = ()  # the rubric's criteria in order: id, name, name_ko, weight

    def team(self, team_id: str) -> TeamResult | None:
        return next((t for t in self.teams if t.team == team_id), None)

    def to_dict(self) -> dict:
        return {"schema": RESULT_KIND, "program": self.program, "stage": self.stage,
                "rubric_sha256": self.rubric_sha256, "aggregation": self.aggregation, "counts": self.counts,
                "experts": list(self.experts), "teams": [t.to_dict() for t in self.teams],
                "agreement": self.agreement, "criteria_alpha": self.criteria_alpha,
                "identification_rate": self.identification_rate, "round_shift": list(self.shifts),
                "criteria": list(self.criteria), "review_sha256": list(self.review_hashes)}


def _final_reviews(session: Session, ctx: PanelContext) -> tuple[dict[tuple[str, str], LockedReview],
                                                                 dict[tuple[str, str], LockedReview]]:
    """(team, expert) → round-1 review, and → final review (round 2 where revised), over assignments in force."""
    pairs = set(panel_service.assignments(session, ctx))
    first = {(r.subject, r.expert): r for r in panel_service.reviews(session, ctx, "1") if (r.subject, r.expert)
             in pairs}
    final = dict(first)
    for r in panel_service.reviews(session, ctx, "2"):
        if (r.subject, r.expert) in first:
            final[(r.subject, r.expert)] = r
    return first, final


def compute(session: Session, ctx: PanelContext, *, names: bool | None = None) -> PanelResult:
    """The panel's result from the locked reviews (round 2 replaces round 1 where an expert revised)."""
    first, final = _final_reviews(session, ctx)
    if not final:
        raise DataMissingError(f"the panel of {ctx.stage.id!r} has no locked reviews")
    expert_ids = sorted({e for _, e in final})
    publish = ctx.panel.publish_expert_names if names is None else names
    shown = {e: (e if publish else f"E{i + 1}") for i, e in enumerate(expert_ids)}
    team_ids = [t.id for t in ctx.teams if any(k[0] == t.id for k in final)]
    totals = {k: total(ctx.panel, r.review.scores) for k, r in final.items()}
    matrix = np.full((len(expert_ids), len(team_ids)), np.nan)
    for (team, expert), value in totals.items():
        matrix[expert_ids.index(expert), team_ids.index(team)] = value
    adjusted = severity_adjusted(matrix, expert_ids, team_ids, low=0.0, high=100.0)
    adj = np.asarray(adjusted.adjusted, dtype=float)
    report = agreement_report(matrix, [shown[e] for e in expert_ids], team_ids, "interval",
                              rounds=BOOTSTRAP_ROUNDS, seed=0)
    teams: list[TeamResult] = []
    for j, team in enumerate(team_ids):
        col = [(i, matrix[i, j]) for i in range(len(expert_ids)) if not math.isnan(matrix[i, j])]
        raw = aggregate([v for _, v in col], ctx.panel.aggregation, ctx.panel.trim)
        adj_agg = aggregate([float(adj[i, j]) for i, _ in col], ctx.panel.aggregation, ctx.panel.trim)
        counted = adj_agg if ctx.panel.counts == "severity_adjusted" else raw
        ident = {"yes": 0, "no": 0, "unsure": 0}
        revised = 0
        shifts = []
        for i, _ in col:
            key = (team, expert_ids[i])
            answer = first[key].review.identified
            if answer in ident:
                ident[answer] += 1
            if final[key].round == "2":
                revised += 1
            shifts.append(totals[key] - total(ctx.panel, first[key].review.scores))
        teams.append(TeamResult(team=team, experts=len(col), totals=tuple(v for _, v in col), raw=raw.value,
                                adjusted=adj_agg.value, value=counted.value, stderr=counted.stderr,
                                identified=ident, round2_revised=revised,
                                mean_shift=float(np.mean(shifts)) if shifts else None,
                                documents=tuple(panel_documents.document_hashes(session, ctx, team))))
    crit_alpha = {}
    for crit in ctx.panel.criteria:
        rows = [(e, t, float(r.review.scores[crit.id])) for (t, e), r in final.items()]
        values, _, _ = as_matrix(rows)
        crit_alpha[crit.id] = _finite(krippendorff_alpha(values, ctx.panel.agreement_level))
    answers = [r.review.identified for r in first.values() if r.review.identified is not None]
    rate = (sum(1 for a in answers if a == "yes") / len(answers)) if answers else None
    shift_rows = []
    for (team, expert), r in sorted(first.items()):
        before = total(ctx.panel, r.review.scores)
        after = totals[(team, expert)]
        shift_rows.append({"expert": shown[expert], "team": team, "round1": round(before, 6),
                           "final": round(after, 6), "shift": round(after - before, 6)})
    used = {r.id: r for r in list(first.values()) + list(final.values())}
    hashes = tuple({"expert": shown[r.expert], "team": r.subject, "round": r.round, "sha256": r.content_sha256}
                   for r in sorted(used.values(), key=lambda r: (r.subject, shown[r.expert], r.round)))
    criteria = tuple({"id": c.id, "name": c.name, "name_ko": c.name_ko, "weight": c.weight}
                     for c in ctx.panel.criteria)
    return PanelResult(program=ctx.key, stage=ctx.stage.id, rubric_sha256=rubric_sha256(ctx.panel),
                       aggregation=ctx.panel.aggregation, counts=ctx.panel.counts, teams=tuple(teams),
                       agreement=report.to_dict(), criteria_alpha=crit_alpha, identification_rate=rate,
                       shifts=tuple(shift_rows), experts=tuple(shown[e] for e in expert_ids), review_hashes=hashes,
                       criteria=criteria)


def criterion_scale(ctx: PanelContext) -> tuple[float, float]:
    """The `panel:expert` criterion's raw range, onto which the 0–100 aggregate is placed."""
    for leaf in ctx.stage.leaves():
        if leaf.source == PANEL_SOURCE and leaf.norm == "absolute":
            return leaf.raw_range or (0.0, 1.0)
    return (0.0, 100.0)


def to_scale(ctx: PanelContext, value: float, stderr: float | None) -> tuple[float, float | None]:
    low, high = criterion_scale(ctx)
    factor = (high - low) / 100.0
    return low + value * factor, None if stderr is None else stderr * factor


def corrected_teams(session: Session, key: str, stage_id: str) -> frozenset[str]:
    """Teams whose `panel:expert` score was corrected by hand after the panel's result."""
    from simsa.services import scores as score_service

    rows = score_service.current_rows(session, key, [stage_id])
    return frozenset(team for (_s, team, source, rater), row in rows.items()
                     if source == PANEL_SOURCE and rater == "panel" and is_correction(row))


def panel_context_if_any(session: Session, loaded: LoadedProgram, stage_id: str) -> PanelContext | None:
    """The stage's panel when it has one and the panel has been opened (a stage whose panel never opened takes
    `panel:expert` scores recorded the old way, e.g. imported)."""
    try:
        stage = loaded.program.stage(stage_id)
    except KeyError:
        return None  # the callers name an unknown stage in their own words
    if stage.expert_panel is None:
        return None
    ctx = PanelContext(loaded=loaded, stage=stage, panel=stage.expert_panel)
    if panel_service.phase(session, ctx).phase is None:
        return None
    return ctx


def for_decision(session: Session, loaded: LoadedProgram, stage_id: str) -> PanelResult | None:
    """The panel's result to decide with, or None when the stage's panel never opened; refuses while it is open."""
    ctx = panel_context_if_any(session, loaded, stage_id)
    if ctx is None:
        return None
    state = panel_service.phase(session, ctx).phase
    if state != "closed":
        raise DataMissingError(f"the expert panel of {stage_id!r} is in {state}; close it before deciding "
                               f"(`simsa panel close {ctx.key} --stage {stage_id}` or the panel's admin page)")
    return compute(session, ctx)


def record_for_decision(session: Session, loaded: LoadedProgram, stage_id: str, actor: str,
                        at: dt.datetime) -> PanelResult | None:
    """At the decision: store the panel's result document and record each team's `panel:expert` score from it
    (rater "panel"), voiding other raters' current `panel:expert` rows of the stage so only the panel counts."""
    from simsa.services import corrections, evidence_docs
    from simsa.services import scores as score_service

    result = for_decision(session, loaded, stage_id)
    if result is None:
        return None
    ctx = panel_context_if_any(session, loaded, stage_id)
    assert ctx is not None
    doc = evidence_docs.store_document(session, canonical(result.to_dict()), kind=RESULT_KIND, actor=actor)
    current = score_service.current_rows(session, ctx.key, [stage_id])
    for (_stage, _team, source, rater), row in current.items():
        if source == PANEL_SOURCE and rater != "panel" and not row.voided:
            corrections.void_score(session, loaded, row.id,
                                   "replaced by the expert panel's aggregate at the decision", actor)
    items = []
    for t in result.teams:
        old = current.get((stage_id, t.team, PANEL_SOURCE, "panel"))
        if is_correction(old):
            continue  # the secretariat corrected the panel's score (e.g. an upheld appeal): the correction stands
        value, se = to_scale(ctx, t.value, t.stderr)
        evidence = (f"expert panel: {t.experts} experts, {ctx.panel.aggregation} of "
                    f"{'severity-adjusted' if ctx.panel.counts == 'severity_adjusted' else 'raw'} totals; rubric "
                    f"sha256 {result.rubric_sha256}; α = {_fmt(result.agreement.get('alpha'))}; result document "
                    f"sha256 {doc.sha256}; documents {', '.join(d[:12] for d in t.documents) or 'none'}")
        if old is not None and not old.voided and old.value is not None and abs(old.value - value) < 1e-12 \
                and old.run_id == f"panel:{doc.sha256}":
            continue
        items.append(score_service.ScoreInput(stage=stage_id, team=t.team, source=PANEL_SOURCE, value=value,
                                              stderr=se, rater="panel", run_id=f"panel:{doc.sha256}",
                                              evidence=evidence))
    if items:
        version = programs.for_writing(session, loaded, actor).version
        score_service.add(session, version, loaded.program, items, actor, at=at)
    return result


def is_correction(row: object) -> bool:
    """A current `panel:expert` row of rater `panel` recorded by hand (not from a panel result): a correction that
    takes precedence over the panel's aggregate, visible with its provenance in the record."""
    run_id = getattr(row, "run_id", None)
    return row is not None and not getattr(row, "voided", True) and not (run_id or "").startswith("panel:")


def _fmt(x: float | None) -> str:
    return "undefined" if x is None else f"{float(x):.3f}"


def stored_result(session: Session, key: str, stage_id: str, sha256: str | None = None) -> dict | None:
    """The newest stored panel result document of a stage (or the one with `sha256`), as data."""
    import json

    from sqlalchemy import select

    from simsa.store.models import EvidenceDocument

    rows = session.execute(select(EvidenceDocument).where(EvidenceDocument.kind == RESULT_KIND)
                           .order_by(EvidenceDocument.id.desc())).scalars()
    for row in rows:
        if sha256 is not None and row.sha256 != sha256:
            continue
        data = json.loads(row.content)
        if data.get("program") == key and data.get("stage") == stage_id:
            return data
    return None


def digest(result: PanelResult) -> str:
    return hashlib.sha256(canonical(result.to_dict()).encode("utf-8")).hexdigest()


def identification_summary(results: Sequence[TeamResult]) -> dict[str, int]:
    out = {"yes": 0, "no": 0, "unsure": 0}
    for t in results:
        for k, v in t.identified.items():
            out[k] += v
    return out


def with_panel_scores(current: dict, loaded: LoadedProgram, stage_id: str, result: PanelResult,
                      corrected: frozenset[str] = frozenset()) -> dict:
    """The stage's current scores with `panel:expert` taken from the panel's result for every team (n = its
    experts), and no other `panel:expert` value counting — except the teams in `corrected`, whose score the
    secretariat corrected by hand (see `is_correction`)."""
    from simsa.program.adjudicate import SourceScore

    ctx = panel_service.context_of(loaded, stage_id)  # the stage has a panel: `result` is its result
    out = {team: {s: v for s, v in sources.items() if s != PANEL_SOURCE} for team, sources in current.items()}
    for t in result.teams:
        value, se = to_scale(ctx, t.value, t.stderr)
        existing = current.get(t.team, {}).get(PANEL_SOURCE)
        if t.team in corrected and existing is not None:
            out.setdefault(t.team, {})[PANEL_SOURCE] = existing
            continue
        ids = existing.score_ids if existing is not None and abs(existing.value - value) < 1e-9 else ()
        out.setdefault(t.team, {})[PANEL_SOURCE] = SourceScore(value=value, stderr=se, n=t.experts, score_ids=ids)
    return out
