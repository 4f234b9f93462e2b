"""The report's "expert panel" section: a view model drawn from the anonymised panel result stored with the
decision (`expert_panel`, schema simsa.panel.result/1), its Markdown, and its two charts.

Only what the result document holds is shown — agreement, severities, identification, round-2 shift, the
aggregates — so the section can never show more about an expert than the programme published: experts are E1, E2,
… unless the programme publishes names, and no expert's score is tied to a name then either beyond what the stored
document says. A decision without a panel has no section.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup

from simsa.report.formats import DASH, num, table
from simsa.report.labels import LABELS, SEPARATOR, label, label_parts
from simsa.report.markdown_blocks import md_escape, md_paragraphs, md_table

ALPHA_RELIABLE = 0.800   # Krippendorff (2004): reliable
ALPHA_TENTATIVE = 0.667  # Krippendorff (2004): the lowest α for tentative conclusions
Z95 = 1.959963984540054
ANONYMOUS = re.compile(r"E\d+")
SHORT_HASH = 12

NameParts = Callable[[Any], list[str]]


# ---------------------------------------------------------------- formatting


def _f(value: Any, digits: int = 3) -> str:
    v = num(value)
    return DASH if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _signed(value: Any, digits: int = 2) -> str:
    """A signed number ("+2.50", "−1.25"); zero after rounding has no sign."""
    v = num(value)
    if v is None or not math.isfinite(v):
        return DASH
    text = f"{v:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text.replace("-", "−")


def _pct(part: int, whole: int) -> str:
    return DASH if not whole else f"{100.0 * part / whole:.0f}%"


def _interval(pair: Any, digits: int = 3) -> str:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or any(num(x) is None for x in pair):
        return DASH
    return f"[{_f(pair[0], digits)}, {_f(pair[1], digits)}]"


def _pair(key: str) -> tuple[str, str]:
    """A label as an (en, ko) field for another label, so each language gets its own word."""
    return LABELS.get(key, (key, key))


def verdict(alpha: float | None) -> str:
    """Krippendorff's reading of α: good (≥ 0.800), tentative (≥ 0.667), poor, or undefined."""
    if alpha is None or not math.isfinite(alpha):
        return "undefined"
    if alpha >= ALPHA_RELIABLE:
        return "good"
    if alpha >= ALPHA_TENTATIVE:
        return "tentative"
    return "poor"


# ---------------------------------------------------------------- view model


def _icc(agreement: dict, lang: str) -> tuple[dict | None, list[str]]:
    icc = agreement.get("icc")
    if isinstance(icc, dict) and num(icc.get("icc_a1")) is not None:
        return {"a1": _f(icc.get("icc_a1")), "a1_interval": _interval(icc.get("icc_a1_interval")),
                "c1": _f(icc.get("icc_c1")), "c1_interval": _interval(icc.get("icc_c1_interval"))}, []
    raters, items = int(num(agreement.get("n_raters")) or 0), int(num(agreement.get("n_items")) or 0)
    missing = int(num(agreement.get("n_missing")) or 0)
    if raters < 2 or items < 2:
        return None, label_parts("xp_icc_small", lang)
    if missing:
        return None, label_parts("xp_icc_missing", lang, missing=missing, cells=raters * items)
    return None, label_parts("xp_icc_undefined", lang)


def _raters(agreement: dict) -> list[dict]:
    out = []
    for r in agreement.get("raters") or []:
        if not isinstance(r, dict):
            continue
        out.append({
            "id": str(r.get("id")),
            "severity": _signed(r.get("severity")),
            "severity_value": num(r.get("severity")),
            "n_items": str(int(num(r.get("n_items")) or 0)),
            "deviation": _f(r.get("mean_abs_deviation"), 2),
            "alpha_without": _f(r.get("alpha_without")),
            "outlier": bool(r.get("outlier")),
        })
    return out


def _teams(doc: dict, order: Sequence[Any], name_parts: NameParts) -> list[dict]:
    rank = {tid: i for i, tid in enumerate(order)}
    teams = [t for t in doc.get("teams") or [] if isinstance(t, dict)]
    teams.sort(key=lambda t: rank.get(t.get("team"), len(rank)))
    counted = "adjusted" if doc.get("counts") == "severity_adjusted" else "raw"
    rows = []
    for t in teams:
        ident = table(t.get("identified"))
        answers = sum(int(num(v) or 0) for v in ident.values())
        experts = int(num(t.get("experts")) or 0)
        value, se = num(t.get("value")), num(t.get("stderr"))
        parts = name_parts(t.get("team"))
        rows.append({
            "team_id": str(t.get("team")),
            "name": SEPARATOR.join(parts),
            "name_parts": parts,
            "experts": str(experts),
            "raw": _f(t.get("raw"), 2),
            "adjusted": _f(t.get("adjusted"), 2),
            "counted": counted,
            "value": _f(value, 2) + (f" ± {se:.2f}" if se is not None else ""),
            "identified": f"{int(num(ident.get('yes')) or 0)} / {answers}" if answers else DASH,
            "revised": f"{int(num(t.get('round2_revised')) or 0)} / {experts}",
            "shift": _signed(t.get("mean_shift")),
            "documents": [str(d)[:SHORT_HASH] for d in t.get("documents") or []],
            "totals": [float(x) for x in t.get("totals") or [] if num(x) is not None],
            "value_num": value,
            "stderr_num": se,
            "raw_num": num(t.get("raw")),
            "adjusted_num": num(t.get("adjusted")),
        })
    return rows


def _identification(doc: dict, lang: str) -> list[str]:
    yes = unsure = total = 0
    for t in doc.get("teams") or []:
        ident = table(t.get("identified")) if isinstance(t, dict) else {}
        yes += int(num(ident.get("yes")) or 0)
        unsure += int(num(ident.get("unsure")) or 0)
        total += sum(int(num(v) or 0) for v in ident.values())
    if not total:
        return label_parts("xp_identified_none", lang)
    return label_parts("xp_identified", lang, k=yes, n=total, pct=_pct(yes, total), u=unsure)


def _round2(doc: dict, lang: str) -> list[str]:
    shifts = [r for r in doc.get("round_shift") or [] if isinstance(r, dict) and num(r.get("shift")) is not None]
    revised = [r for r in shifts if abs(num(r.get("shift")) or 0.0) > 1e-9]
    revised_count = sum(int(num(t.get("round2_revised")) or 0) for t in doc.get("teams") or [] if isinstance(t, dict))
    if not revised_count and not revised:
        return label_parts("xp_round2_none", lang)
    mean = sum(num(r.get("shift")) or 0.0 for r in shifts) / len(shifts) if shifts else None
    return label_parts("xp_round2_summary", lang, k=max(revised_count, len(revised)), n=len(shifts),
                       shift=_signed(mean))


def panel_view(decision: dict, name_parts: NameParts, lang: str, order: Sequence[Any] = ()) -> dict | None:
    """The section's view model (localised, formatted, not escaped), or None when the decision has no panel.

    `name_parts` gives a team's display name per language; `order` lists team ids in the report's order.
    """
    doc = decision.get("expert_panel")
    if not isinstance(doc, dict):
        return None
    agreement = table(doc.get("agreement"))
    experts = [str(e) for e in doc.get("experts") or []]
    named = bool(experts) and not all(ANONYMOUS.fullmatch(e) for e in experts)
    reviews = sum(1 for r in doc.get("round_shift") or [] if isinstance(r, dict))  # one per expert and team
    alpha = num(agreement.get("alpha"))
    level = str(agreement.get("level") or "interval")
    icc, icc_reason = _icc(agreement, lang)
    raters = _raters(agreement)
    outliers = [r["id"] for r in raters if r["outlier"]]
    confidence = num(agreement.get("confidence")) or 0.95
    rule, counts = str(doc.get("aggregation") or "mean"), str(doc.get("counts") or "raw")
    crit = table(doc.get("criteria_alpha"))
    return {
        "intro": label_parts("xp_intro_named" if named else "xp_intro", lang, n=len(experts), reviews=reviews),
        "named": named,
        "experts": experts,
        "alpha": _f(alpha),
        "alpha_value": alpha,
        "alpha_label": label("xp_alpha", lang, level=_pair(f"xp_level_{level}")),
        "alpha_interval": _interval(agreement.get("alpha_interval")),
        "interval_label": label("xp_alpha_interval", lang, pct=f"{confidence * 100:.0f}%"),
        "verdict": verdict(alpha),
        "verdict_parts": label_parts(f"xp_verdict_{verdict(alpha)}", lang),
        "conventions": label_parts("xp_conventions", lang),
        "icc": icc,
        "icc_reason": icc_reason,
        "criteria_alpha": [(_criterion_name(doc, str(k), lang), _f(v)) for k, v in _in_rubric_order(doc, crit)],
        "raters": raters,
        "outliers": (label_parts("xp_outliers", lang, ids=", ".join(outliers)) if outliers
                     else label_parts("xp_no_outliers", lang)),
        "identification": _identification(doc, lang),
        "rule": label_parts("xp_rule", lang, rule=_pair(f"xp_rule_{rule}"), counts=_pair(f"xp_counts_{counts}")),
        "counted": "adjusted" if counts == "severity_adjusted" else "raw",
        "teams": _teams(doc, order, name_parts),
        "round2": _round2(doc, lang),
        "rubric_sha256": str(doc.get("rubric_sha256") or DASH),
        "result_sha256": str(decision.get("expert_panel_sha256") or DASH),
        "review_hashes": str(len(doc.get("review_sha256") or [])),
    }


def _criterion_name(doc: dict, cid: str, lang: str) -> str:
    """A rubric criterion's name in `lang` as the result document records it (its id for older documents)."""
    for c in doc.get("criteria") or ():
        if isinstance(c, dict) and c.get("id") == cid:
            name = c.get("name_ko") if lang == "ko" and c.get("name_ko") else c.get("name")
            return str(name or cid)
    return cid


def _in_rubric_order(doc: dict, crit: dict) -> list[tuple[str, object]]:
    order = [str(c.get("id")) for c in doc.get("criteria") or () if isinstance(c, dict)]
    return sorted(crit.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))


# ---------------------------------------------------------------- Markdown


def markdown(view: dict, t: Any) -> list[str]:
    """The section in Markdown (tables and lists only); `t` is the report's label lookup."""
    p = view.get("panel")
    if not p:
        return []

    def paras(parts: list[str]) -> list[str]:
        return md_paragraphs([md_escape(x) for x in parts])

    out = [f"## {t('xp_title')}", "", *paras(p["intro"])]
    out += [f"### {t('xp_agreement')}", ""]
    out += [f"- **{md_escape(p['alpha_label'])}**: **{p['alpha']}**, {md_escape(p['interval_label'])} "
            f"{p['alpha_interval']}"]
    if p["icc"]:
        out += [f"- **{t('xp_icc_a1')}**: {p['icc']['a1']} {p['icc']['a1_interval']}",
                f"- **{t('xp_icc_c1')}**: {p['icc']['c1']} {p['icc']['c1_interval']}"]
    else:
        out += [f"- {md_escape(SEPARATOR.join(p['icc_reason']))}"]
    icon = "⚠ " if p["verdict"] in ("poor", "tentative") else ""
    quote: list[str] = []
    for i, x in enumerate(p["verdict_parts"]):
        quote += [">"] if i else []
        quote.append(f"> **{icon}{md_escape(x)}**")
    out += ["", *quote, "", *paras(p["conventions"])]
    if p["criteria_alpha"]:
        out += [*md_table([t("criterion"), t("xp_criteria_alpha")], [list(r) for r in p["criteria_alpha"]], "lr"), ""]
    out += [f"### {t('xp_severity')}", "", *paras(p["outliers"])]
    rows = [[("⚑ " if r["outlier"] else "") + r["id"], r["severity"], r["n_items"], r["deviation"],
             r["alpha_without"]] for r in p["raters"]]
    header = [t("xp_expert"), t("xp_severity_col"), t("xp_teams_scored"), t("xp_deviation"), t("xp_alpha_without")]
    out += [*md_table(header, rows, "lrrrr"), "", *paras(t.parts("xp_severity_intro"))]
    out += [f"### {t('xp_identification')}", "", *paras(p["identification"]),
            *paras(t.parts("xp_identification_note"))]
    out += [f"### {t('xp_aggregates')}", "", *paras(p["rule"])]
    mark = f" ({t('xp_counted_mark')})"
    header = [t("team"), t("xp_col_experts"), t("xp_col_raw") + (mark if p["counted"] == "raw" else ""),
              t("xp_col_adjusted") + (mark if p["counted"] == "adjusted" else ""), t("xp_col_counted"),
              t("xp_col_identified"), t("xp_col_revised"), t("xp_col_shift")]
    rows = [[r["name"], r["experts"], r["raw"], r["adjusted"], r["value"], r["identified"], r["revised"], r["shift"]]
            for r in p["teams"]]
    out += [*md_table(header, rows, "lrrrrrrr"), ""]
    out += [f"### {t('xp_round2')}", "", *paras(p["round2"]), *paras(t.parts("xp_round2_intro"))]
    out += [f"### {t('xp_provenance')}", ""]
    out += [f"- **{t('xp_rubric_sha')}**: `{md_escape(p['rubric_sha256'])}`",
            f"- **{t('xp_result_sha')}**: `{md_escape(p['result_sha256'])}`",
            f"- **{t('xp_reviews_hashed')}**: {p['review_hashes']}"]
    for r in p["teams"]:
        if r["documents"]:
            docs = ", ".join(f"`{md_escape(d)}…`" for d in r["documents"])
            out.append(f"- **{t('xp_col_documents')}** — {md_escape(r['name'])}: {docs}")
    return [*out, ""]


# ---------------------------------------------------------------- charts


def panel_plots(view: dict) -> dict[str, Markup | None]:
    """The section's charts as inline SVG ("panel_totals", "panel_severity"); None without a panel."""
    p = view.get("panel")
    if not p or not p["teams"]:
        return {"panel_totals": None, "panel_severity": None}
    lang = view["lang"]
    severity = severity_chart(p["raters"], lang) if p["raters"] else None
    return {"panel_totals": Markup(totals_chart(p["teams"], lang)),
            "panel_severity": Markup(severity) if severity else None}


def totals_chart(teams: list[dict], lang: str) -> str:
    """One row per team: each expert's total as a dot, the aggregate that counts as a diamond with its 95%
    interval, and the other aggregate as an open circle where it differs."""
    from matplotlib.figure import Figure

    import simsa.report.plots as plots

    with plots._quiet("panel-totals"):
        fig = Figure(figsize=(9.2, 1.2 + 0.5 * len(teams)))
        ax = fig.add_subplot()
        ys = list(range(len(teams)))[::-1]
        for y, row in zip(ys, teams, strict=True):
            seen: dict[float, int] = {}
            for x in row["totals"]:
                k = seen.get(round(x, 6), 0)
                seen[round(x, 6)] = k + 1
                ax.plot(x, y + 0.13 * ((k + 1) // 2) * (1 if k % 2 else -1), "o", color=plots.PALETTE[0],
                        alpha=0.75, markersize=6, markeredgecolor="white", markeredgewidth=0.6)
            counted = row["adjusted_num"] if row["counted"] == "adjusted" else row["raw_num"]
            other = row["raw_num"] if row["counted"] == "adjusted" else row["adjusted_num"]
            se = row["stderr_num"]
            if counted is not None:
                if se:
                    ax.errorbar(counted, y - 0.3, xerr=Z95 * se, fmt="none", ecolor=plots.INK, elinewidth=1.2,
                                capsize=3)
                ax.plot(counted, y - 0.3, "D", color=plots.PALETTE[1], markersize=7, markeredgecolor=plots.INK,
                        markeredgewidth=0.6)
                ax.text(counted, y - 0.52, f"{counted:.1f}", ha="center", va="top", fontsize=8.5, color=plots.INK)
            if other is not None and counted is not None and abs(other - counted) > 1e-6:
                ax.plot(other, y - 0.3, "o", markerfacecolor="none", markeredgecolor=plots.MUTED, markersize=7)
        ax.set_xlim(-2, 102)
        ax.set_ylim(-0.9, len(teams) - 0.5)
        ax.set_yticks(ys, [plots.short(r["name"], 30) for r in teams])
        ax.set_xlabel(label("xp_total_axis", lang))
        ax.grid(axis="x", color=plots.GRID, linewidth=0.7)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        return plots.to_inline_svg(fig, label("xp_plot_totals", lang))


def severity_chart(raters: list[dict], lang: str) -> str | None:
    """Each expert's severity as a bar left (harsher) or right (more lenient) of zero; outliers in red."""
    from matplotlib.figure import Figure

    import simsa.report.plots as plots

    rows = [r for r in raters if r["severity_value"] is not None]
    if not rows:
        return None
    with plots._quiet("panel-severity"):
        fig = Figure(figsize=(6.4, 1.0 + 0.36 * len(rows)))
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        values = [r["severity_value"] for r in rows]
        reach = max(max(abs(v) for v in values), 1.0) * 1.3
        for y, r in zip(ys, rows, strict=True):
            v = r["severity_value"]
            ax.barh(y, v, height=0.6, color=plots.FLIP_COLOR if r["outlier"] else plots.WEIGHT_COLOR)
            ax.text(v + (reach * 0.02 if v >= 0 else -reach * 0.02), y, r["severity"], va="center",
                    ha="left" if v >= 0 else "right", fontsize=8.5, color=plots.INK)
        ax.axvline(0, color=plots.MUTED, linewidth=0.8)
        ax.set_xlim(-reach, reach)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_yticks(ys, [("⚑ " if r["outlier"] else "") + plots.short(r["id"], 24) for r in rows])
        ax.set_xlabel(label("xp_severity_axis", lang))
        ax.grid(axis="x", color=plots.GRID, linewidth=0.7)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        return plots.to_inline_svg(fig, label("xp_plot_severity", lang))
