"""Suites → 0–1 scores with bootstrap CIs → recorded scores that `stage decide` turns into points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simsa.bench.suites import normalise, score_suite
from simsa.errors import InputError
from simsa.program.schema import Suite, SuiteTask


def _suite(*tasks: SuiteTask) -> Suite:
    return Suite(id="s", name="S", tasks=list(tasks))


def test_normalisations() -> None:
    assert normalise(0.5, SuiteTask(task="t", normalisation="chance_rescaled", chance=0.5)) == 0.0
    assert normalise(0.4, SuiteTask(task="t", normalisation="chance_rescaled", chance=0.5)) == 0.0  # below chance
    assert normalise(0.75, SuiteTask(task="t", normalisation="chance_rescaled", chance=0.5)) == pytest.approx(0.5)
    assert normalise(0.7, SuiteTask(task="t", normalisation="chance_rescaled", chance=0.25)) == pytest.approx(0.6)
    assert normalise(0.2, SuiteTask(task="t", normalisation="one_minus")) == pytest.approx(0.8)
    assert normalise(-0.3, SuiteTask(task="t", normalisation="one_minus_abs")) == pytest.approx(0.7)
    assert normalise(1.3, SuiteTask(task="t")) == 1.0
    with pytest.raises(ValueError, match="needs chance"):
        SuiteTask(task="t", normalisation="chance_rescaled")


def test_suite_score_is_the_weighted_mean_with_an_item_bootstrap() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(400) < 0.8).astype(float)
    b = (rng.random(100) < 0.6).astype(float)
    results = {"a": {"acc": a.mean()}, "b": {"acc": b.mean(), "f1": 0.55, "f1_stderr": 0.02}}
    samples = {"a": [{"acc": v} for v in a], "b": [{"acc": bool(v), "f1": [1, 0]} for v in b]}
    suite = _suite(SuiteTask(task="a", normalisation="chance_rescaled", chance=0.5, weight=3),
                   SuiteTask(task="b", weight=1), SuiteTask(task="b", metric="f1"))
    scored = score_suite(suite, results, samples, seed=3)
    expected = (3 * (a.mean() - 0.5) / 0.5 + b.mean() + 0.55) / 5
    assert scored.value == pytest.approx(expected)
    assert scored.ci95[0] < scored.value < scored.ci95[1]
    by = {(t.task, t.metric): t for t in scored.tasks}
    assert by[("a", "acc")].uncertainty == "items" and by[("a", "acc")].n_items == 400
    assert by[("b", "f1")].uncertainty == "stderr"
    # the bootstrap spread matches the binomial standard error it approximates
    se_a = 3 / 5 * np.sqrt(a.mean() * (1 - a.mean()) / 400) / 0.5
    se_b = 1 / 5 * np.sqrt(b.mean() * (1 - b.mean()) / 100)
    se_f1 = 1 / 5 * 0.02
    assert scored.stderr == pytest.approx(np.sqrt(se_a**2 + se_b**2 + se_f1**2), rel=0.12)
    json.dumps(scored.to_dict())


def test_missing_task_or_metric_is_a_clear_error() -> None:
    suite = _suite(SuiteTask(task="a"))
    with pytest.raises(InputError, match="no results for task 'a'"):
        score_suite(suite, {"b": {"acc": 0.5}}, {})
    with pytest.raises(InputError, match=r"no finite metric 'acc'.*acc_norm"):
        score_suite(suite, {"a": {"acc_norm": 0.5}}, {})


def test_program_suites_are_validated() -> None:
    from helpers import EXAMPLE
    from simsa.errors import ProgramFileError as Err
    from simsa.program.loader import parse_program

    text = EXAMPLE.read_text(encoding="utf-8")
    program = parse_program(text, "example").program
    assert [s.id for s in program.suites] == ["nia", "global-common", "team-chosen"]
    assert program.suite("nia").tasks[0].task == "simsa_kobest_boolq"
    bad = text.replace('normalisation = "one_minus_abs"', 'normalisation = "vibes"')
    with pytest.raises(Err, match=r"suites\[2\]\.tasks\[1\]\.normalisation"):
        parse_program(bad, "bad")
    dup = text.replace('id = "team-chosen"\nname = "Team-chosen', 'id = "nia"\nname = "Team-chosen')
    with pytest.raises(Err, match="suite id 'nia' is used twice"):
        parse_program(dup, "dup")
