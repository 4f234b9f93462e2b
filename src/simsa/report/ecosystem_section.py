"""The ecosystem section: each metric's time series (a chart and its table), each team's derivative tree, and
beside every number what it is — hub downloads count file requests (CI included), trending is an opaque
likes-driven score, base-model declarations are self-reported. As HTML (a fragment, or a whole page) and Markdown.

Model ids, team names and card contents come from outside: every text is escaped.
"""

from __future__ import annotations

from html import escape

from matplotlib.dates import date2num
from matplotlib.figure import Figure

from simsa.ecosystem import BASE_NOTE, KIND_LABELS, KINDS, EcosystemView, Metric, Series, derivative_tree
from simsa.report.markdown_blocks import md_escape, md_table
from simsa.report.plots import GRID, INK, PALETTE, _quiet, short, standalone_page, to_inline_svg
from simsa.timeutil import display_zone, format_local

HEURISTIC = ("Popularity on a hub is heuristic evidence: no null model stands behind it, so it can weigh in points "
             "but never eliminate on its own.",
             "허브 인기도는 휴리스틱 근거입니다: 귀무 모형이 없으므로 점수에는 반영될 수 있으나 그것만으로 탈락시킬 수 "
             "없습니다.")
TITLE = ("Ecosystem signals", "생태계 지표")
TREE = ("Derivative tree (latest snapshot)", "파생 모델 트리(최신 스냅숏)")
DECLARED = ("declared base", "선언된 기반 모델")
SNAPSHOT = ("snapshot", "스냅숏")
TAKEN = ("taken", "수집 시각")


def _pick(pair: tuple[str, str], lang: str) -> str:
    return {"en": pair[0], "ko": pair[1]}.get(lang, f"{pair[0]} / {pair[1]}")


def _name(m: Metric, lang: str) -> str:
    return _pick((m.name_en, m.name_ko), lang)


def _note(m: Metric, lang: str) -> str:
    return _pick((m.note_en, m.note_ko), lang)


def _value(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def series_chart(series: Series, names: dict[str, str], lang: str, zone: str = "UTC") -> str:
    """One line per team over the snapshots' times in the programme's zone (markers only where there is one
    snapshot)."""
    tz = display_zone(zone)
    with _quiet(f"eco-{series.metric.name}"):
        fig = Figure(figsize=(9.2, 3.2))
        ax = fig.add_subplot()
        times = [float(date2num(p.taken_at.astimezone(tz).replace(tzinfo=None))) for p in series.points]
        for k, team in enumerate(series.teams):
            pairs = [(t, float(v)) for t, p in zip(times, series.points, strict=True)
                     if (v := p.values[team]) is not None]
            if not pairs:
                continue
            ax.plot([t for t, _ in pairs], [v for _, v in pairs], marker="o", color=PALETTE[k % len(PALETTE)],
                    label=short(names.get(team, team), 28))
        ax.set_ylabel(short(_name(series.metric, "en" if lang == "both" else lang), 40), color=INK)
        ax.xaxis_date()
        ax.set_xlabel(zone)
        ax.grid(color=GRID, linewidth=0.7)
        ax.set_axisbelow(True)
        fig.autofmt_xdate()
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
        return to_inline_svg(fig, _name(series.metric, lang))


def _series_table(series: Series, names: dict[str, str], zone: str = "UTC", lang: str = "both") -> str:
    head = "".join(f"<th>{escape(names.get(t, t))}</th>" for t in series.teams)
    rows = "".join(
        f"<tr><td>#{p.snapshot_id}</td><td>{escape(format_local(p.taken_at, zone))}</td>"
        + "".join(f'<td style="text-align:right">{_value(p.values[t])}</td>' for t in series.teams) + "</tr>"
        for p in series.points)
    return (f"<table><thead><tr><th>{escape(_pick(SNAPSHOT, lang))}</th><th>{escape(_pick(TAKEN, lang))}</th>{head}"
            f"</tr></thead><tbody>{rows}</tbody></table>")


def _tree_html(view: EcosystemView, lang: str) -> str:
    if view.latest is None:
        return ""
    parts = [f"<h3>{escape(_pick(TREE, lang))} — #{view.latest_id}, "
             f"{escape(format_local(view.latest.taken_at, view.timezone))}, sha256 "
             f"<code>{escape(view.latest_sha256 or '')}</code></h3>"]
    nodes = derivative_tree(view.latest)
    for team in view.team_names:
        mine = [n for n in nodes if n.team == team]
        errors = [e for e in view.latest.errors if e.team == team]
        if not mine and not errors:
            continue
        items = []
        for n in mine:
            bases = ", ".join(f"<code>{escape(b)}</code>" for b in n.declared_base_models) or "—"
            kinds = "".join(f"<li>{escape(_pick(KIND_LABELS[k], lang))}: {n.derivatives.get(k, 0):,}</li>"
                            for k in KINDS)
            items.append(f"<li><code>{escape(n.repo_id)}</code> — {escape(_pick(DECLARED, lang))}: "
                         f"{bases} <span class=\"note\">({escape(_pick(BASE_NOTE, lang))})</span><ul>{kinds}</ul></li>")
        items += [f"<li><code>{escape(e.ref)}</code> — <span class=\"note\">{escape(e.message)}</span></li>"
                  for e in errors]
        parts.append(f"<h4>{escape(view.team_names.get(team, team))}</h4><ul>{''.join(items)}</ul>")
    return "\n".join(parts)


def html(view: EcosystemView, lang: str = "both") -> str:
    """The section as an HTML fragment (every outside text escaped)."""
    parts = [f'<section class="ecosystem"><h2>{escape(_pick(TITLE, lang))}</h2>',
             f'<p class="note">{escape(_pick(HEURISTIC, lang))}</p>']
    if view.latest is None:
        parts.append("<p>No ecosystem snapshot has been taken.</p></section>")
        return "\n".join(parts)
    for series in view.series:
        parts.append(f"<h3>{escape(_name(series.metric, lang))} <code>{escape(series.metric.source)}</code></h3>")
        parts.append(f'<p class="note">{escape(_note(series.metric, lang))}</p>')
        parts.append(f"<figure>{series_chart(series, view.team_names, lang, view.timezone)}</figure>")
        parts.append(_series_table(series, view.team_names, view.timezone, lang))
    parts.append(_tree_html(view, lang))
    parts.append("</section>")
    return "\n".join(parts)


def markdown(view: EcosystemView, lang: str = "both") -> str:
    """The section as Markdown: the labels, each series as a table, and the derivative tree as nested lists."""
    lines = [f"## {md_escape(_pick(TITLE, lang))}", "", md_escape(_pick(HEURISTIC, lang)), ""]
    if view.latest is None:
        return "\n".join([*lines, "No ecosystem snapshot has been taken.", ""])
    for series in view.series:
        lines += [f"### {md_escape(_name(series.metric, lang))} (`{series.metric.source}`)", "",
                  md_escape(_note(series.metric, lang)), ""]
        header = [_pick(SNAPSHOT, lang), _pick(TAKEN, lang), *(view.team_names.get(t, t) for t in series.teams)]
        rows = [[f"#{p.snapshot_id}", format_local(p.taken_at, view.timezone),
                 *(_value(p.values[t]) for t in series.teams)] for p in series.points]
        lines += [*md_table(header, rows, "ll" + "r" * len(series.teams)), ""]
    lines += [f"### {md_escape(_pick(TREE, lang))} — #{view.latest_id}, sha256 {view.latest_sha256}", ""]
    for node in derivative_tree(view.latest):
        bases = ", ".join(md_escape(b) for b in node.declared_base_models) or "—"
        lines.append(f"- {md_escape(view.team_names.get(node.team, node.team))}: {md_escape(node.repo_id)} — "
                     f"{md_escape(_pick(DECLARED, lang))}: {bases} "
                     f"({md_escape(_pick(BASE_NOTE, lang))})")
        lines += [f"  - {md_escape(_pick(KIND_LABELS[k], lang))}: {node.derivatives.get(k, 0)}" for k in KINDS]
    lines += [f"- {md_escape(e.team)}: {md_escape(e.ref)} — {md_escape(e.message)}" for e in view.latest.errors]
    return "\n".join([*lines, ""])


def standalone(view: EcosystemView, lang: str = "both") -> str:
    """A whole, self-contained HTML page holding the section."""
    title = f"{_pick(TITLE, lang)} — {view.program_name}"
    return standalone_page(title, title, html(view, lang))
