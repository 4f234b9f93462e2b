"""One shard of a benchmark run — one model on one task — as a work unit a worker runs.

The worker is sent the answers the driver's item cache already holds for the shard (so it recomputes none of them),
runs lm-eval on a scratch copy of them, and sends back what the run needs (results, per-item samples, configs) with
every answer it computed. The driver writes those answers into the shared item cache and the run store; a worker
never writes either.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from simsa.bench.identity import ModelIdentity
from simsa.errors import InputError
from simsa.scale.threads import torch_threads

FUNCTION = "simsa.bench.shard_unit:run_shard"
# Parts of lm-eval's output a run keeps (the rest is environment and timing, which the driver records itself).
RAW_KEYS = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
            "task_hashes", "samples")


def identity_args(identity: ModelIdentity) -> dict[str, Any]:
    """A pinned model identity as plain data for a unit's arguments."""
    return {"ref": identity.ref, "kind": identity.kind, "sha256": identity.sha256, "revision": identity.revision,
            "path": str(identity.path) if identity.path else None, "chat_template": identity.chat_template,
            "details": identity.details}


def located_identity(data: dict[str, Any]) -> ModelIdentity:
    """The driver's identity, with the model found on this node: a local directory must exist here (the executor
    places a node-local path's shards where it is); a hub snapshot missing here is fetched at its pinned commit and
    checked against the driver's content hash."""
    identity = ModelIdentity(ref=data["ref"], kind=data["kind"], sha256=data.get("sha256"),
                             revision=data.get("revision"), path=Path(data["path"]) if data.get("path") else None,
                             chat_template=data.get("chat_template"), details=dict(data.get("details") or {}))
    if identity.kind == "server" or (identity.path is not None and identity.path.is_dir()):
        return identity
    if identity.kind == "local":
        raise InputError(f"{identity.ref}: the model directory {identity.path} is not on this node (put it on a "
                         "file system every node shares, or name a hub reference)")
    from simsa.bench.identity import resolve_local_or_hub

    here = resolve_local_or_hub(f"{identity.details.get('repo')}@{identity.revision}")
    if here.sha256 != identity.sha256:
        raise InputError(f"{identity.ref}: the snapshot fetched on this node hashes to {here.sha256}, not the "
                         f"driver's {identity.sha256}")
    return here


def run_shard(*, options: dict[str, Any], identity: dict[str, Any], task: str, limit: int | float | None,
              num_fewshot: int | None, apply_chat_template: bool, gen_kwargs: str | None, seeds: list[int],
              bootstrap_iters: int, items: list[list[Any]], threads: int = 1) -> tuple[dict[str, Any], bytes]:
    """Evaluate `task` on the model, answering first from `items` (key, kind, task, scope, value rows); returns a
    small summary and the shard's output as JSON bytes (deterministic: no times, no paths of this node, and torch on
    `threads` threads wherever it runs)."""
    from simsa.bench import catalog
    from simsa.bench.backends import BackendOptions, resolve_backend
    from simsa.bench.cache import ItemCache
    from simsa.bench.engine import run_lm_eval

    os.environ.setdefault("TQDM_DISABLE", "1")
    backend = resolve_backend(BackendOptions(**options), identity=located_identity(identity))
    manager = catalog.task_manager_for([task])
    shipped = {row[0] for row in items}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simsa-shard-") as scratch:
        path = Path(scratch) / "cache.sqlite"
        with ItemCache(path) as cache:
            cache.put_many((key, kind, item_task, scope, value) for key, kind, item_task, scope, value in items)
        with torch_threads(threads):
            result = run_lm_eval([task], backend, path, task_manager=manager, limit=limit,
                                 num_fewshot=num_fewshot, apply_chat_template=apply_chat_template,
                                 gen_kwargs=gen_kwargs, seeds=(seeds[0], seeds[1], seeds[2], seeds[3]),
                                 bootstrap_iters=bootstrap_iters)
        with ItemCache(path) as cache:
            computed = [list(row) for row in cache.rows() if row[0] not in shipped]
    raw = json.loads(json.dumps({k: result.raw.get(k) for k in RAW_KEYS if k in result.raw}, ensure_ascii=False,
                                default=str))
    output = {"task": task, "raw": raw, "versions": result.versions, "items": computed,
              "counts": {"computed": dict(sorted(result.counts.computed.items())),
                         "cached": dict(sorted(result.counts.cached.items()))}}
    summary = {"task": task, "model": identity.get("ref"), "computed": result.counts.total_computed,
               "cached": result.counts.total_cached, "seconds": round(time.perf_counter() - started, 3),
               "worker_pid": os.getpid(),
               "worker_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    # keys keep lm-eval's order, so a shard's samples are written byte for byte as a whole run writes them
    return summary, json.dumps(output, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
