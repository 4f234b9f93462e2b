"""How fragile is a decision? Two views, both re-running the exact rules of the decision:

* resampling — every score with a standard error is redrawn from Normal(value, se) (clipped to its declared
  range), and the share of draws whose set of advancing teams differs is reported, overall and per team;
* weight sensitivity — for each top-level category, the smallest increase and decrease of its weight (other
  categories rescaled so the total stays the same) that changes who advances. Totals are linear in the weight,
  so the only places the decision can change are where two teams' totals cross or a total crosses the minimum;
  those candidate points are computed exactly and each is checked by re-running the rules just past it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsa.program.adjudicate import Decision


def _gate_pass_for(decision: Decision, raw_sources: dict[str, np.ndarray]) -> np.ndarray:
    """Gate pass per team and draw (D, T); min_score gates follow their resampled source."""
    ev = decision.evaluator
    draws = next(iter(raw_sources.values())).shape[0] if raw_sources else 1
    passed = np.ones((draws, len(ev.teams)), dtype=bool)
    for ti, team in enumerate(ev.teams):
        for gate in ev.stage.gates:
            outcome = decision.gates[team.id][gate.id]
            if gate.kind == "min_score" and gate.source in raw_sources:
                passed[:, ti] &= raw_sources[gate.source][:, ti] >= (gate.threshold or 0.0)
            else:
                passed[:, ti] &= outcome.passed
    return passed


def resample(decision: Decision, draws: int, seed: int) -> dict:
    """Monte Carlo probability that the decision (set of advancing teams) changes under score uncertainty."""
    ev = decision.evaluator
    teams = ev.teams
    base_adv = decision.outcome.advanced
    base_rank = decision.outcome.rank
    sources = list(dict.fromkeys([leaf.source for leaf in ev.leaves] +
                                 [g.source for g in ev.stage.gates if g.kind == "min_score"]))
    with_se = 0
    without_se = 0
    for team in teams:
        for src in sources:
            s = decision.scores.get(team.id, {}).get(src or "")
            if s is None:
                continue
            if s.stderr and s.stderr > 0:
                with_se += 1
            else:
                without_se += 1
    result: dict[str, Any] = {"draws": draws, "seed": seed, "sources_with_uncertainty": with_se,
                              "sources_without_uncertainty": without_se}
    if draws == 0 or with_se == 0:
        result.update({
            "p_decision_changes": 0.0,
            "teams": {t.id: {"p_status_flip": 0.0, "p_rank_change": 0.0} for t in teams},
            "note": "no recorded score carries a standard error, so resampling cannot move the decision"
            if with_se == 0 else "resampling disabled (draws = 0)",
        })
        return result
    rng = np.random.default_rng(seed)
    sampled: dict[str, np.ndarray] = {}
    ranges = {leaf.source: (leaf.raw_range or ((0.0, 1.0) if leaf.norm == "absolute" else None))
              for leaf in ev.leaves}
    for src in sources:
        col = np.full((draws, len(teams)), np.nan)
        for ti, team in enumerate(teams):
            s = decision.scores.get(team.id, {}).get(src or "")
            if s is None:
                continue
            se = s.stderr or 0.0
            col[:, ti] = s.value + (rng.standard_normal(draws) * se if se > 0 else 0.0)
        bounds = ranges.get(src)
        if bounds is not None:
            col = np.clip(col, bounds[0], bounds[1])
        sampled[src or ""] = col
    raw = np.stack([sampled[leaf.source or ""] for leaf in ev.leaves], axis=-1)  # (D, T, L)
    points = ev.points(raw)
    passes = _gate_pass_for(decision, sampled)
    changed = 0
    flips = np.zeros(len(teams))
    rank_moves = np.zeros(len(teams))
    for d in range(draws):
        out = ev.evaluate(points[d], passes[d])
        diff = out.advanced != base_adv
        changed += bool(diff.any())
        flips += diff
        rank_moves += out.rank != base_rank
    result.update({
        "p_decision_changes": changed / draws,
        "teams": {t.id: {"p_status_flip": float(flips[i] / draws), "p_rank_change": float(rank_moves[i] / draws)}
                  for i, t in enumerate(teams)},
        "note": "scores without a standard error are held fixed; recorded gate results are held fixed",
    })
    return result


def _weights_for(k: int, u: float, w: np.ndarray) -> np.ndarray:
    """Scale category k by u and the others so that the total of all weights is unchanged."""
    total = w.sum()
    rest = total - w[k]
    factor = (total - w[k] * u) / rest if rest > 0 else 1.0
    out = np.full_like(w, factor, dtype=float)
    out[k] = u
    return out


def weight_sensitivity(decision: Decision, max_pct: float) -> dict:
    """Smallest single-category weight change (in %) that changes who advances, per category and direction."""
    ev = decision.evaluator
    w = np.array([c.points for c in ev.stage.criteria], dtype=float)
    top_idx = [ev.node_ids.index(c) for c in ev.top_ids]
    cat_pts = decision.unrounded[:, top_idx]
    categories = []
    per_team: dict[str, float] = {}
    for k, cid in enumerate(ev.top_ids):
        entry: dict = {"criterion": cid, "increase_pct": None, "decrease_pct": None, "flips": []}
        if len(w) >= 2:
            crossings = _crossings(cat_pts, w, k, ev.stage.elimination.min_total)
            bounds = {1: min(1 + max_pct / 100.0, w.sum() / w[k]), -1: max(0.0, 1 - max_pct / 100.0)}
            best: tuple[float, list[str]] | None = None
            for direction, key in ((1, "increase_pct"), (-1, "decrease_pct")):
                hit = _first_change(decision, w, k, crossings, direction, bounds[direction])
                if hit is None:
                    continue
                pct, flipped = hit
                entry[key] = pct
                for tid in flipped:
                    per_team[tid] = min(per_team.get(tid, np.inf), abs(pct))
                if best is None or abs(pct) < abs(best[0]):
                    best = (pct, flipped)
            entry["flips"] = best[1] if best else []
        categories.append(entry)
    found = [abs(v) for c in categories for v in (c["increase_pct"], c["decrease_pct"]) if v is not None]
    return {
        "categories": categories,
        "min_abs_pct": min(found) if found else None,
        "searched_up_to_pct": max_pct,
        "per_team_min_pct": {tid: float(v) for tid, v in per_team.items()},
        "method": "one top-level category's weight scaled by (1 + change), the others rescaled to keep the "
                  "total; exact crossing points of team totals (and of the minimum total) checked by re-running "
                  "the stage rules between consecutive crossings",
    }


def _first_change(decision: Decision, w: np.ndarray, k: int, crossings: list[float], direction: int,
                  bound: float) -> tuple[float, list[str]] | None:
    """Walk the crossing points away from u = 1; return (% change, flipped teams) at the first that matters."""
    ev = decision.evaluator
    base = decision.outcome.advanced
    ahead = sorted({u for u in crossings if (u - 1) * direction > 1e-12 and (bound - u) * direction >= 0},
                   reverse=direction < 0)
    stops = [*ahead, bound]
    for i, u in enumerate(ahead):
        probe = (u + stops[i + 1]) / 2 if abs(stops[i + 1] - u) > 1e-12 else u + direction * 1e-9
        out = ev.evaluate(ev.points(decision.raw, _weights_for(k, probe, w)), decision.outcome.gate_pass)
        diff = out.advanced != base
        if diff.any():
            return round((u - 1) * 100, 2), [ev.teams[t].id for t in np.nonzero(diff)[0]]
    return None


def _crossings(cat_pts: np.ndarray, w: np.ndarray, k: int, min_total: float | None) -> list[float]:
    """Multipliers u of category k's weight at which two totals cross, or a total crosses min_total."""
    total_w = w.sum()
    rest_w = total_w - w[k]
    frac = cat_pts / w  # (T, K) share of each category earned
    # total(u) = u*w_k*f_k + c(u) * R, c(u) = (W - w_k u)/(W - w_k), R = sum_{j != k} w_j f_j
    a = w[k] * frac[:, k]
    r = (frac * w).sum(axis=1) - a
    slope = a - r * w[k] / rest_w
    const = r * total_w / rest_w
    out: list[float] = []
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            ds = slope[i] - slope[j]
            if abs(ds) > 1e-15:
                out.append(float(-(const[i] - const[j]) / ds))
        if min_total is not None and abs(slope[i]) > 1e-15:
            out.append(float((min_total - const[i]) / slope[i]))
    return [u for u in out if np.isfinite(u) and u >= 0]
