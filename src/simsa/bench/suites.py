"""Suites → a 0–1 score with a bootstrap confidence interval → a recorded score that `stage decide` turns into points.

A suite (declared in the program file) names tasks, the metric that counts for each, how that metric is put on
0–1 and its weight. The suite score is the weighted mean of the normalised task metrics. Its uncertainty comes
from the items: each bootstrap draw resamples every task's items (per-item metric values kept by the run) and
recomputes the suite score; a metric that exists only at corpus level (F1, bias scores) is drawn from a normal
distribution with lm-eval's standard error instead. The score's standard error is the spread of the draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsa.errors import InputError
from simsa.program.schema import Program, Suite, SuiteTask

BOOTSTRAP_DRAWS = 2000


def find_suite(program: Program, suite_id: str) -> Suite:
    """The program's suite `suite_id`, or a clear error naming the suites it has."""
    try:
        return program.suite(suite_id)
    except KeyError:
        known = ", ".join(s.id for s in program.suites) or "none"
        raise InputError(f"program {program.program.id!r} has no suite {suite_id!r} (suites: {known})") from None


def runnable_suite(program: Program, suite_id: str) -> Suite:
    """A suite that has tasks to run (an `imported` suite's scores come from `simsa score import`)."""
    suite = find_suite(program, suite_id)
    if suite.imported:
        raise InputError(f"suite {suite_id!r} is imported: its scores are recorded with `simsa score import`, "
                         "not from a benchmark run")
    return suite


def normalise(value: float, task: SuiteTask) -> float:
    """Put one task metric on 0–1 as the suite declares."""
    if task.normalisation == "chance_rescaled":
        chance = float(task.chance or 0.0)
        out = (value - chance) / (1.0 - chance)
    elif task.normalisation == "one_minus":
        out = 1.0 - value
    elif task.normalisation == "one_minus_abs":
        out = 1.0 - abs(value)
    else:
        out = value
    return float(min(1.0, max(0.0, out)))


@dataclass
class TaskEvidence:
    """One task's contribution: the raw metric, its 0–1 value, weight, and where its uncertainty came from."""

    task: str
    metric: str
    raw: float
    normalised: float
    weight: float
    n_items: int
    stderr: float | None
    uncertainty: str  # "items" (bootstrap over per-item values) | "stderr" (normal approximation) | "none"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SuiteScore:
    suite: str
    value: float
    stderr: float
    ci95: tuple[float, float]
    tasks: list[TaskEvidence] = field(default_factory=list)
    draws: int = BOOTSTRAP_DRAWS
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "value": self.value, "stderr": self.stderr, "ci95": list(self.ci95),
                "draws": self.draws, "partial": self.partial, "tasks": [t.to_dict() for t in self.tasks]}


def per_item_values(samples: list[dict[str, Any]], metric: str) -> np.ndarray | None:
    """The metric's per-item numbers from lm-eval's logged samples, when it is a per-item mean metric."""
    values = []
    for sample in samples:
        v = sample.get(metric)
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, int | float) or not math.isfinite(float(v)):
            return None
        values.append(float(v))
    return np.asarray(values) if values else None


def score_suite(suite: Suite, results: dict[str, dict[str, Any]], samples: dict[str, list[dict[str, Any]]],
                seed: int = 0, partial: bool = False, draws: int = BOOTSTRAP_DRAWS) -> SuiteScore:
    """Score a suite from a run's results (task → metric → value) and per-item samples (task → rows)."""
    rng = np.random.default_rng(seed)
    evidence: list[TaskEvidence] = []
    draw_matrix = np.zeros((draws, len(suite.tasks)))
    for col, task in enumerate(suite.tasks):
        metrics = results.get(task.task)
        if metrics is None:
            raise InputError(f"suite {suite.id!r}: the run has no results for task {task.task!r} "
                             f"(it has: {', '.join(sorted(results)) or 'none'})")
        raw = metrics.get(task.metric)
        if not isinstance(raw, int | float) or not math.isfinite(float(raw)):
            raise InputError(f"suite {suite.id!r}: task {task.task!r} has no finite metric {task.metric!r} "
                             f"(metrics: {', '.join(k for k in sorted(metrics) if not k.endswith('_stderr'))})")
        stderr = metrics.get(f"{task.metric}_stderr")
        stderr = float(stderr) if isinstance(stderr, int | float) and math.isfinite(float(stderr)) else None
        items = per_item_values(samples.get(task.task, []), task.metric)
        if items is not None and abs(float(items.mean()) - float(raw)) < 1e-9:
            idx = rng.integers(0, len(items), size=(draws, len(items)))
            raw_draws = items[idx].mean(axis=1)
            source, n_items = "items", len(items)
        elif stderr is not None:
            raw_draws = rng.normal(float(raw), stderr, size=draws)
            source, n_items = "stderr", len(samples.get(task.task, []))
        else:
            raw_draws = np.full(draws, float(raw))
            source, n_items = "none", len(samples.get(task.task, []))
        draw_matrix[:, col] = [normalise(float(v), task) for v in raw_draws]
        evidence.append(TaskEvidence(task.task, task.metric, float(raw), normalise(float(raw), task), task.weight,
                                     n_items, stderr, source))
    weights = np.asarray([t.weight for t in suite.tasks]) / sum(t.weight for t in suite.tasks)
    value = float(sum(e.normalised * w for e, w in zip(evidence, weights, strict=True)))
    suite_draws = draw_matrix @ weights
    low, high = np.percentile(suite_draws, [2.5, 97.5])
    return SuiteScore(suite=suite.id, value=value, stderr=float(suite_draws.std(ddof=1)),
                      ci95=(float(low), float(high)), tasks=evidence, draws=draws, partial=partial)
