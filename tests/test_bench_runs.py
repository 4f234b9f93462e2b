"""Benchmark runs: simsa's numbers equal lm-eval's own, the manifest's bare command reproduces them, a killed run
resumes without computing any item twice, and the JSON/CLI contract holds."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simsa.bench.tinymodels import TinySpec, build_tiny_model

pytest.importorskip("lm_eval")

TASKS = "simsa_kobest_copa,simsa_kobest_boolq"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("bench-runs") / "tiny", TinySpec(steps=60, seed=3))


def simsa(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "simsa.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env=full_env, cwd=cwd)


def run_json(*args: str, **kwargs) -> dict:
    proc = simsa(*args, **kwargs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def direct_lm_eval(model: Path, tasks: list[str], limit: int) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from simsa.bench.catalog import TASKS_DIR

    return lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model},dtype=float32", tasks=tasks,
                                   task_manager=TaskManager(include_path=str(TASKS_DIR)), limit=limit,
                                   device="cpu", batch_size=1, bootstrap_iters=1000, log_samples=True,
                                   verbosity="ERROR")


def strip(results: dict) -> dict:
    """lm-eval's result table without its labels, keyed like simsa's ("acc,none" → "acc")."""
    out = {}
    for task, metrics in results.items():
        out[task] = {k.split(",")[0]: v for k, v in metrics.items()
                     if isinstance(v, int | float) and not isinstance(v, bool)}
    return out


def test_numbers_equal_a_direct_lm_eval_run_exactly(tiny: Path, tmp_path: Path) -> None:
    run = run_json("bench", "run", "--model", str(tiny), "--tasks", TASKS, "--limit", "40", "--json",
                   "--runs-dir", str(tmp_path / "runs"))
    direct = direct_lm_eval(tiny, TASKS.split(","), 40)
    ours = {t: {k: v for k, v in m.items()} for t, m in run["results"].items()}
    assert ours == strip(direct["results"])
    assert run["items_computed"] == 2 * 40 * 2 and run["items_cached"] == 0
    assert set(run) >= {"run_id", "results", "items_computed", "items_cached", "manifest"}
    # per-item results are kept and agree with lm-eval's
    shown = run_json("bench", "show", run["run_id"], "--samples", "--json", "--runs-dir", str(tmp_path / "runs"))
    for task in TASKS.split(","):
        ours_items = [row["acc"] for row in sorted(shown["samples"][task], key=lambda r: r["doc_id"])]
        theirs = [row["acc"] for row in sorted(direct["samples"][task], key=lambda r: r["doc_id"])]
        assert ours_items == theirs and len(ours_items) == 40
    # a second identical run computes nothing
    again = run_json("bench", "run", "--model", str(tiny), "--tasks", TASKS, "--limit", "40", "--json",
                     "--runs-dir", str(tmp_path / "runs"))
    assert again["items_computed"] == 0 and again["items_cached"] == 160
    assert again["results"] == run["results"] and again["run_id"] != run["run_id"]


def test_manifest_records_provenance_and_its_bare_command_reproduces_the_numbers(tiny: Path, tmp_path: Path) -> None:
    run = run_json("bench", "run", "--model", str(tiny), "--tasks", "simsa_kobest_copa", "--limit", "25",
                   "--json", "--runs-dir", str(tmp_path / "runs"))
    manifest = run["manifest"]
    assert manifest["engine"]["name"] == "lm-evaluation-harness" and manifest["engine"]["version"] == "0.4.13"
    task = manifest["tasks"]["simsa_kobest_copa"]
    assert task["version"] == "1.0" or task["version"] is not None
    assert len(task["dataset"]["sha256"]) == 64
    assert manifest["model"]["sha256"] and len(manifest["model"]["sha256"]) == 64
    assert manifest["chat_template"]["sha256"] and manifest["seeds"] == {"random": 0, "numpy": 1234, "torch": 1234,
                                                                         "fewshot": 1234}
    assert manifest["hardware"]["cpu_count"] >= 1 and manifest["backend"]["name"] == "hf"
    command = manifest["lm_eval_command"]
    argv = shlex.split(command)
    assert argv[0] == "lm_eval" and "simsa" not in " ".join(argv[1:4])
    argv[0] = str(Path(sys.executable).parent / "lm_eval")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = sorted((tmp_path / "lm-eval-out").rglob("results_*.json"))
    assert outputs, proc.stdout[-2000:]
    bare = json.loads(outputs[-1].read_text())
    assert strip(bare["results"]) == run["results"]


def _cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_a_killed_run_resumes_with_identical_numbers_and_no_item_computed_twice(tiny: Path, tmp_path: Path) -> None:
    args = ["bench", "run", "--model", str(tiny), "--tasks", "simsa_kobest_copa,simsa_kobest_sentineg", "--json",
            "--limit", "500"]
    total = 2 * 500 + 2 * 397  # 500 COPA and all 397 SentiNeg items, two choices each
    runs = tmp_path / "killed"
    cache = runs / "cache.sqlite"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "simsa.cli.main", *args, "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 300
        while _cache_rows(cache) < 300:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = _cache_rows(cache)
    assert 300 <= done_before < total, "the kill did not land midway"
    killed = json.loads(next((runs / "runs").iterdir()).joinpath("run.json").read_text())
    shown = run_json("bench", "show", killed["run_id"], "--json", "--runs-dir", str(runs))
    assert shown["status"] == "interrupted"

    resumed = run_json(*args, "--runs-dir", str(runs))
    # every request is answered once: from the cache if the killed run had answered it, else computed now
    # (requests with identical prompts share one cache row, so rows can be fewer than requests)
    assert resumed["items_cached"] >= done_before
    assert resumed["items_cached"] + resumed["items_computed"] == total
    assert resumed["cache"]["recomputed"] == 0
    assert resumed["cache"]["computations"] == resumed["cache"]["items"]

    fresh = run_json(*args, "--runs-dir", str(tmp_path / "fresh"))
    assert fresh["items_computed"] == total
    assert resumed["results"] == fresh["results"]


def test_bad_requests_fail_with_one_clear_line(tiny: Path, tmp_path: Path) -> None:
    runs = ["--runs-dir", str(tmp_path)]
    proc = simsa("bench", "run", "--model", str(tiny), "--tasks", "simsa_kobest_cope", *runs)
    assert proc.returncode == 2 and "simsa_kobest_copa" in proc.stderr and "Traceback" not in proc.stderr
    proc = simsa("bench", "run", "--model", str(tmp_path / "nope"), "--tasks", "simsa_kobest_copa", *runs)
    assert proc.returncode == 2 and "no such model directory" in proc.stderr
    proc = simsa("bench", "run", "--model", str(tiny), "--tasks", "simsa_kobest_copa", "--suite", "x", *runs)
    assert proc.returncode == 2 and "either --tasks" in proc.stderr
    proc = simsa("bench", "show", "not-a-run", "--json", *runs)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"].startswith("'not-a-run' is not a run id")
    proc = simsa("bench", "run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--tasks", "simsa_kobest_copa", *runs)
    assert proc.returncode == 2 and "does not answer" in proc.stderr


def test_bad_sharded_requests_fail_clearly_and_a_missing_model_fails_alone(tiny: Path, tmp_path: Path) -> None:
    runs = ["--runs-dir", str(tmp_path)]
    for option, message in (("--cpus-per-unit", "--cpus-per-unit must be at least 1"),
                            ("--tensor-parallel", "--tensor-parallel must be at least 1")):
        proc = simsa("bench", "run", "--model", str(tiny), "--model", str(tiny), "--tasks", "simsa_kobest_copa",
                     option, "0", *runs)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [f"error: {message}" + (
            "" if option == "--cpus-per-unit" else " (the GPUs one vLLM model is split over)")]
    proc = simsa("bench", "run", "--model", str(tmp_path / "nope"), "--model", str(tiny), "--tasks",
                 "simsa_kobest_copa", "--limit", "3", "--json", *runs)
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert [r["status"] for r in out["runs"]] == ["failed", "finished"] and out["failed"] == 1
    assert "no such model directory" in out["runs"][0]["error"]
    assert out["runs"][1]["n_samples"] == {"simsa_kobest_copa": 3}
