"""`simsa arena rate VOTES.csv`: Bradley–Terry ratings with intervals and ranks from a file of pairwise votes."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from simsa.cli.output import console, emit_json


def _anchor(text: str | None) -> tuple[str, float] | None:
    from simsa.errors import InputError

    if text is None:
        return None
    name, sep, value = text.rpartition("=")
    if not sep or not name.strip():
        raise InputError(f"--anchor {text!r}: expected MODEL=RATING, e.g. --anchor baseline=1000")
    try:
        rating = float(value)
    except ValueError:
        raise InputError(f"--anchor {text!r}: {value!r} is not a number") from None
    return name.strip(), rating


def rate(
    votes_csv: Annotated[str, typer.Argument(metavar="VOTES.csv", help=(
        "CSV with model_a,model_b,winner (model_a, model_b, tie or both_bad) and optionally the style counts "
        "length_a,length_b,headers_a,headers_b,lists_a,lists_b,bold_a,bold_b."))],
    style: Annotated[bool, typer.Option("--style", help="Control for style (length, headers, lists, bold); needs "
                                                        "the style columns.")] = False,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=1, help="Bootstrap rounds for the intervals.")] = 1000,
    intervals: Annotated[Literal["bootstrap", "sandwich"], typer.Option(
        "--intervals", help="How intervals are computed: resampling votes, or the sandwich (robust) estimator.")
    ] = "bootstrap",
    anchor: Annotated[str | None, typer.Option("--anchor", metavar="MODEL=RATING", help=(
        "Shift the scale so MODEL's rating is RATING (default: ratings centred on 1000)."))] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (the same seed gives the same intervals).")] = 0,
    style_reg: Annotated[float | None, typer.Option("--style-reg", min=0.0, help=(
        "Penalty on the style coefficients (mean log-likelihood); default 0.5/votes as FastChat; 1.0 is "
        "arena-rank's default."))] = None,
    reweight: Annotated[bool, typer.Option("--reweight", help=(
        "Weight each vote by 1/max(votes of its pair, 50), as arena-rank's reweighting."))] = False,
    cut: Annotated[int, typer.Option("--cut", min=0, help=(
        "Robustness for the top N: the fewest votes whose removal, and the fewest injected adversarial votes, that "
        "change who is in the top N (and the top rank); 1: the top rank only; 0: skip."))] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Rate models from pairwise votes: Bradley–Terry strengths on the Elo-like scale (400 points = odds of 10 to 1),
    95 % intervals, ranks and rank intervals; ties and both-bad votes count half a win for each side."""
    from simsa.arena.ratings import rank
    from simsa.arena.votes import read_votes_csv
    from simsa.cli.context import STATE
    from simsa.cli.lineage_cmd import progress_bar

    STATE.json_errors = STATE.json_errors or as_json
    pinned = _anchor(anchor)
    votes = read_votes_csv(votes_csv)
    with progress_bar() as progress:
        ranking = rank(votes, style=style, method=intervals, rounds=bootstrap, seed=seed, anchor=pinned,
                       progress=progress, reweight=reweight, reg=style_reg)
    out = ranking.to_dict()
    out["file"] = votes_csv
    if cut:
        from simsa.arena.robustness import summary

        out["robustness"] = summary(votes, min(cut, len(votes.models) - 1))
    if as_json:
        emit_json(out)
        return
    _print(out)


def _print(out: dict) -> None:
    how = f"bootstrap ({out['rounds']} rounds)" if out["method"] == "bootstrap" else "the sandwich estimator"
    title = (f"{'Style-controlled' if out['style'] else 'Bradley–Terry'} ratings — {out['n_votes']:,} votes, "
             f"{round(out['confidence'] * 100)} % intervals by {how}")
    console.print(escape(title), soft_wrap=True)
    table = Table("rank", "model", "rating", "95 % interval", "rank interval", "votes")
    for r in out["ratings"]:
        spread = f"{r['rank_lower']}–{r['rank_upper']}" if r["rank_lower"] != r["rank_upper"] else str(r["rank"])
        table.add_row(str(r["rank"]), escape(r["model"]), f"{r['rating']:.1f}",
                      f"{r['lower']:.1f} – {r['upper']:.1f}", spread, f"{r['votes']:,}")
    console.print(table)
    if out["anchor"]:
        console.print(f"anchor: {escape(out['anchor']['model'])} = {out['anchor']['rating']:g}")
    if out["coef"]:
        coef = ", ".join(f"{k} {v:+.3f}" for k, v in out["coef"].items())
        console.print(f"style coefficients (per standard deviation of each covariate, log-odds): {coef}; "
                      f"penalty {out['style_reg']:.3g}", soft_wrap=True)
    if out.get("style_identified") is False:
        high = [k for k, v in (out.get("style_collinearity") or {}).items() if v >= 0.9]
        console.print(f"[yellow]warning:[/] the style covariates are (nearly) fixed per model ({', '.join(high)}: "
                      "R² ≥ 0.9 explained by which models met); style cannot be told apart from strength here",
                      soft_wrap=True)
    for line in robustness_lines(out.get("robustness") or {}):
        console.print(line, soft_wrap=True)
    if out["separated_rounds"]:
        console.print(f"[yellow]note:[/] {out['separated_rounds']} bootstrap rounds had a model winning or losing "
                      "all its resampled votes; its bounds there are very wide")


def robustness_lines(rob: dict) -> list[str]:
    """The vote-drop and rigging figures in words, with the warning when fewer than 1 % of votes suffice."""
    out = []
    for key, what in (("drop_cut", "dropping"), ("drop_top", "dropping"), ("rigging", "injecting")):
        fig = rob.get(key)
        if not isinstance(fig, dict):
            continue
        target = "the top rank" if key == "drop_top" else f"the top {rob.get('cut')}"
        needed = fig.get("votes_needed")
        if needed is None:
            limit = (f"{100 * fig['max_fraction']:g} % of the votes" if fig.get("max_fraction")
                     else f"{fig.get('max_votes')} votes")
            out.append(f"{what} votes: no change of {target} found within {limit}")
            continue
        warn = "[red]⚠ fewer than 1 % of the votes[/] " if fig.get("warning") else ""
        out.append(f"{what} {needed} vote(s) ({100 * (fig.get('fraction') or 0):.2f} %) changes {target} {warn}"
                   f"(verified by refitting: {'yes' if verified(fig) else 'no'})")
    if rob.get("problem"):
        out.append(f"robustness not computed: {escape(rob['problem'])}")
    return out


def verified(fig: dict) -> bool:
    """Whether a vote-drop figure, or the rigging strategy that gives the rigging figure, was verified by refitting."""
    if "strategies" in fig:
        return any(s.get("verified") and s.get("votes_needed") == fig.get("votes_needed")
                   for s in fig["strategies"] if isinstance(s, dict))
    return bool(fig.get("verified"))
