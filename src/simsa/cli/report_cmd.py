"""`simsa report`: the stage report as Markdown, self-contained HTML or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json


@dataclass(frozen=True)
class ReportInputs:
    """What a report is rendered from: the decision as recorded, its appeals, the decisions it replaced, and the
    programme's display time zone."""

    decision: dict
    appeals: list[dict]
    history: list[dict]
    timezone: str


def report_inputs(session, program: str, stage: str, decision_id: int | None = None) -> ReportInputs:  # type: ignore[no-untyped-def]
    """Decision body, appeals and superseded decisions of a stage, as the renderer wants them."""
    from simsa.services import appeals as appeal_service
    from simsa.services import decisions as decision_service
    from simsa.services import programs

    loaded = programs.resolve(session, program)
    key = loaded.program.program.id
    row = decision_service.get(session, key, stage, decision_id)
    history = []
    for old in decision_service.chain(session, row):
        body = decision_service.body(old)
        history.append({"decision_id": old.id, "decided_at": body["decided_at"], "advanced": body["advanced"],
                        "eliminated": body["eliminated"], "appeal_id": old.appeal_id})
    return ReportInputs(decision=decision_service.body(row), appeals=appeal_service.listing(session, key, stage),
                        history=history, timezone=loaded.program.program.timezone)


def write_report(session, program: str, stage: str, fmt: str, output: str, lang: str = "both") -> Path:  # type: ignore[no-untyped-def]
    from simsa.report.render import render_report  # matplotlib is slow to import; only load it when rendering

    inputs = report_inputs(session, program, stage)
    text = render_report(inputs.decision, inputs.appeals, inputs.history, fmt, lang, inputs.timezone)
    path = Path(output)
    path.write_text(text, encoding="utf-8")
    return path


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
    language = report_language(lang, ctx)
    with STATE.store().session(readonly=True) as session:
        path = write_report(session, program, stage, fmt, output, language)
    if as_json:
        emit_json({"written": str(path), "format": fmt, "lang": language, "bytes": path.stat().st_size})
    else:
        console.print(f"[green]✓[/] wrote {fmt} report to {path}")
