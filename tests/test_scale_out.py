"""Scale-out through one executor seam: serial (the default) and Ray (a real local instance) give byte-identical
fingerprints; finished units are kept by content so a rerun, or a driver killed mid-run, recomputes only what is
unfinished; a worker killed mid-task is retried and loses nothing; a unit that cannot succeed is reported while the
others complete; without Ray, `--executor ray` is one clear error."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from ray_support import kill_one_busy_worker
from simsa.errors import InputError
from simsa.lineage.fingerprints.registry import Registry
from simsa.lineage.fingerprints.service import fingerprint_many
from simsa.lineage.fingerprints.units import fingerprint_units
from simsa.lineage.formats.fingerprint import FingerprintSettings
from simsa.scale import (
    Node,
    Placement,
    RayExecutor,
    Resources,
    ResultStore,
    SerialExecutor,
    WorkUnit,
    executor_name,
    open_executor,
    place,
    run_units,
)

SETTINGS = FingerprintSettings(ref_units=64, coords=32)


def _bench() -> ModuleType:
    """benchmarks/scale_out.py, whose checkpoint writer the tests share (so the benchmark's path stays covered)."""
    spec = importlib.util.spec_from_file_location("scale_out_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "scale_out.py"
write_model = _bench().write_model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    root = tmp_path_factory.mktemp("scale-models")
    return [(str(write_model(root / f"m{i:02d}", seed=i)), f"m{i:02d}") for i in range(6)]


def _digests(registry: Registry) -> dict[str, str]:
    return {name: hashlib.sha256((registry.root / e["file"]).read_bytes()).hexdigest()
            for name, e in registry.entries.items()}


def _run(models: list[tuple[str, str]], tmp: Path, executor_kind: str, store: ResultStore | None = None):  # type: ignore[no-untyped-def]
    registry = Registry.open(tmp / f"registry-{executor_kind}", create=True)
    with open_executor(executor_kind, num_cpus=2) as executor:
        run = fingerprint_many(models, SETTINGS, registry, executor, store)
    return run, registry


def test_two_fingerprints_of_one_model_are_the_same_bytes(models: list[tuple[str, str]], tmp_path: Path) -> None:
    first, reg1 = _run(models[:2], tmp_path / "a", "serial")
    second, reg2 = _run(models[:2], tmp_path / "b", "serial")
    assert not first.failed and not second.failed
    assert _digests(reg1) == _digests(reg2)
    assert all("created" not in e and e["added"].endswith("Z") for e in reg1.entries.values())


def test_a_rerun_recomputes_nothing_already_stored(models: list[tuple[str, str]], tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    first, _ = _run(models[:3], tmp_path / "one", "serial", store)
    assert [r.cached for r in first.results] == [False] * 3
    again, reg = _run(models, tmp_path / "two", "serial", store)
    assert [r.cached for r in again.results] == [True] * 3 + [False] * 3
    assert len(reg.entries) == 6 and not again.failed
    # A changed byte of a checkpoint is a new unit; a damaged stored result is recomputed, not trusted.
    changed = write_model(tmp_path / "changed", seed=0)
    data = bytearray((changed / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (changed / "model.safetensors").write_bytes(bytes(data))
    damaged = store.root / f"{again.results[1].key}.bin"  # m01's stored fingerprint, cut short
    damaged.write_bytes(damaged.read_bytes()[:-5])
    flipped = store.root / f"{again.results[2].key}.bin"  # m02's, one bit changed at the same length
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x10
    flipped.write_bytes(bytes(data))
    third, _ = _run([(str(changed), "m00"), *models[1:]], tmp_path / "three", "serial", store)
    assert [r.cached for r in third.results] == [False, False, False, True, True, True]  # changed, damaged twice
    assert not third.failed


def test_a_killed_driver_resumes_from_the_stored_results(tmp_path: Path) -> None:
    big = [str(write_model(tmp_path / f"d{i}", seed=200 + i, hidden=256, layers=4, vocab=2048)) for i in range(5)]
    results, registry = tmp_path / "results", tmp_path / "registry"
    command = [sys.executable, "-m", "simsa.cli.main", "lineage", "fingerprint", *big, "--registry", str(registry),
               "--results", str(results), "--json"]
    env = {**os.environ, "NO_COLOR": "1"}
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    def finished() -> set[str]:
        return {p.stem for p in results.glob("*.json") if len(p.stem) == 64}

    while time.monotonic() < deadline and len(finished()) < 2:
        time.sleep(0.01)
    driver.kill()  # mid-run: some units finished and stored, the rest not
    driver.communicate(timeout=30)
    done_before = finished()
    assert 2 <= len(done_before) < 5
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    rerun = json.loads(out.stdout)
    assert rerun["cached"] == len(done_before) and rerun["built"] == 5 - len(done_before)
    assert {u["key"] for u in rerun["units"] if u["cached"]} == done_before
    assert len(Registry.open(registry).entries) == 5


def test_a_unit_that_fails_is_reported_and_the_others_complete(models: list[tuple[str, str]],
                                                               tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    listed = [models[0], (str(broken), "broken"), (str(tmp_path / "absent"), "absent"), models[1]]
    run, registry = _run(listed, tmp_path, "serial")
    assert [r.label for r in run.failed] == ["broken", "absent"]
    assert "model.safetensors" in (run.failed[0].error or "") and "no such file" in (run.failed[1].error or "")
    assert set(registry.entries) == {"m00", "m01"}
    assert run.to_dict()["failed"] == 2 and run.to_dict()["built"] == 2


def test_the_executor_is_chosen_by_option_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert executor_name(None) == "serial"
    monkeypatch.setenv("SIMSA_EXECUTOR", "ray")
    assert executor_name(None) == "ray" and executor_name("serial") == "serial"
    with pytest.raises(InputError, match="unknown executor 'dask'; expected one of serial, ray"):
        executor_name("dask")
    assert isinstance(SerialExecutor(), SerialExecutor)


def test_without_ray_the_ray_executor_is_one_clear_error(tmp_path: Path) -> None:
    hide = tmp_path / "no-ray"
    (hide / "ray").mkdir(parents=True)
    (hide / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")]),
           "NO_COLOR": "1"}
    model = write_model(tmp_path / "m", seed=1)
    out = subprocess.run([sys.executable, "-m", "simsa.cli.main", "lineage", "fingerprint", str(model),
                          "--registry", str(tmp_path / "reg"), "--executor", "ray"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: --executor ray needs Ray, which is not installed here: pip install 'simsa[ray]' (or run with "
        "--executor serial)"]


# --------------------------------------------------------------------------- on a real local Ray instance

@pytest.fixture(scope="module")
def ray_results(models: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    pytest.importorskip("ray")  # installed by `make test` (simsa[ray] is a test dependency)
    tmp = tmp_path_factory.mktemp("ray")
    serial, serial_reg = _run(models, tmp / "serial", "serial")
    spread, ray_reg = _run(models, tmp / "ray", "ray")
    return serial, serial_reg, spread, ray_reg


def test_serial_and_ray_give_byte_identical_fingerprints(ray_results) -> None:  # type: ignore[no-untyped-def]
    serial, serial_reg, spread, ray_reg = ray_results
    assert not serial.failed and not spread.failed and spread.executor == "ray"
    assert _digests(serial_reg) == _digests(ray_reg) and len(ray_reg.entries) == 6
    pids = {r.value["worker_pid"] for r in spread.results if r.value}
    assert os.getpid() not in pids  # built in Ray's worker processes, written by this driver
    assert all(r.value and r.value["worker_peak_rss_bytes"] > 0 for r in spread.results)


def test_a_killed_worker_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    big = [(str(write_model(tmp_path / f"big{i}", seed=100 + i, hidden=384, layers=6, vocab=4096)), f"big{i}")
           for i in range(3)]
    registry = Registry.open(tmp_path / "registry", create=True)
    with open_executor("ray", num_cpus=2) as executor:
        thread, killed = kill_one_busy_worker()
        run = fingerprint_many(big, SETTINGS, registry, executor, ResultStore(tmp_path / "results"))
    thread.join()
    assert killed, "no busy Ray worker was seen to kill"
    assert not run.failed and set(registry.entries) == {"big0", "big1", "big2"}
    _, serial_reg = _run(big, tmp_path / "serial", "serial")
    assert _digests(serial_reg) == _digests(registry)


def test_the_benchmark_runs_and_finds_both_executors_identical(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    code = _bench().main(["--models", "4", "--work", str(tmp_path), "--json"])
    figures = json.loads(capsys.readouterr().out)
    assert code == 0 and figures["identical"] is True
    assert figures["serial"]["failed"] == figures["ray"]["failed"] == 0 and figures["ray"]["workers"] >= 1


def test_scans_of_several_candidates_are_identical_serial_and_on_ray(models: list[tuple[str, str]],
                                                                    tmp_path: Path) -> None:
    pytest.importorskip("ray")
    registry = tmp_path / "registry"
    env = {**os.environ, "NO_COLOR": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "simsa.cli.main", "lineage", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    built = cli("fingerprint", *(m for m, _ in models[:3]), "--registry", str(registry), "--results",
                str(tmp_path / "fp-results"), "--json")
    assert built.returncode == 0, built.stderr
    candidates = [models[0][0], models[4][0], str(tmp_path / "absent")]
    outputs = {}
    for kind in ("serial", "ray"):
        out = cli("scan", *candidates, "--registry", str(registry), "--executor", kind, "--results",
                  str(tmp_path / f"scan-{kind}"), "--keep", "1", "--json")
        assert out.returncode == 1, out.stderr  # the absent candidate fails; the others are scanned
        outputs[kind] = json.loads(out.stdout)
    serial, spread = outputs["serial"], outputs["ray"]
    assert spread["executor"] == "ray"
    assert [s["result"] for s in serial["scans"]] == [s["result"] for s in spread["scans"]]
    first, second, absent = serial["scans"]
    assert first["result"]["derived"] == ["m00"] and first["result"]["matches"][0]["verdict"] == "identical"
    assert second["result"]["derived"] == [] and absent["ok"] is False and "no such file" in absent["error"]
    again = cli("scan", *candidates[:2], "--registry", str(registry), "--results", str(tmp_path / "scan-serial"),
                "--keep", "1", "--json")
    assert again.returncode == 0 and [s["cached"] for s in json.loads(again.stdout)["scans"]] == [True, True]
    other = cli("scan", *candidates[:2], "--registry", str(registry), "--results", str(tmp_path / "scan-serial"),
                "--keep", "2", "--json")  # other options: other units
    assert other.returncode == 0 and [s["cached"] for s in json.loads(other.stdout)["scans"]] == [False, False]


def test_units_spread_over_a_two_node_cluster_give_the_serial_bytes(models: list[tuple[str, str]],
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Ray nodes on this machine (a head and a worker node, one CPU each) sharing its file system, as nodes
    share a network file system: units land on both, and the driver's registry equals the serial one."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
        spread, ray_reg = _run(models, tmp_path / "cluster", "ray")
    finally:
        cluster.shutdown()
    assert not spread.failed
    assert len({r.value["ray_node"] for r in spread.results if r.value}) == 2
    _, serial_reg = _run(models, tmp_path / "serial", "serial")
    assert _digests(serial_reg) == _digests(ray_reg)


# --------------------------------------------------------------------------- placement

def _unit(key: str, cpus: float = 1.0, gpus: float = 0.0, memory: int = 0, paths: tuple[str, ...] = ()) -> WorkUnit:
    return WorkUnit(kind="test", label=f"unit {key}", function="simsa.x:y", args={}, key=key * 64,
                    resources=Resources(cpus=cpus, gpus=gpus, memory=memory), local_paths=paths)


def test_placement_follows_resources_and_node_local_paths() -> None:
    nodes = [Node("head", cpus=8, gpus=0, memory=32 << 30), Node("gpu1", cpus=16, gpus=4, memory=256 << 30),
             Node("gpu2", cpus=16, gpus=4, memory=256 << 30)]
    units = [_unit("a"), _unit("b", gpus=4), _unit("c", gpus=8), _unit("d", memory=512 << 30),
             _unit("e", paths=("/data/ckpt",)), _unit("f", paths=("/data/ckpt",)), _unit("g", paths=("/nfs/x",)),
             _unit("h", paths=("/gone",)), _unit("i", gpus=1, paths=("/local-head",))]
    holders = {"/data/ckpt": {"gpu1", "gpu2"}, "/nfs/x": {"head", "gpu1", "gpu2"}, "/gone": set(),
               "/local-head": {"head"}}
    placed = {k[0]: p for k, p in place(units, nodes, holders).items()}
    assert placed["a"] == Placement() and placed["b"] == Placement()  # any node will do
    assert placed["c"].error == "unit c asks for 1 CPU, 8 GPU; the largest node has 16 CPU, 4 GPU, 256.0 GiB"
    assert placed["d"].error is not None and "512.0 GiB" in placed["d"].error
    # a path on two of three nodes: pinned there, spread over both; on every node (a shared file system): free
    assert {placed["e"].node, placed["f"].node} == {"gpu1", "gpu2"} and placed["g"] == Placement()
    assert placed["h"].error == "/gone is on no node of the cluster"
    assert placed["i"].error == "no node that can take 1 CPU, 1 GPU holds /local-head"
    # without a map of holders (one machine, or a shared file system) paths do not constrain
    assert all(p.error is None for k, p in place(units[4:8], nodes).items())
    assert place([_unit("z")], [])["z" * 64].error == "unit z asks for 1 CPU; no live node"


def test_a_unit_no_node_can_take_is_reported_at_once(models: list[tuple[str, str]], tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from dataclasses import replace

    units = fingerprint_units(models[:2], SETTINGS)
    units[0] = replace(units[0], resources=Resources(cpus=1.0, gpus=64.0))
    started = time.monotonic()
    with open_executor("ray", num_cpus=2) as executor:
        results = run_units(executor, units)
    assert time.monotonic() - started < 120  # not left waiting for 64 GPUs that never come
    assert not results[0].ok and results[0].attempts == 0
    assert results[0].error is not None and results[0].error.startswith("m00 asks for 1 CPU, 64 GPU; the largest node")
    assert results[1].ok


def test_a_two_node_cluster_is_asked_which_nodes_hold_a_path(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        executor = RayExecutor(address=cluster.address)
        try:
            nodes = executor.nodes()
            held = executor.holders(nodes, [str(tmp_path), str(tmp_path / "absent")])
        finally:
            executor.close()
    finally:
        cluster.shutdown()
    assert len(nodes) == 2 and all(n.cpus == 1 for n in nodes)
    assert held == {str(tmp_path): {n.id for n in nodes}, str(tmp_path / "absent"): set()}


# --------------------------------------------------------------------------- compares of many pairs

COMPARE_OPTIONS = ["--units", "64", "--ref-units", "256", "--coords", "64", "--draws", "8"]


def _compare_many(models: list[tuple[str, str]], results: Path, executor: str) -> dict:
    args = [a for m, _ in models[:2] for a in ("--candidate", m)] + ["--reference", models[0][0], "--reference",
                                                                       models[2][0], "--reference",
                                                                       str(results / "absent")]
    out = subprocess.run([sys.executable, "-m", "simsa.cli.main", "lineage", "compare-many", *args, *COMPARE_OPTIONS,
                          "--executor", executor, "--results", str(results), "--json"],
                         capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=600)
    assert out.returncode == 1, out.stderr  # the absent reference fails; the other pairs are compared
    return json.loads(out.stdout)


def test_compares_of_many_pairs_are_identical_serial_and_on_ray(models: list[tuple[str, str]],
                                                                 tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from simsa.lineage.fingerprints.units import without_measurements

    serial = _compare_many(models, tmp_path / "serial", "serial")
    spread = _compare_many(models, tmp_path / "ray", "ray")
    assert [c["result"] for c in serial["compares"]] == [c["result"] for c in spread["compares"]]
    assert [(c["result"] or {}).get("verdict") for c in serial["compares"]] == [
        "identical", "independent", None, "independent", "independent", None]
    assert serial["failed"] == 2 and "no such file" in serial["compares"][2]["error"]
    # each pair's result is what `lineage compare` gives for it, less its timings
    single = subprocess.run([sys.executable, "-m", "simsa.cli.main", "lineage", "compare", models[1][0],
                             models[2][0], *COMPARE_OPTIONS, "--json"], capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    assert without_measurements(json.loads(single.stdout)) == serial["compares"][4]["result"]
    again = _compare_many(models, tmp_path / "serial", "serial")  # a rerun compares nothing again
    assert [c["cached"] for c in again["compares"]] == [True, True, False, True, True, False]
