"""Where a unit may run on a cluster: on a node with the CPUs, GPUs and memory it asks for, and, when it reads a
node-local path, on a node that holds that path (a large checkpoint is read where it lies, not copied).

A unit no node can take is reported at once, with what it asked and what the largest node has, rather than left
waiting forever for a node that will never join.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from simsa.scale.units import Resources, WorkUnit


@dataclass(frozen=True)
class Node:
    """A live node of the cluster and what it offers."""

    id: str
    cpus: float = 0.0
    gpus: float = 0.0
    memory: float = 0.0

    def fits(self, r: Resources) -> bool:
        return r.cpus <= self.cpus and r.gpus <= self.gpus and (not r.memory or r.memory <= self.memory)


@dataclass(frozen=True)
class Placement:
    """A unit's placement: `node` when it must run on that node, neither when any node will do, or why none can."""

    node: str | None = None
    error: str | None = None


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _describe(r: Resources) -> str:
    parts = [f"{r.cpus:g} CPU"] + ([f"{r.gpus:g} GPU"] if r.gpus else []) + ([_gib(r.memory)] if r.memory else [])
    return ", ".join(parts)


def place(units: Sequence[WorkUnit], nodes: Sequence[Node],
          holders: Mapping[str, set[str]] | None = None) -> dict[str, Placement]:
    """Each unit's placement by key. `holders` maps each node-local path the units read to the nodes that hold it
    (None: every node sees every path, as on a shared file system or a single machine). Units pinned to nodes are
    spread over the nodes that hold their paths, fewest units first."""
    load: dict[str, int] = {n.id: 0 for n in nodes}
    out: dict[str, Placement] = {}
    for unit in units:
        fit = [n for n in nodes if n.fits(unit.resources)]
        if not fit:
            largest = max(nodes, key=lambda n: (n.gpus, n.cpus, n.memory), default=None)
            has = "no live node" if largest is None else (
                f"the largest node has {largest.cpus:g} CPU, {largest.gpus:g} GPU, {_gib(largest.memory)}")
            out[unit.key] = Placement(error=f"{unit.label} asks for {_describe(unit.resources)}; {has}")
            continue
        if holders is None or not unit.local_paths:
            out[unit.key] = Placement()
            continue
        where = {n.id for n in fit}
        for path in unit.local_paths:
            where &= holders.get(path, set())
        if not where:
            missing = [p for p in unit.local_paths if not holders.get(p)]
            out[unit.key] = Placement(error=(
                f"{missing[0]} is on no node of the cluster" if missing else
                f"no node that can take {_describe(unit.resources)} holds {', '.join(unit.local_paths)}"))
            continue
        if where == {n.id for n in nodes}:
            out[unit.key] = Placement()
            continue
        chosen = min(sorted(where), key=lambda node_id: load[node_id])
        load[chosen] += 1
        out[unit.key] = Placement(node=chosen)
    return out
