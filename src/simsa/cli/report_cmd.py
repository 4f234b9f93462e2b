"""`simsa report`: the stage report as Markdown, self-contained HTML or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json


def report_language(option: str | None, ctx: typer.Context | None = None) -> str:
    """The report's own --lang, else the global --lang when one was given (option or $SIMSA_LANG), else both
    languages (a published report serves readers of both)."""
    if option:
        return option
    root = ctx.find_root() if ctx is not None else None
    if root is not None and "lang" in root.params:
        source = root.get_parameter_source("lang")
        if source is not None and source.name != "DEFAULT":
            return STATE.lang
    return "both"


def report(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")],
    stage: Annotated[str, typer.Argument(help="Stage id.")],
    fmt: Annotated[Literal["md", "html", "json"], typer.Option("--format", help="Output format.")] = "html",
    output: Annotated[str, typer.Option("-o", "--output", help="Output file.")] = "report.html",
    lang: Annotated[Literal["en", "ko", "both"] | None, typer.Option(
        help="Language: en, ko or both (default: the global --lang if given, else both).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Leaderboard with breakdown, raw scores, gates, decision, robustness and appeals, with plots (HTML); times
    in the programme's time zone."""
    from simsa.services import reports

    language = report_language(lang, ctx)
    with STATE.store().session(readonly=True) as session:
        text = reports.render(session, program, stage, fmt, language)
    path = Path(output)
    path.write_text(text, encoding="utf-8")
    if as_json:
        emit_json({"written": str(path), "format": fmt, "lang": language, "bytes": path.stat().st_size})
    else:
        console.print(f"[green]✓[/] wrote {fmt} report to {path}")
