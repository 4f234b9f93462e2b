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
    assert [s.id for s in program.suites] == ["nia", "global-common", "team-chosen", "stage2", "safety"]
    assert [s.id for s in program.suites if s.imported] == ["stage2", "safety"]
    assert program.suite("nia").tasks[0].task == "simsa_kobest_boolq"
    bad = text.replace('normalisation = "one_minus_abs"', 'normalisation = "vibes"')
    with pytest.raises(Err, match=r"suites\[2\]\.tasks\[1\]\.normalisation"):
        parse_program(bad, "bad")
    dup = text.replace('id = "team-chosen"\nname = "Team-chosen', 'id = "nia"\nname = "Team-chosen')
    with pytest.raises(Err, match="suite id 'nia' is used twice"):
        parse_program(dup, "dup")


def test_suite_run_is_recorded_as_a_score_with_provenance(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    from helpers import EXAMPLE
    from simsa.bench.tinymodels import TinySpec, build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", TinySpec(steps=20, seed=11))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    db = f"sqlite:///{tmp_path / 'simsa.db'}"

    def simsa(*args: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "simsa.cli.main", "--db", db, *args, "--json"],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    run = simsa("bench", "run", "--model", str(model), "--suite", "nia", "--program", str(EXAMPLE), "--limit", "12",
                "--runs-dir", str(tmp_path / "runs"))
    assert sorted(run["results"]) == ["simsa_kobest_boolq", "simsa_kobest_copa", "simsa_kosbi"]
    score = run["suite_score"]
    assert score["partial"] and 0.0 <= score["ci95"][0] <= score["value"] <= score["ci95"][1] <= 1.0
    dry = simsa("bench", "record", str(EXAMPLE), run["run_id"], "--suite", "nia", "--stage", "stage-1",
                "--team", "baekdu", "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert dry["recorded"] is None and dry["suite_score"]["value"] == pytest.approx(score["value"])
    rec = simsa("bench", "record", str(EXAMPLE), run["run_id"], "--suite", "nia", "--stage", "stage-1",
                "--team", "baekdu", "--runs-dir", str(tmp_path / "runs"))
    assert rec["recorded"]["id"] >= 1
    scores = simsa("score", "list", "k-ai-2026", "--team", "baekdu")["scores"]
    row = next(s for s in scores if s["source"] == "bench:nia")
    assert row["run_id"] == run["run_id"] and row["value"] == pytest.approx(score["value"])
    assert row["stderr"] == pytest.approx(score["stderr"])
    evidence = json.loads(row["evidence"])
    assert evidence["model_sha256"] == run["model"]["sha256"] and len(evidence["manifest_sha256"]) == 64
    assert {t["task"] for t in evidence["tasks"]} == {"simsa_kobest_boolq", "simsa_kobest_copa", "simsa_kosbi"}
