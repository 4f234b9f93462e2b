"""The report's "user arena" section: a view model drawn from the arena result stored with the decision
(`user_arena`, schema simsa.arena.result/1), its Markdown, and its two charts.

Only what the published result holds is shown, and no rater by name: flagged raters are counted, the
secretariat's exclusions appear by reason. A decision without an arena has no section.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup

from simsa.report.formats import DASH, fmt_time, num
from simsa.report.labels import LABELS, SEPARATOR, label, label_parts
from simsa.report.markdown_blocks import md_escape, md_paragraphs, md_table

NameParts = Callable[[Any], list[str]]
WARN_FRACTION = 0.01


def _f(value: Any, digits: int = 0) -> str:
    v = num(value)
    return DASH if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _pct(fraction: Any) -> str:
    v = num(fraction)
    return DASH if v is None else f"{100 * v:.2f}%"


def _pair(key: str) -> tuple[str, str]:
    return LABELS.get(key, (key, key))


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- view model


def _ranking_rows(doc: dict, name_parts: NameParts) -> list[dict]:
    """One row per entrant in the order of the ranking that counts, with both rankings and its panel:user value."""
    raw = {r.get("model"): r for r in _list(_dict(doc.get("raw")).get("ratings")) if isinstance(r, dict)}
    style = {r.get("model"): r for r in _list(_dict(doc.get("style_controlled")).get("ratings"))
             if isinstance(r, dict)}
    scores = {s.get("team"): s for s in _list(doc.get("scores")) if isinstance(s, dict)}
    counted = style if doc.get("ranking") == "style_controlled" else raw
    order = sorted(counted, key=lambda m: (num(counted[m].get("rank")) or 1e9, str(m)))
    order += [m for m in (*raw, *style) if m not in order]
    rows = []
    for model in dict.fromkeys(order):
        r, s, sc = raw.get(model, {}), style.get(model, {}), scores.get(model, {})
        parts = name_parts(model)
        value, se = num(sc.get("value")), num(sc.get("stderr"))
        rows.append({
            "team_id": str(model), "name": SEPARATOR.join(parts), "name_parts": parts,
            "rank": str(counted.get(model, {}).get("rank", DASH)),
            "raw": _rating(r), "raw_ranks": _ranks(r), "style": _rating(s), "style_ranks": _ranks(s),
            "user": DASH if value is None else f"{value:.2f}" + (f" ± {se:.2f}" if se is not None else ""),
            "votes": str(int(num(r.get("votes") or s.get("votes")) or 0)),
            "raw_num": _nums(r), "style_num": _nums(s),
        })
    return rows


def _rating(r: dict) -> str:
    if num(r.get("rating")) is None:
        return DASH
    return f"{_f(r.get('rating'))} [{_f(r.get('lower'))}, {_f(r.get('upper'))}]"


def _ranks(r: dict) -> str:
    lo, hi = r.get("rank_lower"), r.get("rank_upper")
    if lo is None or hi is None:
        return DASH
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _nums(r: dict) -> tuple[float, float, float] | None:
    rating, lower, upper = num(r.get("rating")), num(r.get("lower")), num(r.get("upper"))
    if rating is None or lower is None or upper is None:
        return None
    return rating, lower, upper


def _unidentified(doc: dict, lang: str) -> list[str]:
    """The warning when the style covariates are (nearly) a function of which entrants met."""
    style = _dict(doc.get("style_controlled"))
    if style.get("style_identified") is not False:
        return []
    high = [k for k, v in _dict(style.get("style_collinearity")).items() if (num(v) or 0) >= 0.9]
    return label_parts("ua_style_unidentified", lang, covariates=", ".join(high))


def _coef(doc: dict) -> str:
    coef = _dict(_dict(doc.get("style_controlled")).get("coef"))
    parts = [f"{k} {v:+.3f}".replace("-", "−") for k, v in coef.items() if num(v) is not None]
    return ", ".join(parts) or DASH


def _pairs(doc: dict, name_parts: NameParts, order: Sequence[str]) -> tuple[list[dict], list[list[dict | None]]]:
    """The pair table's rows and the matrix (row entrant × column entrant) the heat map draws."""
    rows, cells = [], {}
    for p in _list(doc.get("pairs")):
        if not isinstance(p, dict):
            continue
        a, b = p.get("a"), p.get("b")
        votes, wa, wb = (int(num(p.get(k)) or 0) for k in ("votes", "wins_a", "wins_b"))
        rows.append({"pair": f"{SEPARATOR.join(name_parts(a))} – {SEPARATOR.join(name_parts(b))}",
                     "votes": f"{votes} / {int(num(p.get('quota')) or 0)}", "wins": f"{wa} – {wb}",
                     "ties": str(int(num(p.get("ties")) or 0)), "both_bad": str(int(num(p.get("both_bad")) or 0))})
        cells[(a, b)] = {"votes": votes, "wins": wa, "losses": wb}
        cells[(b, a)] = {"votes": votes, "wins": wb, "losses": wa}
    matrix = [[cells.get((a, b)) if a != b else None for b in order] for a in order]
    return rows, matrix


def _figure(fig: Any, total: int, lang: str, key: str, cut: Any, name_parts: NameParts) -> dict | None:
    if not isinstance(fig, dict):
        return None
    needed = fig.get("votes_needed")
    if needed is None:
        fraction = num(fig.get("max_fraction"))
        limit = tuple(label("ua_of_votes", one, pct=f"{100 * fraction:g}%")
                      if fraction is not None else label("ua_votes_n", one, n=fig.get("max_votes"))
                      for one in ("en", "ko"))  # each language's phrase inside the same language's sentence
        text = label("ua_not_found", lang, limit=limit)
        verified = None
    else:
        text = label("ua_fig", lang, n=needed, total=fig.get("votes_total") or total, pct=_pct(fig.get("fraction")))
        strategies = [s for s in _list(fig.get("strategies")) if isinstance(s, dict)]
        verified = (any(s.get("verified") and s.get("votes_needed") == needed for s in strategies) if strategies
                    else bool(fig.get("verified")))
    before, after = fig.get("before"), fig.get("after")

    def names(ids: list) -> str:
        return ", ".join((name_parts(i) or [str(i)])[0] for i in ids)

    return {"label": label(key, lang, cut=cut), "text": text, "warning": bool(fig.get("warning")),
            "verified": None if verified is None else label("ua_verified" if verified else "ua_unverified", lang),
            "change": (label("ua_change", lang, before=names(before), after=names(after))
                       if isinstance(before, list) and isinstance(after, list) else None)}


def _robustness(doc: dict, lang: str, name_parts: NameParts) -> dict:
    rob = _dict(doc.get("robustness"))
    cut = rob.get("cut") or DASH
    total = int(num(rob.get("votes")) or 0)
    figures = [f for f in (_figure(rob.get("drop_cut"), total, lang, "ua_drop_cut", cut, name_parts),
                           _figure(rob.get("drop_top"), total, lang, "ua_drop_top", cut, name_parts),
                           _figure(rob.get("rigging"), total, lang, "ua_rigging", cut, name_parts)) if f]
    return {"intro": label_parts("ua_robustness_intro", lang, cut=cut), "figures": figures,
            "warning": bool(rob.get("warning")) or any(f["warning"] for f in figures),
            "problem": label_parts("ua_robustness_missing", lang, why=rob["problem"]) if rob.get("problem") else None}


def arena_view(decision: dict, name_parts: NameParts, lang: str, zone: str = "UTC") -> dict | None:
    """The section's view model (localised, formatted, not escaped), or None when the decision has no arena.
    `name_parts` gives a team's display name per language."""
    doc = decision.get("user_arena")
    if not isinstance(doc, dict):
        return None
    votes = _dict(doc.get("votes"))
    ranking = str(doc.get("ranking") or "style_controlled")
    rows = _ranking_rows(doc, name_parts)
    order = [r["team_id"] for r in rows]
    pair_rows, matrix = _pairs(doc, name_parts, order)
    schedule = _dict(doc.get("schedule"))
    rounds = _dict(doc.get("style_controlled") or doc.get("raw")).get("rounds") or DASH
    vote_fields = {k: int(num(votes.get(k)) or 0) for k in ("total", "counted", "void", "excluded", "gold_pass",
                                                            "gold_fail", "raters")}
    yes_no = _pair("ua_yes" if schedule.get("all_quotas_met") else "ua_no")
    return {
        "intro": label_parts("ua_intro", lang, counted=vote_fields["counted"], raters=vote_fields["raters"],
                             segment=doc.get("segment") or DASH, rounds=rounds),
        "counts": label_parts("ua_counts", lang, ranking=_pair(f"ua_ranking_{ranking}"),
                              score=_pair(f"ua_score_{doc.get('score') or 'expected_win_rate'}")),
        "problem": label_parts("ua_problem", lang, why=doc["problem"]) if doc.get("problem") else None,
        "counted": "style" if ranking == "style_controlled" else "raw",
        "rows": rows,
        "style_note": label_parts("ua_style_note", lang, coef=_coef(doc)) + _unidentified(doc, lang),
        "pairs_intro": label_parts("ua_pairs_intro", lang, quota=schedule.get("quota", DASH), met=yes_no,
                                   lr=schedule.get("max_left_right_difference", DASH)),
        "pairs": pair_rows,
        "matrix": matrix,
        "exclusions_intro": label_parts("ua_exclusions_intro", lang, **vote_fields),
        "exclusions": [(str(k), str(v)) for k, v in _dict(doc.get("exclusions")).items()],
        "flagged": label_parts("ua_flagged", lang, n=len(_list(doc.get("flagged_raters")))),
        "robustness": _robustness(doc, lang, name_parts),
        "segments": [{"number": str(s.get("number")), "opened_at": fmt_time(s.get("opened_at"), zone)
                      if s.get("opened_at") else DASH,
                      "reason": str(s.get("reason") or ""), "votes": str(s.get("votes", DASH)),
                      "manifest": str(s.get("manifest_sha256") or DASH),
                      "current": s.get("number") == doc.get("segment")}
                     for s in _list(doc.get("segments")) if isinstance(s, dict)],
        "ratings": [{"name": SEPARATOR.join(name_parts(r.get("team"))), "name_parts": name_parts(r.get("team")),
                     "usefulness": _mean(r, "usefulness"), "cost": _mean(r, "cost_efficiency")}
                    for r in _list(doc.get("ratings")) if isinstance(r, dict)],
        "result_sha256": str(decision.get("user_arena_sha256") or DASH),
    }


def _mean(row: dict, key: str) -> str:
    value, n = num(row.get(key)), int(num(row.get(f"{key}_n")) or 0)
    return DASH if value is None else f"{value:.2f} (n = {n})"


# ---------------------------------------------------------------- Markdown


def markdown(view: dict, t: Any) -> list[str]:
    """The section in Markdown (tables and lists only); `t` is the report's label lookup."""
    a = view.get("arena")
    if not a:
        return []

    def paras(parts: list[str]) -> list[str]:
        return md_paragraphs([md_escape(x) for x in parts])

    out = [f"## {t('ua_title')}", "", *paras(a["intro"]), *paras(a["counts"])]
    if a["problem"]:
        return [*out, *paras(a["problem"])]
    mark = f" ({t('ua_counted_mark')})"
    header = [t("ua_col_rank"), t("team"), t("ua_col_raw") + (mark if a["counted"] == "raw" else ""),
              t("ua_col_rank_interval"), t("ua_col_style") + (mark if a["counted"] == "style" else ""),
              t("ua_col_rank_interval"), t("ua_col_user"), t("ua_col_votes")]
    rows = [[r["rank"], r["name"], r["raw"], r["raw_ranks"], r["style"], r["style_ranks"], r["user"], r["votes"]]
            for r in a["rows"]]
    out += [f"### {t('ua_ranking')}", "", *md_table(header, rows, "rlrcrcrr"), "", *paras(a["style_note"])]
    out += [f"### {t('ua_pairs')}", "", *paras(a["pairs_intro"])]
    rows = [[p["pair"], p["votes"], p["wins"], p["ties"], p["both_bad"]] for p in a["pairs"]]
    out += [*md_table([t("ua_col_pair"), t("ua_col_votes"), t("ua_col_wins"), t("ua_col_ties"),
                        t("ua_col_both_bad")], rows, "lrrrr"), ""]
    out += [f"### {t('ua_exclusions')}", "", *paras(a["exclusions_intro"])]
    if a["exclusions"]:
        out += [*md_table([t("ua_col_reason"), t("ua_col_count")], [list(e) for e in a["exclusions"]], "lr"), ""]
    else:
        out += [t("ua_no_exclusions"), ""]
    out += paras(a["flagged"])
    rob = a["robustness"]
    out += [f"### {t('ua_robustness')}", "", *paras(rob["intro"])]
    if rob["warning"]:
        out += [f"> **⚠ {md_escape(t('ua_warning'))}**", ""]
    for f in rob["figures"]:
        extra = ", ".join(x for x in (f["verified"], f["change"]) if x)
        out.append(f"- **{md_escape(f['label'])}**: {md_escape(f['text'])}" + (f" ({md_escape(extra)})" if extra
                                                                             else ""))
    if rob["problem"]:
        out += [f"- {md_escape(x)}" for x in rob["problem"]]
    out += ["", f"### {t('ua_segments')}", "", *paras(t.parts("ua_segments_intro"))]
    rows = [[s["number"] + (" ✓" if s["current"] else ""), s["opened_at"], s["reason"], s["votes"], s["manifest"]]
            for s in a["segments"]]
    out += [*md_table([t("ua_col_segment"), t("ua_col_opened"), t("ua_col_reason"), t("ua_col_votes"),
                        t("ua_col_manifest")], rows, "llllr"), ""]
    if a["ratings"]:
        out += [f"### {t('ua_ratings')}", "", *paras(t.parts("ua_ratings_intro"))]
        rows = [[r["name"], r["usefulness"], r["cost"]] for r in a["ratings"]]
        out += [*md_table([t("team"), t("ua_col_usefulness"), t("ua_col_cost")], rows, "lrr"), ""]
    out += [f"### {t('ua_provenance')}", "", f"- **{t('ua_result_sha')}**: `{md_escape(a['result_sha256'])}`"]
    return [*out, ""]


# ---------------------------------------------------------------- charts


def arena_plots(view: dict) -> dict[str, Markup | None]:
    """The section's charts as inline SVG ("arena_ratings", "arena_pairs"); None without an arena ranking."""
    a = view.get("arena")
    if not a or a["problem"] or not a["rows"]:
        return {"arena_ratings": None, "arena_pairs": None}
    lang = view["lang"]
    return {"arena_ratings": Markup(ratings_chart(a["rows"], lang)),
            "arena_pairs": Markup(pairs_chart(a["rows"], a["matrix"], lang))}


def ratings_chart(rows: list[dict], lang: str) -> str:
    """Two panels sharing the rating axis: raw and style-controlled, each entrant's rating with its interval."""
    from matplotlib.figure import Figure

    import simsa.report.plots as plots

    with plots._quiet("arena-ratings"):
        fig = Figure(figsize=(9.2, 1.3 + 0.42 * len(rows)))
        axes = fig.subplots(1, 2, sharex=True, sharey=True)
        ys = list(range(len(rows)))[::-1]
        values = [v for r in rows for key in ("raw_num", "style_num") if r[key] for v in r[key]]
        low, high = (min(values), max(values)) if values else (900.0, 1100.0)
        pad = max(20.0, 0.08 * (high - low))
        for ax, key, title, color in ((axes[0], "raw_num", "ua_ranking_raw", plots.PALETTE[5]),
                                      (axes[1], "style_num", "ua_ranking_style_controlled", plots.PALETTE[0])):
            for y, row in zip(ys, rows, strict=True):
                found = row[key]
                if not found:
                    continue
                rating, lo, hi = found
                ax.errorbar(rating, y, xerr=[[rating - lo], [hi - rating]], fmt="o", color=color, ecolor=color,
                            elinewidth=2.2, capsize=4, markersize=7, markeredgecolor="white", markeredgewidth=0.8)
                ax.text(rating, y + 0.22, f"{rating:.0f}", ha="center", va="bottom", fontsize=8.5, color=plots.INK)
            ax.set_title(label(title, lang), fontsize=10.5, color=plots.INK)
            ax.set_xlim(low - pad, high + pad)
            ax.grid(axis="x", color=plots.GRID, linewidth=0.7)
            ax.set_axisbelow(True)
            ax.tick_params(axis="y", length=0)
            ax.set_xlabel(label("ua_rating_axis", lang), fontsize=9)
        axes[0].set_ylim(-0.7, len(rows) - 0.3)
        axes[0].set_yticks(ys, [plots.short(r["name"], 28) for r in rows])
        return plots.to_inline_svg(fig, label("ua_plot_ratings", lang))


def pairs_chart(rows: list[dict], matrix: list[list[dict | None]], lang: str) -> str:
    """A heat map of counted votes per pair; each cell also gives the row entrant's wins against the column's."""
    import numpy as np
    from matplotlib.figure import Figure

    import simsa.report.plots as plots

    n = len(rows)
    grid = np.full((n, n), np.nan)
    for i, line in enumerate(matrix):
        for j, cell in enumerate(line):
            if cell is not None:
                grid[i, j] = cell["votes"]
    with plots._quiet("arena-pairs"):
        size = 1.6 + 0.9 * n
        fig = Figure(figsize=(size + 1.6, size))
        ax = fig.add_subplot()
        top = np.nanmax(grid) if np.isfinite(grid).any() else 1.0
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="Blues", vmin=0, vmax=max(top, 1.0) * 1.8)
        for i, line in enumerate(matrix):
            for j, cell in enumerate(line):
                if cell is None:
                    ax.text(j, i, "—", ha="center", va="center", fontsize=9, color=plots.MUTED)
                    continue
                ax.text(j, i, f"{cell['votes']}\n{cell['wins']}–{cell['losses']}", ha="center", va="center",
                        fontsize=8.5, color=plots.INK, linespacing=1.3)
        names = [plots.short(r["name_parts"][0], 18) for r in rows]
        ax.set_xticks(range(n), names, rotation=30, ha="right", fontsize=9)
        ax.set_yticks(range(n), names, fontsize=9)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label(label("ua_col_votes", lang), fontsize=9)
        return plots.to_inline_svg(fig, label("ua_plot_pairs", lang))
