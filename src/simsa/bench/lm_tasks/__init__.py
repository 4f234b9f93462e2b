"""lm-evaluation-harness task definitions for the Korean benchmark data shipped in `simsa/bench/data`.

Load them with `lm_eval.tasks.TaskManager(include_path=TASKS_DIR)` or `lm_eval --include_path <TASKS_DIR>`; the
directory works without simsa installed (`utils.py` is self-contained). lm-eval reads only the YAML files here and
the `utils.py` they reference.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR: Path = Path(__file__).resolve().parent

__all__ = ["TASKS_DIR"]
