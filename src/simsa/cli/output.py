"""Console helpers shared by the CLI commands: JSON printing, errors, tables."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Machine-readable output goes to stdout alone, UTF-8, no Rich markup."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2, as_json: bool = False) -> None:
    """Print a one-line error (and a JSON error object when --json was asked for) and exit."""
    if as_json:
        emit_json({"error": message, "exit_code": code})
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise SystemExit(code)
