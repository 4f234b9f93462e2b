"""One seam for work that may be spread over machines: a list of work units goes in, their results come back to the
driver, which alone writes the store (so the audit chain and the registries stay linear).

`serial` (the default) runs each unit in this process, as simsa always has. `ray` hands them to a Ray cluster
(`RAY_ADDRESS`, or a local instance started for the run): each unit as a task with the resources it declares,
retried a bounded number of times when its worker dies; a unit whose function fails is reported with its error and
the others complete. Ray is optional (`pip install 'simsa[ray]'`).
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Protocol

from simsa.errors import InputError
from simsa.scale.placement import Node, place
from simsa.scale.results import ResultStore
from simsa.scale.units import UnitResult, WorkUnit

EXECUTORS = ("serial", "ray")
EXECUTOR_ENV = "SIMSA_EXECUTOR"
MAX_RETRIES = 2  # a unit whose worker died is tried at most this many more times
PROBE_TIMEOUT = 120.0  # seconds a node may take to say which node-local paths it holds
Progress = Callable[[str, int, int], None]
UnitValue = tuple[dict[str, Any], bytes | None]


def call_unit(function: str, args: dict[str, Any]) -> UnitValue:
    """Run a unit's function ("module:name", inside simsa only: units name code, they never carry it)."""
    module, _, name = function.partition(":")
    if not module.startswith("simsa.") or not name:
        raise InputError(f"a work unit may only call a simsa function, not {function!r}")
    fn = getattr(importlib.import_module(module), name)
    value, payload = fn(**args)
    return value, payload


class Executor(Protocol):
    name: str

    def execute(self, units: Sequence[WorkUnit], done: Callable[[UnitResult], None]) -> None:
        """Run every unit, calling `done` in the driver as each one finishes (in any order)."""


class SerialExecutor:
    """Each unit in this process, one after another (today's behaviour; a failing unit does not stop the rest)."""

    name = "serial"

    def execute(self, units: Sequence[WorkUnit], done: Callable[[UnitResult], None]) -> None:
        for unit in units:
            started = time.perf_counter()
            try:
                value, payload = call_unit(unit.function, unit.args)
            except Exception as exc:
                done(UnitResult(unit.key, unit.label, False, error=_message(exc),
                                seconds=time.perf_counter() - started))
                continue
            done(UnitResult(unit.key, unit.label, True, value=value, payload=payload,
                            seconds=time.perf_counter() - started))


def _message(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}".strip()


def _probe_paths(paths: list[str]) -> list[str]:
    """Which of `paths` exist on the node this runs on."""
    return [p for p in paths if os.path.exists(p)]


def _ray_task(function: str, args: dict[str, Any]) -> tuple[dict[str, Any], bytes | None, float]:
    """What a Ray worker runs for one unit (a module-level function, so workers import it by name); the value says
    which node ran it."""
    import ray

    started = time.perf_counter()
    value, payload = call_unit(function, args)
    return {**value, "ray_node": ray.get_runtime_context().get_node_id()}, payload, time.perf_counter() - started


class RayExecutor:
    """Units as Ray tasks on the cluster at `address` (else $RAY_ADDRESS, else a local instance of `num_cpus`)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 max_retries: int = MAX_RETRIES) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("--executor ray needs Ray, which is not installed here: pip install 'simsa[ray]' "
                             "(or run with --executor serial)") from None
        self._ray = ray
        self.max_retries = max_retries
        self._started = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
            self._started = True
        self._remote = ray.remote(_ray_task)

    def close(self) -> None:
        """Leave the cluster if this executor joined or started it."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def nodes(self) -> list[Node]:
        """The cluster's live nodes and what each offers."""
        return [Node(id=n["NodeID"], cpus=float(n["Resources"].get("CPU", 0)),
                     gpus=float(n["Resources"].get("GPU", 0)), memory=float(n["Resources"].get("memory", 0)))
                for n in self._ray.nodes() if n.get("Alive")]

    def holders(self, nodes: Sequence[Node], paths: Sequence[str]) -> dict[str, set[str]]:
        """For each path, the nodes that hold it (asked of a zero-CPU probe pinned to each node)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = self._ray.remote(_probe_paths)
        asked = {node.id: probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node.id, soft=False)).remote(list(paths)) for node in nodes}
        found: dict[str, set[str]] = {p: set() for p in paths}
        for node_id, ref in asked.items():
            for path in self._ray.get(ref, timeout=PROBE_TIMEOUT):
                found[path].add(node_id)
        return found

    def execute(self, units: Sequence[WorkUnit], done: Callable[[UnitResult], None]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        pending: dict[Any, WorkUnit] = {}
        started = time.perf_counter()
        nodes = self.nodes()
        paths = sorted({p for unit in units for p in unit.local_paths})
        placements = place(units, nodes, self.holders(nodes, paths) if paths and len(nodes) > 1 else None)
        for unit in units:
            placement = placements[unit.key]
            if placement.error is not None:  # no node can take it: reported now, not left waiting forever
                done(UnitResult(unit.key, unit.label, False, attempts=0, error=placement.error))
                continue
            r = unit.resources
            task = self._remote.options(
                num_cpus=r.cpus, num_gpus=r.gpus, memory=r.memory or None, max_retries=self.max_retries,
                retry_exceptions=False, scheduling_strategy=None if placement.node is None else
                NodeAffinitySchedulingStrategy(placement.node, soft=False))
            pending[task.remote(unit.function, unit.args)] = unit
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                unit = pending.pop(ref)
                try:
                    value, payload, seconds = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the unit's own function failed
                    done(UnitResult(unit.key, unit.label, False, error=_message(exc.cause or exc),
                                    seconds=time.perf_counter() - started))
                    continue
                except ray.exceptions.RayError as exc:  # its worker died more often than the retries allow
                    done(UnitResult(unit.key, unit.label, False, attempts=self.max_retries + 1,
                                    error=f"worker lost after {self.max_retries + 1} attempts: {_message(exc)}",
                                    seconds=time.perf_counter() - started))
                    continue
                done(UnitResult(unit.key, unit.label, True, value=value, payload=payload, seconds=seconds))


def executor_name(name: str | None) -> str:
    """The executor asked for (--executor, else $SIMSA_EXECUTOR, else serial), checked."""
    chosen = (name or os.environ.get(EXECUTOR_ENV) or "serial").strip().lower()
    if chosen not in EXECUTORS:
        raise InputError(f"unknown executor {chosen!r}; expected one of {', '.join(EXECUTORS)}")
    return chosen


@contextmanager
def open_executor(name: str | None = None, *, num_cpus: int | None = None) -> Iterator[Executor]:
    """The executor for a run, closed (a local Ray instance shut down) when the run ends."""
    chosen = executor_name(name)
    if chosen == "serial":
        yield SerialExecutor()
        return
    ray_executor = RayExecutor(num_cpus=num_cpus)
    try:
        yield ray_executor
    finally:
        ray_executor.close()


def _let_go(result: UnitResult) -> UnitResult:
    size = len(result.payload) if result.payload is not None else result.payload_bytes
    return replace(result, payload=None, payload_bytes=size)


def run_units(executor: Executor, units: Sequence[WorkUnit], *, store: ResultStore | None = None,
              progress: Progress | None = None, label: str = "units",
              on_result: Callable[[UnitResult], None] | None = None) -> list[UnitResult]:
    """Run `units` on `executor`: results already in `store` are not recomputed; each new success is kept there by
    the driver as it arrives (so a killed driver resumes where it stopped). Results come back in the units' order;
    `on_result` sees each one in the driver as it arrives (cached ones first), with its payload, which is then let
    go: the driver's memory does not grow with the number of units."""
    results: dict[str, UnitResult] = {}
    todo: list[WorkUnit] = []
    seen: set[str] = set()
    total = len({u.key for u in units})

    def finished(result: UnitResult) -> None:
        if store is not None:
            store.put(result)
        if on_result is not None:
            on_result(result)
        results[result.key] = _let_go(result)
        if progress is not None:
            progress(f"{label} ({executor.name})", len(results), total)

    for unit in units:
        if unit.key in seen:
            continue
        seen.add(unit.key)
        cached = store.get(unit.key) if store is not None else None
        if cached is not None:
            if on_result is not None:
                on_result(cached)
            results[unit.key] = _let_go(cached)
        else:
            todo.append(unit)
    if progress is not None:
        progress(f"{label} ({executor.name})", len(results), total)
    executor.execute(todo, finished)
    return [results[u.key] for u in units]
