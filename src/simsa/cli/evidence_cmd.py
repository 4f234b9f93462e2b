"""`simsa evidence verify`: check a team's training-evidence package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from simsa.cli.context import STATE
from simsa.cli.lineage_cmd import progress_bar
from simsa.cli.output import console, emit_json

app = typer.Typer(help="Training evidence: verify a package of step-0 and periodic checkpoints, log and manifest.",
                  no_args_is_help=True)

STATUS_STYLE = {"passed": "green", "failed": "bold red", "not applicable": "dim"}


@app.command("verify")
def verify(
    package: Annotated[Path, typer.Argument(help="The package directory (holding evidence.toml).")],
    parent: Annotated[list[str] | None, typer.Option(
        "--parent", help="A suspected parent (checkpoint directory, file or .simsa-fp fingerprint); repeatable.")
    ] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", help="Also scan step 0 and the early checkpoints against this fingerprint registry.")] = None,
    program: Annotated[str | None, typer.Option(
        "--program", help="Programme file or id: check the package against the team's commitments.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="The team whose commitments to check.")] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Stage of the commitments (default: the running one).")
                     ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write a self-contained HTML report here.")
                      ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Run every check (files' sha256, step-0 initialisation, first loss, checkpoint chain, distance from step 0,
    token count, independence from suspected parents, commitments) and exit 1 if any fails."""
    from simsa.services.training_evidence import verify_package

    store = STATE.store() if program is not None else None
    with progress_bar() as progress:
        result = verify_package(package, parents=parent or [], registry=registry, store=store, program=program,
                                team=team, stage=stage, progress=progress)
    doc = result.to_dict()
    if report is not None:
        from simsa.report.evidence_report import render_evidence_html

        report.write_text(render_evidence_html(doc), encoding="utf-8")
    if as_json:
        emit_json(doc)
    else:
        table = Table(title=f"Training evidence — {escape(result.model)}", show_lines=False)
        for col in ("check", "status", "grade", "numbers"):
            table.add_column(col, overflow="fold")
        for c in result.checks:
            table.add_row(escape(c.title), f"[{STATUS_STYLE[c.status]}]{c.status}[/]", c.grade, escape(c.summary))
        console.print(table)
        failed = ", ".join(c.id for c in result.failed_checks())
        verdict = "[green]passed[/]" if result.ok else f"[bold red]failed[/]: {failed}"
        console.print(f"evidence {verdict}" + (f"; report written to {escape(str(report))}" if report else ""))
    if not result.ok:
        raise SystemExit(1)
