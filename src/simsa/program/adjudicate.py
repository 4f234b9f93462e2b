"""Stage adjudication: points, gates, ranking with declared tie-breakers, the cut, and a rationale per team.

Pure logic: it takes the program, the recorded scores and gate results as plain objects and returns a
`Decision`. The same evaluation function (`Evaluator.evaluate`) scores the real inputs and every perturbed input
of the robustness analysis, so the analysis can never disagree with the decision about what the rules are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from simsa.errors import DataMissingError
from simsa.program.gates import GateOutcome, licence_gate, min_score_gate
from simsa.program.grades import Grade, refusal
from simsa.program.normalise import fractions
from simsa.program.schema import Criterion, Program, Stage, Team


@dataclass(frozen=True)
class SourceScore:
    """The current value of one score source for one team, aggregated over raters/runs."""

    value: float
    stderr: float | None = None
    n: int = 1
    example: bool = False
    score_ids: tuple[int, ...] = ()
    grade: Grade = "declared"


@dataclass(frozen=True)
class Tie:
    """How a team level on points with a neighbour was ordered, as data the explanation words per language.

    how: "criterion" (separated by `criterion`'s points: `points` = (this team's, the other's)),
    "team_order", "lot", or "shared" (no tie-breaker separated them).
    """

    other: int
    total: float
    how: str
    criterion: str | None = None
    points: tuple[float, float] | None = None


@dataclass
class Outcome:
    """What the rules make of one set of inputs (real or perturbed)."""

    totals: np.ndarray            # (T,) rounded totals
    node_points: np.ndarray       # (T, N) rounded points per criterion node
    rank: np.ndarray              # (T,) competition rank over all teams, 1 = best
    order: np.ndarray             # team indices best first
    pool_rank: np.ndarray         # (T,) rank within the ranking pool (0 when outside the pool)
    gate_pass: np.ndarray         # (T,) bool
    advanced: np.ndarray          # (T,) bool
    below_min: np.ndarray         # (T,) bool
    limit: int | None             # last pool rank that advances on points
    tie_notes: dict[int, str] = field(default_factory=dict)
    ties: dict[int, Tie] = field(default_factory=dict)


class Evaluator:
    """Evaluates a stage's rules on score arrays; built once per decision and reused for every resample."""

    def __init__(self, program: Program, stage: Stage, teams: list[Team]) -> None:
        self.program = program
        self.stage = stage
        self.teams = teams
        self.nodes: list[tuple[Criterion, int, str | None]] = list(stage.walk())
        self.node_ids = [c.id for c, _, _ in self.nodes]
        self.leaves = [c for c, _, _ in self.nodes if c.is_leaf]
        self.top_ids = [c.id for c in stage.criteria]
        # leaf → node aggregation matrix: a node's points are the sum of its descendant leaves' points
        index = {cid: i for i, cid in enumerate(self.node_ids)}
        parent = {c.id: p for c, _, p in self.nodes}
        self.aggregate = np.zeros((len(self.leaves), len(self.nodes)))
        self.leaf_top = np.zeros(len(self.leaves), dtype=int)
        for li, leaf in enumerate(self.leaves):
            cur: str | None = leaf.id
            while cur is not None:
                self.aggregate[li, index[cur]] = 1.0
                if parent[cur] is None:
                    self.leaf_top[li] = self.top_ids.index(cur)
                cur = parent[cur]
        self.leaf_points = np.array([c.points for c in self.leaves], dtype=float)
        self.team_order = np.arange(len(teams))
        self.lot = np.array([int(hashlib.sha256(f"{program.program.id}:{stage.id}:{t.id}".encode()).hexdigest()[:15],
                                 16) for t in teams])

    def points(self, raw: np.ndarray, top_weights: np.ndarray | None = None) -> np.ndarray:
        """Unrounded points per node, shape (..., T, N), from raw leaf scores (..., T, L) (NaN = missing)."""
        fr = np.stack([fractions(leaf, raw[..., :, li]) for li, leaf in enumerate(self.leaves)], axis=-1)
        leaf_pts = fr * self.leaf_points
        if top_weights is not None:
            leaf_pts = leaf_pts * top_weights[self.leaf_top]
        return leaf_pts @ self.aggregate

    def evaluate(self, node_points: np.ndarray, gate_pass: np.ndarray) -> Outcome:
        """Rank and cut one set of node points (T, N) given which teams passed every gate."""
        prec = self.stage.precision
        pts = np.round(node_points, prec)
        top_idx = [self.node_ids.index(c) for c in self.top_ids]
        totals = np.round(node_points[:, top_idx].sum(axis=1), prec)
        keys: list[np.ndarray] = []  # most significant last for lexsort
        for tb in reversed(self.stage.tie_breakers):
            if tb.startswith("criterion:"):
                keys.append(-pts[:, self.node_ids.index(tb.split(":", 1)[1])])
            elif tb == "team_order":
                keys.append(self.team_order)
            else:
                keys.append(self.lot)
        keys.append(-totals)
        order = np.lexsort(keys) if keys else np.argsort(-totals, kind="stable")
        signature = np.stack([k for k in reversed(keys)], axis=1)
        rank = np.zeros(len(self.teams), dtype=int)
        for pos, ti in enumerate(order):
            if pos > 0 and np.array_equal(signature[ti], signature[order[pos - 1]]):
                rank[ti] = rank[order[pos - 1]]
            else:
                rank[ti] = pos + 1
        rule = self.stage.elimination
        in_pool = np.ones(len(self.teams), dtype=bool) if rule.ranking_pool == "all" else gate_pass.copy()
        pool_order = [ti for ti in order if in_pool[ti]]
        pool_rank = np.zeros(len(self.teams), dtype=int)
        for pos, ti in enumerate(pool_order):
            prev = pool_order[pos - 1] if pos else None
            same = prev is not None and np.array_equal(signature[ti], signature[prev])
            pool_rank[ti] = pool_rank[prev] if same else pos + 1
        size = len(pool_order)
        limit: int | None = None
        if rule.advance_best is not None:
            limit = rule.advance_best
        if rule.cut_lowest is not None:
            limit = min(limit, size - rule.cut_lowest) if limit is not None else size - rule.cut_lowest
        within = np.ones(len(self.teams), dtype=bool)
        if limit is not None:
            for ti in pool_order:
                group = int(np.sum([pool_rank[o] == pool_rank[ti] for o in pool_order]))
                last = pool_rank[ti] + (group - 1 if rule.tie_at_cut == "eliminate_all" else 0)
                within[ti] = last <= limit
        below = (totals < rule.min_total) if rule.min_total is not None else np.zeros(len(self.teams), dtype=bool)
        advanced = gate_pass & within & ~below & in_pool
        return Outcome(totals=totals, node_points=pts, rank=rank, order=order, pool_rank=pool_rank,
                       gate_pass=gate_pass, advanced=advanced, below_min=below, limit=limit)


@dataclass
class Decision:
    """A stage decision and everything needed to explain it."""

    program: Program
    stage: Stage
    teams: list[Team]
    scores: dict[str, dict[str, SourceScore]]
    gates: dict[str, dict[str, GateOutcome]]
    evaluator: Evaluator
    outcome: Outcome
    raw: np.ndarray                      # (T, L) raw leaf scores, NaN where missing-as-zero
    unrounded: np.ndarray                # (T, N)
    robustness: dict = field(default_factory=dict)

    @property
    def advanced_ids(self) -> list[str]:
        return [self.teams[i].id for i in self.outcome.order if self.outcome.advanced[i]]

    @property
    def eliminated_ids(self) -> list[str]:
        return [self.teams[i].id for i in self.outcome.order if not self.outcome.advanced[i]]

    @property
    def example_data(self) -> bool:
        return any(s.example for per in self.scores.values() for s in per.values()) or any(
            g.example for per in self.gates.values() for g in per.values())


def participants(program: Program, stage_id: str, previous_title_holders: list[str] | None) -> list[Team]:
    """Teams competing in a stage: title holders after the previous stage plus teams that join at this one."""
    idx = program.stage_index(stage_id)
    out = []
    for team in program.teams:
        joins = program.stage_index(team.joins_at) if team.joins_at else 0
        if joins == idx or (joins < idx and previous_title_holders is not None and team.id in previous_title_holders):
            out.append(team)
    if idx > 0 and previous_title_holders is None:
        prev = program.stages[idx - 1].id
        raise DataMissingError(f"stage {stage_id!r} follows {prev!r}, which has no decision yet; "
                               f"decide {prev!r} first")
    return out


def evaluate_gates(stage: Stage, teams: list[Team], scores: dict[str, dict[str, SourceScore]],
                   recorded: dict[str, dict[str, GateOutcome]]) -> dict[str, dict[str, GateOutcome]]:
    """Gate outcomes per team; missing recorded results or gate scores refuse the decision (never guessed)."""
    out: dict[str, dict[str, GateOutcome]] = {}
    missing: list[str] = []
    refused: list[str] = []
    for team in teams:
        per: dict[str, GateOutcome] = {}
        for gate in stage.gates:
            if gate.kind == "licence":
                per[gate.id] = licence_gate(gate, team)
            elif gate.kind == "min_score":
                score = scores.get(team.id, {}).get(gate.source or "")
                if score is None:
                    missing.append(f"score {gate.source} of team {team.id} (gate {gate.id})")
                    continue
                per[gate.id] = min_score_gate(gate, score.value, score.grade)
            else:
                result = recorded.get(team.id, {}).get(gate.id)
                if result is None:
                    missing.append(f"gate {gate.id} result of team {team.id}")
                    continue
                per[gate.id] = result
            weak = _weak_evidence(gate.id, team.id, per[gate.id], gate.min_grade)
            if weak is not None:
                refused.append(weak)
        out[team.id] = per
    if missing:
        raise DataMissingError(f"cannot decide stage {stage.id!r}: missing {_summarise(missing)} "
                               "(record them with `simsa gate record` / `simsa score add`)")
    if refused:
        raise DataMissingError(f"cannot decide stage {stage.id!r}: {_summarise(refused)} (record the result on "
                               "stronger evidence, or an admin's reason with `simsa gate record --override-reason`)")
    return out


def _weak_evidence(gate_id: str, team_id: str, outcome: GateOutcome, minimum: Grade | None) -> str | None:
    """Why a gate outcome cannot count as it stands: below the gate's minimum grade, or a failure on heuristic
    evidence only — unless an admin's (or the programme's) reason stands on the record."""
    if outcome.override_reason:
        return None
    return refusal(passed=outcome.passed, grade=outcome.grade, minimum=minimum,
                   what=f"gate {gate_id} of team {team_id}")


def _summarise(items: list[str], most: int = 4) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def raw_matrix(evaluator: Evaluator, scores: dict[str, dict[str, SourceScore]]) -> np.ndarray:
    """(T, L) raw leaf scores; a missing score is an error unless the criterion counts it as zero (NaN)."""
    raw = np.full((len(evaluator.teams), len(evaluator.leaves)), np.nan)
    missing: list[str] = []
    for ti, team in enumerate(evaluator.teams):
        for li, leaf in enumerate(evaluator.leaves):
            score = scores.get(team.id, {}).get(leaf.source or "")
            if score is not None:
                raw[ti, li] = score.value
            elif leaf.missing == "error":
                missing.append(f"{leaf.source} of team {team.id}")
    if missing:
        raise DataMissingError(f"cannot decide stage {evaluator.stage.id!r}: no score for {_summarise(missing)}")
    return raw


def decide(program: Program, stage_id: str, scores: dict[str, dict[str, SourceScore]],
           recorded_gates: dict[str, dict[str, GateOutcome]],
           previous_title_holders: list[str] | None = None) -> Decision:
    """Apply a stage's rules to the current scores and gate results."""
    stage = program.stage(stage_id)
    teams = participants(program, stage_id, previous_title_holders)
    if not teams:
        raise DataMissingError(f"stage {stage_id!r} has no participating teams")
    evaluator = Evaluator(program, stage, teams)
    raw = raw_matrix(evaluator, scores)
    gates = evaluate_gates(stage, teams, scores, recorded_gates)
    gate_pass = np.array([all(g.passed for g in gates[t.id].values()) for t in teams], dtype=bool)
    unrounded = evaluator.points(raw)
    outcome = evaluator.evaluate(unrounded, gate_pass)
    _note_ties(evaluator, outcome)
    return Decision(program=program, stage=stage, teams=teams, scores=scores, gates=gates, evaluator=evaluator,
                    outcome=outcome, raw=raw, unrounded=unrounded)


def _note_ties(ev: Evaluator, out: Outcome) -> None:
    """Explain, for teams level on points with a neighbour, which tie-breaker separated them."""
    order = list(out.order)
    for pos in range(1, len(order)):
        a, b = order[pos - 1], order[pos]
        if out.totals[a] != out.totals[b]:
            continue
        how = "not separated by any tie-breaker; rank shared"
        kind, cid, pts = "shared", None, None
        for tb in ev.stage.tie_breakers:
            if tb.startswith("criterion:"):
                cid = tb.split(":", 1)[1]
                ci = ev.node_ids.index(cid)
                pa, pb = out.node_points[a, ci], out.node_points[b, ci]
                if pa != pb:
                    how = f"ordered by {cid} points ({pa:g} vs {pb:g})"
                    kind, pts = "criterion", (float(pa), float(pb))
                    break
                cid = None
            elif tb == "team_order":
                how = "ordered by team order in the program file"
                kind = "team_order"
                break
            else:
                how = "ordered by the declared lot"
                kind = "lot"
                break
        note = f"tied on {out.totals[a]:g} points with {{other}}; {how}"
        out.tie_notes[int(a)] = note.format(other=ev.teams[b].id)
        out.tie_notes[int(b)] = note.format(other=ev.teams[a].id)
        total = float(out.totals[a])
        out.ties[int(a)] = Tie(other=int(b), total=total, how=kind, criterion=cid, points=pts)
        out.ties[int(b)] = Tie(other=int(a), total=total, how=kind, criterion=cid,
                               points=(pts[1], pts[0]) if pts else None)
