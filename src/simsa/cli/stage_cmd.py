"""`simsa stage …`: decide a stage, show decisions, file and resolve appeals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from simsa.cli import output
from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json
from simsa.timeutil import format_local, parse_user_time

if TYPE_CHECKING:
    from simsa.program.loader import LoadedProgram

app = typer.Typer(help="Decide stages, show decisions, handle appeals.", no_args_is_help=True)
appeal_app = typer.Typer(help="File, resolve and list appeals.", no_args_is_help=True)
app.add_typer(appeal_app, name="appeal")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ProgramArg = Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")]
StageArg = Annotated[str, typer.Argument(help="Stage id.")]
AtOpt = Annotated[str | None, typer.Option("--at", help="Date-time to record (ISO 8601, UTC if no zone); "
                                                        "default now.")]


def parse_at(value: str | None) -> dt.datetime | None:
    """--at as a UTC instant (the offset applied here, at the edge, before anything is stored or hashed)."""
    return None if value is None else parse_user_time(value, "--at")


def print_decision(d: Mapping[str, Any], zone: str | None = None) -> None:
    """The decision in the global --lang, times in the programme's zone (display only; JSON stays UTC)."""
    from simsa.cli.decision_display import print_decision as show_decision

    show_decision(d, STATE.lang, zone)


@app.command("decide")
def decide(
    program: ProgramArg,
    stage: StageArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and show; record nothing.")] = False,
    supersede: Annotated[bool, typer.Option("--supersede", help="Replace the decision in force.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why a decision is replaced (with --supersede).")] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the stage's rules to the current scores and gate results, record the decision, and show it."""
    from simsa.cli.program_cmd import print_version_warnings
    from simsa.services import decisions as decision_service

    when = parse_at(at)
    with STATE.store().session() as session, console.status("Deciding and running the robustness analysis…"):
        decided = decision_service.decide(session, program, stage, STATE.who(), when, supersede=supersede,
                                          reason=reason, dry_run=dry_run)
    print_version_warnings(decided.warnings)
    if as_json:
        emit_json(decided.to_dict())
    else:
        print_decision(decided.to_dict(), decided.timezone)


@app.command("show")
def show(
    program: ProgramArg,
    stage: StageArg,
    decision: Annotated[int | None, typer.Option(help="A specific decision id (default: the one in force).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the decision in force (or a given one) as recorded."""
    from simsa.services import decision_records, programs
    from simsa.services import decisions as decision_service

    with STATE.store().session(readonly=True) as session:
        loaded = programs.resolve(session, program)
        decision_service.require_stage(loaded.program, stage)
        body = decision_records.body(decision_records.get(session, loaded.program.program.id, stage, decision))
    if as_json:
        emit_json(body)
    else:
        print_decision(body, loaded.program.program.timezone)


@app.command("import-decision")
def import_decision(
    program: ProgramArg,
    file: Annotated[str, typer.Argument(help="The previous stage's published decision JSON (as `simsa stage show "
                                             "--json` writes it, or a report JSON).")],
    supersede: Annotated[bool, typer.Option("--supersede", help="Replace the decision in force.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why a decision is replaced (with --supersede).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a previous stage's decision made elsewhere, as the programme pins it (`[stages.previous_decision]`
    file and sha256), so the next stage can be decided here."""
    from simsa.services import decisions as decision_service

    with STATE.store().session() as session:
        result = decision_service.import_decision(session, program, file, STATE.who(), supersede=supersede,
                                                  reason=reason).to_dict()
    if as_json:
        emit_json(result)
        return
    verb = "recorded as decision" if result["recorded"] else "already recorded as decision"
    console.print(f"[green]✓[/] {escape(result['file'])} (sha256 {result['sha256'][:12]}) {verb} "
                  f"{result['decision_id']} of {result['stage']}; title holders: "
                  f"{', '.join(result['title_holders']) or 'none'}")


@appeal_app.command("file")
def file_appeal(
    program: ProgramArg,
    stage: StageArg,
    team: Annotated[str, typer.Option(help="Appealing team.")],
    grounds: Annotated[str, typer.Option(help="Grounds of the appeal.")],
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """File an appeal against the decision in force, within the stage's appeal window."""
    from simsa.services import appeals as appeal_service

    with STATE.store().session() as session:
        filed = appeal_service.file_appeal(session, program, stage, team, grounds, STATE.who(), parse_at(at))
    if as_json:
        emit_json(filed.to_dict())
    else:
        console.print(f"[green]✓[/] appeal {filed.appeal_id} filed by {team} against decision {filed.decision_id}"
                      f" at {format_local(filed.filed_at, filed.timezone)}")


@appeal_app.command("resolve")
def resolve_appeal(
    program: ProgramArg,
    appeal_id: Annotated[int, typer.Argument(help="Appeal id.")],
    uphold: Annotated[bool, typer.Option("--uphold/--reject", help="Uphold (re-decide) or reject.")],
    reason: Annotated[str, typer.Option(help="Reason for the resolution.")],
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Resolve an appeal. Upholding re-decides the stage on the data recorded now (enter corrections first);
    the new decision links to the one it replaces."""
    from simsa.services import appeals as appeal_service

    with STATE.store().session() as session:
        resolved = appeal_service.resolve_appeal(session, program, appeal_id, uphold, reason, STATE.who(),
                                                 parse_at(at))
    if as_json:
        emit_json(resolved.to_dict())
        return
    console.print(f"[green]✓[/] appeal {appeal_id} {resolved.status}")
    if resolved.new_decision:
        print_decision(resolved.new_decision, resolved.timezone)


@appeal_app.command("list")
def list_appeals(program: ProgramArg, stage: StageArg, fmt: output.FormatOpt = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False) -> None:
    """Appeals against the stage's decisions, with their resolutions."""
    from simsa.services import appeals as appeal_service
    from simsa.services import programs

    chosen = output.output_format(fmt, as_json)
    with STATE.store().session(readonly=True) as session:
        loaded = programs.resolve(session, program)
        items = appeal_service.listing(session, loaded.program.program.id, stage)
    zone = loaded.program.program.timezone
    columns = [
        output.Column("id", justify="right"),
        output.Column("decision_id", "decision", justify="right"),
        output.Column("team", text=lambda a: _team_name(loaded, a["team"]), wrap=True),
        output.Column("filed_at", "filed", text=lambda a: format_local(a["filed_at"], zone), wrap=True),
        output.Column("status"),
        output.Column("resolved_at", "resolved", text=lambda a: format_local(a["resolved_at"], zone), wrap=True),
        output.Column("new_decision_id", "new decision", justify="right"),
        output.Column("grounds", wrap=True),
        output.Column("resolution", table=False),
    ]
    output.emit_rows(items, columns, chosen, key="appeals", empty="no appeals")


def _team_name(loaded: LoadedProgram, team_id: str) -> str:
    """A team's name in the global --lang, or its id when the programme no longer lists it."""
    from simsa.report.labels import pick

    try:
        team = loaded.program.team(team_id)
    except KeyError:
        return team_id
    return pick(team.name, team.name_ko, STATE.lang) or team_id


@app.command("status")
def status(program: ProgramArg, stage: StageArg, as_json: JsonOpt = False) -> None:
    """The whole stage before deciding: participants, each team's scores and gate results, what is missing
    (blocking, or counted as zero), whether it can be decided now, and the decision in force. Writes nothing."""
    from simsa.cli.status_view import print_status
    from simsa.services import programs
    from simsa.services.status import stage_status

    with STATE.store().session(readonly=True) as session:
        result = stage_status(session, programs.resolve(session, program), stage)
    if as_json:
        emit_json(result.to_dict())
    else:
        print_status(result)
