"""`simsa score …` and `simsa gate …`: record scores and gate results with provenance."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from simsa.cli import output
from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json, notice

if TYPE_CHECKING:  # the services load SQLAlchemy; commands import them when they run
    from sqlalchemy.orm import Session

app = typer.Typer(help="Record and import scores (never overwritten: a new score supersedes).", no_args_is_help=True)
gate_app = typer.Typer(help="Record gate results (e.g. originality) with evidence.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ProgramArg = Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")]


@contextmanager
def writing() -> Iterator[Session]:
    """A write session for a recording command. A program file given to it may be a new version that changes a
    decided stage's rules: the warnings are printed as the session ends, also when the write then failed."""
    from simsa.cli.program_cmd import print_version_warnings
    from simsa.services import programs

    with STATE.store().session() as session:
        try:
            yield session
        finally:
            print_version_warnings(programs.session_warnings(session))


@app.command("add")
def add(
    program: ProgramArg,
    stage: Annotated[str, typer.Option(help="Stage id.")],
    team: Annotated[str, typer.Option(help="Team id.")],
    source: Annotated[str, typer.Option(help="Score source, e.g. bench:nia, panel:expert, manual:x.")],
    value: Annotated[float, typer.Option(help="Raw score value.")],
    stderr: Annotated[float | None, typer.Option(help="Standard error of the value.")] = None,
    rater: Annotated[str, typer.Option(help="Rater id (panel sources: one current score per rater).")] = "",
    run_id: Annotated[str | None, typer.Option(help="Benchmark run id or other provenance id.")] = None,
    evidence: Annotated[str | None, typer.Option(help="Evidence hash or link.")] = None,
    note: Annotated[str | None, typer.Option(help="Free-text note.")] = None,
    example: Annotated[bool, typer.Option(help="Mark as example data (shown in reports).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Record one score; a score for the same stage/team/source/rater supersedes the current one."""
    from simsa.services import scores as score_service

    item = score_service.ScoreInput(stage=stage, team=team, source=source, value=value, stderr=stderr, rater=rater,
                                    run_id=run_id, evidence=evidence, note=note, example=example)
    with writing() as session:
        result = score_service.record(session, program, [item], STATE.who())
    if as_json:
        emit_json(result.to_dict())
    else:
        r = result.rows[0]
        extra = f", supersedes score {r.supersedes_id}" if r.supersedes_id else ""
        console.print(f"[green]✓[/] score {r.id}: {team} {source} = {value:g}{extra}")


@app.command("import")
def import_(
    program: ProgramArg,
    file: Annotated[str, typer.Argument(help="Scores as .csv (header row) or .json.")],
    replace_batch: Annotated[str | None, typer.Option(
        "--replace-batch", help="This file replaces that earlier import whole: its keys missing here are voided.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import many scores at once: every row is validated first; one bad row imports nothing.

    The import gets a batch id (printed) so it can later be undone (`score void --batch ID`) or replaced."""
    from simsa.services import corrections
    from simsa.services.score_files import read_score_file

    parsed = read_score_file(file)  # notices (e.g. an encoding converted) go to stderr, and into --json output
    for line in parsed.notices:
        notice(line)
    with writing() as session:
        result = corrections.import_scores(session, program, parsed.items, STATE.who(), source_name=file,
                                           replace_batch=replace_batch).to_dict()
    if as_json:
        emit_json({**result, "notices": parsed.notices})
    else:
        replaced = (f"; replaces import {replace_batch}, {len(result['voided'])} of its scores voided"
                    if replace_batch else "")
        console.print(f"[green]✓[/] imported {result['imported']} scores from {escape(file)} as batch "
                      f"{result['batch_id']} ({result['superseded']} superseding earlier ones{replaced})")


@app.command("list")
def list_(
    program: ProgramArg,
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    fmt: output.FormatOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Every recorded score, superseded ones included, with provenance."""
    from simsa.services import programs
    from simsa.services import scores as score_service

    chosen = output.output_format(fmt, as_json)
    from simsa.timeutil import format_local

    with STATE.store().session(readonly=True) as session:
        loaded = programs.resolve(session, program)
        zone = loaded.program.program.timezone
        rows = score_service.history(session, loaded.program.program.id, stage, team)
        superseded = {r.supersedes_id for r in rows if r.supersedes_id}
        out = [{**score_service.score_dict(r), "current": r.id not in superseded,
                "recorded_local": format_local(r.recorded_at, zone)} for r in rows]
    label = "recorded" + (f" ({out[0]['recorded_local'].split()[2]})" if out else "")
    columns = [output.Column("recorded_local", label, text=lambda r: r["recorded_local"][:16], wrap=True)
               if c.key == "recorded_local" else c for c in SCORE_COLUMNS]
    output.emit_rows(out, columns, chosen, key="scores", empty="no scores recorded")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


SCORE_COLUMNS = [
    output.Column("id", justify="right"),
    output.Column("stage"),
    output.Column("team"),
    output.Column("source", wrap=True),
    output.Column("rater", wrap=True),
    output.Column("value", justify="right", text=lambda r: "VOID" if r["voided"] else _number(r["value"])),
    output.Column("stderr", "se", justify="right", text=lambda r: _number(r["stderr"])),
    output.Column("current", "status",
                  text=lambda r: ("void" if r["voided"] else "current") if r["current"] else "superseded"),
    output.Column("voided", table=False),
    output.Column("recorded_at", table=False),
    output.Column("recorded_local", "recorded", text=lambda r: r["recorded_local"].split(" (")[0], wrap=True),
    output.Column("recorded_by", "by", wrap=True, optional=True),
    *[output.Column(key, table=False) for key in ("supersedes", "run_id", "evidence", "note", "example", "reason",
                                                  "batch_id")],
]


@gate_app.command("record")
def record(
    program: ProgramArg,
    stage: Annotated[str, typer.Option(help="Stage id.")],
    team: Annotated[str, typer.Option(help="Team id.")],
    gate: Annotated[str, typer.Option(help="Gate id (a gate of kind 'recorded').")],
    passed: Annotated[bool, typer.Option("--pass/--fail", help="Whether the team passed the gate.")],
    evidence: Annotated[str, typer.Option(help="What was checked and what was found.")],
    link: Annotated[str | None, typer.Option(help="Link to the evidence (e.g. a lineage report).")] = None,
    example: Annotated[bool, typer.Option(help="Mark as example data.")] = False,
    grade: Annotated[str, typer.Option(help="How strong the evidence is: cryptographic (a hash matches), "
                                            "statistical (a test with a p-value), declared (stated by someone who "
                                            "answers for it) or heuristic (a raw number with no null model).")
                     ] = "declared",
    override_reason: Annotated[str | None, typer.Option(
        "--override-reason", help="Why an admin lets a result below the gate's min_grade, or a failure on "
                                  "heuristic evidence only, stand (recorded with the result).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a gate result with its evidence and its evidence grade; a new result for the same team and gate
    supersedes the old."""
    from simsa.program.grades import check_grade
    from simsa.services import gates as gate_service

    with writing() as session:
        result = gate_service.record_result(session, program, stage_id=stage, team_id=team, gate_id=gate,
                                            passed=passed, evidence=evidence, link=link, actor=STATE.who(),
                                            example=example, grade=check_grade(grade),
                                            override_reason=override_reason)
    if as_json:
        emit_json(result.to_dict())
    else:
        console.print(f"[green]✓[/] gate {gate} for {team}: {'passed' if passed else 'FAILED'} on "
                      f"{result.recorded.grade} evidence (record {result.recorded.id})")


def _print_originality(summary: dict) -> None:
    colors = {"pass": "green", "fail": "red", "needs review": "yellow"}
    table = Table("criterion", "status", "reasons")
    for cid, c in summary["criteria"].items():
        status = c["status"]
        table.add_row(cid, f"[{colors[status]}]{status}[/]", escape("; ".join(c["reasons"])))
    console.print(table)
    comps = Table(Column("component", no_wrap=True), "lineage", "finding", "weights", "log10 p", "identical")
    for e in summary["components"]:
        comps.add_row(escape(e["name"]), e["verdict"], e["finding"], e["weights"] or "—",
                      "—" if e["log10_p"] is None else f"{e['log10_p']:.1f}",
                      f"{e['identity']['identical']}/{e['identity']['tensors']}")
    console.print(comps)
    training = summary.get("training_evidence")
    if training:
        console.print(f"training evidence {escape(str(training['model']))}: "
                      + ("every applicable check passed" if training["ok"] else
                         f"[red]failed[/] {escape(', '.join(training['failed']))}"))
    priors = summary["priors"]
    for key in ("tokenizer", "architecture"):
        if priors[key]:
            console.print(f"{key} ({priors['label']}): {escape(priors[key])}")
    rec = summary["recommendation"]
    console.print(f"Recommendation: [{colors[rec]}]{rec}[/]")


@gate_app.command("from-lineage")
def from_lineage(
    program: ProgramArg,
    lineage: Annotated[str, typer.Argument(help="A saved `simsa lineage compare --json` result (.json).")],
    stage: Annotated[str, typer.Option(help="Stage id.")],
    team: Annotated[str, typer.Option(help="Team id.")],
    gate: Annotated[str, typer.Option(help="Gate id (a gate of kind 'recorded').")] = "originality",
    report: Annotated[str | None, typer.Option(help="Path or URL of the lineage HTML report, recorded as the link "
                                                    "(default: the JSON file's path).")] = None,
    override: Annotated[str | None, typer.Option(help="Record 'pass' or 'fail' after review, whatever the "
                                                      "recommendation (needs --reason).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why the reviewer decided as they did (with --override).")] = None,
    training_evidence: Annotated[str | None, typer.Option(
        "--training-evidence", help="The team's verified training evidence (`simsa evidence verify --json` saved "
                                    "to a file): shown in the summary; a failed package sends a pass to review.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the summary; record nothing.")] = False,
    example: Annotated[bool, typer.Option(help="Mark as example data.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Decide a gate from a lineage comparison against the team's declaration and the gate's originality rules.

    Records pass or fail as recommended; a result that needs review is recorded only with --override and --reason.
    """
    from simsa.errors import InputError
    from simsa.services import gates as gate_service

    if override not in (None, "pass", "fail"):
        raise InputError(f"--override must be pass or fail, got {override!r}")
    decided = None if override is None else override == "pass"
    found = gate_service.read_lineage_file(lineage)
    training = gate_service.read_training_evidence_file(training_evidence) if training_evidence else None
    with writing() as session:
        out = gate_service.record_result_from_lineage(
            session, program, stage_id=stage, team_id=team, gate_id=gate, lineage=found.data,
            lineage_sha256=found.sha256, lineage_text=found.text,
            link=report or lineage, actor=STATE.who(), override=decided, reason=reason, example=example,
            dry_run=dry_run, training=training).to_dict()
    if as_json:
        emit_json(out)
        return
    _print_originality(out["summary"])
    rec = out["recorded"]
    if rec is None:
        console.print("(dry run: nothing recorded)")
    else:
        console.print(f"[green]✓[/] gate {gate} for {team}: {'passed' if rec['passed'] else 'FAILED'} "
                      f"(record {rec['id']})")
