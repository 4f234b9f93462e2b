"""Scale-out: work units keyed by content, run by one executor seam — `serial` in this process (the default) or
`ray` over a cluster — with results kept by the driver so reruns and restarted drivers recompute nothing done."""

from simsa.scale.executors import (
    EXECUTOR_ENV,
    EXECUTORS,
    Executor,
    RayExecutor,
    SerialExecutor,
    call_unit,
    executor_name,
    open_executor,
    run_units,
)
from simsa.scale.placement import Node, Placement, place
from simsa.scale.results import ResultStore
from simsa.scale.threads import torch_threads
from simsa.scale.units import Resources, UnitResult, WorkUnit, unit_key

__all__ = [
    "EXECUTORS",
    "EXECUTOR_ENV",
    "Executor",
    "Node",
    "Placement",
    "RayExecutor",
    "Resources",
    "ResultStore",
    "SerialExecutor",
    "UnitResult",
    "WorkUnit",
    "call_unit",
    "executor_name",
    "open_executor",
    "place",
    "run_units",
    "torch_threads",
    "unit_key",
]
