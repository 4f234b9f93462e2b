"""Rendering of `simsa stage status`: one row per team, readable at 80 columns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.markup import escape
from rich.table import Table

from simsa.cli.output import console

if TYPE_CHECKING:
    from simsa.services.status import Cell, DecisionRef, GateCell, StageStatus


def print_status(st: StageStatus) -> None:
    """Header, score grid, gate grid, then whether the stage can be decided and, if not, every reason."""
    console.print(f"[bold]{escape(st.program)} · {escape(st.stage)}[/] ({escape(st.stage_name)})", highlight=False)
    console.print(_participants_line(st), highlight=False)
    console.print(_decision_line("Decision in force", st.decision), highlight=False)
    if st.teams:
        scores = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="scores: value±se (raters when > 1)",
                       title_justify="left", title_style="dim")
        scores.add_column("team", no_wrap=True, min_width=max(len(t.team) for t in st.teams))
        for col in st.columns:
            scores.add_column(escape(col.label), justify="right", no_wrap=True)
        for team in st.teams:
            scores.add_row(escape(team.team), *[_cell(c) for c in team.cells])
        console.print(scores)
    if st.teams and st.gates:
        gates = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="gates", title_justify="left", title_style="dim")
        team_width = max(len(t.team) for t in st.teams)
        gates.add_column("team", no_wrap=True, width=team_width)
        room = max(12, (console.width - team_width - 3 * len(st.gates)) // len(st.gates))  # evidence is cut to fit
        for gate_id, kind in st.gates:
            gates.add_column(f"{escape(gate_id)} ({kind})", no_wrap=True, overflow="ellipsis", max_width=room)
        for team in st.teams:
            gates.add_row(escape(team.team), *[_gate(g) for g in team.gates])
        console.print(gates)
    if any(c.example for t in st.teams for c in t.cells):
        console.print("[bold yellow]Some scores are example data.[/]")
    if st.zero_counted:
        console.print(f"Missing, counted as zero: {escape(', '.join(st.zero_counted))}", highlight=False)
    if st.decidable:
        console.print("[green]✓ can be decided now[/] (`simsa stage decide`)"
                      + (" — a decision is already in force; replacing it needs --supersede or an upheld appeal"
                         if st.decision else ""))
        return
    n = len(st.blockers)
    console.print(f"[red]✗ cannot be decided now[/] — {n} reason{'s' * (n != 1)}:")
    for line in _reasons(st):
        console.print(f"  {escape(line)}", highlight=False)


def _participants_line(st: StageStatus) -> str:
    names = ", ".join(t.team for t in st.teams) or "none"
    if not st.participants_final:
        return f"Candidates ({st.previous_stage} not decided): {names}"
    if st.previous_stage is None:
        return f"Participants (first stage, all teams): {names}"
    joined = [t.team for t in st.teams if t.basis.startswith("joins at")]
    source = f", decision {st.previous_decision.id}" if st.previous_decision else ""
    extra = f"; joining here: {', '.join(joined)}" if joined else ""
    return f"Participants (title holders after {st.previous_stage}{source}{extra}): {names}"


def _decision_line(label: str, d: DecisionRef | None) -> str:
    if d is None:
        return f"{label}: none"
    version = "" if d.same_program_version else ", made with another version of the program file"
    return (f"{label}: {d.id}, {d.decided_at} by {escape(d.decided_by)} (program version {d.program_version_id}"
            f"{version})")


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


def _cell(c: Cell) -> str:
    if c.panel:
        return f"[dim]panel: {c.panel}[/]"
    if c.arena:
        return f"[dim]arena: {c.arena}[/]"
    if c.missing == "blocks":
        return "[red]—[/]"
    if c.missing == "zero":
        return "[dim]— (0)[/]"
    assert c.value is not None
    text = _num(c.value, 3) + (f"±{_num(c.stderr, 2)}" if c.stderr is not None else "")
    return text + (f" ({c.n})" if c.n > 1 else "")


def _gate(g: GateCell) -> str:
    if g.state == "missing":
        return "[red]— missing[/]"
    mark = "[green]✓[/]" if g.state == "passed" else "[red]✗[/]"
    return f"{mark} {escape(g.evidence or '')}"


def _reasons(st: StageStatus) -> list[str]:
    """Every blocker; a team's missing items on one line."""
    lines = [b.message for b in st.blockers if b.team is None]
    per_team: dict[str, tuple[list[str], list[str]]] = {}
    for b in st.blockers:
        if b.team is not None:
            scores, gates = per_team.setdefault(b.team, ([], []))
            (scores if b.kind == "missing_score" else gates).append(b.source or b.gate or "")
    for team, (scores, gates) in per_team.items():
        parts = ([f"score{'s' * (len(scores) > 1)} {', '.join(scores)}"] if scores else []) + (
            [f"gate result{'s' * (len(gates) > 1)} {', '.join(gates)}"] if gates else [])
        lines.append(f"{team} — missing {'; '.join(parts)}")
    return lines
