"""Run `simsa lineage compare --json` in a fresh process and report that process's own peak RSS.

Shared by the lineage benches. The child prints the CLI's JSON on stdout and its VmHWM (MiB) as the last line of
stderr; VmHWM starts afresh at exec, unlike wait4's ru_maxrss, which would include the parent's image at fork.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import sys
from simsa.cli.main import main
sys.argv = ["simsa", "lineage", "compare", sys.argv[1], sys.argv[2], "--json"]
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
sys.stdout.flush()
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(int(hwm.split()[1]) / 1024.0, file=sys.stderr)
sys.exit(code)
"""


def compare_in_child(cand: Path, ref: Path) -> tuple[dict, float, float]:
    """The CLI's JSON result, wall seconds, and peak RSS (MiB) of the process that computed it."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(cand), str(ref)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"compare failed for {cand} vs {ref}: exit {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout), wall, float(proc.stderr.strip().splitlines()[-1])
