"""A decision as the command line prints it: leaderboard, gates, robustness and, first, a warning when the decision
is fragile; in the chosen language (en, ko or both), times in the programme's time zone.

`decision_text` is pure (a decision dict in, the text out) so it can be tested without a terminal;
`print_decision` only lays that text out with Rich.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from simsa.report.formats import DASH, fmt_deadline, fmt_points, fmt_prob, fmt_time, num
from simsa.report.labels import LABELS, label, pick, pick_parts


@dataclass(frozen=True)
class DecisionText:
    """Everything `print_decision` shows, already localised."""

    title: str
    meta: str
    fragile: str | None
    example: str | None
    columns: list[str]
    rows: list[list[str]]
    statuses: list[str]
    robustness: list[str]
    footer: str
    short_columns: list[str] | None = None  # headers for a narrow terminal: criterion ids, no reason
    short_gates: list[str] | None = None  # per row: "✓" or the failed gates only


def _names(d: Mapping[str, Any], lang: str) -> dict[str, str]:
    return {t["team"]: pick(t.get("name"), t.get("name_ko"), lang) or t["team"] for t in d.get("teams") or []}


def _gate_label(gate_id: str, defs: dict[str, dict], lang: str) -> str:
    key = f"gate_{gate_id}"
    if key in LABELS:
        return label(key, lang)
    g = defs.get(gate_id) or {}
    return pick(g.get("name"), g.get("name_ko"), lang) or gate_id


def _weight(value: object, searched: object, lang: str) -> str:
    v, s = num(value), num(searched)
    if v is not None:
        return f"±{abs(v):.1f}%"
    return label("none_within", lang, pct=f"{s if s is not None else 100:g}")


def _reason(team: dict, lang: str) -> str:
    parts = pick_parts(team.get("reason"), team.get("reason_ko"), lang)
    return "\n".join(parts) or DASH


def fragile_warning(d: Mapping[str, Any], lang: str) -> str | None:
    """The warning line for a decision its robustness analysis marks fragile, else None."""
    rob = d.get("robustness")
    if not isinstance(rob, dict) or rob.get("fragile") is not True:
        return None
    res = rob.get("resampling") or {}
    detail = label("fragile_short", lang, p=fmt_prob(res.get("p_decision_changes")),
                   threshold=fmt_prob(rob.get("fragile_above")))
    return f"{label('fragile_title', lang)}: {detail}"


def decision_text(d: Mapping[str, Any], lang: str = "en", zone: str | None = None) -> DecisionText:
    """The decision's terminal text in `lang`, times in `zone` (default: the zone the decision records)."""
    zone = zone or d.get("timezone") or "UTC"
    names = _names(d, lang)
    program = d.get("program") or {}
    title = (f"{pick(program.get('name'), program.get('name_ko'), lang) or program.get('id')} — "
             f"{pick(d.get('stage_name'), d.get('stage_name_ko'), lang) or d.get('stage')}")
    did = d.get("decision_id")
    meta = (f"{label('decision_id', lang)} {'#' + str(did) if did is not None else label('dry_run', lang)} · "
            f"{label('decided_at', lang)} {fmt_time(d.get('decided_at'), zone)}")
    tops = [c for c in d.get("criteria") or [] if c.get("depth") == 0]
    defs = {g["id"]: g for g in d.get("gate_definitions") or [] if g.get("id")}
    columns = [label("rank", lang), label("team", lang), label("total", lang),
               *[f"{pick(c.get('name'), c.get('name_ko'), lang) or c['id']} /{c['points']:g}" for c in tops],
               label("gates", lang), label("status", lang), label("reason", lang)]
    rows, statuses = [], []
    for t in d.get("teams") or []:
        gates = " ".join(f"{'✓' if g.get('passed') else '✗'}{_gate_label(gid, defs, lang)}"
                         for gid, g in (t.get("gates") or {}).items())
        rows.append([str(t.get("rank")), names.get(t["team"], t["team"]), fmt_points(t.get("total")),
                     *[fmt_points((t.get("breakdown") or {}).get(c["id"], {}).get("points")) for c in tops],
                     gates, label(t["status"], lang) if t.get("status") in LABELS else str(t.get("status")),
                     _reason(t, lang)])
        statuses.append(str(t.get("status")))
    short_columns = ["#", label("team", lang), label("total", lang), *[f"{c['id']}\n/{c['points']:g}" for c in tops],
                     label("gates", lang), label("status", lang)]
    short_gates = [" ".join(f"✗{_gate_label(gid, defs, lang)}" for gid, g in (t.get("gates") or {}).items()
                            if not g.get("passed")) or "✓" for t in d.get("teams") or []]
    return DecisionText(title=title, meta=meta, fragile=fragile_warning(d, lang), short_columns=short_columns,
                        short_gates=short_gates,
                        example=label("example_notice", lang) if d.get("example_data") else None,
                        columns=columns, rows=rows, statuses=statuses,
                        robustness=_robustness_lines(d, names, defs, lang), footer=_footer(d, names, lang, zone))


def _robustness_lines(d: Mapping[str, Any], names: dict[str, str], defs: dict[str, dict], lang: str) -> list[str]:
    rob = d.get("robustness")
    if not isinstance(rob, dict):
        return [f"{label('robustness', lang)}: {label('robustness_missing', lang)}"]
    res = rob.get("resampling") or {}
    weights = rob.get("weights") or {}
    searched = weights.get("searched_up_to_pct")
    lines = [f"{label('robustness', lang)}: {label('p_decision_changes', lang)}: "
             f"{fmt_prob(res.get('p_decision_changes'))} ({label('draws', lang)} {res.get('draws', DASH)}); "
             f"{label('min_abs_pct', lang)}: {_weight(weights.get('min_abs_pct'), searched, lang)}"]
    cuts = rob.get("cuts") or []
    if cuts:
        lines.append(f"{label('cuts', lang)}:")
    for cut in cuts:
        who = names.get(cut.get("team"), str(cut.get("team")))
        if cut.get("cause") == "gate":
            gates = ", ".join(_gate_label(g, defs, lang) for g in cut.get("gates_failed") or [])
            lines.append(f"  {who}: {label('cause_gate', lang)}: {gates} ({label('points_cannot_change', lang)})")
        else:
            lines.append(f"  {who}: {label('margin_points', lang)}: {fmt_points(cut.get('margin_points'))}; "
                         f"{label('p_changes', lang)}: {fmt_prob(cut.get('p_changes'))}; "
                         f"{label('min_weight_change', lang)}: "
                         f"{_weight(cut.get('min_weight_change_pct'), searched, lang)}")
    return lines


def _footer(d: Mapping[str, Any], names: dict[str, str], lang: str, zone: str) -> str:
    holders = ", ".join(names.get(t, t) for t in d.get("title_holders") or []) or label("none", lang)
    deadline = fmt_deadline(d.get("appeal_deadline"), d.get("timezone") or "UTC", zone)
    return f"{label('title_holders', lang)}: {holders}; {label('appeal_deadline', lang)}: {deadline}"


WIDE_TABLE = 140  # columns from which the reasons fit beside the table


def print_decision(d: Mapping[str, Any], lang: str | None = None, zone: str | None = None) -> None:
    """Print a decision; `lang` defaults to the global --lang, `zone` to the decision's programme time zone."""
    from simsa.cli.context import STATE
    from simsa.cli.output import console

    text = decision_text(d, lang or STATE.lang, zone)
    if text.fragile:
        console.print(f"[bold white on red] ⚠ {escape(text.fragile)} [/]")
    flag = f" [bold yellow]({escape(text.example)})[/]" if text.example else ""
    console.print(f"[bold]{escape(text.title)}[/] · {escape(text.meta)}{flag}")
    # A reason is a sentence: beside the table when the terminal is wide, else below it, so that a narrow
    # terminal or a log (80 columns) shows whole sentences rather than a column folded to a few letters.
    wide = console.width >= WIDE_TABLE or not text.short_columns
    columns = text.columns if wide else (text.short_columns or [])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for i, column in enumerate(columns):
        last = wide and i == len(columns) - 1
        gates = not wide and i == len(columns) - 2
        table.add_column(escape(column), overflow="fold", ratio=3 if last else None,
                         min_width=24 if last else 8 if gates else None, no_wrap=not wide and not gates)
    for i, (row, status) in enumerate(zip(text.rows, text.statuses, strict=True)):
        colour = "green" if status == "advanced" else "red"
        cells = row if wide else [*row[:len(columns) - 2], (text.short_gates or [])[i], row[-2]]
        cells = [escape(c) for c in cells]
        at = len(columns) - (2 if wide else 1)
        cells[at] = f"[{colour}]{cells[at]}[/]"
        table.add_row(*cells)
    console.print(table)
    if not wide:
        for row in text.rows:
            console.print(f"{escape(row[0])}. {escape(row[1])}: {escape(row[-1])}", highlight=False)
    for line in text.robustness:
        console.print(escape(line))
    console.print(escape(text.footer))
    if text.fragile:
        console.print(f"[bold red]⚠ {escape(text.fragile)}[/]")

