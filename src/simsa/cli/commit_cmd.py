"""`simsa commit` and `simsa commitments …`: pre-registered commitments of a team, and checks against them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json, err_console, fail

if TYPE_CHECKING:
    from simsa.evidence import Digest

KINDS_HELP = ("KIND=PATH, KIND:LABEL=PATH or PATH. Kinds: seed, data-manifest, tokenizer, step0, entrant (the "
              "weights an arena entrant will serve), file (anything else; labelled by its name).")

app = typer.Typer(help="A team's pre-registered commitments: list them, check submitted files against them.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ProgramArg = Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")]
TeamOpt = Annotated[str, typer.Option("--team", help="Team id.")]
StageOpt = Annotated[str | None, typer.Option(
    "--stage", help="Stage id (default: the stage running today, in the programme's time zone, else the next).")]
ItemsArg = Annotated[list[str], typer.Argument(help=KINDS_HELP, show_default=False)]


def digests(items: Sequence[str]) -> list[Digest]:
    """Each item's digest, with one progress bar over all the bytes read (drawn on terminals only)."""
    from simsa.evidence import digest, parse_spec, total_bytes

    specs = [parse_spec(item) for item in items]
    total = sum(total_bytes(s) for s in specs)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("hashing", total=total)
        out = []
        for spec in specs:
            bar.update(task, description=escape(f"hashing {spec.kind}:{spec.label}"))
            out.append(digest(spec, lambda n: bar.advance(task, n)))
        return out


def commit(
    program: ProgramArg,
    team: TeamOpt,
    items: ItemsArg,
    stage: StageOpt = None,
    reason: Annotated[str, typer.Option(
        "--reason", help="Why a commitment changes (needed to replace one already recorded; both stay on record).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Record what a team commits to at a stage's start: the sha256 of each file (for a directory, of every file
    under it) goes into the audit chain. Only digests are stored; the files stay with the team."""
    from simsa.services import commitments

    found = digests(items)
    with STATE.store().session() as session:
        result = commitments.record(session, program, team=team, digests=found, actor=STATE.who(), stage=stage,
                                    reason=reason)
    if as_json:
        emit_json(result.to_dict())
        return
    for item in result.items:
        what = {"recorded": "[green]✓[/] committed", "amended": "[yellow]✓[/] amended",
                "unchanged": "unchanged:"}[item.status]
        extra = f" (replaces #{item.supersedes})" if item.supersedes else ""
        late = "" if item.before_stage_start else f" — after the stage started ({result.stage_start})"
        console.print(f"{what} {escape(item.kind)}:{escape(item.label)} sha256 {item.sha256} "
                      f"({item.bytes:,} bytes){extra}{late}", soft_wrap=True)


@app.command("list")
def list_(program: ProgramArg, team: Annotated[str | None, typer.Option("--team", help="Only this team.")] = None,
          stage: StageOpt = None, as_json: JsonOpt = False) -> None:
    """The current commitments of a stage, with when they were recorded (programme time and UTC)."""
    from simsa.services import commitments

    with STATE.store().session(readonly=True) as session:
        out = commitments.listing(session, program, stage=stage, team=team)
    if as_json:
        emit_json(out)
        return
    table = Table(title=f"Commitments — {out['program']} / {out['stage']} (stage starts {out['stage_start']}; "
                        "full digests with --json)")
    for col in ("#", "team", "commitment", "sha256", "recorded", "note"):
        table.add_column(col, overflow="fold")
    for c in out["commitments"]:
        notes = ([] if c["before_stage_start"] else ["recorded after the stage started"]) + (
            [f"replaces #{c['supersedes']}: {c['reason']}"] if c["supersedes"] else [])
        table.add_row(str(c["id"]), escape(c["team"]), escape(f"{c['kind']}:{c['label']}"), c["sha256"][:16] + "…",
                      escape(c["recorded_at_local"]), escape("; ".join(notes)))
    console.print(table)


@app.command("check")
def check(program: ProgramArg, team: TeamOpt, items: ItemsArg, stage: StageOpt = None,
          as_json: JsonOpt = False) -> None:
    """Check submitted files against the team's commitments: exit 1, naming the commitment, if one byte differs or
    something was submitted that was never committed."""
    from simsa.services import commitments

    found = digests(items)
    with STATE.store().session(readonly=True) as session:
        report = commitments.check_submission(session, program, team=team, digests=found, stage=stage)
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.lines:
            mark = "[red]✗[/]" if line.failed else "[green]✓[/]" if line.status == "matches" else "·"
            console.print(f"{mark} {escape(line.message())}", soft_wrap=True)
    if not report.ok:
        if not as_json:
            fail(f"{sum(line.failed for line in report.lines)} of the submitted items do not match team "
                 f"{team!r}'s commitments", code=1)
        raise SystemExit(1)
