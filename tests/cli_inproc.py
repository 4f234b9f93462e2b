"""The `simsa` command line run in-process (Typer's CliRunner): fast enough to call dozens of times in a test,
with errors turned into exit codes and one-line messages exactly as `simsa.cli.main.main` does."""

from __future__ import annotations

import json
from dataclasses import dataclass

from typer.testing import CliRunner

from simsa.cli.context import STATE
from simsa.cli.main import app
from simsa.errors import SimsaError


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        assert self.code == 0, self.stderr or self.stdout
        return json.loads(self.stdout)


def run(*args: str, db: str, actor: str = "tester", columns: int | None = None) -> Ran:
    runner = CliRunner()
    env = {"NO_COLOR": "1", **({"COLUMNS": str(columns)} if columns else {})}
    try:
        result = runner.invoke(app, ["--db", db, "--actor", actor, *args], env=env)
    finally:
        if STATE._store is not None:  # one store per command, as in a real process
            STATE._store.dispose()
            STATE._store = None
    exc = result.exception
    if isinstance(exc, SimsaError):
        return Ran(exc.exit_code, result.stdout, f"error: {exc}\n")
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return Ran(result.exit_code, result.stdout, result.stderr)
