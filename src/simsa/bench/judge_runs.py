"""Judge runs in the run store: an LLM-as-judge task run like any benchmark run — cached per call, resumable, kept
with its per-item records and a manifest (prompts and their hashes, question file hash, every model's identity).

Models are named by a spec: a model directory (or hub id) runs in process through transformers; `URL#MODEL`
(e.g. `http://127.0.0.1:8000/v1#judge`) is any OpenAI-compatible server.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simsa.bench.cache import ItemCache
from simsa.bench.runs import RunStore
from simsa.errors import InputError

if TYPE_CHECKING:
    from simsa.bench.chat import ChatClient

Progress = Callable[[str, int, int], None]


class CacheStore:
    """The run store's item cache seen as the judge runner's ItemStore."""

    def __init__(self, cache: ItemCache) -> None:
        self.cache = cache

    def get(self, key: str) -> dict | None:
        value = self.cache.get(key)
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict, scope: str | None = None) -> None:
        self.cache.put(key, value, kind="judge", scope=scope)


def open_client(spec: str, *, api_key: str | None = None, concurrency: int = 4, timeout: float = 120.0,
                max_retries: int = 5, rate_limit: float | None = None, memo: Path | None = None) -> ChatClient:
    """A chat client for a model spec (directory / hub id → in process; URL#MODEL → OpenAI-compatible server)."""
    from simsa.bench.chat import HFChatClient, OpenAIChatClient

    if spec.startswith(("http://", "https://")):
        url, sep, model = spec.partition("#")
        if not sep or not model:
            raise InputError(f"{spec}: name the served model after '#', e.g. http://127.0.0.1:8000/v1#judge")
        return OpenAIChatClient(url.rstrip("/"), model, api_key=api_key, concurrency=concurrency, timeout=timeout,
                                max_retries=max_retries, rate_limit_rps=rate_limit)
    from simsa.bench.identity import resolve_local_or_hub

    identity = resolve_local_or_hub(spec, memo)
    assert identity.path is not None  # a local directory or a hub snapshot: both resolve to a folder
    return HFChatClient(identity.path)


def check_judge_request(mode: str, judges: list[str], baseline: str | None) -> None:
    """Refuse a judge request that cannot run, before any model is opened."""
    if mode not in ("rubric", "pairwise"):
        raise InputError(f"--mode must be rubric or pairwise, not {mode!r}")
    if not judges:
        raise InputError("name at least one judge model (--judge SPEC, repeatable for an ensemble)")
    if (mode == "pairwise") != (baseline is not None):
        raise InputError("pairwise judging needs --baseline SPEC; rubric judging takes none")


def execute_judge(store: RunStore, *, candidate: str, judges: list[str], questions: Path | None, mode: str,
                  baseline: str | None, max_tokens: int, api_key: str | None = None, concurrency: int = 4,
                  timeout: float = 120.0, rate_limit: float | None = None, argv: list[str] | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Run a judge task and keep it as a run (run.json + samples/judge.jsonl)."""
    from simsa.bench.chat import GenSettings
    from simsa.bench.judge import load_questions, run_judge_task, sample_questions

    check_judge_request(mode, judges, baseline)
    qs = load_questions(questions) if questions else sample_questions()
    opened = partial(open_client, api_key=api_key, concurrency=concurrency, timeout=timeout, rate_limit=rate_limit,
                     memo=store.hash_memo)
    cand = opened(candidate)
    judge_clients = [opened(j) for j in judges]
    base = opened(baseline) if baseline else None
    run_id = store.new_id()
    run: dict[str, Any] = {"run_id": run_id, "kind": "judge", "status": "running", "pid": os.getpid(),
                           "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "request": {"tasks": [f"judge_{mode}"], "candidate": candidate, "judges": judges,
                                       "baseline": baseline, "questions": str(questions) if questions else None,
                                       "mode": mode, "max_tokens": max_tokens, "limit": None},
                           "model": {"ref": candidate}}
    with store.recording(run), ItemCache(store.cache_path) as cache:
        result = run_judge_task(cand, judge_clients, qs, mode=mode, baseline=base, store=CacheStore(cache),
                                gen_settings=GenSettings(max_tokens=max_tokens), progress=progress)
    return finish_judge_run(run, result.to_dict(), store, mode=mode, argv=argv)


def finish_judge_run(run: dict[str, Any], data: dict[str, Any], store: RunStore, *, mode: str,
                     argv: list[str] | None) -> dict[str, Any]:
    """Complete a judge run from its task's result (made here, or by a worker): per-item records, metrics, counts
    and manifest, saved as finished."""
    from simsa.bench.manifest import hardware

    summary = data["summary"]
    task = f"judge_{mode}"
    metrics: dict[str, Any] = {}
    if mode == "rubric":
        metrics = {"score": summary.get("mean"), "score_0_1": summary.get("mean_0_1")}
        ci = summary.get("ci95_0_1")
    else:
        metrics = {"win_rate": summary.get("win_rate")}
        ci = summary.get("ci95")
    if ci:
        # half-width of the 95% interval / 1.96: a standard error suites can use
        metrics[f"{'score_0_1' if mode == 'rubric' else 'win_rate'}_stderr"] = (ci[1] - ci[0]) / (2 * 1.96)
    folder = store.run_dir(run["run_id"]) / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{task}.jsonl").open("w", encoding="utf-8") as fh:
        for item in data["items"]:
            fh.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
    with ItemCache(store.cache_path) as cache:
        stats = cache.stats()
    run.update(status="finished", finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               results={task: metrics}, summary=summary, n_samples={task: len(data["items"])},
               items_computed=data["calls"]["computed"], items_cached=data["calls"]["cached"], cache=stats,
               model={"ref": run["model"]["ref"], **(data.get("candidate") or {})},
               manifest={"engine": {"name": "simsa-judge"}, "prompts": data["prompts"],
                         "questions": data["questions"], "candidate": data["candidate"],
                         "baseline": data["baseline"], "judges": data["judges"], "settings": data["settings"],
                         "hardware": hardware(), "simsa_command": " ".join(argv) if argv else None,
                         "lm_eval_command": None})
    store.save(run)
    return run
