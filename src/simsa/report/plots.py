"""Charts for the HTML report, drawn with matplotlib and returned as inline SVG markup.

Text stays text in the SVG (`svg.fonttype = none`), so Korean renders with the reader's fonts and the
report does not depend on fonts installed where it was generated.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from simsa.report.labels import label, stacked_label

PALETTE = ["#2f5d8a", "#d08a2e", "#4f9a6e", "#8a62a8", "#c0504d", "#5f7686", "#b3963c", "#3f8f9a"]
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#dde3ea"
FLIP_COLOR = "#c0504d"
WEIGHT_COLOR = "#2f5d8a"
NONE_COLOR = "#cfd8e2"
MAX_NAME = 34


def _rc(salt: str) -> dict:
    """Settings for one chart; the salt keeps SVG ids of the two charts on one page apart."""
    return {
        "svg.fonttype": "none",
        "svg.hashsalt": salt,
        "text.parse_math": False,
        "font.size": 10,
        "axes.edgecolor": GRID,
        "axes.labelcolor": INK,
        "xtick.color": MUTED,
        "ytick.color": INK,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "hatch.color": "#ffffff",
        "hatch.linewidth": 1.2,
    }


@contextmanager
def _quiet(salt: str) -> Iterator[None]:
    """Measuring Hangul with a Latin font warns once per glyph; the browser draws it, so silence that."""
    with warnings.catch_warnings(), matplotlib.rc_context(_rc(salt)):
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        warnings.filterwarnings("ignore", message=r".*[Mm]issing from (current )?font")
        yield


def short(name: str, limit: int = MAX_NAME) -> str:
    """Long team names would squeeze the bars; the tables carry the full name."""
    name = " ".join(str(name).split())
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


def stacked(parts: list[str] | str, limit: int) -> str:
    """A bilingual name as one shortened line per language."""
    if isinstance(parts, str):
        return short(parts, limit)
    return "\n".join(short(p, limit) for p in parts)


def to_inline_svg(fig: Figure, title: str) -> str:
    """Serialise a figure as an <svg> element fit for embedding: no XML prolog or metadata.

    The chart scales down with the page but never above its natural size, so its text matches the page's.
    """
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08, metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->\s*", "", svg, flags=re.S)
    svg = svg.replace("*{stroke-linejoin", "svg.chart *{stroke-linejoin", 1)
    root_end = svg.index(">")
    width = re.search(r'\swidth="([\d.]+)pt"', svg[:root_end])
    root = re.sub(r'\s(width|height)="[^"]*"', "", svg[:root_end])
    esc = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    root += f' class="chart" role="img" aria-label="{esc}"'
    if width:
        root += f' style="max-width: {float(width.group(1)) * 4 / 3:.0f}px"'
    return root + svg[root_end:].rstrip()


def points_chart(rows: list[dict], categories: list[tuple[list[str], float | None]], lang: str) -> str:
    """Stacked bars of points per top-level criterion, best team on top; eliminations hatched.

    rows: {"name", "rank", "total", "points" (one per category), "eliminated", "failed_gates"};
    categories: (name, one entry per language; maximum points).
    """
    with _quiet("points"):
        height = 1.3 + 0.42 * max(len(rows), 1)
        fig = Figure(figsize=(9.2, height))
        ax = fig.add_subplot()
        _draw_points(ax, rows, categories, lang)
        return to_inline_svg(fig, label("plot_points", lang))


def _draw_points(ax, rows: list[dict], categories: list[tuple[list[str], float | None]], lang: str) -> None:
    ys = list(range(len(rows)))[::-1]
    for k, (_, _max) in enumerate(categories):
        lefts = [sum(r["points"][:k]) for r in rows]
        widths = [r["points"][k] for r in rows]
        for y, left, width, row in zip(ys, lefts, widths, rows, strict=True):
            ax.barh(y, width, left=left, height=0.62, color=PALETTE[k % len(PALETTE)],
                    alpha=0.5 if row["eliminated"] else 1.0, hatch="///" if row["eliminated"] else None,
                    edgecolor="white", linewidth=0.6)
    scale = sum(m for _, m in categories if m) or max((r["total"] or 0 for r in rows), default=1) or 1
    ax.set_xlim(0, scale * 1.02)
    for y, row in zip(ys, rows, strict=True):
        end = sum(row["points"])
        text = f"{row['total']:.2f}" if row["total"] is not None else "—"
        ax.text(end + scale * 0.01, y, text, va="center", ha="left", color=INK, fontsize=9, fontweight="bold")
        ax.text(1.02, y, _status_note(row, lang), transform=ax.get_yaxis_transform(), va="center", ha="left",
                fontsize=9, color=FLIP_COLOR if row["eliminated"] else "#2e7d4f")
    ax.set_yticks(ys, [f"{r['rank']}. {short(r['name'])}" for r in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(label("points_axis", lang))
    ax.grid(axis="x", color=GRID, linewidth=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    handles = [Patch(color=PALETTE[k % len(PALETTE)], label=stacked(name, 40))
               for k, (name, _) in enumerate(categories)]
    eliminated = label("eliminated", lang)
    handles.append(Patch(facecolor="#9aa7b4", hatch="///", edgecolor="white", label=eliminated))
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.01), ncol=min(len(handles), 4),
              frameon=False, fontsize=9, handlelength=1.4, columnspacing=1.4)


def _status_note(row: dict, lang: str) -> str:
    """Status beside each bar, naming any failed gate, so a gate elimination is not read as a points one."""
    note = "✗ " + label("eliminated", lang) if row["eliminated"] else "✓ " + label("advanced", lang)
    if row["failed_gates"]:
        note += " — " + ", ".join(row["failed_gates"])
    return note


def robustness_chart(
    flips: list[tuple[str, float | None]] | None,
    weights: list[tuple[list[str], float | None, str]] | None,
    searched_pct: float,
    lang: str,
) -> str | None:
    """Two panels: per-team flip probability, per-category smallest decisive weight change.

    Returns None when neither analysis exists, so the page can say so instead of drawing empty axes.
    """
    if flips is None and weights is None:
        return None
    with _quiet("robustness"):
        n = max(len(flips or []), len(weights or []), 1)
        fig = Figure(figsize=(9.2, 1.6 + 0.38 * n))
        left, right = fig.subplots(1, 2, gridspec_kw={"wspace": 0.85})
        _draw_flips(left, flips, lang, n)
        _draw_weights(right, weights, searched_pct, lang, n)
        return to_inline_svg(fig, label("plot_robustness", lang))


def _not_computed(ax, title: str, lang: str) -> None:
    ax.set_title(title, fontsize=9.5, color=INK, loc="left")
    ax.text(0.5, 0.5, label("not_computed", lang), ha="center", va="center", color=MUTED,
            transform=ax.transAxes)
    ax.set_axis_off()


def _draw_flips(ax, flips: list[tuple[str, float | None]] | None, lang: str, rows: int) -> None:
    title = stacked_label("plot_flip_title", lang)
    if not flips:
        _not_computed(ax, title, lang)
        return
    ys = list(range(len(flips)))[::-1]
    values = [(p or 0.0) * 100 for _, p in flips]
    ax.barh(ys, values, height=0.6, color=FLIP_COLOR)
    top = max(max(values) * 1.25, 10.0)
    ax.set_xlim(0, min(top, 100.0) if max(values) < 80 else 118.0)
    for y, (_, p), v in zip(ys, flips, values, strict=True):
        text = "—" if p is None else (f"{v:.1f}%" if not 0 < v < 0.05 else "<0.1%")
        ax.text(v + ax.get_xlim()[1] * 0.015, y, text, va="center", ha="left", fontsize=9, color=INK)
    ax.set_yticks(ys, [short(n, 26) for n, _ in flips])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.0f}%"))
    _finish(ax, title, label("probability_axis", lang), rows)


def _draw_weights(
    ax, weights: list[tuple[list[str], float | None, str]] | None, searched: float, lang: str, rows: int
) -> None:
    title = stacked_label("plot_weight_title", lang)
    if not weights:
        _not_computed(ax, title, lang)
        return
    ys = list(range(len(weights)))[::-1]
    for y, (_, value, text) in zip(ys, weights, strict=True):
        found = value is not None
        width = searched if value is None else value
        ax.barh(y, width, height=0.6, color=WEIGHT_COLOR if found else NONE_COLOR,
                hatch=None if found else "..", edgecolor="white" if found else "#aab6c3", linewidth=0.5)
        ax.text(width + searched * 0.015, y, text, va="center", ha="left", fontsize=9,
                color=INK if found else MUTED)
    ax.set_xlim(0, searched * 1.22)
    ax.axvline(searched, color=MUTED, linewidth=0.8, linestyle=(0, (3, 3)))
    _row_labels(ax, ys, [n for n, _, _ in weights], 24)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"±{x:.0f}%" if x else "0"))
    _finish(ax, title, label("weight_change_axis", lang), rows)


def _row_labels(ax, ys: list[int], names: list[list[str] | str], limit: int) -> None:
    """Y labels; a bilingual name gets two right-aligned lines drawn as separate texts.

    Multi-line matplotlib text is positioned with the generating machine's font metrics, which misalign
    once a browser draws Hangul with its own fonts; single-line texts are anchored at their end instead.
    """
    parts = [[n] if isinstance(n, str) else list(n) for n in names]
    if all(len(p) == 1 for p in parts):
        ax.set_yticks(ys, [short(p[0], limit) for p in parts])
        return
    ax.set_yticks(ys, [""] * len(ys))
    where = ax.get_yaxis_transform()
    for y, p in zip(ys, parts, strict=True):
        ax.text(-0.03, y + 0.17, short(p[0], limit), transform=where, ha="right", va="center", color=INK)
        if len(p) > 1:
            ax.text(-0.03, y - 0.19, short(p[1], limit), transform=where, ha="right", va="center",
                    color=MUTED, fontsize=9)


def _finish(ax, title: str, xlabel: str, rows: int) -> None:
    """Shared styling; bars keep one thickness in both panels, centred when a panel has fewer rows."""
    ax.set_title(title, fontsize=9.5, color=INK, loc="left", pad=8)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color=GRID, linewidth=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    pad = (rows - len(ax.get_yticks())) / 2
    ax.set_ylim(-0.6 - pad, len(ax.get_yticks()) - 0.4 + pad)


# The style of simsa's self-contained HTML pages (lineage and evidence reports): inline, so a page can be archived or
# mailed as it is.
PAGE_CSS = f"""body{{font-family:system-ui,-apple-system,"Noto Sans KR",sans-serif;color:{INK};max-width:1100px;
margin:2em auto;padding:0 1em;line-height:1.45}}
table{{border-collapse:collapse;margin:.6em 0;font-size:.92em}} td,th{{border-bottom:1px solid #dde3ea;
padding:.3em .6em;text-align:left;vertical-align:top}}
.badge{{color:#fff;border-radius:3px;padding:.1em .45em;font-weight:600;white-space:nowrap}} .note{{color:{MUTED}}}
.warn{{background:#fff6e0;padding:.5em .8em;border-left:4px solid #d08a2e}} figure{{margin:1em 0}}
.big{{font-size:1.4em}} code{{background:#f2f4f7;padding:0 .25em}}"""


def standalone_page(title: str, heading: str, body: str) -> str:
    """A whole HTML page around ``body`` (already escaped); ``title`` and ``heading`` are escaped here."""
    import html

    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>\n{PAGE_CSS}\n</style></head><body>\n<h1>{html.escape(heading)}</h1>\n{body}\n</body></html>\n")
