"""`simsa ecosystem …`: dated snapshots of the teams' hub models, their series, replay, scores and a report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json, err_console, fail, notice

app = typer.Typer(help="Ecosystem signals: hub downloads, likes, trending and derivatives as dated snapshots.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ProgramArg = Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")]
MetricOpt = Annotated[str | None, typer.Option("--metric", help="One metric (default: every metric).")]


def _value(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


@app.command("snapshot")
def snapshot(
    program: ProgramArg,
    endpoint: Annotated[str | None, typer.Option(
        "--endpoint", help="Hub URL (default: $HF_ENDPOINT, else https://huggingface.co).")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="HF_TOKEN",
                                              help="Hub token for private or gated models (default $HF_TOKEN).")
                     ] = None,
    min_interval: Annotated[float, typer.Option(
        "--min-interval", min=0.0, help="Seconds between two requests to the hub.")] = 0.2,
    as_json: JsonOpt = False,
) -> None:
    """Read every team's hub models (downloads, likes, trending, derivatives, declared base models) and store the
    answers and the snapshot, dated UTC and audited. A model that cannot be read is recorded as an error."""
    from simsa.ecosystem import DEFAULT_ENDPOINT, HubReader, Limits
    from simsa.services import ecosystem, programs

    url = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    with STATE.store().session(readonly=True) as session:
        loaded = programs.resolve(session, program)
    reader = HubReader(endpoint=url, token=token, limits=Limits(min_interval=min_interval))

    def progress(team: str, ref: str) -> None:
        if not as_json:
            err_console.print(f"reading {escape(ref)} ({escape(team)})", highlight=False, soft_wrap=True)

    taken = ecosystem.collect(loaded.program, endpoint=url, reader=reader, progress=progress)
    with STATE.store().session() as session:
        result = ecosystem.store_snapshot(session, loaded, taken, STATE.who())
    for error in result.snapshot.errors:
        notice(f"{error.team}: {error.message}")
    if as_json:
        emit_json(result.to_dict())
        return
    models = sum(len(t.models) for t in result.snapshot.teams)
    console.print(f"[green]✓[/] snapshot #{result.id} of {escape(result.snapshot.program)}: {models} model(s) read, "
                  f"{len(result.snapshot.errors)} error(s); {result.answers_stored} new answer(s) stored, "
                  f"{result.answers_reused} already stored; sha256 {result.sha256}"
                  + (f"; waited out {result.snapshot.rate_limited} rate limit answer(s)"
                     if result.snapshot.rate_limited else ""), soft_wrap=True)


@app.command("show")
def show(program: ProgramArg, metric: MetricOpt = None, as_json: JsonOpt = False) -> None:
    """The time series of each metric per team (sum over the team's models), with what each number is."""
    from simsa.services import ecosystem

    with STATE.store().session(readonly=True) as session:
        view = ecosystem.report_view(session, program, [metric] if metric else None)
    if as_json:
        emit_json({"program": view.program, "series": [s.to_dict() for s in view.series]})
        return
    if view.latest_id is None:
        console.print(f"no ecosystem snapshot of {escape(view.program)} yet (take one with "
                      f"`simsa ecosystem snapshot {escape(view.program)}`)")
        return
    for series in view.series:
        table = Table(title=escape(series.metric.label(STATE.lang)), title_justify="left")
        table.add_column("snapshot")
        table.add_column("taken (UTC)")
        for team in series.teams:
            table.add_column(escape(team), justify="right")
        for point in series.points:
            table.add_row(f"#{point.snapshot_id}", point.taken_at.strftime("%Y-%m-%d %H:%M"),
                          *(_value(point.values[t]) for t in series.teams))
        console.print(table)


@app.command("replay")
def replay(program: ProgramArg, snapshot_id: Annotated[int, typer.Argument(help="Snapshot id.")],
           as_json: JsonOpt = False) -> None:
    """Parse a stored snapshot again from its stored answers, offline; exit 1 if anything differs."""
    from simsa.services import ecosystem, programs

    with STATE.store().session(readonly=True) as session:
        key = programs.resolve(session, program).program.program.id
        result = ecosystem.replay(session, snapshot_id, key)
    if as_json:
        emit_json(result.to_dict())
    else:
        for line in (*result.problems, *result.differences):
            console.print(f"[red]✗[/] {escape(line)}", soft_wrap=True)
        if result.ok:
            console.print(f"[green]✓[/] snapshot #{result.snapshot_id} replays byte for byte from its stored "
                          f"answers (sha256 {result.stored_sha256})", soft_wrap=True)
    if not result.ok:
        fail(f"snapshot #{result.snapshot_id} does not replay: {len(result.problems)} problem(s), "
             f"{len(result.differences)} difference(s)", 1)


@app.command("record")
def record(program: ProgramArg, stage: Annotated[str, typer.Option("--stage", help="Stage id.")],
           at: Annotated[str | None, typer.Option(
               "--at", help="Use the latest snapshot taken at or before this ISO time (default: now).")] = None,
           as_json: JsonOpt = False) -> None:
    """Record the stage's `ecosystem:<metric>` scores, one per team, from the latest snapshot."""
    from simsa.services import ecosystem
    from simsa.timeutil import parse_user_time, utc_text

    when = parse_user_time(at, "--at") if at else None
    with STATE.store().session() as session:
        result = ecosystem.record_scores(session, program, stage, STATE.who(), at=when)
    for team, source in result.missing:
        notice(f"{team}: no model read in snapshot #{result.snapshot_id}, so no {source} score")
    if as_json:
        emit_json(result.to_dict())
        return
    console.print(f"from snapshot #{result.snapshot_id} taken {utc_text(result.taken_at)} "
                  f"(sha256 {result.snapshot_sha256}):", soft_wrap=True)
    for row in result.recorded:
        console.print(f"[green]✓[/] {escape(row.team_id)} {escape(row.source)} = {_value(row.value)} (score "
                      f"#{row.id})", soft_wrap=True)


@app.command("report")
def report(program: ProgramArg,
           out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
           lang: Annotated[Literal["en", "ko", "both"], typer.Option(
               "--lang", help="Language of the labels (default: both).")] = "both",
           as_json: JsonOpt = False) -> None:
    """Write a self-contained HTML page: each metric's series, the derivative tree, and what each number is."""
    from simsa.report.ecosystem_section import standalone
    from simsa.services import ecosystem

    with STATE.store().session(readonly=True) as session:
        view = ecosystem.report_view(session, program)
    out.write_text(standalone(view, lang), encoding="utf-8")
    if as_json:
        emit_json({"program": view.program, "out": str(out),
                   "snapshot_id": view.latest_id})
        return
    console.print(f"[green]✓[/] wrote {escape(str(out))}", soft_wrap=True)
