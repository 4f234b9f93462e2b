"""`simsa bench tasks|run|show|list|record`: benchmark runs (lm-evaluation-harness engine), kept, made points."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from simsa.cli.context import STATE
from simsa.cli.lineage_cmd import progress_bar
from simsa.cli.output import console, emit_json, emit_units_json, err_console, fail_if_units_failed
from simsa.errors import InputError
from simsa.scale.executors import EXECUTOR_ENV

if TYPE_CHECKING:
    from simsa.bench.runs import RunStore
    from simsa.program.loader import LoadedProgram

app = typer.Typer(help="Benchmarks: run program suites and tasks (lm-evaluation-harness engine), resumably, "
                       "and record them as scores.", no_args_is_help=True)

RunsDir = Annotated[Path | None, typer.Option("--runs-dir", envvar="SIMSA_RUNS_DIR",
                                              help="Where runs and the item cache live (default simsa-runs).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _store(runs_dir: Path | None) -> RunStore:
    from simsa.bench.runs import RunStore

    return RunStore(runs_dir)


@app.command("tasks")
def tasks(
    as_json: Json = False,
    stock: Annotated[bool, typer.Option("--stock/--no-stock", help="Also list lm-eval's Korean and global tasks.")
                     ] = True,
) -> None:
    """List the tasks simsa can run and where each one's data comes from."""
    from simsa.bench.catalog import list_tasks

    infos = list_tasks(stock=stock)
    if as_json:
        emit_json({"tasks": [t.to_dict() for t in infos]})
        return
    table = Table(title="Benchmark tasks")
    for col in ("task", "origin", "items", "status", "data source", "licence"):
        table.add_column(col, overflow="fold")
    for t in infos:
        d = t.to_dict()
        table.add_row(d["name"], d["origin"], str(d.get("n_items") or ""), d["status"], escape(str(d["source"])),
                      d.get("licence") or "")
    console.print(table)


def _parse_seeds(text: str) -> tuple[int, int, int, int]:
    try:
        parts = [int(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--seed {text!r}: expected one integer or four (python,numpy,torch,fewshot)") from None
    if len(parts) == 1:
        parts = parts * 4
    if len(parts) != 4:
        raise InputError(f"--seed {text!r}: expected one integer or four (python,numpy,torch,fewshot)")
    return parts[0], parts[1], parts[2], parts[3]


def _suite_tasks(program: str, suite_id: str) -> tuple[Any, list[str]]:
    from simsa.bench.suites import runnable_suite

    suite = runnable_suite(_load_program(program).program, suite_id)
    names = list(dict.fromkeys(t.task for t in suite.tasks))
    return suite, names


def _load_program(program: str) -> LoadedProgram:
    from simsa.services import programs

    with STATE.store().session() as session:
        return programs.resolve(session, program)


@app.command("run")
def run(
    models: Annotated[list[str] | None, typer.Option(
        "--model", help="Model directory, hub id org/name[@rev], or (openai) the served model name; repeat it to run "
                        "several models as model × task shards.")] = None,
    tasks_opt: Annotated[str | None, typer.Option("--tasks", help="Comma-separated task names.")] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="A suite of the program file (needs --program).")
                     ] = None,
    program: Annotated[str | None, typer.Option("--program", help="Program file or loaded program id.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="hf | openai | vllm")] = "hf",
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. "
                                                                    "http://127.0.0.1:8000/v1")] = None,
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="Tokenizer for the openai backend.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="OPENAI_API_KEY", show_envvar=True,
                                                help="Bearer token for the openai backend.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Concurrent HTTP requests (openai).")] = 4,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Retries with backoff per request.")] = 5,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per HTTP request.")] = 120.0,
    rate_limit: Annotated[float | None, typer.Option("--rate-limit", help="Requests per second at most.")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Weights dtype (hf/vllm).")] = "float32",
    device: Annotated[str, typer.Option("--device", help="Device (hf).")] = "cpu",
    tensor_parallel: Annotated[int, typer.Option("--tensor-parallel", help="GPUs one vLLM model is split over "
                                                                          "(each shard asks for as many).")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size (1 gives bit-identical resumes).")
                          ] = 1,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Context length in tokens (default: the "
                                                                         "model's, or the server's max_model_len).")
                          ] = None,
    limit: Annotated[float | None, typer.Option("--limit", help="Items per task (N, or a fraction < 1).")] = None,
    num_fewshot: Annotated[int | None, typer.Option("--num-fewshot", help="Few-shot examples.")] = None,
    chat: Annotated[bool, typer.Option("--apply-chat-template", help="Apply the model's chat template.")] = False,
    gen_kwargs: Annotated[str | None, typer.Option("--gen-kwargs", help="lm-eval generation settings, "
                                                                         "e.g. temperature=0,max_gen_toks=256")] = None,
    seed: Annotated[str, typer.Option("--seed", help="python,numpy,torch,fewshot seeds (lm-eval's defaults).")
                    ] = "0,1234,1234,1234",
    executor: Annotated[str | None, typer.Option(
        "--executor", help="serial or ray (a Ray cluster: $RAY_ADDRESS, else a local instance): run as model × task "
                           "shards; default $SIMSA_EXECUTOR, else one run in this process.")] = None,
    cpus_per_unit: Annotated[int, typer.Option(
        "--cpus-per-unit", help="CPUs (torch threads) each shard asks for and runs on, so its numbers are the same "
                                "on every executor.")] = 1,
    runs_dir: RunsDir = None,
    as_json: Json = False,
) -> None:
    """Run tasks or a suite; answered items come from the cache, so a killed run resumes where it stopped.

    Several models, or a named executor, run as model × task shards: each shard is a work unit keyed by the model's
    content, the task's version and data and the settings, so a rerun recomputes no finished shard; the driver
    writes every answer into the item cache and each model's run into the runs directory (`bench show` follows it
    while it runs)."""
    from simsa.bench.backends import BackendOptions
    from simsa.bench.runs import RunRequest, execute

    if (tasks_opt is None) == (suite is None):
        raise InputError("give either --tasks T1,T2 or --suite NAME (with --program)")
    suite_obj = None
    if suite is not None:
        if program is None:
            raise InputError("--suite needs --program (the program file that declares the suite)")
        suite_obj, names = _suite_tasks(program, suite)
        if limit is None and suite_obj.limit is not None:
            limit = float(suite_obj.limit)
        num_fewshot = suite_obj.num_fewshot if num_fewshot is None else num_fewshot
        chat = chat or suite_obj.apply_chat_template
    else:
        names = [t.strip() for t in (tasks_opt or "").split(",") if t.strip()]
    models = [m for m in (models or []) if m] or ([""] if backend == "openai" else [])
    if not models:
        raise InputError("--model is required")
    lim: int | float | None = None
    if limit is not None:
        if limit <= 0:
            raise InputError("--limit must be positive")
        lim = int(limit) if limit >= 1 else float(limit)
    seeds = _parse_seeds(seed)
    argv = ["simsa", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("simsa") else []
    requests = [RunRequest(tasks=names, backend=BackendOptions(
        backend=backend, model=model, dtype=dtype, device=device, batch_size=batch_size, max_length=max_length,
        base_url=base_url, tokenizer=tokenizer, concurrency=concurrency, max_retries=max_retries, timeout=timeout,
        rate_limit=rate_limit, api_key=api_key, tensor_parallel=tensor_parallel), limit=lim, num_fewshot=num_fewshot,
        apply_chat_template=chat, gen_kwargs=gen_kwargs, seeds=seeds, suite=suite, argv=argv) for model in models]
    store = _store(runs_dir)
    if len(requests) > 1 or executor is not None or os.environ.get(EXECUTOR_ENV):
        _run_sharded(requests, store, executor, suite_obj, partial=lim is not None, as_json=as_json,
                     cpus_per_unit=cpus_per_unit)
        return
    with progress_bar() as progress:
        result = execute(requests[0], store, progress=progress)
    if suite_obj is not None:
        _score_suite(result, suite_obj, store, partial=lim is not None)
    if as_json:
        emit_json(result)
        return
    _print_run(result)


def _score_suite(run: dict[str, Any], suite: Any, store: RunStore, *, partial: bool) -> None:
    from simsa.bench.suites import score_suite

    run["suite_score"] = score_suite(suite, run["results"], store.samples(run["run_id"]), partial=partial).to_dict()
    store.save(run)


def _run_sharded(requests: list[Any], store: RunStore, executor: str | None, suite: Any, *, partial: bool,
                 as_json: bool, cpus_per_unit: int) -> None:
    from simsa.bench.sharded_runs import execute_sharded
    from simsa.scale import open_executor

    with progress_bar() as progress, open_executor(executor) as chosen:
        out = execute_sharded(requests, store, chosen, cpus_per_shard=cpus_per_unit, progress=progress)
    if suite is not None:
        for run in out.runs:
            if run["status"] == "finished":
                _score_suite(run, suite, store, partial=partial)
    if as_json:
        emit_units_json(out.to_dict(), out.failed)
        return
    for run in out.runs:
        console.print(f"[bold]{escape(str((run.get('model') or {}).get('ref')))}[/]")
        _print_run(run)
    cached = sum(1 for s in out.shards if s.cached)
    console.print(f"{len(out.shards)} shards on {out.executor}: {len(out.shards) - cached - len(out.failed)} run, "
                  f"{cached} already done, {len(out.failed)} failed")
    fail_if_units_failed(out.failed, len(out.shards), "shards")


def _print_run(run: dict[str, Any]) -> None:
    console.print(f"[bold]run {run['run_id']}[/] — {run['status']}"
                  + (f" in {run['seconds']:.1f} s" if run.get("seconds") is not None else ""))
    if run.get("error"):
        console.print(f"[red]{escape(run['error'])}[/]")
    _print_shards(run)
    if not run.get("results"):
        return
    table = Table()
    for col in ("task", "metric", "value", "± stderr", "items"):
        table.add_column(col)
    for task, metrics in (run.get("results") or {}).items():
        for name, value in metrics.items():
            if name.endswith("_stderr") or "_stderr," in name:
                continue
            se = metrics.get(f"{name}_stderr")
            table.add_row(task, name, "" if value is None else f"{value:.4f}",
                          "" if not isinstance(se, int | float) else f"{se:.4f}",
                          str((run.get("n_samples") or {}).get(task, "")))
    console.print(table)
    if "items_computed" in run:
        console.print(f"items: {run['items_computed']} computed, {run['items_cached']} from the cache")
    score = run.get("suite_score")
    if score:
        console.print(f"suite [bold]{score['suite']}[/]: {score['value']:.4f} "
                      f"(95% CI {score['ci95'][0]:.4f}–{score['ci95'][1]:.4f})")
    manifest = run.get("manifest") or {}
    if manifest.get("lm_eval_command"):
        console.print("reproduce without simsa:", highlight=False)
        console.print(f"  {escape(manifest['lm_eval_command'])}", highlight=False, soft_wrap=True)


def _print_shards(run: dict[str, Any]) -> None:
    """A sharded run's progress: how many of its model × task shards are done, and each one while it is under way."""
    shards = run.get("shards") or {}
    if not shards:
        return
    by_status: dict[str, int] = {}
    for shard in shards.values():
        by_status[shard.get("status", "pending")] = by_status.get(shard.get("status", "pending"), 0) + 1
    done = by_status.get("done", 0) + by_status.get("cached", 0)
    console.print(f"shards ({run.get('executor', 'serial')}): {done}/{len(shards)} done"
                  + "".join(f", {n} {status}" for status, n in sorted(by_status.items()) if status != "done"))
    if run.get("status") == "finished":
        return
    table = Table()
    for col in ("task", "shard", "items computed", "seconds", "error"):
        table.add_column(col, overflow="fold")
    for task, shard in shards.items():
        table.add_row(task, shard.get("status", ""), str(shard.get("computed") if shard.get("computed") is not None
                                                         else ""),
                      "" if shard.get("seconds") is None else f"{shard['seconds']:.1f}",
                      escape(str(shard.get("error") or "")))
    console.print(table)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (see `simsa bench list`).")],
    runs_dir: RunsDir = None,
    samples: Annotated[bool, typer.Option("--samples", help="Include the per-item results.")] = False,
    as_json: Json = False,
) -> None:
    """Show a run: status, results, counts and manifest."""
    store = _store(runs_dir)
    run = store.load(run_id)
    if samples:
        run["samples"] = store.samples(run_id)
    if as_json:
        emit_json(run)
        return
    _print_run(run)


@app.command("list")
def list_runs(runs_dir: RunsDir = None, as_json: Json = False) -> None:
    """List the runs in the runs directory."""
    runs = _store(runs_dir).list()
    rows = [{"run_id": r["run_id"], "status": r["status"], "model": (r.get("model") or {}).get("ref"),
             "tasks": (r.get("request") or {}).get("tasks"), "suite": (r.get("request") or {}).get("suite"),
             "started_at": r.get("started_at")} for r in runs]
    if as_json:
        emit_json({"runs": rows})
        return
    table = Table(title="Benchmark runs")
    for col in ("run", "status", "model", "tasks", "started"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["run_id"], r["status"], escape(str(r["model"])), ",".join(r["tasks"] or []),
                      r["started_at"] or "")
    console.print(table)


@app.command("record")
def record(
    program: Annotated[str, typer.Argument(help="Program file or loaded program id.")],
    run_id: Annotated[str, typer.Argument(help="A finished run of the suite's tasks.")],
    suite: Annotated[str, typer.Option("--suite", help="Suite id; recorded as source bench:<suite>.")],
    stage: Annotated[str, typer.Option("--stage", help="Stage id.")],
    team: Annotated[str, typer.Option("--team", help="Team id.")],
    runs_dir: RunsDir = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Score, but record nothing.")] = False,
    as_json: Json = False,
) -> None:
    """Score a suite from a run (0–1 with a bootstrap CI) and record it as the team's bench:<suite> score."""
    from simsa.services.bench_scores import record_suite_score

    store = _store(runs_dir)
    with STATE.store().session() as session:
        out = record_suite_score(session, program, store, run_id, suite, stage, team, STATE.who(),
                                 dry_run=dry_run).to_dict()
    if as_json:
        emit_json(out)
        return
    s = out["suite_score"]
    verb = "would record" if dry_run else "recorded"
    console.print(f"{verb} {out['source']} = {s['value']:.4f} ± {s['stderr']:.4f} "
                  f"(95% CI {s['ci95'][0]:.4f}–{s['ci95'][1]:.4f}) for team {team}, stage {stage}, run {run_id}")
    if s.get("partial"):
        err_console.print("[yellow]note:[/] the run was limited to a subset of items")


@app.command("judge")
def judge(
    models: Annotated[list[str], typer.Option("--model", help="Candidate: model directory, hub id, or URL#MODEL of an "
                                                              "OpenAI-compatible server; repeat it to judge several "
                                                              "candidates as work units.")],
    judges: Annotated[list[str], typer.Option("--judge", help="Judge model spec; repeat for an ensemble.")],
    mode: Annotated[str, typer.Option("--mode", help="rubric (1–10 grades) or pairwise (vs --baseline, both "
                                                     "orders).")] = "rubric",
    baseline: Annotated[str | None, typer.Option("--baseline", help="Baseline model spec (pairwise).")] = None,
    questions: Annotated[Path | None, typer.Option("--questions", help="Multi-turn question file (JSONL, "
                                                                       "KoMT-Bench/LogicKor style); default: "
                                                                       "the shipped sample.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Answer length limit per turn.")] = 512,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="OPENAI_API_KEY", show_envvar=True,
                                                help="Bearer token for HTTP models.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Concurrent HTTP requests.")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per HTTP request.")] = 120.0,
    rate_limit: Annotated[float | None, typer.Option("--rate-limit", help="Requests per second at most.")] = None,
    executor: Annotated[str | None, typer.Option(
        "--executor", help="serial or ray: judge each candidate as a work unit; default $SIMSA_EXECUTOR, else one "
                           "run in this process.")] = None,
    cpus_per_unit: Annotated[int, typer.Option(
        "--cpus-per-unit", help="CPUs (torch threads) each judge unit asks for and runs on.")] = 1,
    runs_dir: RunsDir = None,
    as_json: Json = False,
) -> None:
    """LLM-as-judge on multi-turn questions: answers, reasoning stripped, Korean check, judged; cached per call.

    Several candidates, or a named executor, run as one work unit per candidate, keyed by every model's identity,
    the question file and the settings: a rerun remakes no finished unit, and every call a worker makes is written
    into the item cache by this process."""
    from simsa.bench.judge_runs import execute_judge

    if max_tokens < 1:
        raise InputError("--max-tokens must be ≥ 1")
    store = _store(runs_dir)
    settings: dict[str, Any] = {
        "judges": list(judges), "questions": questions, "mode": mode, "baseline": baseline, "max_tokens": max_tokens,
        "api_key": api_key, "concurrency": concurrency, "timeout": timeout, "rate_limit": rate_limit,
        "argv": ["simsa", *sys.argv[1:]]}
    if len(models) > 1 or executor is not None or os.environ.get(EXECUTOR_ENV):
        _judge_units(models, store, executor, {**settings, "cpus_per_unit": cpus_per_unit}, mode=mode,
                     as_json=as_json)
        return
    with progress_bar() as progress:
        result = execute_judge(store, candidate=models[0], progress=progress, **settings)
    if as_json:
        emit_json(result)
        return
    _print_judge(result, mode)


def _judge_units(models: list[str], store: RunStore, executor: str | None, settings: dict[str, Any], *, mode: str,
                 as_json: bool) -> None:
    from simsa.bench.judge_units import execute_judges
    from simsa.scale import open_executor

    with progress_bar() as progress, open_executor(executor) as chosen:
        out = execute_judges(store, chosen, candidates=models, progress=progress, **settings)
    if as_json:
        emit_units_json(out.to_dict(), out.failed)
        return
    for run in out.runs:
        console.print(f"[bold]{escape(str(run['model']['ref']))}[/]")
        if run["status"] == "finished":
            _print_judge(run, mode)
        else:
            console.print(f"[red]{escape(str(run.get('error')))}[/]")
    fail_if_units_failed(out.failed, len(out.units), "judge units")


def _print_judge(result: dict[str, Any], mode: str) -> None:
    _print_run(result)
    summary = result["summary"]
    counts = summary.get("counts", {})
    console.print(f"questions {counts.get('questions')}, items {counts.get('items')}, unparseable verdicts "
                  f"{counts.get('unparseable_verdicts')}, language failures {counts.get('language_failures')}"
                  + (f", inconsistent swaps {counts.get('inconsistent_swaps')}" if mode == "pairwise" else ""))
