"""The arena's result: rankings (raw and style-controlled) with intervals, the `panel:user` score per team, and the
evidence a reader needs to trust it — votes per pair, exclusions by reason, segments, schedule balance, flagged
raters, and how many votes would have to be dropped or injected to change the cut.

The result is computed from the stored votes only and is deterministic (seeded bootstrap), so anyone holding the
vote export can recompute it with `simsa arena rate`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from simsa.arena.anomaly import anomalous_raters
from simsa.arena.ratings import Ranking, rank
from simsa.arena.robustness import summary as robustness_summary
from simsa.arena.style import style_counts
from simsa.arena.votes import Votes, count_diff
from simsa.audit.chain import canonical
from simsa.errors import DataMissingError, InputError, NotFound
from simsa.program.arena_schema import ARENA_SOURCE
from simsa.program.loader import LoadedProgram
from simsa.services import arena as arena_service
from simsa.services.arena import ArenaContext, VoteRecord

RESULT_KIND = "simsa.arena.result/1"
ROBUSTNESS_FRACTION = 0.05  # search vote drops and injections up to this share of the votes
WARN_FRACTION = 0.01


@dataclass(frozen=True)
class TeamScore:
    team: str
    value: float  # what becomes panel:user (expected win rate 0–100, or the rating)
    stderr: float | None
    votes: int

    def to_dict(self) -> dict:
        return {"team": self.team, "value": round(self.value, 6),
                "stderr": None if self.stderr is None else round(self.stderr, 6), "votes": self.votes}


@dataclass(frozen=True)
class ArenaResult:
    """Everything the arena says about a stage, as published with the decision."""

    program: str
    stage: str
    segment: int | None
    score_kind: str
    ranking_kind: str
    votes: Mapping[str, Any]
    pairs: Sequence[Mapping[str, Any]]
    exclusions: Mapping[str, int]
    segments: Sequence[Mapping[str, Any]]
    raw: Ranking | None
    style: Ranking | None
    scores: Sequence[TeamScore]
    robustness: Mapping[str, Any]
    flagged: Sequence[Mapping[str, Any]]
    ratings: Sequence[Mapping[str, Any]]
    problem: str | None = None
    schedule: Mapping[str, Any] = field(default_factory=dict)
    rating_scores: Sequence[Mapping[str, Any]] = ()

    @property
    def counted(self) -> Ranking | None:
        return self.style if self.ranking_kind == "style_controlled" else self.raw

    def to_dict(self) -> dict:
        return {"kind": RESULT_KIND, "program": self.program, "stage": self.stage, "segment": self.segment,
                "score": self.score_kind, "ranking": self.ranking_kind, "votes": dict(self.votes),
                "pairs": [dict(p) for p in self.pairs], "exclusions": dict(self.exclusions),
                "segments": [dict(s) for s in self.segments],
                "raw": self.raw.to_dict() if self.raw else None,
                "style_controlled": self.style.to_dict() if self.style else None,
                "scores": [s.to_dict() for s in self.scores], "robustness": dict(self.robustness),
                "flagged_raters": [dict(f) for f in self.flagged], "ratings": [dict(r) for r in self.ratings],
                "schedule": dict(self.schedule), "rating_scores": [dict(r) for r in self.rating_scores],
                "problem": self.problem}


def _style_row(answers: Sequence[str]) -> np.ndarray:
    total = np.zeros(4)
    for text in answers:
        c = style_counts(text)
        total += np.array([c.length, c.headers, c.lists, c.bold], dtype=float)
    return total


def to_votes(records: Sequence[VoteRecord], models: Sequence[str]) -> Votes:
    """The counted votes as arrays, with each battle's style difference over all its turns."""
    rows = [(r.left, r.right, r.winner) for r in records]
    if not rows:
        raise InputError("no counted votes")
    a = np.array([_style_row(r.answers_left) for r in records])
    b = np.array([_style_row(r.answers_right) for r in records])
    return Votes.from_rows(rows, style=count_diff(a, b), models=sorted(models))


def expected_win_rate(theta: np.ndarray) -> np.ndarray:
    """Each entrant's expected share of wins (0–100) against the field, one opponent drawn at random: unlike a
    rating it has no arbitrary offset, so `relative_to_best` and the other normalisations mean something."""
    theta = np.atleast_2d(theta)
    k = theta.shape[-1]
    diff = theta[..., :, None] - theta[..., None, :]
    p = 1.0 / (1.0 + np.exp(-diff))
    return 100.0 * (p.sum(axis=-1) - 0.5) / (k - 1)


def _winner(r: VoteRecord) -> str | None:
    return r.left if r.choice == "left" else r.right if r.choice == "right" else None


def _pairs(records: Sequence[VoteRecord], teams: Sequence[str], quota: int) -> list[dict]:
    out = []
    for i, a in enumerate(teams):
        for b in teams[i + 1:]:
            rs = [r for r in records if {r.left, r.right} == {a, b}]
            wins_a = sum(1 for r in rs if _winner(r) == a)
            wins_b = sum(1 for r in rs if _winner(r) == b)
            out.append({"a": a, "b": b, "votes": len(rs), "quota": quota, "wins_a": wins_a, "wins_b": wins_b,
                        "ties": sum(1 for r in rs if r.choice == "tie"),
                        "both_bad": sum(1 for r in rs if r.choice == "both_bad"),
                        "a_left": sum(1 for r in rs if r.left == a)})
    return out


def _exclusion_counts(records: Sequence[VoteRecord]) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for r in records:
        if r.kind != arena_service.ENTRANTS:
            continue
        if r.status == "void":
            reasons["identity leak" if "names an entrant" in (r.reason or "") else (r.reason or "void")] += 1
        elif r.excluded is not None:
            reasons[f"excluded by the secretariat: {r.excluded}"] += 1
    return dict(sorted(reasons.items()))


def _ratings(session: Session, ctx: ArenaContext, excluded_raters: set[str]) -> list[dict]:
    by_team: dict[str, dict[str, list[int]]] = {t: {"usefulness": [], "cost_efficiency": []} for t in ctx.arena.teams}
    for rater, team, useful, cost in arena_service.ratings(session, ctx):
        if rater in excluded_raters or team not in by_team:
            continue
        if useful is not None:
            by_team[team]["usefulness"].append(useful)
        if cost is not None:
            by_team[team]["cost_efficiency"].append(cost)
    out = []
    for team, vals in by_team.items():
        row: dict[str, Any] = {"team": team}
        for k, v in vals.items():
            row[k] = round(float(np.mean(v)), 4) if v else None
            row[f"{k}_sd"] = round(float(np.std(v, ddof=1)), 4) if len(v) > 1 else None
            row[f"{k}_n"] = len(v)
        out.append(row)
    return out


def rating_scores(ctx: ArenaContext, ratings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The scores the raters' ratings feed (`rating_sources`): each team's mean 1–5 rating put on 0–100, with its
    standard error; a team nobody rated gets none (the source is then missing, as the criterion's rule says)."""
    out = []
    for kind, source in ctx.arena.rating_sources.items():
        for row in ratings:
            mean, n = row.get(kind), int(row.get(f"{kind}_n") or 0)
            if mean is None or n == 0:
                continue
            sd = row.get(f"{kind}_sd")
            out.append({"source": source, "kind": kind, "team": row["team"], "value": (mean - 1.0) / 4.0 * 100.0,
                        "stderr": None if sd is None else sd / np.sqrt(n) / 4.0 * 100.0, "n": n})
    return out


def compute(session: Session, ctx: ArenaContext) -> ArenaResult:
    """The arena's result from the votes of its current segment (earlier segments are reported beside it)."""
    records = arena_service.vote_records(session, ctx)
    segs = arena_service.segments(session, ctx)
    current = segs[-1].number if segs else None
    teams = list(ctx.arena.teams)
    in_segment = [r for r in records if r.segment == current]
    counted = [r for r in in_segment if r.counts]
    statuses = Counter(r.status for r in in_segment)
    votes_info = {"total": len(in_segment), "counted": len(counted),
                  "void": statuses.get("void", 0),
                  "excluded": sum(1 for r in in_segment if r.kind == arena_service.ENTRANTS and r.status == "counted"
                                  and r.excluded is not None),
                  "gold_pass": statuses.get("gold_pass", 0), "gold_fail": statuses.get("gold_fail", 0),
                  "raters": len({r.rater for r in counted}), "all_segments": len(records)}
    seg_info = [{"number": s.number, "manifest_sha256": s.manifest_sha256, "reason": s.reason,
                 "opened_at": s.to_dict()["opened_at"],
                 "votes": sum(1 for r in records if r.segment == s.number and r.counts)} for s in segs]
    excluded_raters = {r.rater for r in records if r.excluded is not None}
    rated = _ratings(session, ctx, excluded_raters)
    result = partial(ArenaResult, program=ctx.key, stage=ctx.stage.id, segment=current, score_kind=ctx.arena.score,
                     ranking_kind=ctx.arena.ranking, votes=votes_info,
                     pairs=_pairs(counted, teams, ctx.arena.votes_per_pair),
                     exclusions=_exclusion_counts(in_segment), segments=seg_info,
                     ratings=rated, rating_scores=rating_scores(ctx, rated), schedule=_schedule(counted, teams, ctx))
    try:
        votes = to_votes(counted, teams)
        raw = rank(votes, style=False, rounds=ctx.arena.bootstrap, seed=ctx.arena.seed, anchor=_anchor(ctx))
        styled = rank(votes, style=True, rounds=ctx.arena.bootstrap, seed=ctx.arena.seed, anchor=_anchor(ctx))
    except InputError as exc:
        return result(raw=None, style=None, scores=(), robustness={}, flagged=(), problem=f"no ranking yet: {exc}")
    use_style = ctx.arena.ranking == "style_controlled"
    scores = _scores(votes, ctx, styled if use_style else raw)
    cut = ctx.stage.elimination.advance_best or 0
    flagged = flagged_raters(in_segment, teams)
    return result(raw=raw, style=styled, scores=scores,
                  robustness=robustness_summary(votes, min(cut, len(teams) - 1), max_fraction=ROBUSTNESS_FRACTION),
                  flagged=flagged)


def _anchor(ctx: ArenaContext) -> tuple[str, float] | None:
    return (ctx.arena.anchor.team, ctx.arena.anchor.rating) if ctx.arena.anchor else None


def _scores(votes: Votes, ctx: ArenaContext, ranking: Ranking) -> list[TeamScore]:
    """Each entrant's `panel:user` value with its standard error over the ranking's own bootstrap rounds."""
    per_model = votes.counts()
    index = {m: i for i, m in enumerate(votes.models)}
    if ctx.arena.score == "rating":
        return [TeamScore(r.model, r.rating, r.se, int(per_model[index[r.model]])) for r in ranking.ratings]
    assert ranking.theta is not None and ranking.samples is not None
    point = expected_win_rate(ranking.theta)[0]
    sd = expected_win_rate(ranking.samples).std(axis=0, ddof=1)
    order = np.argsort(-point, kind="stable")
    return [TeamScore(votes.models[i], float(point[i]), float(sd[i]), int(per_model[i])) for i in order]


def _schedule(counted: Sequence[VoteRecord], teams: Sequence[str], ctx: ArenaContext) -> dict[str, Any]:
    from simsa.arena.schedule import Pick, ScheduleCounts

    counts = ScheduleCounts()
    for r in counted:
        counts.add(Pick(left=r.left, right=r.right, category=r.category))
    return counts.balance_report(teams, ctx.arena.votes_per_pair, ctx.arena.categories).to_dict()


def flagged_raters(records: Sequence[VoteRecord], teams: Sequence[str]) -> list[dict]:
    """The raters the anomalous-rater test flags, with its evidence: over the entrant votes that were counted when
    cast (excluded votes included, so a rater stays flagged after the secretariat's decision on them)."""
    tested = [r for r in records if r.kind == arena_service.ENTRANTS and r.status == "counted"]
    if len(tested) < 2:
        return []
    votes = Votes.from_rows([(r.left, r.right, r.winner) for r in tested], models=sorted(teams))
    tests = anomalous_raters(votes, [r.rater for r in tested])
    return [t.to_dict() for t in tests if t.flagged]


# ---------------------------------------------------------------------------------------------------- decision
def arena_if_open(session: Session, loaded: LoadedProgram, stage_id: str) -> ArenaContext | None:
    """The stage's arena when it has one that has been frozen (an arena never frozen leaves `panel:user` to scores
    recorded the old way)."""
    try:
        ctx = arena_service.context_of(loaded, stage_id)
    except NotFound:
        return None
    return ctx if arena_service.current_segment(session, ctx) is not None else None


def for_decision(session: Session, loaded: LoadedProgram, stage_id: str, at: dt.datetime) -> ArenaResult | None:
    ctx = arena_if_open(session, loaded, stage_id)
    if ctx is None:
        return None
    if at < ctx.arena.closes:
        raise DataMissingError(f"the arena of {stage_id!r} is open until {ctx.arena.closes.isoformat()}; decide "
                               "after it closes")
    result = compute(session, ctx)
    if result.problem is not None:
        raise DataMissingError(f"the arena of {stage_id!r} has {result.problem}")
    return result


def digest(result: ArenaResult) -> str:
    return hashlib.sha256(canonical(result.to_dict()).encode("utf-8")).hexdigest()


def with_arena_scores(current: dict, result: ArenaResult) -> dict:
    """The stage's current scores with `panel:user` taken from the arena for every entrant, and no other
    `panel:user` value counting."""
    from simsa.program.adjudicate import SourceScore

    fed = {ARENA_SOURCE, *(r["source"] for r in result.rating_scores)}
    out = {team: {s: v for s, v in sources.items() if s not in fed} for team, sources in current.items()}
    values = [(ARENA_SOURCE, s.team, s.value, s.stderr, s.votes) for s in result.scores]
    values += [(r["source"], r["team"], r["value"], r["stderr"], r["n"]) for r in result.rating_scores]
    for source, team, value, stderr, n in values:
        existing = current.get(team, {}).get(source)
        ids = existing.score_ids if existing is not None and abs(existing.value - value) < 1e-9 else ()
        out.setdefault(team, {})[source] = SourceScore(value=value, stderr=stderr, n=n, score_ids=ids,
                                                       grade="statistical")
    return out


def record_for_decision(session: Session, loaded: LoadedProgram, stage_id: str, actor: str,
                        at: dt.datetime) -> ArenaResult | None:
    """At the decision: store the arena's result document and record each entrant's `panel:user` score from it
    (rater "arena"), voiding other raters' current `panel:user` rows of the stage so only the arena counts."""
    from simsa.services import corrections, evidence_docs, programs
    from simsa.services import scores as score_service

    result = for_decision(session, loaded, stage_id, at)
    if result is None:
        return None
    key = loaded.program.program.id
    doc = evidence_docs.store_document(session, canonical(result.to_dict()), kind=RESULT_KIND, actor=actor)
    current = score_service.current_rows(session, key, [stage_id])
    fed = {ARENA_SOURCE, *(r["source"] for r in result.rating_scores)}
    for (_stage, _team, source, rater), row in current.items():
        if source in fed and rater != "arena" and not row.voided:
            corrections.void_score(session, loaded, row.id, "replaced by the user arena's result at the decision",
                                   actor)
    ranking = (f"user arena: {result.votes['counted']} counted votes from {result.votes['raters']} raters in "
               f"segment {result.segment}; {result.ranking_kind.replace('_', '-')} Bradley–Terry, "
               f"{'expected win rate' if result.score_kind == 'expected_win_rate' else 'rating'} with a "
               f"{ctx_rounds(loaded, stage_id)}-round bootstrap SE; result document sha256 {doc.sha256}")
    values = [(ARENA_SOURCE, s.team, s.value, s.stderr, ranking) for s in result.scores]
    values += [(r["source"], r["team"], r["value"], r["stderr"],
                f"user arena: mean {r['kind'].replace('_', ' ')} rating of {r['n']} answers, 1–5 put on 0–100; "
                f"result document sha256 {doc.sha256}") for r in result.rating_scores]
    items = []
    for source, team, value, stderr, evidence in values:
        old = current.get((stage_id, team, source, "arena"))
        if old is not None and not old.voided and old.value is not None and abs(old.value - value) < 1e-12 \
                and old.run_id == f"arena:{doc.sha256}":
            continue
        items.append(score_service.ScoreInput(stage=stage_id, team=team, source=source, value=value, stderr=stderr,
                                              rater="arena", run_id=f"arena:{doc.sha256}", evidence=evidence))
    if items:
        version = programs.for_writing(session, loaded, actor).version
        score_service.add(session, version, loaded.program, items, actor, at=at)
    return result


def ctx_rounds(loaded: LoadedProgram, stage_id: str) -> int:
    arena = loaded.program.stage(stage_id).arena
    return arena.bootstrap if arena else 0
