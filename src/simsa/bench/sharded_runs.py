"""Benchmark runs of several models, fanned out as model × task shards through one executor (serial in this
process, or a Ray cluster), with the driver alone writing the item cache and the run store.

Each model gets an ordinary run (its own run id, `run.json`, samples and manifest), written as `running` when the
shards are planned and updated as each shard finishes, so `simsa bench show` reports a run's progress while it is
under way. A shard is a work unit keyed by the model's content, the task's version and data, the settings and
simsa's version: a rerun, or a driver restarted after it was killed, recomputes no finished shard, and a shard that
does run is sent every answer the item cache already holds for it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsa.bench.backends import Backend, BackendOptions, check_options, resolve_backend
from simsa.bench.cache import ItemCache, item_scope
from simsa.bench.runs import RunRequest, RunStore, finish_run, write_samples
from simsa.bench.shard_unit import FUNCTION, identity_args
from simsa.errors import InputError, SimsaError
from simsa.scale import Executor, Resources, ResultStore, UnitResult, WorkUnit, run_units, unit_key

Progress = Callable[[str, int, int], None]
CPU_MEMORY_FACTOR = 2  # an hf model on CPU holds its weights and about as much again while it runs


@dataclass
class ShardedRuns:
    """The runs of one sharded benchmark run, one per model, and every shard's outcome."""

    runs: list[dict[str, Any]]
    shards: list[UnitResult] = field(default_factory=list)
    executor: str = "serial"

    @property
    def failed(self) -> list[UnitResult]:
        return [s for s in self.shards if not s.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "runs": self.runs, "shards": [s.to_dict() for s in self.shards],
                "failed": len(self.failed)}


def shard_resources(opts: BackendOptions, backend: Backend, cpus: int = 1) -> Resources:
    """What one shard asks of its node: a vLLM shard its tensor-parallel GPUs, an hf shard on a GPU one GPU, an hf
    shard on CPU `cpus` CPUs (its torch threads) and memory for its weights, an API shard a CPU (its requests wait
    on the server)."""
    if opts.backend == "vllm":
        return Resources(cpus=float(cpus), gpus=float(max(1, opts.tensor_parallel)))
    if opts.backend == "hf" and opts.device.startswith("cuda"):
        return Resources(cpus=float(cpus), gpus=1.0)
    if opts.backend == "hf" and backend.identity.path is not None:
        weights = sum(p.stat().st_size for p in Path(backend.identity.path).glob("*.safetensors"))
        return Resources(cpus=float(cpus), memory=CPU_MEMORY_FACTOR * weights)
    return Resources(cpus=1.0)


def _leaves(manager: Any, task: str) -> list[str]:
    from simsa.bench.catalog import leaf_task_names

    return leaf_task_names(manager, task) or [task]


def _options_args(opts: BackendOptions) -> dict[str, Any]:
    return dict(opts.__dict__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def execute_sharded(requests: list[RunRequest], store: RunStore, executor: Executor, *, cpus_per_shard: int = 1,
                    progress: Progress | None = None) -> ShardedRuns:
    """Run every request (one model each, the same tasks and settings) as model × task shards on `executor`, each
    with torch on `cpus_per_shard` threads wherever it runs (so its numbers do not depend on the executor)."""
    from simsa.bench import catalog
    from simsa.bench.engine import task_version

    if not requests:
        raise InputError("name at least one model (--model, repeatable)")
    if cpus_per_shard < 1:
        raise InputError("--cpus-per-unit must be at least 1")
    tasks = requests[0].tasks
    if not tasks:
        raise InputError("name at least one task (--tasks T1,T2) or a suite (--suite NAME)")
    catalog.check_tasks_available(tasks, offline=catalog.is_offline())
    manager = catalog.task_manager_for(tasks)
    versions = {t: task_version(manager, t) for t in tasks}
    data = catalog.dataset_provenance(tasks)
    leaves = {t: _leaves(manager, t) for t in tasks}
    results_store = ResultStore(store.root / "units")

    for request in requests:
        check_options(request.backend)
    plans: list[tuple[RunRequest, Backend, dict[str, Any]]] = []
    every: list[dict[str, Any]] = []  # each model's run, in the order the models were given
    unpinned: list[UnitResult] = []
    for i, request in enumerate(requests):
        if progress is not None:
            progress("pinning models", i, len(requests))
        run: dict[str, Any] = {"run_id": store.new_id(), "status": "running", "pid": os.getpid(),
                               "started_at": _now(), "request": request.to_dict(), "executor": executor.name}
        every.append(run)
        try:
            backend = resolve_backend(request.backend, memo=store.hash_memo)
        except SimsaError as exc:  # a model that cannot be pinned fails alone; the others run
            run.update(status="failed", error=str(exc), finished_at=_now(), model={"ref": request.backend.model})
            store.save(run)
            unpinned.append(UnitResult(unit_key("bench.shard", unpinned=request.backend.model),
                                       request.backend.model, False, error=str(exc), attempts=0))
            continue
        run.update(model=backend.identity.to_dict() | {"chat_template": None},
                   shards={t: {"status": "pending"} for t in tasks})
        store.save(run)
        plans.append((request, backend, run))
    if progress is not None:
        progress("pinning models", len(requests), len(requests))

    units: list[WorkUnit] = []
    owner: dict[str, list[tuple[dict[str, Any], str]]] = {}
    with ItemCache(store.cache_path) as cache:
        for request, backend, run in plans:
            settings = backend.numeric_settings()
            for task in tasks:
                key = unit_key("bench.shard", model=backend.identity.key, settings=settings, task=task,
                               task_version=versions[task], data=data.get(task), limit=request.limit,
                               num_fewshot=request.num_fewshot, chat=request.apply_chat_template,
                               gen_kwargs=request.gen_kwargs, seeds=list(request.seeds),
                               bootstrap_iters=request.bootstrap_iters, threads=cpus_per_shard)
                run["shards"][task]["unit"] = key
                owner.setdefault(key, []).append((run, task))
                if len(owner[key]) > 1:  # the same model given twice: one shard serves both runs
                    continue
                shipped = [] if results_store.has(key) else cache.in_scopes(
                    item_scope(backend.identity.key, settings, leaf) for leaf in leaves[task])
                units.append(WorkUnit(
                    kind="bench.shard", label=f"{backend.identity.ref} · {task}", function=FUNCTION, key=key,
                    resources=shard_resources(request.backend, backend, cpus_per_shard),
                    local_paths=(str(backend.identity.path),) if backend.identity.kind == "local" else (),
                    args={"options": _options_args(request.backend), "identity": identity_args(backend.identity),
                          "task": task, "limit": request.limit, "num_fewshot": request.num_fewshot,
                          "apply_chat_template": request.apply_chat_template, "gen_kwargs": request.gen_kwargs,
                          "seeds": list(request.seeds), "bootstrap_iters": request.bootstrap_iters,
                          "items": [list(row) for row in shipped], "threads": cpus_per_shard}))
    outputs: dict[str, dict[str, Any]] = {run["run_id"]: {} for _, _, run in plans}

    def arrived(result: UnitResult) -> None:
        output = json.loads(result.payload) if result.ok and result.payload is not None else None
        if output is not None and not result.cached and output.get("items"):
            with ItemCache(store.cache_path) as cache:
                cache.put_many(tuple(row) for row in output["items"])
        for run, task in owner.get(result.key, []):
            shard = run["shards"][task]
            if output is None:
                shard.update(status="failed", error=result.error, attempts=result.attempts)
            else:
                shard.update(status="cached" if result.cached else "done", seconds=round(result.seconds, 3),
                             computed=0 if result.cached else (result.value or {}).get("computed"),
                             node=(result.value or {}).get("ray_node"))
                outputs[run["run_id"]][task] = _kept(output, store.run_dir(run["run_id"]) / "samples",
                                                     reused=result.cached)
            store.save(run)
            if all(sh["status"] != "pending" for sh in run["shards"].values()):
                conclude(run)  # its last shard is in: the model's run is done, whatever the others' state

    plan_of = {run["run_id"]: (request, backend) for request, backend, run in plans}

    def conclude(run: dict[str, Any]) -> None:
        failed = {t: sh for t, sh in run["shards"].items() if sh["status"] == "failed"}
        if failed:
            run.update(status="failed", finished_at=_now(),
                       error="; ".join(f"shard {t}: {sh.get('error')}" for t, sh in failed.items()))
            store.save(run)
            return
        request, backend = plan_of[run["run_id"]]
        finish_run(run, request, backend, _merged(outputs[run["run_id"]], tasks), store, manager=manager,
                   seconds=sum(float(sh.get("seconds") or 0.0) for sh in run["shards"].values()))

    try:
        shards = run_units(executor, units, store=results_store, progress=progress, label="benchmark shards",
                           on_result=arrived)
    except BaseException as exc:
        for _, _, run in plans:
            if run["status"] == "running":
                run.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                           error=f"{exc.__class__.__name__}: {exc}", finished_at=_now())
                store.save(run)
        raise
    return ShardedRuns(runs=every, shards=[*shards, *unpinned], executor=executor.name)


def _kept(output: dict[str, Any], samples_dir: Path, *, reused: bool) -> dict[str, Any]:
    """Write a shard's per-item samples into its run's folder at once and keep only its small parts in memory. A
    `reused` shard (finished by an earlier run) computed nothing for this one: all its items count as cached."""
    raw = dict(output["raw"])
    n_samples = write_samples(samples_dir, raw.pop("samples", None) or {})
    counts = output.get("counts") or {}
    if reused:
        computed, cached = counts.get("computed") or {}, counts.get("cached") or {}
        counts = {"computed": {}, "cached": {t: computed.get(t, 0) + cached.get(t, 0)
                                             for t in sorted(set(computed) | set(cached))}}
    return {"raw": raw, "versions": output.get("versions") or {}, "counts": counts, "n_samples": n_samples}


def _merged(parts: dict[str, dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """One lm-eval-shaped result from a model's shards, in the requested tasks' order."""
    raw: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {"computed": {}, "cached": {}}
    n_samples: dict[str, int] = {}
    for task in tasks:
        part = parts[task]
        for name, value in part["raw"].items():
            if isinstance(value, dict):
                raw.setdefault(name, {}).update(value)
        versions.update(part["versions"])
        for kind in counts:
            counts[kind].update(part["counts"].get(kind) or {})
        n_samples.update(part["n_samples"])
    return {"raw": raw, "versions": versions, "counts": counts, "n_samples": n_samples}
