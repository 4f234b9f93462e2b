"""`simsa program …`: validate, load, list and compare program files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from simsa.cli import output
from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json, err_console

if TYPE_CHECKING:
    from simsa.program.loader import LoadedProgram
    from simsa.program.schema import Stage
    from simsa.services.program_versions import VersionDiff
    from simsa.services.programs import VersionWarning

app = typer.Typer(help="Validate, load, list and compare program files.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def summary(loaded: LoadedProgram) -> dict:
    p = loaded.program
    return {
        "program": p.program.id, "name": p.program.name, "sha256": loaded.sha256, "path": loaded.path,
        "teams": [t.id for t in p.teams],
        "stages": [{"id": s.id, "name": s.name, "start": s.start.isoformat(), "end": s.end.isoformat(),
                    "points": s.max_points, "criteria": [c.id for c, _, _ in s.walk()],
                    "gates": [g.id for g in s.gates], "sources": s.score_sources(),
                    "expert_panel": _panel_summary(s), "arena": _arena_summary(s)} for s in p.stages],
        "suites": [{"id": s.id, "name": s.name, "limit": s.limit,
                    "tasks": [t.model_dump() for t in s.tasks]} for s in p.suites],
    }


def _panel_summary(stage: Stage) -> dict | None:
    panel = stage.expert_panel
    if panel is None:
        return None
    from simsa.panel.rubric import rubric_sha256

    return {"submission_deadline": panel.submission_deadline.isoformat().replace("+00:00", "Z"),
            "min_experts": panel.min_experts, "aggregation": panel.aggregation, "counts": panel.counts,
            "blinding": panel.blinding, "consensus_round": panel.consensus_round,
            "calibration": panel.calibration.model_dump() if panel.calibration else None,
            "rubric_sha256": rubric_sha256(panel),
            "criteria": [{"id": c.id, "weight": c.weight, "levels": [lv.value for lv in c.levels],
                          "justification": c.justification} for c in panel.criteria]}


def _arena_summary(stage: Stage) -> dict | None:
    arena = stage.arena
    if arena is None:
        return None
    return {"opens": arena.opens.isoformat().replace("+00:00", "Z"),
            "closes": arena.closes.isoformat().replace("+00:00", "Z"), "votes_per_pair": arena.votes_per_pair,
            "categories": list(arena.categories), "score": arena.score, "ranking": arena.ranking,
            "daily_cap": arena.daily_cap, "min_dwell_seconds": arena.min_dwell_seconds,
            "decoding": arena.decoding.model_dump(), "prompts": len(arena.prompts), "gold": len(arena.gold),
            "entrants": [{"team": e.team, "endpoint": e.endpoint, "model": e.model, "model_dir": e.model_dir,
                          "price_per_million_tokens": e.price_per_million_tokens} for e in arena.entrants]}


def _print_arena(stage: Stage) -> None:
    arena = stage.arena
    if arena is None:
        return
    d = arena.decoding
    title = (f"{stage.id}: user arena — {arena.opens.isoformat().replace('+00:00', 'Z')} → "
             f"{arena.closes.isoformat().replace('+00:00', 'Z')}, {arena.votes_per_pair} votes per pair, "
             f"categories {', '.join(arena.categories)}; {arena.ranking.replace('_', '-')} ranking, score "
             f"{arena.score.replace('_', ' ')}; decoding max_tokens {d.max_tokens}, temperature {d.temperature:g}, "
             f"top_p {d.top_p:g}; {len(arena.prompts)} curated prompts, {len(arena.gold)} attention checks")
    table = Table(title=escape(title), title_justify="left")
    for col in ("entrant", "served by", "price / 1M tokens"):
        table.add_column(col)
    for e in arena.entrants:
        table.add_row(e.team, escape(f"{e.endpoint} ({e.model})" if e.endpoint else f"local {e.model_dir}"),
                      f"{e.price_per_million_tokens:g}")
    console.print(table)


def _print_panel(stage: Stage) -> None:
    panel = stage.expert_panel
    if panel is None:
        return
    cal = panel.calibration
    title = (f"{stage.id}: expert panel — deadline {panel.submission_deadline.isoformat().replace('+00:00', 'Z')}, "
             f"≥ {panel.min_experts} experts per team, {panel.aggregation} ({panel.counts}), blinding "
             f"{'on' if panel.blinding else 'off'}, round 2 {'on' if panel.consensus_round else 'off'}, calibration "
             + (f"on {', '.join(cal.anchors)} (α ≥ {cal.threshold:g})" if cal else "off"))
    table = Table(title=escape(title), title_justify="left")
    for col in ("rubric criterion", "weight", "levels", "justification"):
        table.add_column(col)
    for c in panel.criteria:
        table.add_row(c.id, f"{c.weight:g}", ", ".join(f"{lv.value} {escape(lv.label)}" for lv in c.levels),
                      c.justification)
    console.print(table)


def _print(loaded: LoadedProgram, verb: str) -> None:
    p = loaded.program
    console.print(f"[green]✓[/] {verb} [bold]{escape(p.program.name)}[/] ({p.program.id}) — {len(p.teams)} teams, "
                  f"{len(p.stages)} stages, sha256 {loaded.sha256[:12]}")
    for stage in p.stages:
        title = f"{stage.id}: {escape(stage.name)} ({stage.start} → {stage.end}, appeal {stage.appeal_days} days)"
        table = Table(title=title, title_justify="left")
        table.add_column("criterion")
        table.add_column("points", justify="right")
        table.add_column("source")
        table.add_column("normalisation")
        for crit, depth, _ in stage.walk():
            table.add_row("  " * depth + crit.id, f"{crit.points:g}", crit.source or "",
                          crit.norm if crit.is_leaf else "")
        for gate in stage.gates:
            table.add_row(f"gate {gate.id}", "", gate.source or gate.kind, "")
        console.print(table)
        _print_panel(stage)
        _print_arena(stage)
    if p.suites:
        table = Table(title="benchmark suites (source bench:<suite>)", title_justify="left")
        for col in ("suite", "task", "metric", "normalisation", "weight"):
            table.add_column(col)
        for suite in p.suites:
            for i, task in enumerate(suite.tasks):
                norm = task.normalisation + (f" (chance {task.chance:g})" if task.chance is not None else "")
                table.add_row(suite.id if i == 0 else "", task.task, task.metric, norm, f"{task.weight:g}")
        console.print(table)


@app.command("check")
def check(file: Annotated[str, typer.Argument(help="Program file (.toml).")], as_json: JsonOpt = False) -> None:
    """Validate a program file without writing anything (exit 2 with `file:line: key: message` on error)."""
    from simsa.program.loader import load_program

    loaded = load_program(file)
    for warning in loaded.warnings:  # on stderr, like every warning, so --json output stays one document
        err_console.print(f"[bold yellow]warning:[/] [yellow]{escape(str(warning))}[/]", highlight=False,
                          soft_wrap=True)
    if as_json:
        emit_json({"valid": True, **summary(loaded), "warnings": [w.to_dict() for w in loaded.warnings]})
    else:
        _print(loaded, "valid:")


@app.command("load")
def load(file: Annotated[str, typer.Argument(help="Program file (.toml).")], as_json: JsonOpt = False) -> None:
    """Validate a program file and record this version in the store (audited; idempotent)."""
    from simsa.program.loader import load_program
    from simsa.services import programs

    loaded = load_program(file)
    with STATE.store().session() as session:
        reg = programs.register_with_warnings(session, loaded, STATE.who())
        version_id = reg.version.id
    print_version_warnings(reg.warnings)
    if as_json:
        emit_json({"loaded": reg.created, "version_id": version_id, **summary(loaded),
                   "decision_warnings": [w.to_dict() for w in reg.warnings]})
    else:
        _print(loaded, "loaded" if reg.created else "already loaded (same version):")


def print_version_warnings(warnings: Sequence[VersionWarning]) -> None:
    """Rule changes behind a decision in force: yellow, on stderr, so they never mix into --json output."""
    for w in warnings:
        err_console.print(f"[bold yellow]warning:[/] [yellow]{escape(w.message)}[/]", highlight=False,
                          soft_wrap=True)


@app.command("list")
def list_(fmt: output.FormatOpt = None, as_json: JsonOpt = False) -> None:
    """The programs loaded in the store, each version with its hash, who loaded it when, and its decisions."""
    from simsa.services import program_versions

    chosen = output.output_format(fmt, as_json)
    with STATE.store().session(readonly=True) as session:
        versions = program_versions.list_versions(session)
    output.emit_rows([v.to_dict() for v in versions], VERSION_COLUMNS, chosen, key="versions",
                     empty="no programs loaded yet (`simsa program load FILE`)")
    if chosen == "table" and any(v.in_force for v in versions):
        console.print("* decision in force")


def _decisions_cell(row: dict) -> str:
    in_force = set(row["decisions_in_force"])
    return ", ".join(f"{d}*" if d in in_force else str(d) for d in row["decisions"]) or "—"


VERSION_COLUMNS = (
    output.Column("program"),
    output.Column("id", "ver", justify="right"),
    output.Column("sha256", text=lambda r: r["sha256"][:12]),
    output.Column("loaded_at", "loaded (UTC)", text=lambda r: r["loaded_at"][:16].replace("T", " ")),
    output.Column("loaded_by", "by"),
    output.Column("decisions", text=_decisions_cell),
    output.Column("source_path", "source", wrap=True),
)


@app.command("diff")
def diff(
    program: Annotated[str, typer.Argument(help="Id of a loaded program, or a program file (compared with the "
                                                "latest loaded version unless --to is given).")],
    from_: Annotated[str | None, typer.Option("--from", help="Version id or sha256 prefix (default: the version "
                                                             "before --to).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Version id, sha256 prefix or program file (default: the "
                                                        "latest loaded version).")] = None,
    text: Annotated[bool, typer.Option("--text", help="Also show the unified diff of the files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """What changed between two versions of a program, each change marked `rules` (can change who advances) or
    `cosmetic` (names, descriptions)."""
    from simsa.services import program_versions

    with STATE.store().session(readonly=True) as session:
        result = program_versions.diff_versions(session, program, from_, to, text=text)
    if as_json:
        emit_json(result.to_dict())
    else:
        _print_diff(result)


def _print_diff(result: VersionDiff) -> None:
    d = result.diff
    console.print(f"[bold]{escape(result.program)}[/]: {escape(result.before.label)} → {escape(result.after.label)}: "
                  f"{len(d.rules)} rule change{'s' * (len(d.rules) != 1)}, {len(d.cosmetic)} cosmetic",
                  highlight=False)
    if not d.changes:
        console.print("no semantic changes" + (" (the files differ only in layout or comments)"
                                               if result.before.sha256 != result.after.sha256 else ""))
    for c in d.changes:
        tag = "[bold red]rules[/]   " if c.category == "rules" else "[dim]cosmetic[/]"
        where = f" [dim](affects {', '.join(c.stages)})[/]" if c.category == "rules" and c.stages else ""
        console.print(f"  {tag} {escape(c.describe())}{where}", highlight=False)
    if result.text:
        console.print()
        console.print(result.text, highlight=False, markup=False, soft_wrap=True, end="")
