"""What the secretariat's arena pages show, as typed read models, and the two writes that need more than one
service call: freezing (the entrants are asked who they are outside any transaction) and an exclusion decision
(its evidence is computed here from the stored votes, never taken from the form).

Only the secretariat sees these views: they name the entrants of every vote, the raters, and the live ranking,
which nobody else sees before the stage is decided.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from simsa.arena.anomaly import RaterTest, anomalous_raters
from simsa.arena.schedule import Pick, ScheduleCounts
from simsa.arena.votes import Votes
from simsa.errors import InputError, NotFound
from simsa.services import arena, decision_records
from simsa.services.arena import ArenaContext, Exclusion, Segment, VoteRecord
from simsa.store.db import Store


def _pick(lang: str, en: str, ko: str | None) -> str:
    return ko if lang == "ko" and ko else en


# --------------------------------------------------------------------------- the list of arenas


@dataclass(frozen=True)
class ArenaSummary:
    key: str
    program_name: str
    stage: str
    stage_name: str
    opens: dt.datetime
    closes: dt.datetime
    timezone: str
    segment: int | None
    votes_total: int
    votes_counted: int
    raters: int
    decided: bool

    @property
    def url(self) -> str:
        return f"/admin/arenas/{self.key}/{self.stage}"


def arena_summaries(session: Session, lang: str) -> list[ArenaSummary]:
    out = []
    for ctx in arena.arenas(session):
        segment = arena.current_segment(session, ctx)
        records = [r for r in arena.vote_records(session, ctx) if segment and r.segment == segment.number]
        program = ctx.loaded.program.program
        out.append(ArenaSummary(
            key=ctx.key, program_name=_pick(lang, program.name, program.name_ko), stage=ctx.stage.id,
            stage_name=_pick(lang, ctx.stage.name, ctx.stage.name_ko), opens=ctx.arena.opens,
            closes=ctx.arena.closes, timezone=program.timezone, segment=segment.number if segment else None,
            votes_total=len(records), votes_counted=sum(1 for r in records if r.counts),
            raters=len({r.rater for r in records}),
            decided=decision_records.effective(session, ctx.key, ctx.stage.id) is not None))
    return out


# --------------------------------------------------------------------------- one arena


@dataclass(frozen=True)
class SegmentView:
    number: int
    manifest_json: str
    manifest_sha256: str
    reason: str
    opened_at: dt.datetime
    opened_by: str
    votes_counted: int


@dataclass(frozen=True)
class PairRow:
    a: str
    b: str
    votes: int
    quota: int
    left_a: int
    left_b: int
    by_category: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class SurprisingRow:
    vote_id: int
    model_a: str
    model_b: str
    voted: str
    probability: float
    history: int


@dataclass(frozen=True)
class RaterRow:
    """A rater's votes in the current segment, the anomaly test's evidence, and the decision in force."""

    rater: str
    votes: int
    counted: int
    void: int
    gold_pass: int
    gold_fail: int
    statistic: float | None
    p_value: float | None
    tested: int
    flagged: bool
    surprising: tuple[SurprisingRow, ...]
    excluded: str | None


@dataclass(frozen=True)
class IdentityCheck:
    """The entrants' identities read now, against the current segment's."""

    identities: Mapping[str, Mapping[str, Any]]
    changed: tuple[str, ...]
    frozen: bool


@dataclass(frozen=True)
class ArenaAdminPage:
    key: str
    program_name: str
    stage: str
    stage_name: str
    timezone: str
    opens: dt.datetime
    closes: dt.datetime
    teams: tuple[str, ...]
    categories: tuple[str, ...]
    quota: int
    daily_cap: int
    min_dwell_seconds: float
    segments: tuple[SegmentView, ...]
    pairs: tuple[PairRow, ...]
    max_left_right_difference: int
    max_category_spread: int
    all_quotas_met: bool
    by_status: tuple[tuple[str, int], ...]
    by_reason: tuple[tuple[str, int], ...]
    raters: tuple[RaterRow, ...]
    exclusions: tuple[Exclusion, ...]
    decided: bool
    result: Any = None  # arena_results.ArenaResult when the ranking was computed

    @property
    def current(self) -> SegmentView | None:
        return self.segments[-1] if self.segments else None

    @property
    def url(self) -> str:
        return f"/admin/arenas/{self.key}/{self.stage}"


def _segment_view(seg: Segment, records: Sequence[VoteRecord]) -> SegmentView:
    return SegmentView(seg.number, json.dumps(dict(seg.manifest), indent=2, ensure_ascii=False, sort_keys=True),
                       seg.manifest_sha256, seg.reason, seg.opened_at, seg.opened_by,
                       sum(1 for r in records if r.segment == seg.number and r.counts))


def _pair_rows(counted: Sequence[VoteRecord], ctx: ArenaContext) -> tuple[tuple[PairRow, ...], Any]:
    counts = ScheduleCounts()
    for r in counted:
        counts.add(Pick(left=r.left, right=r.right, category=r.category))
    report = counts.balance_report(ctx.arena.teams, ctx.arena.votes_per_pair, ctx.arena.categories)
    rows = tuple(PairRow(p.a, p.b, p.votes, p.quota, p.left_a, p.left_b, p.by_category) for p in report.pairs)
    return rows, report


def tested_votes(records: Sequence[VoteRecord]) -> list[VoteRecord]:
    """The votes the anomaly test reads: the segment's entrant votes stored as counted (excluded ones too, so an
    exclusion does not hide the evidence that led to it)."""
    return [r for r in records if r.kind == arena.ENTRANTS and r.status == "counted"]


def rater_tests(tested: Sequence[VoteRecord], teams: Sequence[str]) -> dict[str, RaterTest]:
    if len(tested) < 2:
        return {}
    votes = Votes.from_rows([(r.left, r.right, r.winner) for r in tested], models=sorted(teams))
    return {t.rater: t for t in anomalous_raters(votes, [r.rater for r in tested])}


def rater_rows(in_segment: Sequence[VoteRecord], ctx: ArenaContext, by_rater: Mapping[str, str]) -> list[RaterRow]:
    """Every rater of the segment with their counts, the anomaly test and its most surprising votes (by vote
    number), flagged raters first."""
    tested = tested_votes(in_segment)
    tests = rater_tests(tested, ctx.arena.teams)
    rows = []
    for name in sorted({r.rater for r in in_segment}):
        mine = [r for r in in_segment if r.rater == name]
        test = tests.get(name)
        surprising: tuple[SurprisingRow, ...] = ()
        if test is not None:
            surprising = tuple(SurprisingRow(tested[e.index].vote_id, e.model_a, e.model_b, e.voted, e.probability,
                                             e.history) for e in test.evidence if 0 <= e.index < len(tested))
        rows.append(RaterRow(
            rater=name, votes=len(mine), counted=sum(1 for r in mine if r.counts),
            void=sum(1 for r in mine if r.status == "void"),
            gold_pass=sum(1 for r in mine if r.status == "gold_pass"),
            gold_fail=sum(1 for r in mine if r.status == "gold_fail"),
            statistic=test.statistic if test else None, p_value=test.p_value if test else None,
            tested=test.votes if test else 0, flagged=bool(test and test.flagged), surprising=surprising,
            excluded=by_rater.get(name)))
    rows.sort(key=lambda r: (not r.flagged, -(r.statistic or 0.0), r.rater))
    return rows


def _reasons(in_segment: Sequence[VoteRecord]) -> tuple[tuple[str, int], ...]:
    reasons: Counter[str] = Counter()
    for r in in_segment:
        if r.kind != arena.ENTRANTS:
            continue
        if r.status == "void":
            reasons[r.reason or "void"] += 1
        elif r.excluded is not None:
            reasons[f"excluded by the secretariat: {r.excluded}"] += 1
    return tuple(sorted(reasons.items()))


def arena_admin(session: Session, key: str, stage: str, lang: str, *, ranking: bool = True) -> ArenaAdminPage:
    """Everything the secretariat's page of one arena shows; `ranking` adds the live ranking (bootstrap fits and
    robustness searches: the slow part)."""
    ctx = arena.context(session, key, stage)
    records = arena.vote_records(session, ctx)
    segs = arena.segments(session, ctx)
    current = segs[-1].number if segs else None
    in_segment = [r for r in records if r.segment == current]
    pairs, report = _pair_rows([r for r in in_segment if r.counts], ctx)
    found = arena.exclusions(session, ctx)
    by_rater, _ = arena.excluded_now(found)
    statuses = Counter(r.status for r in in_segment)
    statuses["excluded"] = sum(1 for r in in_segment if r.status == "counted" and r.excluded is not None)
    statuses["counted"] -= statuses["excluded"]
    result = None
    if ranking:
        from simsa.services import arena_results

        result = arena_results.compute(session, ctx)
    program = ctx.loaded.program.program
    return ArenaAdminPage(
        key=ctx.key, program_name=_pick(lang, program.name, program.name_ko), stage=ctx.stage.id,
        stage_name=_pick(lang, ctx.stage.name, ctx.stage.name_ko), timezone=program.timezone,
        opens=ctx.arena.opens, closes=ctx.arena.closes, teams=tuple(ctx.arena.teams),
        categories=tuple(ctx.arena.categories), quota=ctx.arena.votes_per_pair, daily_cap=ctx.arena.daily_cap,
        min_dwell_seconds=ctx.arena.min_dwell_seconds, segments=tuple(_segment_view(s, records) for s in segs),
        pairs=pairs, max_left_right_difference=report.max_left_right_difference,
        max_category_spread=report.max_category_spread, all_quotas_met=report.all_quotas_met,
        by_status=tuple((s, statuses.get(s, 0)) for s in ("counted", "void", "excluded", "gold_pass", "gold_fail")),
        by_reason=_reasons(in_segment), raters=tuple(rater_rows(in_segment, ctx, by_rater)),
        exclusions=tuple(found), decided=decision_records.effective(session, ctx.key, ctx.stage.id) is not None,
        result=result)


# --------------------------------------------------------------------------- writes


def check_entrants(store: Store, key: str, stage: str) -> IdentityCheck:
    """Ask every entrant who it is now and compare with the current segment (writes nothing)."""
    with store.session(readonly=True) as session:
        ctx = arena.context(session, key, stage)
        segment = arena.current_segment(session, ctx)
    identities = arena.read_identities(ctx)
    changed = tuple(arena.changed_entrants(segment, identities)) if segment else ()
    return IdentityCheck(identities, changed, segment is not None)


def freeze_now(store: Store, key: str, stage: str, actor: str, reason: str = "") -> tuple[Segment, bool]:
    """Read the entrants' identities (no transaction held while they answer) and freeze them."""
    with store.session(readonly=True) as session:
        ctx = arena.context(session, key, stage)
    try:
        identities = arena.read_identities(ctx)
    except InputError:
        raise
    except Exception as exc:  # an endpoint that does not answer: say which kind of failure, not a traceback
        raise InputError(f"could not read the entrants' identities ({type(exc).__name__}: {str(exc)[:200]}); "
                         "are their endpoints up?") from None
    with store.session() as session:
        return arena.freeze(session, arena.context(session, key, stage), identities, actor, reason=reason)


def _vote_id(text: str) -> int:
    text = (text or "").strip().lstrip("#")
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise InputError(f"a vote number is a positive whole number, not {text[:20]!r}")
    return int(text)


def decide_exclusion(session: Session, key: str, stage: str, actor: str, *, rater: str = "", vote: str = "",
                     decision: str, reason: str) -> Exclusion:
    """Exclude (or keep) a rater or one vote, with the evidence computed from the stored votes: for a rater the
    anomaly test and attention checks, for a vote the vote itself."""
    ctx = arena.context(session, key, stage)
    rater, vote = (rater or "").strip(), (vote or "").strip()
    if bool(rater) == bool(vote):
        raise InputError("name a rater or a vote")
    records = arena.vote_records(session, ctx)
    evidence: dict[str, Any]
    if vote:
        vote_id = _vote_id(vote)
        found = next((r for r in records if r.vote_id == vote_id), None)
        evidence = {"vote": found.to_dict()} if found else {}
        try:
            return arena.exclude(session, ctx, actor, vote_id=vote_id, decision=decision, reason=reason,
                                 evidence=evidence)
        except NotFound as exc:  # the arena exists; a wrong vote number is a mistyped form, not a missing page
            raise InputError(str(exc)) from None
    segment = arena.current_segment(session, ctx)
    tested = tested_votes([r for r in records if segment is not None and r.segment == segment.number])
    test = rater_tests(tested, ctx.arena.teams).get(rater)
    mine = [r for r in records if r.rater == rater]
    evidence = {"anomaly_test": test.to_dict() if test else None, "votes": len(mine),
                "surprising_votes": [tested[e.index].vote_id for e in test.evidence] if test else [],
                "gold_pass": sum(1 for r in mine if r.status == "gold_pass"),
                "gold_fail": sum(1 for r in mine if r.status == "gold_fail")}
    try:
        return arena.exclude(session, ctx, actor, rater=rater, decision=decision, reason=reason, evidence=evidence)
    except NotFound as exc:
        raise InputError(str(exc)) from None
