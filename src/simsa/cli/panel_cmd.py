"""`simsa panel …`: the expert panel's statistics for offline and bulk work."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from simsa.cli import output, panel_ops_cmd
from simsa.cli.output import console, emit_json

app = typer.Typer(help="The expert panel: its steps, assignments, documents, results and agreement statistics.",
                  no_args_is_help=True)

ALPHA_TENTATIVE = 0.667  # Krippendorff: the lowest α from which tentative conclusions may be drawn
ALPHA_RELIABLE = 0.800


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


RATER_COLUMNS = [
    output.Column("id", "rater", wrap=True),
    output.Column("n_items", "items", justify="right"),
    output.Column("severity", justify="right", text=lambda r: _fmt(r["severity"])),
    output.Column("outlier", text=lambda r: "OUTLIER" if r["outlier"] else ""),
    output.Column("mean_abs_deviation", "mean |dev|", justify="right", text=lambda r: _fmt(r["mean_abs_deviation"])),
    output.Column("alpha_without", "α without", justify="right", text=lambda r: _fmt(r["alpha_without"])),
]


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def _verdict(alpha: float | None) -> str:
    if alpha is None:
        return "undefined (no item rated twice, or no variation)"
    if alpha >= ALPHA_RELIABLE:
        return f"at least {ALPHA_RELIABLE}: reliable agreement"
    if alpha >= ALPHA_TENTATIVE:
        return f"between {ALPHA_TENTATIVE} and {ALPHA_RELIABLE}: tentative agreement only"
    return f"[red]below {ALPHA_TENTATIVE}: the panel does not agree enough to rely on[/]"


def _print_report(out: dict[str, Any], file: str) -> None:
    def say(text: str) -> None:  # lines the terminal wraps itself, so a copied line stays one line
        console.print(text, soft_wrap=True)

    low, high = out["alpha_interval"]
    interval = (f"{int(out['confidence'] * 100)} % interval [{_fmt(low)}, {_fmt(high)}] "
                f"({out['rounds']} bootstrap rounds over items)" if low is not None else "no bootstrap interval")
    missing = out["n_missing"]
    say(f"{escape(file)}: {out['n_raters']} raters, {out['n_items']} items, {out['n_pairable']} pairable ratings, "
        f"{missing} missing {_plural(missing, 'cell')}")
    say(f"Krippendorff's α ({out['level']}) = [bold]{_fmt(out['alpha'])}[/], {interval}")
    say(f"  {_verdict(out['alpha'])}")
    icc = out["icc"]
    if icc is None:
        say(f"ICC not computed: {escape(out['icc_unavailable'])}")
    else:
        a_low, a_high = icc["icc_a1_interval"]
        c_low, c_high = icc["icc_c1_interval"]
        say(f"ICC(A,1) absolute agreement = {_fmt(icc['icc_a1'])} [{_fmt(a_low)}, {_fmt(a_high)}]; "
            f"ICC(C,1) consistency = {_fmt(icc['icc_c1'])} [{_fmt(c_low)}, {_fmt(c_high)}]")
    say("Rater severity: mean of (rating − the other raters' mean) over shared items; below 0 is harsher")
    console.print(output.rows_table(out["raters"], RATER_COLUMNS))


@app.command("agreement")
def agreement(
    file: Annotated[str, typer.Argument(help="A CSV long table with the header rater,item,value (blank value: "
                                             "missing rating).")],
    level: Annotated[Literal["interval", "ordinal", "nominal", "ratio"], typer.Option(
        help="Level of measurement of the ratings, for Krippendorff's α.")] = "interval",
    rounds: Annotated[int, typer.Option(min=0, help="Bootstrap rounds for α's interval (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (the same seed gives the same interval).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text and a table.")] = False,
) -> None:
    """How far the raters agree: Krippendorff's α with a bootstrap interval, the ICCs where every rater rated every
    item, and each rater's severity with outlier flags."""
    from simsa.panel.agreement import agreement_report, read_long_table

    table = read_long_table(file)
    out = agreement_report(table.values, table.rater_ids, table.item_ids, level, rounds=rounds, seed=seed).to_dict()
    if as_json:
        emit_json(out)
    else:
        _print_report(out, file)


panel_ops_cmd.register(app)
