"""Judge runs of several candidates as work units through one executor: one unit per candidate (its answers, and
every judge's verdicts on them), keyed by every model's identity, the question file's bytes, the mode and settings.

The driver sends each unit the calls the item cache already holds for its models (so a worker remakes none of
them), writes back every call a worker made, and keeps each candidate's run in the run store as `bench judge` does.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simsa.bench.cache import ItemCache
from simsa.bench.judge_runs import check_judge_request, finish_judge_run, open_client
from simsa.bench.runs import RunStore
from simsa.errors import InputError
from simsa.scale import Executor, Resources, ResultStore, UnitResult, WorkUnit, run_units, torch_threads, unit_key

if TYPE_CHECKING:
    from simsa.bench.chat import ChatClient

FUNCTION = "simsa.bench.judge_units:run_judge_unit"
Progress = Callable[[str, int, int], None]


@dataclass
class JudgeRuns:
    """One judge run per candidate, and each unit's outcome."""

    runs: list[dict[str, Any]]
    units: list[UnitResult] = field(default_factory=list)
    executor: str = "serial"

    @property
    def failed(self) -> list[UnitResult]:
        return [u for u in self.units if not u.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "runs": self.runs, "units": [u.to_dict() for u in self.units],
                "failed": len(self.failed)}


def run_judge_unit(*, candidate: str, judges: list[str], baseline: str | None, questions: str, source: str,
                   mode: str, max_tokens: int, http: dict[str, Any], items: list[list[Any]], threads: int = 1
                   ) -> tuple[dict[str, Any], bytes]:
    """Answer and judge one candidate where this runs, first from the shipped `items` (key, kind, task, scope,
    value); returns a summary and, as JSON bytes, the task's result with every call this worker made."""
    from simsa.bench.chat import GenSettings
    from simsa.bench.judge import MemoryStore, run_judge_task
    from simsa.bench.judge.questions import parse_questions

    store = MemoryStore()
    for key, _kind, _task, scope, value in items:
        store.put(key, value, scope=scope)
    shipped = set(store.data)

    def opened(spec: str) -> ChatClient:
        return open_client(spec, **http)

    with torch_threads(threads):  # models in this process answer alike wherever the unit runs
        result = run_judge_task(opened(candidate), [opened(j) for j in judges],
                                parse_questions(base64.b64decode(questions), source), mode=mode,
                                baseline=opened(baseline) if baseline else None, store=store,
                                gen_settings=GenSettings(max_tokens=max_tokens))
    made = [[key, "judge", None, store.scopes.get(key), value] for key, value in sorted(store.data.items())
            if key not in shipped]
    data = result.to_dict()
    summary = {"candidate": candidate, "computed": data["calls"]["computed"], "cached": data["calls"]["cached"]}
    return summary, json.dumps({"data": data, "items": made}, ensure_ascii=False, separators=(",", ":"),
                               default=str).encode("utf-8")


def execute_judges(store: RunStore, executor: Executor, *, candidates: list[str], judges: list[str],
                   questions: Path | None, mode: str, baseline: str | None, max_tokens: int,
                   api_key: str | None = None, concurrency: int = 4, timeout: float = 120.0,
                   rate_limit: float | None = None, argv: list[str] | None = None, cpus_per_unit: int = 1,
                   progress: Progress | None = None) -> JudgeRuns:
    """Judge every candidate, one unit each, with torch on `cpus_per_unit` threads wherever it runs; each
    candidate's run is kept as `bench judge` keeps one."""
    from simsa.bench.judge.cache import call_scope
    from simsa.bench.judge.questions import load_questions, sample_questions

    check_judge_request(mode, judges, baseline)
    if cpus_per_unit < 1:
        raise InputError("--cpus-per-unit must be at least 1")
    qs = load_questions(questions) if questions else sample_questions()
    data = questions.read_bytes() if questions else _sample_bytes()
    http: dict[str, Any] = {"api_key": api_key, "concurrency": concurrency, "timeout": timeout,
                            "rate_limit": rate_limit}

    def opened(spec: str) -> ChatClient:
        return open_client(spec, **http, memo=store.hash_memo)

    judge_ids = [opened(j).identity() for j in judges]
    base_id = opened(baseline).identity() if baseline else None
    units: list[WorkUnit] = []
    runs: dict[str, dict[str, Any]] = {}
    results_store = ResultStore(store.root / "units")
    with ItemCache(store.cache_path) as cache:
        for candidate in candidates:
            cand_id = opened(candidate).identity()
            key = unit_key("bench.judge", candidate=cand_id, judges=judge_ids, baseline=base_id,
                           questions=qs.sha256, mode=mode, max_tokens=max_tokens, threads=cpus_per_unit)
            scopes = [call_scope(i) for i in [cand_id, *judge_ids, *([base_id] if base_id else [])]]
            shipped = [] if results_store.has(key) else cache.in_scopes(scopes)
            specs = [candidate, *judges, *([baseline] if baseline else [])]
            local = [str(Path(s).expanduser().resolve()) for s in specs if Path(s).expanduser().is_dir()]
            units.append(WorkUnit(
                kind="bench.judge", label=candidate, function=FUNCTION, key=key, local_paths=tuple(local),
                resources=Resources(cpus=float(cpus_per_unit)),
                args={"candidate": candidate, "judges": judges, "baseline": baseline, "mode": mode,
                      "questions": base64.b64encode(data).decode("ascii"), "source": qs.source,
                      "max_tokens": max_tokens, "http": http, "items": [list(row) for row in shipped],
                      "threads": cpus_per_unit}))
            run = {"run_id": store.new_id(), "kind": "judge", "status": "running", "pid": os.getpid(),
                   "started_at": _now(), "executor": executor.name,
                   "request": {"tasks": [f"judge_{mode}"], "candidate": candidate, "judges": judges,
                               "baseline": baseline, "questions": str(questions) if questions else None,
                               "mode": mode, "max_tokens": max_tokens, "limit": None},
                   "model": {"ref": candidate}, "unit": key}
            store.save(run)
            runs[key] = run

    def arrived(result: UnitResult) -> None:
        run = runs[result.key]
        if not result.ok or result.payload is None:
            run.update(status="failed", error=result.error, finished_at=_now())
            store.save(run)
            return
        output = json.loads(result.payload)
        data = output["data"]
        if result.cached:  # finished by an earlier run: nothing was computed for this one
            calls = data["calls"]
            data["calls"] = {**calls, "computed": 0, "cached": calls["computed"] + calls["cached"]}
        elif output["items"]:
            with ItemCache(store.cache_path) as cache:
                cache.put_many(tuple(row) for row in output["items"])
        finish_judge_run(run, data, store, mode=mode, argv=argv)

    try:
        done = run_units(executor, units, store=results_store, progress=progress, label="judge units",
                         on_result=arrived)
    except BaseException as exc:
        for run in runs.values():
            if run["status"] == "running":
                run.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                           error=f"{exc.__class__.__name__}: {exc}", finished_at=_now())
                store.save(run)
        raise
    return JudgeRuns(runs=[runs[u.key] for u in units], units=done, executor=executor.name)


def _sample_bytes() -> bytes:
    from importlib.resources import files

    from simsa.bench.judge.questions import SAMPLE

    return (files("simsa.bench.judge") / "data" / SAMPLE).read_bytes()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
