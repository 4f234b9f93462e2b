"""A benchmark suite over the demo's tiny team models as model × task shards: serial against Ray on this machine.

    .venv/bin/python benchmarks/bench_shards.py [--teams 5] [--limit 40] [--cpus 2] [--cpus-per-unit 1] [--json]

Builds the demo's team models once (the same specs `make demo` trains), then runs the example programme's stage
suites on all of them three ways, each into its own fresh runs directory: one whole `bench run` per model, shards on
the serial executor, and shards on Ray (a local instance of `--cpus` CPUs), all with torch on `--cpus-per-unit`
threads. Prints wall time, shards and items per second, the speed-up, the peak memory of the Ray workers, and
whether the three give byte-identical samples and the same numbers. Needs Ray (`pip install 'simsa[ray]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from simsa.bench.backends import BackendOptions
from simsa.bench.runs import RunRequest, RunStore, execute
from simsa.bench.sharded_runs import execute_sharded
from simsa.bench.tinymodels import TinySpec, build_tiny_model
from simsa.demo import TRAINING, example_program_path, stage_suites
from simsa.program.loader import load_program
from simsa.scale import open_executor, torch_threads


def _samples(store: RunStore, runs: list[dict[str, Any]]) -> list[dict[str, bytes]]:
    return [{p.name: p.read_bytes() for p in sorted((store.run_dir(r["run_id"]) / "samples").glob("*.jsonl"))}
            for r in runs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teams", type=int, default=5,
                        help="how many of the demo's team models, the quickest to train first (at most 5)")
    parser.add_argument("--limit", type=int, default=40, help="items per task")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--cpus-per-unit", type=int, default=1, help="torch threads of each shard (and the whole run)")
    parser.add_argument("--work", type=Path, default=Path("bench-shards-work"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    quickest = sorted(TRAINING, key=lambda team: TRAINING[team][0])  # fewest training steps first
    teams = sorted(quickest[:max(1, min(args.teams, len(TRAINING)))], key=list(TRAINING).index)
    models = []
    for team in teams:
        folder = args.work / "models" / team
        if not (folder / "config.json").exists():
            build_tiny_model(folder, TinySpec(steps=TRAINING[team][0], seed=TRAINING[team][1]))
        models.append(folder)
    program = load_program(example_program_path()).program
    tasks = list(dict.fromkeys(t.task for s in stage_suites(program) for t in s.tasks))
    requests = [RunRequest(tasks=tasks, backend=BackendOptions(model=str(m)), limit=args.limit) for m in models]
    figures: dict[str, Any] = {"models": len(models), "tasks": tasks, "limit": args.limit, "cpus": args.cpus,
                               "shards": len(models) * len(tasks)}
    samples: dict[str, list[dict[str, bytes]]] = {}
    results: dict[str, list[Any]] = {}
    for how in ("whole", "serial", "ray"):
        root = args.work / f"runs-{how}"
        shutil.rmtree(root, ignore_errors=True)
        store = RunStore(root)
        started = time.perf_counter()
        if how == "whole":
            with torch_threads(args.cpus_per_unit):  # the shards' thread count, so the floats compare exactly
                runs = [execute(r, store) for r in requests]
            workers: list[int] = []
        else:
            with open_executor(how, num_cpus=args.cpus) as executor:
                out = execute_sharded(requests, store, executor, cpus_per_shard=args.cpus_per_unit)
            if out.failed:
                print(f"{len(out.failed)} shards failed: {out.failed[0].error}", file=sys.stderr)
                return 1
            runs = out.runs
            workers = sorted({(s.value or {}).get("worker_pid"): (s.value or {}).get("worker_peak_rss_bytes", 0)
                              for s in out.shards}.values())
        wall = time.perf_counter() - started
        items = sum(int(r["items_computed"]) for r in runs)
        figures[how] = {"wall_s": round(wall, 2), "items": items, "items_per_s": round(items / wall, 1),
                        "shards_per_s": round(figures["shards"] / wall, 2),
                        "worker_peak_rss_mib": [round(b / 2**20) for b in workers] if how == "ray" else None}
        samples[how] = _samples(store, runs)
        results[how] = [r["results"] for r in runs]
    figures["speedup_ray_vs_serial"] = round(figures["serial"]["wall_s"] / figures["ray"]["wall_s"], 2)
    figures["identical"] = samples["whole"] == samples["serial"] == samples["ray"] and \
        results["whole"] == results["serial"] == results["ray"]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{figures['models']} models × {len(tasks)} tasks = {figures['shards']} shards, {args.limit} items "
              f"per task, {args.cpus} CPUs")
        for how in ("whole", "serial", "ray"):
            f = figures[how]
            print(f"  {how:6} {f['wall_s']:7.2f} s  {f['items_per_s']:7.1f} items/s  {f['shards_per_s']:5.2f} "
                  f"shards/s" + (f"  worker peak RSS {f['worker_peak_rss_mib']} MiB" if how == "ray" else ""))
        print(f"  speed-up ray/serial {figures['speedup_ray_vs_serial']}×; byte-identical samples and equal numbers "
              f"across the three: {figures['identical']}")
    return 0 if figures["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
