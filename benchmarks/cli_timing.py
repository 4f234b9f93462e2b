"""How long the everyday CLI commands take, start to exit, as a user runs them.

    python benchmarks/cli_timing.py [--runs 7] [--json] [--src DIR]

Each command is a fresh process (the installed `simsa` script next to this interpreter), timed by wall clock; the
table shows the median and the fastest of `--runs` runs after one untimed warm-up run, and the median CPU time
(user + system) of the process, which a busy machine disturbs less than the wall clock. `score add` and
`gate record` write to a throwaway SQLite database into which the example programme was loaded first, so they
pay for opening (and checking the migrations of) the store as every real call does. Three reference rows show
where the time goes: the bare interpreter, importing the store module (SQLAlchemy and Alembic), and opening an
already migrated store. Goals: `--help` ≤ 0.5 s; `score add` and `gate record` ≤ 1 s. `--src DIR` times another
checkout's `src` directory instead (`python -m simsa.cli.main` with that directory first on PYTHONPATH), to compare
two versions on the same machine. The timed processes may write `.pyc` files (the warm-up run does), as any
installed copy has them: with PYTHONDONTWRITEBYTECODE set, every run would compile simsa's modules anew.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "k-ai-2026.toml"
GOALS = {"simsa --help": 0.5, "score add": 1.0, "gate record": 1.0}


def simsa_argv(src: Path | None = None) -> list[str]:
    """The console script users run, or the module when simsa is not installed as a script (or --src is given)."""
    script = Path(sys.executable).parent / "simsa"
    return [str(script)] if script.exists() and src is None else [sys.executable, "-m", "simsa.cli.main"]


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall-clock seconds, and the child's CPU seconds (user + system: less disturbed by a busy machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> dict:
    run_once(argv, env, cwd)  # warm the page cache and .pyc files
    timed = [run_once(argv, env, cwd) for _ in range(runs)]
    walls = [w for w, _ in timed]
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "cpu_median_s": round(statistics.median(c for _, c in timed), 3), "runs": runs}


def example(src: Path | None) -> Path:
    """The example programme of the checkout being timed (an older version may not read a newer file)."""
    return src.resolve().parent / "examples" / "k-ai-2026.toml" if src else EXAMPLE


def cases(work: Path, src: Path | None) -> list[tuple[str, list[str]]]:
    simsa = simsa_argv(src)
    program = str(example(src))
    db = ["--db", f"sqlite:///{work / 'timing.db'}"]
    common = [program, "--stage", "stage-1", "--team", "baekdu"]
    py = sys.executable
    return [
        ("python -c pass", [py, "-c", "pass"]),
        ("import simsa.store.db", [py, "-c", "import simsa.store.db"]),
        ("Store() open (migrated)", [py, "-c", f"from simsa.store.db import Store; Store({db[1]!r}).dispose()"]),
        ("simsa --help", [*simsa, "--help"]),
        ("simsa --version", [*simsa, "--version"]),
        ("program check", [*simsa, "program", "check", program]),
        ("score add", [*simsa, *db, "score", "add", *common, "--source", "panel:expert", "--value", "71.5",
                       "--rater", "judge-1"]),
        ("gate record", [*simsa, *db, "gate", "record", *common, "--gate", "originality", "--pass",
                         "--evidence", "timing run"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (after one warm-up)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--src", type=Path, help="time this checkout's src directory instead of the installed simsa")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="simsa-cli-timing-"))
    env = {**os.environ, "SIMSA_ACTOR": "timing", "NO_COLOR": "1"}
    env.pop("SIMSA_DATABASE_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed simsa has its .pyc files: compiling is not start-up
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        run_once([*simsa_argv(args.src), "--db", f"sqlite:///{work / 'timing.db'}", "program", "load",
                  str(example(args.src))], env, work)
        rows = []
        for name, argv in cases(work, args.src):
            result = measure(argv, env, work, args.runs)
            goal = GOALS.get(name)
            rows.append({"command": name, **result, "goal_s": goal,
                         "ok": None if goal is None else result["median_s"] <= goal})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "python": sys.version.split()[0], "rows": rows}, indent=2))
        return
    print(f"{'command':<24} {'median s':>9} {'min s':>7} {'cpu s':>7} {'goal s':>7}  ok   "
          f"({os.cpu_count()} CPUs, {args.runs} runs each)")
    for r in rows:
        goal = "" if r["goal_s"] is None else f"{r['goal_s']:.1f}"
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        print(f"{r['command']:<24} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {r['cpu_median_s']:>7.3f} {goal:>7}  {ok}")


if __name__ == "__main__":
    main()
