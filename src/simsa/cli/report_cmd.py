"""`simsa report`: the stage report as Markdown, self-contained HTML or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json
from simsa.services import appeals as appeal_service
from simsa.services import decisions as decision_service
from simsa.services import programs


def report_inputs(session, program: str, stage: str, decision_id: int | None = None) -> tuple[dict, list, list]:  # type: ignore[no-untyped-def]
    """Decision body, appeals and superseded decisions of a stage, as the renderer wants them."""
    loaded = programs.resolve(session, program)
    key = loaded.program.program.id
    row = decision_service.get(session, key, stage, decision_id)
    history = []
    for old in decision_service.chain(session, row):
        body = decision_service.body(old)
        history.append({"decision_id": old.id, "decided_at": body["decided_at"], "advanced": body["advanced"],
                        "eliminated": body["eliminated"], "appeal_id": old.appeal_id})
    return decision_service.body(row), appeal_service.listing(session, key, stage), history


def write_report(session, program: str, stage: str, fmt: str, output: str, lang: str = "both") -> Path:  # type: ignore[no-untyped-def]
    from simsa.report.render import render_report  # matplotlib is slow to import; only load it when rendering

    decision, appeals, history = report_inputs(session, program, stage)
    text = render_report(decision, appeals, history, fmt, lang)
    path = Path(output)
    path.write_text(text, encoding="utf-8")
    return path


def report(
    program: Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")],
    stage: Annotated[str, typer.Argument(help="Stage id.")],
    fmt: Annotated[Literal["md", "html", "json"], typer.Option("--format", help="Output format.")] = "html",
    output: Annotated[str, typer.Option("-o", "--output", help="Output file.")] = "report.html",
    lang: Annotated[Literal["en", "ko", "both"], typer.Option(help="Label language.")] = "both",
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Leaderboard with breakdown, gates, decision, robustness and appeals, with plots (HTML)."""
    with STATE.store().session() as session:
        path = write_report(session, program, stage, fmt, output, lang)
    if as_json:
        emit_json({"written": str(path), "format": fmt, "bytes": path.stat().st_size})
    else:
        console.print(f"[green]✓[/] wrote {fmt} report to {path}")
