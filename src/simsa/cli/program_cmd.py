"""`simsa program …`: validate and load program files."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json
from simsa.program.loader import LoadedProgram, load_program
from simsa.services import programs

app = typer.Typer(help="Validate and load program files.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def summary(loaded: LoadedProgram) -> dict:
    p = loaded.program
    return {
        "program": p.program.id, "name": p.program.name, "sha256": loaded.sha256, "path": loaded.path,
        "teams": [t.id for t in p.teams],
        "stages": [{"id": s.id, "name": s.name, "start": s.start.isoformat(), "end": s.end.isoformat(),
                    "points": s.max_points, "criteria": [c.id for c, _, _ in s.walk()],
                    "gates": [g.id for g in s.gates], "sources": s.score_sources()} for s in p.stages],
        "suites": [{"id": s.id, "name": s.name, "limit": s.limit,
                    "tasks": [t.model_dump() for t in s.tasks]} for s in p.suites],
    }


def _print(loaded: LoadedProgram, verb: str) -> None:
    p = loaded.program
    console.print(f"[green]✓[/] {verb} [bold]{escape(p.program.name)}[/] ({p.program.id}) — {len(p.teams)} teams, "
                  f"{len(p.stages)} stages, sha256 {loaded.sha256[:12]}")
    for stage in p.stages:
        title = f"{stage.id}: {escape(stage.name)} ({stage.start} → {stage.end}, appeal {stage.appeal_days} days)"
        table = Table(title=title, title_justify="left")
        table.add_column("criterion")
        table.add_column("points", justify="right")
        table.add_column("source")
        table.add_column("normalisation")
        for crit, depth, _ in stage.walk():
            table.add_row("  " * depth + crit.id, f"{crit.points:g}", crit.source or "",
                          crit.norm if crit.is_leaf else "")
        for gate in stage.gates:
            table.add_row(f"gate {gate.id}", "", gate.source or gate.kind, "")
        console.print(table)
    if p.suites:
        table = Table(title="benchmark suites (source bench:<suite>)", title_justify="left")
        for col in ("suite", "task", "metric", "normalisation", "weight"):
            table.add_column(col)
        for suite in p.suites:
            for i, task in enumerate(suite.tasks):
                norm = task.normalisation + (f" (chance {task.chance:g})" if task.chance is not None else "")
                table.add_row(suite.id if i == 0 else "", task.task, task.metric, norm, f"{task.weight:g}")
        console.print(table)


@app.command("check")
def check(file: Annotated[str, typer.Argument(help="Program file (.toml).")], as_json: JsonOpt = False) -> None:
    """Validate a program file without writing anything (exit 2 with `file:line: key: message` on error)."""
    loaded = load_program(file)
    if as_json:
        emit_json({"valid": True, **summary(loaded)})
    else:
        _print(loaded, "valid:")


@app.command("load")
def load(file: Annotated[str, typer.Argument(help="Program file (.toml).")], as_json: JsonOpt = False) -> None:
    """Validate a program file and record this version in the store (audited; idempotent)."""
    loaded = load_program(file)
    with STATE.store().session() as session:
        row, created = programs.register(session, loaded, STATE.who())
        version_id = row.id
    if as_json:
        emit_json({"loaded": created, "version_id": version_id, **summary(loaded)})
    else:
        _print(loaded, "loaded" if created else "already loaded (same version):")
