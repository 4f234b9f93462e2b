"""`simsa bench judge` end to end: a real tiny model answers the shipped multi-turn questions in process, rule-based
judges on a loopback HTTP server grade them; the run is kept, and a second run is answered wholly from the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from judge_server import JudgeServer
from simsa.bench.tinymodels import TinySpec, build_tiny_model


@pytest.fixture(scope="module")
def judges() -> Iterator[JudgeServer]:
    server = JudgeServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("judge-cli") / "tiny", TinySpec(steps=30, seed=9))


def simsa(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "simsa.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_rubric_and_pairwise_runs_are_kept_and_resume_from_the_cache(candidate: Path, judges: JudgeServer,
                                                                      tmp_path: Path) -> None:
    url = judges.base_url
    runs = ["--runs-dir", str(tmp_path)]
    args = ["bench", "judge", "--model", str(candidate), "--judge", f"{url}#judge-seven",
            "--judge", f"{url}#judge-len", "--max-tokens", "24", "--json", *runs]
    first = simsa(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    run = json.loads(first.stdout)
    assert run["status"] == "finished" and run["kind"] == "judge"
    summary = run["summary"]
    assert summary["counts"]["questions"] == 12 and summary["counts"]["items"] == 24  # 12 questions × 2 turns
    assert 1 <= summary["mean"] <= 10 and run["results"]["judge_rubric"]["score_0_1"] == pytest.approx(
        (summary["mean"] - 1) / 9)
    assert summary["judge_agreement"]["method"] == "spearman"
    assert {p["name"] for p in run["manifest"]["prompts"]} and all(len(p["sha256"]) == 64
                                                                for p in run["manifest"]["prompts"])
    assert run["manifest"]["candidate"]["sha256"] and run["items_cached"] == 0 and run["items_computed"] > 0
    judged = len(judges.chat_requests())
    second = json.loads(simsa(*args).stdout)
    assert second["items_computed"] == 0 and second["items_cached"] == run["items_computed"]
    assert len(judges.chat_requests()) == judged  # no judge was asked again
    assert second["summary"]["mean"] == summary["mean"]
    shown = json.loads(simsa("bench", "show", run["run_id"], "--samples", "--json", *runs).stdout)
    assert len(shown["samples"]["judge_rubric"]) == 24

    pair = simsa("bench", "judge", "--model", str(candidate), "--mode", "pairwise", "--baseline",
                 f"{url}#ko-long", "--judge", f"{url}#judge-a", "--max-tokens", "24", "--json", *runs)
    assert pair.returncode == 0, pair.stderr[-3000:]
    out = json.loads(pair.stdout)["summary"]
    # a judge that always says "A" is pure position bias: the swap turns every verdict into a tie
    assert out["win_rate"] == 0.5 and out["counts"]["inconsistent_swaps"] == 24


def test_judge_input_errors(candidate: Path, tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "category": "x", "questions": []}\n', encoding="utf-8")
    proc = simsa("bench", "judge", "--model", str(candidate), "--judge", "http://127.0.0.1:9/v1#j",
                 "--questions", str(bad), "--runs-dir", str(tmp_path))
    assert proc.returncode == 2 and f"{bad}:1:" in proc.stderr and "Traceback" not in proc.stderr
    proc = simsa("bench", "judge", "--model", str(candidate), "--judge", "http://127.0.0.1:9/v1", "--runs-dir",
                 str(tmp_path))
    assert proc.returncode == 2 and "after '#'" in proc.stderr
    proc = simsa("bench", "judge", "--model", str(candidate), "--judge", str(candidate), "--mode", "pairwise",
                 "--runs-dir", str(tmp_path))
    assert proc.returncode == 2 and "--baseline" in proc.stderr


def _samples(runs_dir: Path, run: dict) -> bytes:
    return (runs_dir / "runs" / run["run_id"] / "samples" / "judge_rubric.jsonl").read_bytes()


def test_several_candidates_judged_as_units_are_identical_serial_and_on_ray(candidate: Path, judges: JudgeServer,
                                                                            tmp_path: Path) -> None:
    pytest.importorskip("ray")
    other = build_tiny_model(tmp_path / "other", TinySpec(steps=10, seed=4))
    url = judges.base_url
    common = ["bench", "judge", "--model", str(candidate), "--model", str(other), "--judge", f"{url}#judge-seven",
              "--judge", f"{url}#judge-len", "--max-tokens", "16", "--json"]
    # one candidate judged first the usual way: the units run is sent its calls and remakes none of them
    alone = simsa("bench", "judge", "--model", str(candidate), "--judge", f"{url}#judge-seven", "--judge",
                  f"{url}#judge-len", "--max-tokens", "16", "--json", "--runs-dir", str(tmp_path / "serial"))
    assert alone.returncode == 0, alone.stderr[-3000:]
    out = {}
    for executor in ("serial", "ray"):
        done = simsa(*common, "--executor", executor, "--runs-dir", str(tmp_path / executor))
        assert done.returncode == 0, done.stderr[-3000:]
        out[executor] = json.loads(done.stdout)
    serial, spread = out["serial"], out["ray"]
    assert spread["executor"] == "ray" and all(u["value"]["ray_node"] for u in spread["units"])
    for one, two in zip(serial["runs"], spread["runs"], strict=True):
        assert one["status"] == two["status"] == "finished"
        assert _samples(tmp_path / "serial", one) == _samples(tmp_path / "ray", two)
        assert one["results"] == two["results"] and one["summary"] == two["summary"]
    assert _samples(tmp_path / "serial", serial["runs"][0]) != _samples(tmp_path / "serial", serial["runs"][1])
    first = json.loads(alone.stdout)
    assert serial["runs"][0]["items_computed"] == 0 and serial["runs"][0]["items_cached"] == first["items_computed"]
    assert serial["runs"][0]["results"] == first["results"]
    assert spread["runs"][0]["items_computed"] == first["items_computed"]  # a fresh runs directory computes them
    again = json.loads(simsa(*common, "--executor", "serial", "--runs-dir", str(tmp_path / "serial")).stdout)
    assert [u["cached"] for u in again["units"]] == [True, True]
    assert [r["items_computed"] for r in again["runs"]] == [0, 0]
    assert [r["results"] for r in again["runs"]] == [r["results"] for r in serial["runs"]]
