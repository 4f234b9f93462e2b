"""The openai backend against a real OpenAI-compatible server on loopback (`simsa serve-model` over a real tiny
model): the same numbers as the in-process backend, API keys, concurrency and the rate limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simsa.bench.tinymodels import TinySpec, build_tiny_model

KEY = "test-key-123"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("bench-http") / "tiny", TinySpec(steps=60, seed=3))


@pytest.fixture(scope="module")
def server(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    log = (tmp_path_factory.mktemp("server-log") / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "simsa.cli.main", "serve-model", str(tiny), "--port", "0",
                             "--json", "--name", "tiny-ko"], stdout=subprocess.PIPE, stderr=log, text=True,
                            env={**ENV, "SIMSA_SERVE_API_KEY": KEY})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "serve-model did not start"
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def simsa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simsa.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env={**ENV, **(env or {})})


def run_json(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = simsa(*args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_openai_backend_gives_the_in_process_numbers(tiny: Path, server: dict, tmp_path: Path) -> None:
    tasks = "simsa_kobest_copa,simsa_kobest_sentineg"
    local = run_json("bench", "run", "--model", str(tiny), "--tasks", tasks, "--limit", "30", "--json",
                     "--runs-dir", str(tmp_path / "hf"))
    http = run_json("bench", "run", "--backend", "openai", "--base-url", server["url"], "--model", "tiny-ko",
                    "--tokenizer", str(tiny), "--tasks", tasks, "--limit", "30", "--concurrency", "4", "--json",
                    "--runs-dir", str(tmp_path / "http"), env={"OPENAI_API_KEY": KEY})
    for task in tasks.split(","):
        assert http["results"][task]["acc"] == local["results"][task]["acc"]
        assert http["results"][task]["f1"] == pytest.approx(local["results"][task]["f1"])
    assert http["items_computed"] == 120
    manifest = http["manifest"]
    assert manifest["model"]["sha256"] == server["sha256"] and manifest["model"]["kind"] == "server"
    assert "local-completions" in manifest["lm_eval_command"] and KEY not in json.dumps(http)
    samples = {}
    for name, run in (("hf", local), ("http", http)):
        shown = run_json("bench", "show", run["run_id"], "--samples", "--json", "--runs-dir", str(tmp_path / name))
        samples[name] = {r["doc_id"]: r["resps"] for r in shown["samples"]["simsa_kobest_copa"]}
    # per item, each choice's log-likelihood ([[loglik, is_greedy]] per choice) agrees within float noise
    for doc_id, resps in samples["hf"].items():
        ours = [float(choice[0][0]) for choice in resps]
        theirs = [float(choice[0][0]) for choice in samples["http"][doc_id]]
        assert ours == pytest.approx(theirs, abs=1e-4)


def test_api_key_and_rate_limit(tiny: Path, server: dict, tmp_path: Path) -> None:
    args = ["bench", "run", "--backend", "openai", "--base-url", server["url"], "--tokenizer", str(tiny),
            "--tasks", "simsa_kobest_copa", "--limit", "15", "--json"]
    refused = simsa(*args, "--runs-dir", str(tmp_path / "a"), env={"OPENAI_API_KEY": "wrong"})
    assert refused.returncode == 2 and "refused the API key" in refused.stderr
    start = time.monotonic()
    limited = run_json(*args, "--rate-limit", "20", "--concurrency", "8", "--runs-dir", str(tmp_path / "b"),
                       env={"OPENAI_API_KEY": KEY})
    # 30 requests at most 20 per second (one token in the bucket at the start): at least 29/20 s
    assert limited["items_computed"] == 30 and limited["seconds"] >= 29 / 20
    assert time.monotonic() - start >= 29 / 20
    assert limited["manifest"]["backend"]["rate_limit_rps"] == 20
