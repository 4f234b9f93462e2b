"""Summaries of a judge run: means or win rates overall, per category and per turn, with a bootstrap interval over
questions, counts of everything that went wrong, and how far the judges agree.

The bootstrap resamples questions, not items: the turns of one question share the question's difficulty, so
treating them as independent would make the interval too narrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from simsa.bench.judge.judging import rescale
from simsa.bench.judge.records import ItemRecord, PairJudgement, RubricJudgement

BOOTSTRAP_RESAMPLES = 1000


def bootstrap_ci(groups: Sequence[Sequence[float]], resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of the item mean, resampling groups (questions) with replacement; None with fewer
    than two groups."""
    groups = [g for g in groups if len(g)]
    if len(groups) < 2 or resamples < 1:
        return None
    sums = np.array([float(sum(g)) for g in groups])
    counts = np.array([len(g) for g in groups], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(resamples, len(groups)))
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def spearman_agreement(columns: dict[str, list[float | None]]) -> dict[str, Any] | None:
    """Mean pairwise Spearman correlation between judges' scores over the items both scored (at least 3, and not
    constant for either judge); None with fewer than two judges."""
    from scipy.stats import spearmanr

    if len(columns) < 2:
        return None
    pairs: dict[str, float | None] = {}
    for (a, xs), (b, ys) in combinations(columns.items(), 2):
        both = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
        value = None
        if len(both) >= 3 and len({x for x, _ in both}) > 1 and len({y for _, y in both}) > 1:
            value = float(spearmanr([x for x, _ in both], [y for _, y in both]).statistic)
        pairs[f"{a} ~ {b}"] = value
    valid = [v for v in pairs.values() if v is not None]
    return {"method": "spearman", "value": sum(valid) / len(valid) if valid else None, "pairs": pairs}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _by(items: Sequence[ItemRecord], key: str) -> dict[str, list[ItemRecord]]:
    out: dict[str, list[ItemRecord]] = {}
    for item in items:
        out.setdefault(str(getattr(item, key)), []).append(item)
    return out


def _rubric_block(items: Sequence[ItemRecord]) -> dict[str, Any]:
    scores = [i.score for i in items if i.score is not None]
    mean = _mean(scores)
    return {"n": len(scores), "mean": mean, "mean_0_1": rescale(mean) if mean is not None else None}


def _pair_block(items: Sequence[ItemRecord]) -> dict[str, Any]:
    outcomes = [i.outcome for i in items if i.outcome is not None]
    wins, losses, ties = outcomes.count("win"), outcomes.count("loss"), outcomes.count("tie")
    rate = (wins + 0.5 * ties) / len(outcomes) if outcomes else None
    return {"n": len(outcomes), "win_rate": rate, "wins": wins, "losses": losses, "ties": ties}


def _groups(items: Sequence[ItemRecord]) -> list[list[float]]:
    return [[i.score for i in group if i.score is not None] for group in _by(items, "question_id").values()]


def summarise(mode: str, items: Sequence[ItemRecord], judges: Sequence[str], resamples: int = BOOTSTRAP_RESAMPLES,
              seed: int = 0) -> dict[str, Any]:
    """The run's summary (see the module docstring); `judges` are the judge labels in order."""
    block = _rubric_block if mode == "rubric" else _pair_block
    overall = block(items)
    ci = bootstrap_ci(_groups(items), resamples, seed)
    calls = [j for i in items for j in i.judgements]
    counts: dict[str, Any] = {
        "questions": len({i.question_id for i in items}),
        "items": len(items),
        "scored_items": overall["n"],
        "unscored_items": len(items) - overall["n"],
        "judge_verdicts": len(calls) * (2 if mode == "pairwise" else 1),
        "language_failures": sum(1 for i in items if not i.answer.language.passed),
        "penalised_items": sum(1 for i in items if i.penalty),
        "truncated_answers": sum(1 for i in items if "truncated_reasoning" in i.answer.flags),
    }
    summary: dict[str, Any] = {"mode": mode, **overall}
    if mode == "rubric":
        summary["scale"] = [1, 10]
        summary["ci95"] = list(ci) if ci else None
        summary["ci95_0_1"] = [rescale(ci[0]), rescale(ci[1])] if ci else None
        counts["unparseable_verdicts"] = sum(1 for j in calls if isinstance(j, RubricJudgement) and j.score is None)
        columns = {name: [next((j.score for j in i.judgements if isinstance(j, RubricJudgement) and j.judge == name),
                               None) for i in items]
                   for name in judges}
        summary["judge_agreement"] = spearman_agreement(columns)
    else:
        summary["ci95"] = list(ci) if ci else None
        pair_calls = [j for j in calls if isinstance(j, PairJudgement)]
        counts["unparseable_verdicts"] = sum((j.verdict_ab is None) + (j.verdict_ba is None) for j in pair_calls)
        counts["inconsistent_swaps"] = sum(1 for j in pair_calls if j.inconsistent)
        counts["baseline_language_failures"] = sum(
            1 for i in items if i.baseline_answer is not None and not i.baseline_answer.language.passed)
        summary["judge_agreement"] = _unanimity(items) if len(judges) >= 2 else None
    summary["by_category"] = {k: block(v) for k, v in _by(items, "category").items()}
    summary["by_turn"] = {k: block(v) for k, v in _by(items, "turn").items()}
    summary["counts"] = counts
    summary["bootstrap"] = {"unit": "question", "resamples": resamples, "seed": seed, "level": 0.95}
    return summary


def _unanimity(items: Sequence[ItemRecord]) -> dict[str, Any]:
    """Share of items on which every judge that voted gave the same vote (items with at least two votes)."""
    eligible = unanimous = 0
    for item in items:
        votes = [j.vote for j in item.judgements if isinstance(j, PairJudgement) and j.vote is not None]
        if len(votes) >= 2:
            eligible += 1
            unanimous += len(set(votes)) == 1
    return {"method": "unanimous_share", "value": unanimous / eligible if eligible else None, "items": eligible}
