"""`simsa arena status|freeze|result|export|exclude|rate`: running a stage's user arena from the command line.

Each command is one call into `simsa.services.arena*`; the rules (who may vote, when a segment opens, what counts)
live there, so the CLI and the web pages agree. These are the secretariat's commands: whoever can open the store
sees raters' usernames, flagged raters and the live ranking, which the public sees only with the decision.
`rate` works on a vote file alone (no store): `export --counted` writes the file it recomputes the ranking from.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from simsa.cli import arena_rate_cmd, output
from simsa.cli.arena_rate_cmd import robustness_lines
from simsa.cli.context import STATE
from simsa.cli.output import console, emit_json

if TYPE_CHECKING:  # the services load SQLAlchemy; commands import them when they run
    from sqlalchemy.orm import Session

    from simsa.services.arena import ArenaContext, VoteRecord

app = typer.Typer(help="The user arena: freezing entrants, votes, flagged raters, exclusions, the ranking.",
                  no_args_is_help=True)
app.command("rate")(arena_rate_cmd.rate)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text and tables.")]
ProgramArg = Annotated[str, typer.Argument(help="Program file (.toml) or the id of a loaded program.")]
StageOpt = Annotated[str, typer.Option("--stage", help="Stage id (a stage with [stages.arena]).")]
STYLE_FIELDS = ("length", "headers", "lists", "bold")
EXPORT_COLUMNS = ("vote", "battle", "segment", "rater", "kind", "category", "model_a", "model_b", "winner",
                  *(f"{f}_{side}" for f in STYLE_FIELDS for side in ("a", "b")), "status", "reason", "excluded",
                  "counts", "voted_at", "dwell_seconds")


# ---------------------------------------------------------------------------------------------------- helpers
def _context(session: Session, program: str, stage: str, *, write: bool) -> ArenaContext:
    """The stage's arena; a program file given to a writing command is registered first (as `score add` does)."""
    from simsa.services import arena, programs

    loaded = (programs.for_writing(session, program, STATE.who()).loaded if write
              else programs.resolve(session, program))
    return arena.context_of(loaded, stage)


def _writing() -> AbstractContextManager[Session]:
    from simsa.cli.score_cmd import writing

    return writing()


def _fmt(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------------- status
@dataclass(frozen=True)
class ArenaStatus:
    """Where a stage's arena stands, for the secretariat: its window, the current segment, counted votes per pair
    against the quota, votes by status, flagged raters and the exclusions in force."""

    program: str
    stage: str
    opens: str
    closes: str
    segment: dict | None
    segments: int
    quota: int
    pairs: tuple[dict, ...]
    statuses: dict[str, int]
    raters: int
    flagged: tuple[dict, ...]
    exclusions: tuple[dict, ...]

    def to_dict(self) -> dict:
        return {"program": self.program, "stage": self.stage, "opens": self.opens, "closes": self.closes,
                "segment": self.segment, "segments": self.segments, "quota": self.quota,
                "pairs": list(self.pairs), "votes": dict(self.statuses), "raters": self.raters,
                "flagged_raters": list(self.flagged), "exclusions": list(self.exclusions)}


def arena_status(session: Session, ctx: ArenaContext) -> ArenaStatus:
    """Gather the arena's state from the services (read only; no bootstrap, so it is quick at any size)."""
    from simsa.services import arena, arena_results
    from simsa.timeutil import utc_text

    segs = arena.segments(session, ctx)
    current = segs[-1] if segs else None
    records = [r for r in arena.vote_records(session, ctx) if current is not None and r.segment == current.number]
    statuses: Counter[str] = Counter()
    for r in records:
        statuses[r.status if r.excluded is None or r.status != "counted" else "excluded"] += 1
    teams = list(ctx.arena.teams)
    pairs = []
    for i, a in enumerate(teams):
        for b in teams[i + 1:]:
            n = sum(1 for r in records if r.counts and {r.left, r.right} == {a, b})
            pairs.append({"a": a, "b": b, "votes": n, "quota": ctx.arena.votes_per_pair,
                          "missing": max(0, ctx.arena.votes_per_pair - n)})
    seg = None
    if current is not None:
        seg = {"number": current.number, "manifest_sha256": current.manifest_sha256, "reason": current.reason,
               "opened_at": utc_text(current.opened_at), "opened_by": current.opened_by}
    return ArenaStatus(program=ctx.key, stage=ctx.stage.id, opens=utc_text(ctx.arena.opens),
                       closes=utc_text(ctx.arena.closes), segment=seg, segments=len(segs),
                       quota=ctx.arena.votes_per_pair, pairs=tuple(pairs), statuses=dict(sorted(statuses.items())),
                       raters=len({r.rater for r in records}),
                       flagged=tuple(arena_results.flagged_raters(records, teams)),
                       exclusions=tuple(e.to_dict() for e in arena.exclusions(session, ctx)))


@app.command("status")
def status(program: ProgramArg, stage: StageOpt, as_json: JsonOpt = False) -> None:
    """Where the arena stands: segment, counted votes per pair against the quota, votes by status, flagged
    raters and the secretariat's exclusions."""
    with STATE.store().session(readonly=True) as session:
        out = arena_status(session, _context(session, program, stage, write=False)).to_dict()
    if as_json:
        emit_json(out)
        return
    say = lambda text: console.print(text, soft_wrap=True)  # noqa: E731 — one line the terminal wraps itself
    say(f"arena of {escape(out['program'])} / {escape(out['stage'])}: open {out['opens']} to {out['closes']}")
    seg = out["segment"]
    if seg is None:
        say("[yellow]not frozen yet[/]: voting opens once the secretariat freezes the entrants "
            "(`simsa arena freeze`)")
    else:
        say(f"segment {seg['number']} of {out['segments']} (frozen {seg['opened_at']} by {escape(seg['opened_by'])}"
            f": {escape(seg['reason'])}), manifest sha256 {seg['manifest_sha256']}")
    say("votes: " + (", ".join(f"{n} {k}" for k, n in out["votes"].items()) or "none yet")
        + f" from {out['raters']} raters")
    columns = [output.Column("a", "entrant"), output.Column("b", "entrant"),
               output.Column("votes", "counted", justify="right"), output.Column("quota", justify="right"),
               output.Column("missing", justify="right", text=lambda r: str(r["missing"]) if r["missing"] else "")]
    console.print(output.rows_table(out["pairs"], columns, title=f"counted votes per pair (quota {out['quota']})"))
    if out["flagged_raters"]:
        say(f"[red]{len(out['flagged_raters'])} rater(s) flagged[/] by the anomalous-rater test (decide with "
            "`simsa arena exclude … --rater NAME --reason …`, or `--keep`):")
        for f in out["flagged_raters"]:
            say(f"  - {escape(f['rater'])}: {f['votes']} votes tested, p = {f['p_value']:.2g}")
    else:
        say("no rater flagged by the anomalous-rater test")
    for e in out["exclusions"]:
        target = f"rater {e['rater']}" if e["rater"] else f"vote {e['vote']}"
        say(f"  {e['decision']} {escape(target)} ({e['decided_at']}, {escape(e['decided_by'])}): "
            f"{escape(e['reason'])}")


# ---------------------------------------------------------------------------------------------------- freeze
@app.command("freeze")
def freeze(program: ProgramArg, stage: StageOpt,
           reason: Annotated[str, typer.Option("--reason", help="Why a new segment opens (needed once votes "
                                                                "exist: it splits the stage's votes).")] = "",
           as_json: JsonOpt = False) -> None:
    """Ask every entrant's endpoint who it is now and freeze the identities, system prompt and decoding settings
    into the audit chain. The same manifest changes nothing; a different one opens a new segment."""
    from simsa.services import arena

    with STATE.store().session() as session:  # the programme's version is recorded before any endpoint is asked
        ctx = _context(session, program, stage, write=True)
    identities = arena.read_identities(ctx)  # outside any transaction: this calls the endpoints
    with _writing() as session:
        ctx = _context(session, program, stage, write=True)
        before = arena.current_segment(session, ctx)
        changed = arena.changed_entrants(before, identities) if before is not None else []
        segment, opened = arena.freeze(session, ctx, identities, STATE.who(), reason=reason)
    out = {"program": ctx.key, "stage": ctx.stage.id, "opened": opened, "changed_entrants": changed,
           "segment": segment.to_dict()}
    if as_json:
        emit_json(out)
        return
    if opened:
        console.print(f"[green]✓[/] segment {segment.number} frozen, manifest sha256 {segment.manifest_sha256}"
                      + (f"; changed: {', '.join(changed)}" if changed else ""), soft_wrap=True)
    else:
        console.print(f"unchanged: the entrants match segment {segment.number} (manifest sha256 "
                      f"{segment.manifest_sha256})", soft_wrap=True)


# ---------------------------------------------------------------------------------------------------- result
def _ranking_rows(ranking: dict | None) -> list[dict]:
    return [] if not ranking else list(ranking["ratings"])


@app.command("result")
def result(program: ProgramArg, stage: StageOpt, as_json: JsonOpt = False) -> None:
    """The live result: raw and style-controlled rankings with intervals, the panel:user values, exclusions by
    reason and the vote-drop and rigging figures (what the decision will publish)."""
    from simsa.services import arena_results

    with STATE.store().session(readonly=True) as session:
        res = arena_results.compute(session, _context(session, program, stage, write=False))
    out = res.to_dict()
    if as_json:
        emit_json(out)
        return
    say = lambda text: console.print(text, soft_wrap=True)  # noqa: E731
    v = out["votes"]
    say(f"arena of {escape(res.program)} / {escape(res.stage)}, segment {res.segment}: {v['counted']} counted "
        f"votes from {v['raters']} raters ({v['void']} void, {v['excluded']} excluded, {v['gold_pass']} + "
        f"{v['gold_fail']} attention checks passed + failed)")
    if res.problem:
        say(f"[yellow]{escape(res.problem)}[/]")
        return
    columns = [output.Column("rank", justify="right"), output.Column("model", "entrant"),
               output.Column("rating", justify="right", text=lambda r: _fmt(r["rating"])),
               output.Column("interval", "95% interval", text=lambda r: f"[{_fmt(r['lower'])}, {_fmt(r['upper'])}]"),
               output.Column("ranks", "rank interval", text=lambda r: f"{r['rank_lower']}–{r['rank_upper']}"),
               output.Column("votes", justify="right")]
    counted = out["ranking"]
    for key, title in (("raw", "raw Bradley–Terry"), ("style_controlled", "style-controlled")):
        mark = " (counts)" if counted == key else ""
        console.print(output.rows_table(_ranking_rows(out[key]), columns, title=f"{title}{mark}"))
    style = out.get("style_controlled") or {}
    if style.get("style_identified") is False:
        high = [k for k, v in (style.get("style_collinearity") or {}).items() if v >= 0.9]
        say(f"[yellow]warning:[/] the answers' style barely varies within an entrant ({', '.join(high)}: R² ≥ 0.9 "
            "explained by which entrants met); the style-controlled order rests on the penalty — read it beside the "
            "raw ranking")
    score = "expected win rate" if res.score_kind == "expected_win_rate" else "rating"
    say(f"panel:user ({score}): " + ", ".join(f"{s['team']} {_fmt(s['value'], 2)} ± {_fmt(s['stderr'], 2)}"
                                              for s in out["scores"]))
    for reason, n in out["exclusions"].items():
        say(f"not counted: {n} × {escape(reason)}")
    for line in robustness_lines(out["robustness"]):
        say(line)
    if out["flagged_raters"]:
        say(f"{len(out['flagged_raters'])} rater(s) flagged by the anomalous-rater test: "
            + ", ".join(escape(f["rater"]) for f in out["flagged_raters"]))


# ---------------------------------------------------------------------------------------------------- export
def export_rows(records: list[VoteRecord], *, counted_only: bool, segment: int | None) -> list[dict]:
    """One row per vote: who, what, the outcome in `model_a`/`model_b` terms, each side's style counts summed
    over the battle's turns (the covariates the style-controlled fit uses), status and exclusion."""
    from simsa.arena.style import style_counts
    from simsa.timeutil import utc_text

    rows = []
    for r in records:
        if counted_only and not (r.counts and r.segment == segment):
            continue
        row: dict[str, Any] = {"vote": r.vote_id, "battle": r.battle, "segment": r.segment, "rater": r.rater,
                               "kind": r.kind, "category": r.category, "model_a": r.left, "model_b": r.right,
                               "winner": r.winner}
        for side, answers in (("a", r.answers_left), ("b", r.answers_right)):
            totals = dict.fromkeys(STYLE_FIELDS, 0)
            for text in answers:
                c = style_counts(text)
                for f in STYLE_FIELDS:
                    totals[f] += getattr(c, f)
            for f in STYLE_FIELDS:
                row[f"{f}_{side}"] = totals[f]
        row.update({"status": r.status, "reason": r.reason or "", "excluded": r.excluded or "",
                    "counts": "yes" if r.counts else "no", "voted_at": utc_text(r.voted_at),
                    "dwell_seconds": round(r.dwell_seconds, 3)})
        rows.append(row)
    return rows


@app.command("export")
def export(program: ProgramArg, stage: StageOpt,
           out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the CSV here (default: stdout).")]
           = None,
           counted: Annotated[bool, typer.Option("--counted", help=(
               "Only the votes the ranking counts (current segment, not void, not excluded, no attention checks): "
               "the file `simsa arena rate --style` recomputes the ranking from."))] = False,
           as_json: JsonOpt = False) -> None:
    """Every vote as CSV: model_a, model_b, winner and the style counts (what `simsa arena rate` reads), with its
    rater, status, why it was voided or excluded, and timing. Nothing is left out unless --counted."""
    from simsa.services import arena

    with STATE.store().session(readonly=True) as session:
        ctx = _context(session, program, stage, write=False)
        current = arena.current_segment(session, ctx)
        rows = export_rows(arena.vote_records(session, ctx), counted_only=counted,
                           segment=current.number if current else None)
    if as_json and out is None:
        emit_json({"program": ctx.key, "stage": ctx.stage.id, "votes": rows})
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if out is None:
        sys.stdout.write(buffer.getvalue())
        return
    out.write_text(buffer.getvalue(), encoding="utf-8")
    summary = {"program": ctx.key, "stage": ctx.stage.id, "file": str(out), "votes": len(rows),
               "counted_only": counted}
    if as_json:
        emit_json(summary)
    else:
        console.print(f"[green]✓[/] {len(rows)} votes written to {escape(str(out))}"
                      + ("" if counted else " (all votes; --counted for the ones the ranking counts)"),
                      soft_wrap=True)


# ---------------------------------------------------------------------------------------------------- exclude
@app.command("exclude")
def exclude(program: ProgramArg, stage: StageOpt,
            reason: Annotated[str, typer.Option("--reason", help="Why (published with the stage's result).")],
            rater: Annotated[str | None, typer.Option("--rater", help="Exclude (or keep) every vote of this rater.")]
            = None,
            vote: Annotated[int | None, typer.Option("--vote", help="Exclude (or keep) this one vote (its id in "
                                                                    "`simsa arena export`).")] = None,
            keep: Annotated[bool, typer.Option("--keep", help="Decide to keep (lifts an earlier exclusion; records "
                                                              "that a flag was reviewed).")] = False,
            as_json: JsonOpt = False) -> None:
    """Record the secretariat's decision on a rater or one vote, with the anomalous-rater test's evidence when the
    rater is flagged. Votes are never deleted: an excluded vote stays, with the reason, and stops counting."""
    from simsa.errors import InputError
    from simsa.services import arena, arena_results

    if (rater is None) == (vote is None):
        raise InputError("name a rater (--rater) or a vote (--vote), not both")
    with _writing() as session:
        ctx = _context(session, program, stage, write=True)
        evidence: dict[str, Any] = {}
        if rater is not None:
            found = [f for f in arena_results.flagged_raters(arena.vote_records(session, ctx), list(ctx.arena.teams))
                     if f["rater"] == rater]
            evidence = {"anomalous_rater_test": found[0]} if found else {"anomalous_rater_test": "not flagged"}
        decided = arena.exclude(session, ctx, STATE.who(), rater=rater, vote_id=vote,
                                decision="keep" if keep else "exclude", reason=reason, evidence=evidence)
    if as_json:
        emit_json(decided.to_dict())
        return
    target = f"rater {rater}" if rater is not None else f"vote {vote}"
    console.print(f"[green]✓[/] {decided.decision} {escape(target)}: {escape(decided.reason)}", soft_wrap=True)
