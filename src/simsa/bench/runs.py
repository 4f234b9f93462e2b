"""Benchmark runs and where they are kept: a runs directory with the shared item cache and one folder per run.

    RUNS_DIR/cache.sqlite            answered requests, shared by every run (see cache.py)
    RUNS_DIR/model-hashes.json       remembered per-file hashes of model directories
    RUNS_DIR/runs/RUN_ID/run.json    status, request, results, counts, manifest
    RUNS_DIR/runs/RUN_ID/samples/TASK.jsonl   per-item results as lm-eval logged them

A run's folder is written when it starts (status "running", with the process id) and again when it ends, so a
killed run is visible as "interrupted"; running the same command again recomputes nothing that was answered.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import math
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsa.bench.backends import Backend, BackendOptions, resolve_backend
from simsa.bench.cache import ItemCache
from simsa.errors import InputError

RUN_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
Progress = Callable[[str, int, int], None]


def default_runs_dir() -> Path:
    return Path(os.environ.get("SIMSA_RUNS_DIR") or "simsa-runs")


@dataclass
class RunRequest:
    """What `simsa bench run` was asked to do."""

    tasks: list[str]
    backend: BackendOptions
    limit: int | float | None = None
    num_fewshot: int | None = None
    apply_chat_template: bool = False
    gen_kwargs: str | None = None
    seeds: tuple[int, int, int, int] = (0, 1234, 1234, 1234)
    suite: str | None = None
    bootstrap_iters: int = 1000
    argv: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        backend = {k: ("***" if k == "api_key" and v else v) for k, v in self.backend.__dict__.items()}
        return {"tasks": self.tasks, "backend": backend, "limit": self.limit, "num_fewshot": self.num_fewshot,
                "apply_chat_template": self.apply_chat_template, "gen_kwargs": self.gen_kwargs,
                "seeds": list(self.seeds), "suite": self.suite}


class RunStore:
    """The runs directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_runs_dir()

    @property
    def cache_path(self) -> Path:
        return self.root / "cache.sqlite"

    @property
    def hash_memo(self) -> Path:
        return self.root / "model-hashes.json"

    def run_dir(self, run_id: str) -> Path:
        if not RUN_ID_RE.match(run_id):
            raise InputError(f"{run_id!r} is not a run id (they look like 20261129T150102Z-1a2b3c)")
        return self.root / "runs" / run_id

    def new_id(self) -> str:
        return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"

    def save(self, run: dict[str, Any]) -> None:
        folder = self.run_dir(run["run_id"])
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "run.json.tmp"
        tmp.write_text(json.dumps(run, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(folder / "run.json")

    @contextmanager
    def recording(self, run: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Save `run` as running; if the body raises, save it as interrupted (Ctrl-C) or failed, then re-raise."""
        self.save(run)
        try:
            yield run
        except BaseException as exc:
            run.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                       error=f"{exc.__class__.__name__}: {exc}",
                       finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
            self.save(run)
            raise

    def load(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(run_id) / "run.json"
        if not path.exists():
            known = ", ".join(r["run_id"] for r in self.list()[-5:]) or "none"
            raise InputError(f"no run {run_id!r} in {self.root} (latest: {known})")
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from exc
        if run.get("status") == "running" and not _alive(run.get("pid")):
            run["status"] = "interrupted"
        return run

    def list(self) -> list[dict[str, Any]]:
        base = self.root / "runs"
        if not base.is_dir():
            return []
        out = []
        for folder in sorted(base.iterdir()):
            if RUN_ID_RE.match(folder.name) and (folder / "run.json").exists():
                try:
                    out.append(self.load(folder.name))
                except InputError:
                    continue
        return out

    def samples(self, run_id: str) -> dict[str, builtins.list[dict[str, Any]]]:  # `list` here is the method
        """Per-item results of a run, task → rows."""
        folder = self.run_dir(run_id) / "samples"
        out: dict[str, list[dict[str, Any]]] = {}
        if folder.is_dir():
            for path in sorted(folder.glob("*.jsonl")):
                with path.open(encoding="utf-8") as fh:
                    out[path.stem] = [json.loads(line) for line in fh if line.strip()]
        return out


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _metric_table(raw_results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """lm-eval's "acc,none" keys → "acc"; other filters keep their name ("exact_match,strict-match")."""
    table: dict[str, dict[str, Any]] = {}
    for task, metrics in raw_results.items():
        row: dict[str, Any] = {}
        for key, value in metrics.items():
            if key == "alias" or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            name, _, filt = key.partition(",")
            name = name if filt in ("", "none") else f"{name},{filt}"
            row[name] = None if isinstance(value, float) and not math.isfinite(value) else value
        table[task] = row
    return table


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def write_samples(folder: Path, samples: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for task, rows in samples.items():
        with (folder / f"{task}.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        counts[task] = len(rows)
    return counts


def execute(request: RunRequest, store: RunStore, progress: Progress | None = None) -> dict[str, Any]:
    """Run the tasks (resuming from the item cache), keep per-item results, and write the run and its manifest."""
    from simsa.bench import catalog
    from simsa.bench.engine import run_lm_eval

    if not request.tasks:
        raise InputError("name at least one task (--tasks T1,T2) or a suite (--suite NAME)")
    offline = any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    catalog.check_tasks_available(request.tasks, offline=offline)
    backend = resolve_backend(request.backend, memo=store.hash_memo)
    manager = catalog.task_manager_for(request.tasks)
    run_id = store.new_id()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run: dict[str, Any] = {"run_id": run_id, "status": "running", "pid": os.getpid(), "started_at": started,
                           "request": request.to_dict(), "model": backend.identity.to_dict() | {"chat_template": None}}
    with store.recording(run):
        result = run_lm_eval(request.tasks, backend, store.cache_path, task_manager=manager, limit=request.limit,
                             num_fewshot=request.num_fewshot, apply_chat_template=request.apply_chat_template,
                             gen_kwargs=request.gen_kwargs, seeds=request.seeds,
                             bootstrap_iters=request.bootstrap_iters, progress=progress)
    n_samples = write_samples(store.run_dir(run_id) / "samples", result.raw.get("samples") or {})
    merged = {"raw": result.raw, "versions": result.versions, "n_samples": n_samples,
              "counts": {"computed": dict(result.counts.computed), "cached": dict(result.counts.cached)}}
    return finish_run(run, request, backend, merged, store, manager=manager, seconds=result.seconds)


def finish_run(run: dict[str, Any], request: RunRequest, backend: Backend, merged: dict[str, Any], store: RunStore,
               *, manager: Any, seconds: float) -> dict[str, Any]:
    """Complete a run whose samples are written: its metric tables, counts and manifest, saved as finished.
    `merged` holds lm-eval's output (`raw`), task versions, per-task counts and sample counts — of one lm-eval call,
    or of a model's shards put together."""
    from simsa.bench import catalog
    from simsa.bench.engine import task_config
    from simsa.bench.manifest import build_manifest

    raw = merged["raw"]
    names = sorted(raw.get("results", {}))
    output_types = {n: str((task_config(manager, n) or {}).get("output_type") or "") for n in names}
    datasets = catalog.dataset_provenance(names)
    manifest = build_manifest(tasks=request.tasks, backend=backend, raw=raw, versions=merged["versions"],
                              datasets=datasets, include_path=catalog.TASKS_DIR, output_types=output_types,
                              limit=request.limit, num_fewshot=request.num_fewshot,
                              apply_chat_template=request.apply_chat_template, gen_kwargs=request.gen_kwargs,
                              seeds=request.seeds, simsa_command=request.argv or None)
    with ItemCache(store.cache_path) as cache:
        cache_stats = cache.stats()
    computed, cached = merged["counts"]["computed"], merged["counts"]["cached"]
    run.update(
        status="finished", finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        seconds=round(seconds, 3), results=_metric_table(raw.get("results", {})),
        groups=_metric_table(raw.get("groups", {})) if raw.get("groups") else {},
        n_samples=merged["n_samples"], items_computed=sum(computed.values()), items_cached=sum(cached.values()),
        items_by_task={t: {"computed": computed.get(t, 0), "cached": cached.get(t, 0)}
                       for t in sorted(set(computed) | set(cached))},
        cache=cache_stats, manifest=_jsonable(manifest))
    store.save(run)
    return run
