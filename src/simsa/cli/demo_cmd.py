"""`simsa demo`: the whole stage-1 flow on the built-in example, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from simsa.cli.output import console, emit_json
from simsa.cli.stage_cmd import print_decision

DEFAULT_WORKDIR = "simsa-demo"


def demo(
    workdir: Annotated[str, typer.Option(help="Directory for the demo database and reports.")] = DEFAULT_WORKDIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Load the example programme, run its benchmarks, expert panel, user arena and originality checks (lineage and
    training evidence) on tiny models, decide stage 1, verify the audit log, write reports."""
    from simsa.demo import run_demo  # imports the report renderer (matplotlib) only when needed

    path = Path(workdir).resolve()
    if not as_json:
        console.print(f"simsa demo — working directory: [bold]{path}[/] (database {path / 'simsa.db'})")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  disable=as_json, transient=False) as progress:
        task = progress.add_task("starting", total=None)

        def step(message: str) -> None:
            progress.update(task, description=message)
            if not as_json:
                progress.console.log(message)

        result = run_demo(path, step)
        progress.update(task, description="done")
    browse = browse_command(result.database)
    if as_json:
        emit_json({**result.to_dict(), "browse": browse})
        return
    print_decision(result.decision)
    console.print(f"[green]✓[/] audit log verified ({result.audit['entries']} entries, head "
                  f"{result.audit['head'][:16]}…)")
    console.print(f"Report: [bold]{result.report}[/]  (also report.md, report.json, audit.json in {path})")
    console.print("Browse the demo's stage in a web browser:", highlight=False)
    console.print(f"  [bold]{browse}[/]   then open http://127.0.0.1:8080/", highlight=False, soft_wrap=True)
    console.print(f"  (to sign in as the secretariat first: simsa web --db {_url(result.database)} create-admin "
                  "admin)", highlight=False, soft_wrap=True)


def _url(database: str) -> str:
    return database if "://" in database else f"sqlite:///{database}"


def browse_command(database: str) -> str:
    """The command that serves the demo's database with `simsa web`."""
    return f"simsa web --db {_url(database)}"
