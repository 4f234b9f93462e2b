"""Console helpers shared by the CLI commands: JSON printing, errors, and listings as table, CSV or JSON.

Rich consoles follow the terminal: without a terminal (piped, redirected, in CI) they print no colours or other
escape codes and lay tables out to $COLUMNS, or 80 columns when it is unset.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

from simsa.report.formats import csv_cell

# No automatic highlighting of numbers and strings: its regular expressions take ~0.1 s to compile on the first
# print, a tenth of an everyday command's budget; what deserves colour is marked up explicitly.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

Format = Literal["table", "csv", "json"]
FormatOpt = Annotated[Format | None, typer.Option(
    "--format", help="Output as a table (default), CSV (for spreadsheets) or JSON.", show_default=False)]


def emit_json(obj: Any) -> None:
    """Machine-readable output goes to stdout alone, UTF-8, no Rich markup."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_units_json(data: dict[str, Any], failed: Sequence[Any]) -> None:
    """A run of work units as JSON; exit 1 when any unit failed (what succeeded is stored all the same)."""
    emit_json(data)
    if failed:
        raise typer.Exit(1)


def fail_if_units_failed(failed: Sequence[Any], total: int, noun: str) -> None:
    """After a run of work units is shown: exit 1, naming the first failures, when any unit failed."""
    if failed:
        from simsa.errors import CheckFailed

        raise CheckFailed(f"{len(failed)} of {total} {noun} failed: "
                          + "; ".join(f"{r.label}: {r.error}" for r in failed[:3]))


def one_line(message: str) -> str:
    """Messages end up in logs and terminals one per line; a stray newline in one would look like two."""
    return " ".join(message.split())


def fail(message: str, code: int = 2, as_json: bool = False, **extra: Any) -> None:
    """Print a one-line error (and a JSON error object when --json was asked for) and exit."""
    message = one_line(message)
    if as_json:
        emit_json({"error": message, "exit_code": code, **extra})
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise SystemExit(code)


def notice(message: str) -> None:
    """A note for the user on stderr (stdout stays machine-readable with --json)."""
    err_console.print(f"[yellow]note:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def output_format(fmt: Format | None, as_json: bool) -> Format:
    """The format a listing prints in: `--json` is another way to say `--format json`."""
    from simsa.cli.context import STATE
    from simsa.errors import InputError

    if as_json and fmt not in (None, "json"):
        raise InputError(f"--json and --format {fmt} ask for different outputs; give one of them")
    chosen: Format = "json" if as_json else fmt or "table"
    STATE.json_errors = STATE.json_errors or chosen == "json"
    return chosen


@dataclass(frozen=True)
class Column:
    """One column of a listing: the row key (CSV gets its raw value), the table's header and text, and layout.

    `text` makes the table cell from the whole row (e.g. "VOID" for a voided score's value). `wrap` marks free text
    that may wrap onto several lines in a narrow table; other columns stay on one line. `table=False` columns appear
    in CSV only, keeping the table narrow; `csv=False` ones (derived for display) in the table only.
    """

    key: str
    header: str = ""
    text: Callable[[dict[str, Any]], str] | None = None
    wrap: bool = False
    justify: Literal["left", "right"] = "left"
    table: bool = True
    csv: bool = True
    optional: bool = False  # left out of a table too narrow for all columns (CSV and JSON keep it)

    def title(self) -> str:
        return self.header or self.key

    def cell(self, row: dict[str, Any]) -> str:
        if self.text is not None:
            return self.text(row)
        value = row.get(self.key)
        return "" if value is None else str(value)




def emit_rows(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: Format, *, key: str = "rows",
              title: str | None = None, empty: str = "nothing to list") -> None:
    """Print a listing as a compact table, CSV (header row, formula-safe) or JSON (`{key: rows}`, rows whole)."""
    if fmt == "json":
        emit_json({key: list(rows)})
    elif fmt == "csv":
        chosen = [c for c in columns if c.csv]
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([c.key for c in chosen])
        for row in rows:
            writer.writerow([csv_cell(row.get(c.key)) for c in chosen])
        sys.stdout.flush()
    elif not rows:
        console.print(escape(empty), highlight=False)
    else:
        console.print(rows_table(rows, [c for c in columns if c.table], title))


WRAP_FLOOR = 10  # a wrapping column is not made narrower than this (or its widest cell, if less)


def fit_widths(wants: Sequence[int], floors: Sequence[int], optional: Sequence[bool], width: int,
               gap: int = 1) -> list[int | None]:
    """Column widths that fit `width` with `gap` between columns; None for a column left out.

    Optional columns are left out, rightmost first, while even the narrowest layout is too wide; then the columns
    that may wrap give up width, the widest first, down to their floors.
    """
    keep = list(range(len(wants)))

    def total(widths: Sequence[int]) -> int:
        return sum(widths[i] for i in keep) + gap * max(0, len(keep) - 1)

    while total(floors) > width and any(optional[i] for i in keep):
        keep.remove(max(i for i in keep if optional[i]))
    widths = list(wants)
    excess = total(widths) - width
    while excess > 0:
        room = max(keep, key=lambda i: (widths[i] - floors[i], i))
        if widths[room] <= floors[room]:
            break
        widths[room] -= 1
        excess -= 1
    return [widths[i] if i in keep else None for i in range(len(wants))]


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], title: str | None = None,
               width: int | None = None) -> Any:
    """A compact table that fits the console: one space between columns, a rule under the header, no borders.

    Widths are decided here rather than by Rich, which would squeeze wrapping columns to a character or two.
    """
    from rich import box
    from rich.cells import cell_len
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    texts = [[c.cell(row) for c in columns] for row in rows]

    def widest(text: str) -> int:
        return max((cell_len(line) for line in text.splitlines()), default=0)

    wants = [max([cell_len(c.title()), *(widest(t[i]) for t in texts)]) for i, c in enumerate(columns)]
    floors = [min(w, WRAP_FLOOR) if c.wrap else w for w, c in zip(wants, columns, strict=True)]
    widths = fit_widths(wants, floors, [c.optional for c in columns], width or console.width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0, collapse_padding=True,
                  title=title, title_justify="left", header_style="bold")
    shown = [i for i, w in enumerate(widths) if w is not None]
    for i in shown:
        c = columns[i]
        table.add_column(escape(c.title()), justify=c.justify, width=widths[i], no_wrap=not c.wrap,
                         overflow="fold" if c.wrap else "ellipsis")
    for t in texts:
        table.add_row(*[Text(t[i]) for i in shown])
    left_out = [columns[i].title() for i, w in enumerate(widths) if w is None]
    if not left_out:
        return table
    note = Text(f"(too narrow for: {', '.join(left_out)}; see --format csv)", style="dim")
    return Group(table, note)
