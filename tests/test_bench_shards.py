"""Benchmark runs as model × task shards through the executor seam: serial and Ray give byte-identical runs of a
suite over the demo's tiny models, the same numbers and samples as one whole run; the driver alone writes the item
cache, so a shard is sent the answers already there and a rerun or a restarted driver recomputes nothing finished;
a failing shard is reported while the other models' runs finish; `bench show` follows a run while it is under way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ray_support import kill_one_busy_worker
from simsa.bench.backends import BackendOptions
from simsa.bench.cache import ItemCache
from simsa.bench.runs import RunRequest, RunStore, execute
from simsa.bench.sharded_runs import ShardedRuns, execute_sharded
from simsa.bench.suites import runnable_suite, score_suite
from simsa.bench.tinymodels import TinySpec, build_tiny_model
from simsa.demo import TRAINING, example_program_path
from simsa.program.loader import load_program
from simsa.scale import open_executor, torch_threads

LIMIT = 6
TEAMS = ("seorak", "taebaek")  # the demo's two quickest-trained team models


@pytest.fixture(scope="module")
def suite():  # type: ignore[no-untyped-def]
    return runnable_suite(load_program(example_program_path()).program, "nia")


@pytest.fixture(scope="module")
def tasks(suite) -> list[str]:  # type: ignore[no-untyped-def]
    return list(dict.fromkeys(t.task for t in suite.tasks))


@pytest.fixture(scope="module")
def team_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("shard-models")
    return [build_tiny_model(root / team, TinySpec(steps=TRAINING[team][0], seed=TRAINING[team][1]))
            for team in TEAMS]


def _requests(models: list[Path], tasks: list[str]) -> list[RunRequest]:
    return [RunRequest(tasks=tasks, backend=BackendOptions(model=str(m)), limit=LIMIT, suite="nia") for m in models]


def _sharded(models: list[Path], tasks: list[str], root: Path, executor: str) -> tuple[ShardedRuns, RunStore]:
    store = RunStore(root)
    with open_executor(executor, num_cpus=2) as chosen:
        return execute_sharded(_requests(models, tasks), store, chosen), store


def _samples(store: RunStore, run: dict) -> dict[str, bytes]:
    folder = store.run_dir(run["run_id"]) / "samples"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jsonl"))}


@pytest.fixture(scope="module")
def both(team_models: list[Path], tasks: list[str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    pytest.importorskip("ray")  # installed by `make test` (simsa[ray] is a test dependency)
    root = tmp_path_factory.mktemp("shard-runs")
    return _sharded(team_models, tasks, root / "serial", "serial"), _sharded(team_models, tasks, root / "ray", "ray")


def test_serial_and_ray_shards_give_byte_identical_runs(both, suite, tasks: list[str]) -> None:  # type: ignore[no-untyped-def]
    (serial, serial_store), (spread, ray_store) = both
    assert not serial.failed and not spread.failed and spread.executor == "ray"
    assert len(spread.shards) == len(TEAMS) * len(tasks)
    assert all(s.value and s.value.get("ray_node") for s in spread.shards)  # each ran as a Ray task
    for one, other in zip(serial.runs, spread.runs, strict=True):
        assert one["status"] == other["status"] == "finished"
        assert _samples(serial_store, one) == _samples(ray_store, other) and len(_samples(serial_store, one)) == 3
        assert one["results"] == other["results"] and one["n_samples"] == other["n_samples"]
        assert one["manifest"]["tasks"] == other["manifest"]["tasks"]
        assert one["items_computed"] == other["items_computed"] > 0 and one["items_cached"] == 0
        scores = [score_suite(suite, run["results"], store.samples(run["run_id"]), partial=True).to_dict()
                  for run, store in ((one, serial_store), (other, ray_store))]
        assert scores[0] == scores[1]
    # the two teams' models differ, and so do their answers
    assert _samples(serial_store, serial.runs[0]) != _samples(serial_store, serial.runs[1])
    with ItemCache(ray_store.cache_path) as cache:  # every answer written once, by the driver
        assert cache.stats()["recomputed"] == 0
        assert cache.stats()["items"] == sum(r["items_computed"] for r in spread.runs)


def test_shards_equal_one_whole_run_and_reuse_its_answers(both, team_models: list[Path], tasks: list[str],  # type: ignore[no-untyped-def]
                                                          tmp_path: Path) -> None:
    (serial, serial_store), _ = both
    store = RunStore(tmp_path / "whole")
    with torch_threads(1):  # the shards' thread count: a float sum's last digits depend on it
        whole = execute(_requests(team_models[:1], tasks)[0], store)
    assert whole["results"] == serial.runs[0]["results"]
    assert whole["manifest"]["tasks"] == serial.runs[0]["manifest"]["tasks"]  # configs hash alike in both forms
    assert _samples(store, whole) == _samples(serial_store, serial.runs[0])  # byte for byte
    # the whole run's answers are in the item cache: shards of the same model are sent them and compute none
    with open_executor("serial") as executor:
        again = execute_sharded(_requests(team_models[:1], tasks), store, executor)
    assert again.runs[0]["items_computed"] == 0 and again.runs[0]["items_cached"] == whole["items_computed"]
    assert again.runs[0]["results"] == whole["results"]
    # and a rerun finds every shard finished
    with open_executor("serial") as executor:
        third = execute_sharded(_requests(team_models[:1], tasks), store, executor)
    assert [s.cached for s in third.shards] == [True] * len(tasks)
    assert {s["status"] for s in third.runs[0]["shards"].values()} == {"cached"}
    assert third.runs[0]["items_computed"] == 0 and third.runs[0]["items_cached"] == whole["items_computed"]
    assert third.runs[0]["results"] == whole["results"]


def _simsa(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simsa.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "TQDM_DISABLE": "1"}, timeout=timeout)


def test_a_failing_shard_is_reported_and_the_other_runs_finish(team_models: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    runs_dir = tmp_path / "runs"
    out = _simsa("bench", "run", "--model", str(team_models[0]), "--model", str(broken), "--tasks",
                 "simsa_kobest_copa", "--limit", "4", "--executor", "serial", "--runs-dir", str(runs_dir), "--json")
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["failed"] == 1 and [r["status"] for r in data["runs"]] == ["finished", "failed"]
    failed = data["runs"][1]
    assert failed["shards"]["simsa_kobest_copa"]["status"] == "failed"
    assert failed["error"].startswith("shard simsa_kobest_copa: ")
    shown = _simsa("bench", "show", failed["run_id"], "--runs-dir", str(runs_dir))
    assert shown.returncode == 0 and "shards (serial): 0/1 done, 1 failed" in shown.stdout


def test_a_killed_driver_resumes_and_bench_show_follows_the_run(team_models: list[Path], tasks: list[str],
                                                                 tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    command = [sys.executable, "-m", "simsa.cli.main", "bench", "run", "--model", str(team_models[0]), "--model",
               str(team_models[1]), "--tasks", ",".join(tasks), "--limit", str(LIMIT), "--executor", "serial",
               "--runs-dir", str(runs_dir), "--json"]
    env = {**os.environ, "NO_COLOR": "1", "TQDM_DISABLE": "1"}
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    units = runs_dir / "units"
    deadline = time.monotonic() + 300

    def finished() -> set[str]:
        return {p.stem for p in units.glob("*.json")} if units.is_dir() else set()

    while time.monotonic() < deadline and len(finished()) < 2:
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)  # mid-run: some shards finished and stored, the rest not
    driver.communicate(timeout=30)
    done_before = finished()
    assert 2 <= len(done_before) < 2 * len(tasks)
    store = RunStore(runs_dir)
    killed = store.list()
    assert [r["status"] for r in killed] == ["interrupted", "interrupted"]  # its pid is gone
    shown = _simsa("bench", "show", killed[0]["run_id"], "--runs-dir", str(runs_dir))
    done_first = sum(s["status"] == "done" for s in killed[0]["shards"].values())
    assert f"shards (serial): {done_first}/{len(tasks)} done" in shown.stdout
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    data = json.loads(rerun.stdout)
    assert {s["key"] for s in data["shards"] if s["cached"]} == done_before
    assert sum(not s["cached"] for s in data["shards"]) == 2 * len(tasks) - len(done_before)
    with ItemCache(store.cache_path) as cache:
        assert cache.stats()["recomputed"] == 0  # no answer computed twice across the kill


def test_a_worker_killed_mid_shard_is_retried_and_nothing_is_lost(both, team_models: list[Path],  # type: ignore[no-untyped-def]
                                                                  tasks: list[str], tmp_path: Path) -> None:
    (serial, serial_store), _ = both
    store = RunStore(tmp_path / "killed")
    with open_executor("ray", num_cpus=2) as executor:
        thread, killed = kill_one_busy_worker(after=0.3)  # inside lm-eval, with answers made and not yet sent
        out = execute_sharded(_requests(team_models, tasks), store, executor)
    thread.join()
    assert killed, "no busy Ray worker was seen to kill"
    assert not out.failed and [r["status"] for r in out.runs] == ["finished", "finished"]
    for one, other in zip(serial.runs, out.runs, strict=True):
        assert _samples(serial_store, one) == _samples(store, other) and one["results"] == other["results"]
    with ItemCache(store.cache_path) as cache:  # the killed shard's answers never reached the cache: none twice
        assert cache.stats()["recomputed"] == 0


def test_the_shard_benchmark_runs_and_finds_the_three_ways_identical(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_shards", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_shards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--teams", "1", "--limit", "2", "--work", str(tmp_path), "--json"])
    figures = json.loads(capsys.readouterr().out)
    assert code == 0 and figures["identical"] is True and figures["shards"] == len(figures["tasks"])
    assert figures["ray"]["items"] == figures["serial"]["items"] == figures["whole"]["items"] > 0
    assert figures["ray"]["worker_peak_rss_mib"] and min(figures["ray"]["worker_peak_rss_mib"]) > 0


def test_each_shard_asks_for_what_its_backend_needs(team_models: list[Path]) -> None:
    from simsa.bench.backends import Backend, resolve_backend
    from simsa.bench.identity import ModelIdentity
    from simsa.bench.sharded_runs import CPU_MEMORY_FACTOR, shard_resources
    from simsa.scale import Resources

    local = resolve_backend(BackendOptions(model=str(team_models[0])))
    weights = sum(p.stat().st_size for p in team_models[0].glob("*.safetensors"))
    assert shard_resources(BackendOptions(model=str(team_models[0])), local, 2) == Resources(
        cpus=2.0, memory=CPU_MEMORY_FACTOR * weights)
    assert shard_resources(BackendOptions(device="cuda:0"), local) == Resources(cpus=1.0, gpus=1.0)
    vllm = Backend("vllm", local.identity, ("vllm", {}), ("vllm", {}))
    assert shard_resources(BackendOptions(backend="vllm", tensor_parallel=4), vllm) == Resources(cpus=1.0, gpus=4.0)
    server = Backend("openai", ModelIdentity(ref="http://127.0.0.1:1/v1#m", kind="server"), ("x", {}), ("y", {}))
    assert shard_resources(BackendOptions(backend="openai"), server, 4) == Resources(cpus=1.0)
