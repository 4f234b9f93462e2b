"""`simsa score void` and `simsa gate void` / `gate import`: corrections as audited records, never deletes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json
from simsa.cli.score_cmd import app, gate_app, writing

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ProgramArg = Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")]
ReasonOpt = Annotated[str, typer.Option(help="Why the record is voided (kept in the record and the audit log).")]


@app.command("void")
def void_score(
    program: ProgramArg,
    score_id: Annotated[int | None, typer.Argument(help="The score to void (it must be current).")] = None,
    batch: Annotated[str | None, typer.Option(help="Undo this whole import instead: each of its scores still "
                                                   "current gives way to the value it replaced, or is voided.")] = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Void a score (its key then has no value), or undo a whole import with --batch; nothing is deleted."""
    from simsa.errors import InputError
    from simsa.services import corrections

    if (score_id is None) == (batch is None):
        raise InputError("give either a SCORE_ID or --batch IMPORT_ID")
    with STATE.store().session() as session:
        if batch is not None:
            out = corrections.undo_import(session, program, batch, reason, STATE.who()).to_dict()
        else:
            out = corrections.void_score(session, program, score_id or 0, reason, STATE.who()).to_dict()
    if as_json:
        emit_json(out)
    elif batch is not None:
        console.print(f"[green]✓[/] import {escape(batch)} undone: {len(out['restored'])} scores restored to their "
                      f"earlier value, {len(out['voided'])} voided, {len(out['skipped'])} left (corrected since)")
    else:
        console.print(f"[green]✓[/] score {out['voids']} voided by record {out['id']} ({escape(out['team'])} "
                      f"{escape(out['source'])})")


@gate_app.command("void")
def void_gate(
    program: ProgramArg,
    result_id: Annotated[int, typer.Argument(help="The gate result to void (it must be current).")],
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Void a gate result: the gate then has no result for the team until a new one is recorded."""
    from simsa.services import corrections

    with STATE.store().session() as session:
        out = corrections.void_gate(session, program, result_id, reason, STATE.who()).to_dict()
    if as_json:
        emit_json(out)
    else:
        console.print(f"[green]✓[/] gate result {out['voids']} voided by record {out['id']} ({escape(out['team'])} "
                      f"{escape(out['gate'])})")


@gate_app.command("import")
def import_gates(
    program: ProgramArg,
    file: Annotated[str, typer.Argument(help="Gate results as .csv (stage,team,gate,passed,evidence,link,example) "
                                             "or .json.")],
    as_json: JsonOpt = False,
) -> None:
    """Import many gate results at once: every row is validated first (all bad rows named); one bad row imports
    nothing. Each result supersedes the team's current result for that gate."""
    from simsa.cli.output import err_console
    from simsa.services import gate_files

    parsed = gate_files.read_gate_file(file)
    for notice in parsed.notices:
        err_console.print(f"[yellow]note:[/] {escape(notice)}", highlight=False)
    with writing() as session:
        out = gate_files.import_gates(session, program, parsed.items, STATE.who(), source_name=file).to_dict()
    out["notices"] = parsed.notices
    if as_json:
        emit_json(out)
    else:
        console.print(f"[green]✓[/] imported {out['imported']} gate results from {escape(file)} as batch "
                      f"{out['batch_id']} ({out['superseded']} superseding earlier ones)")
