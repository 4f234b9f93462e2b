"""`simsa panel status|declare|assign|advance|close|upload|result|export`: running a stage's expert panel from the
command line, for bulk and offline work. Each command is one call into `simsa.services.panel*`; the rules (who may
be assigned, when a step may open, what a document may be) live there, so the CLI and the web pages agree.

These are the secretariat's commands: whoever can open the store sees what the admin sees (usernames, the
panel's preview). What leaves the store for others, `export`, names experts E1, E2, … only.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from simsa.cli import output
from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json

if TYPE_CHECKING:  # the services load SQLAlchemy; commands import them when they run
    from sqlalchemy.orm import Session

    from simsa.services.panel import PanelContext

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text and tables.")]
ProgramArg = Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")]
StageOpt = Annotated[str, typer.Option("--stage", help="Stage id (a stage with [stages.expert_panel]).")]
Phase = Literal["calibration", "round1", "round2", "closed"]
ExportRound = Literal["1", "2", "final", "calibration"]


# ---------------------------------------------------------------------------------------------------- helpers
def _context(session: Session, program: str, stage: str, *, write: bool) -> PanelContext:
    """The stage's panel; a program file given to a writing command is registered first (as `score add` does)."""
    from simsa.services import panel, programs

    resolve = programs.resolve if not write else (lambda s, ref: programs.for_writing(s, ref, STATE.who()).loaded)
    loaded = resolve(session, program)
    return panel.context_of(loaded, stage)


@contextmanager
def _writing() -> Iterator[Session]:
    from simsa.cli.score_cmd import writing

    with writing() as session:
        yield session


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------------- status
@dataclass(frozen=True)
class PanelStatus:
    """Where a stage's panel stands, for the secretariat: step, what blocks the next one, coverage, calibration and
    how many reviews are locked per round."""

    program: str
    stage: str
    phase: dict
    next_step: str | None
    blockers: tuple[str, ...]
    min_experts: int
    coverage: tuple[dict, ...]
    calibration: dict | None
    progress: dict

    def to_dict(self) -> dict:
        return {"program": self.program, "stage": self.stage, **self.phase, "next": self.next_step,
                "blockers": list(self.blockers), "min_experts": self.min_experts, "coverage": list(self.coverage),
                "calibration": self.calibration, "progress": self.progress}


def panel_status(session: Session, ctx: PanelContext) -> PanelStatus:
    """Gather the panel's state from the services (read only)."""
    from simsa.services import panel, panel_results, panel_steps

    state = panel.phase(session, ctx)
    order = [p for p in panel.PHASES if (p != panel.CALIBRATION or ctx.anchors)
             and (p != "round2" or ctx.panel.consensus_round)]
    later = order if state.phase is None else order[order.index(state.phase) + 1:]
    target = later[0] if later else None
    pairs = panel.assignments(session, ctx)
    coverage = tuple({"team": t.id, "experts": n, "short": n < ctx.panel.min_experts,
                      "assigned": sorted(e for tt, e in pairs if tt == t.id)} for t, n in panel.coverage(session, ctx))
    progress: dict[str, dict] = {}
    if ctx.anchors:
        experts = panel.assigned_experts(session, ctx)
        done = len(panel.reviews(session, ctx, panel.CALIBRATION))
        progress["calibration"] = {"locked": done, "expected": len(experts) * len(ctx.anchors)}
    for rnd in ("1", "2"):
        locked = len({(r.subject, r.expert) for r in panel.reviews(session, ctx, rnd)} & set(pairs))
        progress[f"round{rnd}"] = {"locked": locked, "expected": len(pairs)}
    cal = panel_results.calibration(session, ctx).to_dict() if ctx.anchors else None
    return PanelStatus(program=ctx.key, stage=ctx.stage.id, phase=state.to_dict(), next_step=target,
                       blockers=tuple(panel_steps.blockers(session, ctx, target)) if target else (),
                       min_experts=ctx.panel.min_experts, coverage=coverage, calibration=cal, progress=progress)


def status(program: ProgramArg, stage: StageOpt, as_json: JsonOpt = False) -> None:
    """Where the panel stands: its step, what blocks the next one, experts per team, calibration α, progress."""
    with STATE.store().session(readonly=True) as session:
        out = panel_status(session, _context(session, program, stage, write=False)).to_dict()
    if as_json:
        emit_json(out)
        return
    console.print(f"panel of {escape(out['program'])} / {escape(out['stage'])}: [bold]{out['phase']}[/]"
                  + (f" since {out['since']}" if out["since"] else ""), soft_wrap=True)
    if out["next"]:
        if out["blockers"]:
            console.print(f"next step {out['next']} is blocked:", soft_wrap=True)
            for line in out["blockers"]:
                console.print(f"  - {escape(line)}", soft_wrap=True)
        else:
            console.print(f"[green]✓[/] ready for {out['next']} (`simsa panel advance … --to {out['next']}`)")
    elif out["phase"] == "closed":
        console.print("the panel is closed: deciding the stage (`simsa stage decide`) records its aggregate as "
                      "panel:expert", soft_wrap=True)
    cal = out["calibration"]
    if cal is not None:
        mark = "[green]passed[/]" if cal["passed"] else "[yellow]not passed[/]"
        console.print(f"calibration α = {_fmt(cal['alpha'])} (threshold {cal['threshold']:.3f}): {mark}"
                      + (f"; {len(cal['missing'])} anchor review(s) missing" if cal["missing"] else ""))
    for name, p in out["progress"].items():
        console.print(f"{name}: {p['locked']} of {p['expected']} reviews locked")
    columns = [output.Column("team"), output.Column("experts", justify="right"),
               output.Column("short", "below minimum", text=lambda r: "YES" if r["short"] else ""),
               output.Column("assigned", wrap=True, text=lambda r: ", ".join(r["assigned"]))]
    console.print(output.rows_table(out["coverage"], columns, title=f"experts per team (minimum {out['min_experts']})"))


# ---------------------------------------------------------------------------------------------------- set-up
def declare(
    expert: Annotated[str, typer.Argument(help="The expert's username (an active account of role expert).")],
    affiliation: Annotated[list[str] | None, typer.Option("--affiliation", help="An organisation the expert "
                                                          "belongs or belonged to (repeat for several).")] = None,
    relation: Annotated[list[str] | None, typer.Option("--relation", help="A person or organisation the expert is "
                                                       "related to (repeat).")] = None,
    conflict: Annotated[list[str] | None, typer.Option("--conflict", help="A team the expert knows they are "
                                                       "conflicted with: TEAM or PROGRAM/TEAM (repeat).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record an expert's declaration (it replaces their earlier one, which stays as history). An expert with no
    declaration cannot be assigned."""
    from simsa.errors import NotFound
    from simsa.services import panel

    with _writing() as session:
        if expert not in panel.experts(session):
            raise NotFound(f"no active expert account {expert!r} (invite one with role expert first)")
        decl = panel.declare(session, expert, affiliations=affiliation or [], relations=relation or [],
                             conflicts=conflict or [], actor=STATE.who())
    if as_json:
        emit_json(decl.to_dict())
    else:
        console.print(f"[green]✓[/] declaration of {escape(expert)}: {len(decl.affiliations)} affiliation(s), "
                      f"{len(decl.relations)} relation(s), {len(decl.conflicts)} declared conflict(s)")


def assign(
    program: ProgramArg,
    stage: StageOpt,
    auto: Annotated[bool, typer.Option("--auto", help="Balance: give every team the minimum of non-conflicted "
                                                      "experts, load spread evenly.")] = False,
    team: Annotated[str | None, typer.Option("--team", help="Team id (with --expert).")] = None,
    expert: Annotated[str | None, typer.Option("--expert", help="Expert username (with --team).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the assignment of --expert to --team.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Assign experts to teams: all at once (--auto) or one pair (--team and --expert, --remove to take it back).
    A conflicted pair is refused with the conflict."""
    from simsa.errors import InputError
    from simsa.services import panel

    if auto and (team or expert or remove):
        raise InputError("--auto assigns every team; give it alone, or --team and --expert for one pair")
    if not auto and not (team and expert):
        raise InputError("give --auto, or --team and --expert")
    with _writing() as session:
        ctx = _context(session, program, stage, write=True)
        if auto:
            out = panel.auto_assign(session, ctx, STATE.who()).to_dict()
        else:
            assert team is not None and expert is not None
            if remove:
                panel.unassign(session, ctx, team, expert, STATE.who())
            else:
                panel.assign(session, ctx, team, expert, STATE.who())
            out = {"team": team, "expert": expert, "removed": remove}
        out["coverage"] = [{"team": t.id, "experts": n} for t, n in panel.coverage(session, ctx)]
    if as_json:
        emit_json(out)
    elif auto:
        console.print(f"[green]✓[/] {len(out['added'])} assignment(s) added")
        for s in out["short"]:
            console.print(f"[yellow]![/] {escape(s['team'])} has {s['experts']} non-conflicted expert(s), below the "
                          "minimum: declare or invite more experts")
    else:
        console.print(f"[green]✓[/] {escape(expert or '')} {'removed from' if remove else 'assigned to'} "
                      f"{escape(team or '')}")


def _advance(program: str, stage: str, target: str, as_json: bool) -> None:
    from simsa.services import panel_steps

    with _writing() as session:
        ctx = _context(session, program, stage, write=True)
        state = panel_steps.advance(session, ctx, target, STATE.who())
    out = {"program": ctx.key, "stage": stage, **state.to_dict()}
    if as_json:
        emit_json(out)
    else:
        console.print(f"[green]✓[/] the panel of {escape(stage)} is now in {target} (since {out['since']})")


def advance(
    program: ProgramArg,
    stage: StageOpt,
    to: Annotated[Phase, typer.Option("--to", help="The next step: calibration, round1, round2 or closed.")],
    as_json: JsonOpt = False,
) -> None:
    """Move the panel to its next step; refused with every reason when it may not move yet (see `status`)."""
    _advance(program, stage, to, as_json)


def close(program: ProgramArg, stage: StageOpt, as_json: JsonOpt = False) -> None:
    """Close the panel (every round-1 review locked): its aggregate becomes `panel:expert` when the stage is
    decided."""
    _advance(program, stage, "closed", as_json)


def upload(
    program: ProgramArg,
    file: Annotated[Path, typer.Argument(help="The document: PDF or Markdown (report), CSV, JSONL or TensorBoard "
                                              "events (log).", exists=True, dir_okay=False, readable=True)],
    stage: StageOpt,
    purpose: Annotated[Literal["report", "log"], typer.Option("--purpose", help="report or log.")],
    team: Annotated[str | None, typer.Option("--team", help="The team whose submission this is.")] = None,
    anchor: Annotated[str | None, typer.Option("--anchor", help="The calibration anchor this document is.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a team's document (before the submission deadline) or a calibration anchor (before the panel opens);
    its type is checked by content."""
    from simsa.errors import InputError
    from simsa.services import panel_documents

    if (team is None) == (anchor is None):
        raise InputError("give --team or --anchor (one of them)")
    data = file.read_bytes()
    with _writing() as session:
        ctx = _context(session, program, stage, write=True)
        ref = panel_documents.upload(session, ctx, data, file.name, purpose, STATE.who(), team_id=team,
                                     anchor_id=anchor)
    if as_json:
        emit_json(ref.to_dict())
    else:
        whose = f"team {team}" if team else f"anchor {anchor}"
        console.print(f"[green]✓[/] {escape(ref.filename)} stored for {escape(whose)} as {ref.kind} "
                      f"(sha256 {ref.sha256[:12]}, {ref.size:,} bytes)")


# ---------------------------------------------------------------------------------------------------- results
def result(program: ProgramArg, stage: StageOpt, as_json: JsonOpt = False) -> None:
    """The panel's result as it stands (the admin's preview: nothing is recorded; the decision records it)."""
    from simsa.services import panel_results

    with STATE.store().session(readonly=True) as session:
        ctx = _context(session, program, stage, write=False)
        computed = panel_results.compute(session, ctx)
        out = {**computed.to_dict(), "sha256": panel_results.digest(computed), "preview": True}
    if as_json:
        emit_json(out)
        return
    agreement = out["agreement"]
    low, high = agreement["alpha_interval"]
    console.print(f"panel of {escape(out['program'])} / {escape(out['stage'])} (preview, not recorded): "
                  f"{len(out['experts'])} experts, {out['aggregation']} of "
                  f"{'severity-adjusted' if out['counts'] == 'severity_adjusted' else 'raw'} totals counts",
                  soft_wrap=True)
    console.print(f"Krippendorff's α ({agreement['level']}) = [bold]{_fmt(agreement['alpha'])}[/] "
                  f"[{_fmt(low)}, {_fmt(high)}]", soft_wrap=True)
    rate = out["identification_rate"]
    if rate is not None:
        console.print(f"experts recognised the team in {rate * 100:.0f}% of round-1 reviews")
    columns = [output.Column("team"), output.Column("experts", justify="right"),
               output.Column("raw", justify="right", text=lambda r: _fmt(r["raw"], 2)),
               output.Column("adjusted", justify="right", text=lambda r: _fmt(r["adjusted"], 2)),
               output.Column("value", "counts", justify="right", text=lambda r: _fmt(r["value"], 2)),
               output.Column("stderr", "se", justify="right", text=lambda r: _fmt(r["stderr"], 2)),
               output.Column("round2_revised", "revised", justify="right"),
               output.Column("mean_shift", "shift", justify="right", text=lambda r: _fmt(r["mean_shift"], 2))]
    console.print(output.rows_table(out["teams"], columns))
    console.print(f"result sha256 {out['sha256']}")


@dataclass(frozen=True)
class Export:
    """A long table `rater,item,value` of one round, raters anonymised, as `simsa panel agreement` reads it."""

    round: str
    totals: bool
    rows: tuple[tuple[str, str, float], ...]
    raters: int
    items: int

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["rater", "item", "value"])
        for rater, item, value in self.rows:
            writer.writerow([rater, item, f"{value:.6f}".rstrip("0").rstrip(".") if self.totals else int(value)])
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {"round": self.round, "totals": self.totals, "raters": self.raters, "items": self.items,
                "rows": [{"rater": r, "item": i, "value": v} for r, i, v in self.rows]}


def export_rows(session: Session, ctx: PanelContext, rnd: str, *, totals: bool) -> Export:
    """The round's locked reviews as (rater, item, value): raters E1, E2, … numbered as in the panel's result
    (experts with a final review, by username), items `team/criterion` (or `team` with `totals`)."""
    from simsa.panel.rubric import total
    from simsa.services import panel

    pairs = set(panel.assignments(session, ctx))
    first = {(r.subject, r.expert): r for r in panel.reviews(session, ctx, "1") if (r.subject, r.expert) in pairs}
    second = {(r.subject, r.expert): r for r in panel.reviews(session, ctx, "2") if (r.subject, r.expert) in first}
    if rnd == "calibration":
        chosen = {(r.subject, r.expert): r for r in panel.reviews(session, ctx, panel.CALIBRATION)}
    else:
        chosen = {"1": first, "2": second, "final": {**first, **second}}[rnd]
    order = sorted({e for _, e in first}) + sorted({e for _, e in chosen} - {e for _, e in first})
    shown = {e: f"E{i + 1}" for i, e in enumerate(order)}
    rows: list[tuple[str, str, float]] = []
    for (subject, expert), review in sorted(chosen.items(), key=lambda kv: (shown[kv[0][1]], kv[0][0])):
        if totals:
            rows.append((shown[expert], subject, total(ctx.panel, review.review.scores)))
        else:
            rows += [(shown[expert], f"{subject}/{c.id}", float(review.review.scores[c.id]))
                     for c in ctx.panel.criteria]
    return Export(round=rnd, totals=totals, rows=tuple(rows), raters=len({r for r, _, _ in rows}),
                  items=len({i for _, i, _ in rows}))


def export(
    program: ProgramArg,
    stage: StageOpt,
    rnd: Annotated[ExportRound, typer.Option("--round", help="1, 2 (revisions only), final (round 2 where "
                                                             "revised, else round 1) or calibration.")] = "final",
    totals: Annotated[bool, typer.Option("--totals", help="One item per team (its 0–100 total) instead of one per "
                                                          "team and criterion (the levels).")] = False,
    out_file: Annotated[Path | None, typer.Option("-o", "--output", help="Write the CSV here (default: standard "
                                                                         "output).", dir_okay=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """The locked scores as a long table `rater,item,value` with anonymised raters (E1, E2, …), readable by
    `simsa panel agreement`."""
    with STATE.store().session(readonly=True) as session:
        table = export_rows(session, _context(session, program, stage, write=False), rnd, totals=totals)
    text = table.csv_text()
    if out_file is not None:
        out_file.write_text(text, encoding="utf-8")
    if as_json:
        emit_json({**table.to_dict(), "written": str(out_file) if out_file else None})
    elif out_file is not None:
        console.print(f"[green]✓[/] {len(table.rows)} ratings by {table.raters} experts of {table.items} items "
                      f"written to {escape(str(out_file))}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add the panel's operations to the `simsa panel` sub-app."""
    app.command("status")(status)
    app.command("declare")(declare)
    app.command("assign")(assign)
    app.command("advance")(advance)
    app.command("close")(close)
    app.command("upload")(upload)
    app.command("result")(result)
    app.command("export")(export)
