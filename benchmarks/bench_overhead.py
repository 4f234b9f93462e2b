"""simsa's overhead over bare lm-evaluation-harness on the same work, and the HTTP backend's throughput.

    python benchmarks/bench_overhead.py [--limit 300] [--repeats 3] [--hidden 256] [--json]

1. Overhead: the same tasks, model and limit, run (a) by the bare `lm_eval run` command line and (b) by
   `simsa bench run` with an empty cache (so simsa computes everything and also hashes the model, writes every
   item to its cache, keeps the samples and builds the manifest). Each is a fresh process; the two alternate,
   `--repeats` times, and the medians are compared. Goal: ≤ 5 % overhead. A cached re-run is timed too.
   The command lines differ in one thing simsa does not control the same way: bare `lm_eval` indexes all of
   lm-eval's ~15,000 task configs before it starts, simsa only its own for its own tasks. So the engine call is
   also timed alone, in fresh processes: lm-eval's `simple_evaluate` with its `hf` model vs simsa's cached wrapper
   around the same model, both with the same task manager — the pure cost of the per-item cache.
2. Throughput: `simsa serve-model` on loopback serves the same model; `simsa bench run --backend openai` runs one
   task at concurrency 1, 4 and 16 (fresh cache each), reporting requests per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TASKS = "simsa_kobest_copa,simsa_kobest_boolq,simsa_kobest_hellaswag"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=3600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def overhead(model: Path, work: Path, limit: int, repeats: int) -> dict:
    from simsa.bench.lm_tasks import TASKS_DIR

    bare_argv = [str(BIN / "lm_eval"), "run", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
                 "--tasks", TASKS, "--include_path", str(TASKS_DIR), "--batch_size", "1", "--device", "cpu",
                 "--limit", str(limit), "--log_samples", "--output_path", str(work / "bare-out")]
    bare, ours, items = [], [], 0
    runs_root = work / "simsa-runs"
    for rep in range(repeats):
        wall, _ = timed(bare_argv, work)
        bare.append(wall)
        runs = runs_root / f"r{rep}"
        wall, out = timed([str(BIN / "simsa"), "bench", "run", "--model", str(model), "--tasks", TASKS, "--limit",
                           str(limit), "--json", "--runs-dir", str(runs)], work)
        ours.append(wall)
        items = json.loads(out)["items_computed"]
        print(f"  repeat {rep + 1}: bare lm_eval {bare[-1]:.1f} s, simsa {ours[-1]:.1f} s", file=sys.stderr)
    cached, out = timed([str(BIN / "simsa"), "bench", "run", "--model", str(model), "--tasks", TASKS, "--limit",
                         str(limit), "--json", "--runs-dir", str(runs_root / "r0")], work)
    again = json.loads(out)
    b, o = statistics.median(bare), statistics.median(ours)
    return {"tasks": TASKS.split(","), "limit": limit, "requests": items, "repeats": repeats,
            "bare_lm_eval_s": [round(x, 2) for x in bare], "simsa_s": [round(x, 2) for x in ours],
            "bare_median_s": round(b, 2), "simsa_median_s": round(o, 2),
            "overhead_pct": round(100 * (o - b) / b, 1), "goal_pct": 5.0,
            "cached_rerun_s": round(cached, 2), "cached_rerun_items_computed": again["items_computed"]}


ENGINE_SNIPPET = """
import sys, time
from pathlib import Path
import lm_eval
from lm_eval.tasks import TaskManager
from simsa.bench.lm_tasks import TASKS_DIR
model, tasks, limit, mode, cache = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4], sys.argv[5]
tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
start = time.perf_counter()
if mode == "bare":
    lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model},dtype=float32", tasks=tasks, limit=limit,
                            task_manager=tm, device="cpu", batch_size=1, bootstrap_iters=1000, log_samples=True,
                            verbosity="ERROR")
else:
    from simsa.bench.backends import BackendOptions, resolve_backend
    from simsa.bench.engine import run_lm_eval
    backend = resolve_backend(BackendOptions(model=model))
    run_lm_eval(tasks, backend, Path(cache), task_manager=tm, limit=limit)
print(time.perf_counter() - start)
"""


def engine_overhead(model: Path, work: Path, limit: int, repeats: int) -> dict:
    bare, ours = [], []
    for rep in range(repeats):
        for mode, out in (("bare", bare), ("simsa", ours)):
            _, printed = timed([sys.executable, "-c", ENGINE_SNIPPET, str(model), TASKS, str(limit), mode,
                                str(work / f"engine-cache-{rep}.sqlite")], work)
            out.append(float(printed.strip().splitlines()[-1]))
        print(f"  engine repeat {rep + 1}: lm-eval {bare[-1]:.1f} s, simsa wrapper {ours[-1]:.1f} s", file=sys.stderr)
    b, o = statistics.median(bare), statistics.median(ours)
    return {"lm_eval_s": [round(x, 2) for x in bare], "simsa_s": [round(x, 2) for x in ours],
            "lm_eval_median_s": round(b, 2), "simsa_median_s": round(o, 2),
            "overhead_pct": round(100 * (o - b) / b, 1)}


def throughput(model: Path, work: Path, limit: int) -> list[dict]:
    server = subprocess.Popen([str(BIN / "simsa"), "serve-model", str(model), "--port", "0", "--json",
                               "--max-batch", "16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise SystemExit(f"serve-model did not start:\n{server.stderr.read()[-3000:] if server.stderr else ''}")
        url = json.loads(line)["url"]
        rows = []
        for concurrency in (1, 4, 16):
            wall, out = timed([str(BIN / "simsa"), "bench", "run", "--backend", "openai", "--base-url", url,
                               "--tokenizer", str(model), "--tasks", "simsa_kobest_copa", "--limit", str(limit),
                               "--concurrency", str(concurrency), "--json",
                               "--runs-dir", str(work / f"http-c{concurrency}")], work)
            run = json.loads(out)
            rows.append({"concurrency": concurrency, "requests": run["items_computed"],
                         "engine_s": run["seconds"], "wall_s": round(wall, 2),
                         "requests_per_s": round(run["items_computed"] / run["seconds"], 1),
                         "acc": run["results"]["simsa_kobest_copa"]["acc"]})
            print(f"  concurrency {concurrency}: {rows[-1]['requests_per_s']} requests/s", file=sys.stderr)
        return rows
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=300, help="items per task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256, help="width of the benchmark model")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--http-limit", type=int, default=200, help="COPA items for the throughput runs")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from simsa.bench.tinymodels import TinySpec, build_tiny_model

    with tempfile.TemporaryDirectory(prefix="simsa-bench-overhead-") as tmp:
        work = Path(tmp)
        spec = TinySpec(hidden=args.hidden, layers=args.layers, heads=max(1, args.hidden // 64), steps=20)
        model = build_tiny_model(work / "model", spec)
        print(f"model: {spec.name}; tasks {TASKS}, limit {args.limit}", file=sys.stderr)
        report = {"model": spec.name, "overhead": overhead(model, work, args.limit, args.repeats),
                  "engine_overhead": engine_overhead(model, work, args.limit, args.repeats)}
        if not args.skip_http:
            report["http_throughput"] = throughput(model, work, args.http_limit)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    o = report["overhead"]
    print(f"overhead: simsa {o['simsa_median_s']} s vs bare lm_eval {o['bare_median_s']} s (median of "
          f"{o['repeats']}, {o['requests']} requests) = {o['overhead_pct']:+.1f} % (goal ≤ {o['goal_pct']} %)")
    print(f"cached re-run: {o['cached_rerun_s']} s, {o['cached_rerun_items_computed']} requests computed")
    e = report["engine_overhead"]
    print(f"engine alone (same task manager): simsa {e['simsa_median_s']} s vs lm-eval {e['lm_eval_median_s']} s "
          f"= {e['overhead_pct']:+.1f} %")
    for row in report.get("http_throughput", []):
        print(f"openai backend, concurrency {row['concurrency']:>2}: {row['requests_per_s']:>7.1f} requests/s "
              f"({row['requests']} requests in {row['engine_s']:.1f} s)")


if __name__ == "__main__":
    main()
