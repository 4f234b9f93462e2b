"""Score import at scale: time and peak memory of `simsa score import` for growing files (a performance script,
not a test). The goal is 100 000 rows in at most 30 s on a 2-core machine, re-importing (every row superseding)
at the same cost, and `audit verify` on the result.

    .venv/bin/python benchmarks/score_import_scale.py [--rows 2500,20000,100000] [--db URL] [--json]

Each size runs the real CLI in a subprocess on a fresh SQLite database (or on a fresh PostgreSQL database under
the URL given), with the example programme: panel scores of distinct raters, so every row is its own key.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "k-ai-2026.toml"
TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")


def write_scores(path: Path, rows: int, shift: float = 0.0) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["stage", "team", "source", "value", "rater"])
        for i in range(rows):
            team = TEAMS[i % len(TEAMS)]
            source = "panel:expert" if (i // len(TEAMS)) % 2 == 0 else "panel:user"
            value = 50 + (i * 7919 % 400) / 10 + shift
            if source == "panel:user":
                value = round(value / 10, 3)
            out.writerow(["stage-1", team, source, f"{value:g}", f"rater-{i // (2 * len(TEAMS)):06d}"])


def run(args: list[str], db: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB of the child, stdout) of one simsa command."""
    env = {**os.environ, "SIMSA_ACTOR": "bench", "NO_COLOR": "1"}
    script = ("import resource, runpy, sys; sys.argv = ['simsa'] + sys.argv[1:]\n"
              "try:\n    runpy.run_module('simsa.cli.main', run_name='__main__')\n"
              "finally:\n    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, "--db", db, *args], capture_output=True, text=True,
                          env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"simsa {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    peak = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK ")), 0)
    return seconds, peak // 1024, proc.stdout


def fresh_db(base: str | None, folder: Path) -> tuple[str, object]:
    if base is None:
        return f"sqlite:///{folder / 'simsa.db'}", None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"simsa_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(base).set(database=name).render_as_string(hide_password=False), (admin, name)


def drop_db(handle: object) -> None:
    if handle is None:
        return
    from sqlalchemy import text

    admin, name = handle  # type: ignore[misc]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="2500,20000,100000", help="comma-separated row counts")
    parser.add_argument("--db", default=None, help="PostgreSQL admin URL (default: SQLite files)")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    results = []
    for n in (int(x) for x in opts.rows.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            first, second = folder / "first.csv", folder / "second.csv"
            write_scores(first, n)
            write_scores(second, n, shift=0.5)
            db, handle = fresh_db(opts.db, folder)
            try:
                load_s, _, _ = run(["program", "load", str(EXAMPLE)], db)
                import_s, import_mb, _ = run(["score", "import", str(EXAMPLE), str(first), "--json"], db)
                reimport_s, reimport_mb, _ = run(["score", "import", str(EXAMPLE), str(second), "--json"], db)
                verify_s, verify_mb, _ = run(["audit", "verify", "--json"], db)
            finally:
                drop_db(handle)
        row = {"rows": n, "import_s": round(import_s, 2), "import_rows_per_s": round(n / import_s),
               "import_peak_mib": import_mb, "reimport_s": round(reimport_s, 2), "reimport_peak_mib": reimport_mb,
               "verify_s": round(verify_s, 2), "verify_peak_mib": verify_mb, "program_load_s": round(load_s, 2)}
        results.append(row)
        if not opts.json:
            print(f"{n:>7} rows: import {import_s:6.2f} s ({n / import_s:,.0f} rows/s, {import_mb} MiB), "
                  f"re-import (all superseding) {reimport_s:6.2f} s ({reimport_mb} MiB), "
                  f"audit verify {verify_s:6.2f} s ({verify_mb} MiB)", flush=True)
    if opts.json:
        print(json.dumps({"backend": "postgresql" if opts.db else "sqlite", "results": results}, indent=2))


if __name__ == "__main__":
    main()
