"""Turn a `Decision` into the documented JSON shape (docs/decision-json.md) with a rationale per team."""

from __future__ import annotations

import datetime as dt

import numpy as np

from simsa.program.adjudicate import Decision
from simsa.program.decision_schema import DecisionDoc, TeamResult
from simsa.program.robustness import resample, weight_sensitivity
from simsa.program.schema import Team
from simsa.timeutil import as_utc, utc_text

SCHEMA = "simsa.decision/1"


def _fmt(x: float, prec: int) -> str:
    return f"{x:.{prec}f}"


def _names(team: Team) -> tuple[str, str]:
    """A team's display name in English and Korean (the English one where no Korean name is declared)."""
    return team.name, team.name_ko or team.name


def _with(name: str) -> str:
    """`name` with the Korean comitative particle that fits its last syllable (과 after a final consonant)."""
    last = name[-1:] if name else ""
    if "가" <= last <= "힣":
        return name + ("과" if (ord(last) - ord("가")) % 28 else "와")
    return name + "와(과)"


def _reason(decision: Decision, ti: int) -> tuple[str, str]:
    """One-sentence rationale in English and Korean, naming teams and gates as readers know them."""
    ev, out = decision.evaluator, decision.outcome
    team = ev.teams[ti]
    prec = ev.stage.precision
    n = len(ev.teams)
    total = _fmt(out.totals[ti], prec)
    rank = int(out.rank[ti])
    failed = [g for g in ev.stage.gates if not decision.gates[team.id][g.id].passed]
    if failed:
        names = ", ".join(g.name for g in failed)
        names_ko = ", ".join(g.name_ko or g.name for g in failed)
        results = [decision.gates[team.id][g.id] for g in failed]
        evidence = "; ".join(r.evidence for r in results)
        evidence_ko = "; ".join(r.evidence_ko or r.evidence for r in results)
        return (f"Eliminated by gate ({names}): {evidence}. Points (rank {rank} of {n}, {total}) do not count.",
                f"필수 요건 미통과로 탈락 ({names_ko}): {evidence_ko}. 점수({n}팀 중 {rank}위, {total}점)와 무관.")
    if out.below_min[ti]:
        minimum = _fmt(ev.stage.elimination.min_total or 0.0, prec)
        return (f"Eliminated on points: total {total} is below the minimum of {minimum}.",
                f"점수 탈락: 총점 {total}점이 최저 기준 {minimum}점에 미달.")
    pool_rank = int(out.pool_rank[ti])
    if out.advanced[ti]:
        cut = f"within the best {out.limit}" if out.limit is not None else "no points cut applies"
        cut_ko = f"상위 {out.limit}팀 이내" if out.limit is not None else "점수 탈락 기준 없음"
        return (f"Advanced: rank {rank} of {n} with {total} points; passed every gate; {cut}.",
                f"진출: {n}팀 중 {rank}위({total}점), 모든 필수 요건 통과, {cut_ko}.")
    margin = _margin(decision, ti)
    gap = gap_ko = ""
    if margin:
        ahead_en, ahead_ko = _names(ev.teams[margin[1]])
        gap = f"; {_fmt(margin[0], prec)} points behind {ahead_en}"
        gap_ko = f"; {ahead_ko}에 {_fmt(margin[0], prec)}점 뒤짐"
    return (f"Eliminated on points: rank {pool_rank} in the ranking pool with {total} points; only the best "
            f"{out.limit} advance{gap}.",
            f"점수 탈락: 순위 {pool_rank}위({total}점), 상위 {out.limit}팀만 진출{gap_ko}.")


def _tie_note(decision: Decision, ti: int) -> tuple[str, str] | tuple[None, None]:
    """How a tie with a neighbour was broken, in English and Korean, or (None, None) when there was none."""
    ev = decision.evaluator
    tie = decision.outcome.ties.get(ti)
    if tie is None:
        return None, None
    other_en, other_ko = _names(ev.teams[tie.other])
    total = f"{tie.total:g}"
    if tie.how == "criterion" and tie.criterion and tie.points:
        crit = ev.stage.criterion(tie.criterion)
        crit_en, crit_ko = crit.name, crit.name_ko or crit.name
        a, b = (f"{p:g}" for p in tie.points)
        how = (f"ordered by {crit_en} points ({a} vs {b})", f"{crit_ko} 점수로 순위 결정({a} 대 {b})")
    elif tie.how == "team_order":
        how = ("ordered by team order in the program file", "사업 정의 파일의 팀 순서로 순위 결정")
    elif tie.how == "lot":
        how = ("ordered by the declared lot", "사전에 정한 추첨으로 순위 결정")
    else:
        how = ("not separated by any tie-breaker; rank shared", "동점 처리 기준으로도 갈리지 않아 같은 순위")
    return (f"tied on {total} points with {other_en}; {how[0]}",
            f"{_with(other_ko)} {total}점 동점; {how[1]}")


def _margin(decision: Decision, ti: int) -> tuple[float, int] | None:
    """Points between an eliminated team and the lowest-ranked team that advanced on points (and that team)."""
    ev, out = decision.evaluator, decision.outcome
    advancing = [i for i in out.order if out.advanced[i]]
    if not advancing:
        return None
    last = int(advancing[-1])
    return float(np.round(out.totals[last] - out.totals[ti], ev.stage.precision)), last


def fragility(robustness: dict, fragile_above: float) -> dict:
    """Whether the decision is fragile: P(the set of advancing teams changes under score uncertainty) exceeds
    the stage's threshold. Readers see this first, so it is a flag, not a number to interpret."""
    res = robustness.get("resampling") if isinstance(robustness, dict) else None
    p = res.get("p_decision_changes") if isinstance(res, dict) else None
    return {"fragile": p is not None and p > fragile_above, "fragile_above": fragile_above}


def _breakdown(decision: Decision, ti: int) -> dict:
    ev = decision.evaluator
    team = ev.teams[ti]
    out: dict[str, dict] = {}
    leaf_index = {leaf.id: li for li, leaf in enumerate(ev.leaves)}
    for ni, (crit, _, _) in enumerate(ev.nodes):
        entry: dict = {"points": float(decision.outcome.node_points[ti, ni]), "max": float(crit.points)}
        if crit.is_leaf:
            score = decision.scores.get(team.id, {}).get(crit.source or "")
            raw = decision.raw[ti, leaf_index[crit.id]]
            entry.update({
                "raw": None if np.isnan(raw) else float(raw),
                "stderr": score.stderr if score else None,
                "n": score.n if score else 0,
                "normalised": float(decision.unrounded[ti, ni] / crit.points),
                "source": crit.source,
                "score_ids": list(score.score_ids) if score else [],
                "grade": score.grade if score else None,
            })
        out[crit.id] = entry
    return out


def run_robustness(decision: Decision) -> dict:
    """Resampling and weight sensitivity, plus one entry per cut team."""
    ev, out = decision.evaluator, decision.outcome
    cfg = ev.stage.robustness
    seed = cfg.seed if cfg.seed is not None else int(ev.stage.start.strftime("%Y%m%d"))
    res = resample(decision, cfg.draws, seed)
    weights = weight_sensitivity(decision, cfg.max_weight_change_pct)
    per_team_min = weights.pop("per_team_min_pct")
    cuts = []
    for ti in out.order:
        if out.advanced[ti]:
            continue
        team = ev.teams[ti]
        failed = [g.id for g in ev.stage.gates if not decision.gates[team.id][g.id].passed]
        margin = _margin(decision, int(ti))
        entry = {
            "team": team.id,
            "cause": "gate" if failed else "points",
            "margin_points": None if failed or margin is None else margin[0],
            "p_changes": res["teams"][team.id]["p_status_flip"],
            "min_weight_change_pct": None if failed else per_team_min.get(team.id),
        }
        if failed:
            entry["gates_failed"] = failed
        cuts.append(entry)
    return {"resampling": res, "weights": weights, "cuts": cuts}


def appeal_deadline(decided_at: dt.datetime, appeal_days: int, timezone: str) -> dt.date:
    """The last day to appeal: the decision's calendar day in the programme's time zone plus `appeal_days`.

    Days are the programme's days: a decision at 02:00 KST on 16 January is a 16 January decision, even though it
    is still 15 January in UTC.
    """
    from zoneinfo import ZoneInfo

    return as_utc(decided_at).astimezone(ZoneInfo(timezone)).date() + dt.timedelta(days=appeal_days)


def decision_dict(decision: Decision, *, decided_at: dt.datetime, program_sha256: str,
                  decision_id: int | None = None, supersedes: int | None = None,
                  appeal_id: int | None = None, robustness: dict | None = None) -> DecisionDoc:
    """The documented decision object (`simsa.decision/1`; typed: ``decision_schema.DecisionDoc``)."""
    ev, out = decision.evaluator, decision.outcome
    stage, info = ev.stage, ev.program.program
    teams: list[TeamResult] = []
    for ti in out.order:
        team = ev.teams[ti]
        reason, reason_ko = _reason(decision, int(ti))
        tie_break, tie_break_ko = _tie_note(decision, int(ti))
        teams.append({
            "team": team.id, "name": team.name, "name_ko": team.name_ko,
            "total": float(out.totals[ti]), "rank": int(out.rank[ti]),
            "breakdown": _breakdown(decision, int(ti)),
            "gates": {gid: g.to_dict() for gid, g in decision.gates[team.id].items()},
            "status": "advanced" if out.advanced[ti] else "eliminated",
            "reason": reason, "reason_ko": reason_ko,
            "tie_break": tie_break, "tie_break_ko": tie_break_ko,
        })
    deadline = appeal_deadline(decided_at, stage.appeal_days, info.timezone)
    rob = robustness if robustness is not None else run_robustness(decision)
    return {
        "schema": SCHEMA,
        "program": {"id": info.id, "name": info.name, "name_ko": info.name_ko, "sha256": program_sha256},
        "stage": stage.id, "stage_name": stage.name, "stage_name_ko": stage.name_ko,
        "decision_id": decision_id, "supersedes": supersedes, "appeal_id": appeal_id,
        "decided_at": utc_text(decided_at),
        "timezone": info.timezone,
        "appeal_deadline": deadline.isoformat(),
        "example_data": decision.example_data,
        "max_points": stage.max_points,
        "criteria": [{"id": c.id, "name": c.name, "name_ko": c.name_ko, "points": float(c.points),
                      "parent": parent, "depth": depth, "source": c.source,
                      "normalisation": c.norm if c.is_leaf else None}
                     for c, depth, parent in stage.walk()],
        "gate_definitions": [{"id": g.id, "name": g.name, "name_ko": g.name_ko, "kind": g.kind}
                             for g in stage.gates],
        "teams": teams,
        "elimination": stage.elimination.model_dump(),
        "tie_breakers": list(stage.tie_breakers),
        "advanced": decision.advanced_ids,
        "eliminated": decision.eliminated_ids,
        "title_holders": decision.advanced_ids,
        "robustness": {**rob, **fragility(rob, stage.robustness.fragile_above)},
    }
