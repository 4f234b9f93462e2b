"""Render a stage decision as Markdown, one self-contained HTML page, or JSON.

Markdown and HTML are built from one view model so both formats always say the same thing; the JSON
format re-emits the inputs untouched so anyone can re-check the published numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup

from simsa.errors import InputError
from simsa.program.grades import GRADES
from simsa.report.arena_section import arena_plots, arena_view
from simsa.report.arena_section import markdown as arena_markdown
from simsa.report.formats import (
    DASH,
    fmt_change,
    fmt_deadline,
    fmt_max,
    fmt_points,
    fmt_prob,
    fmt_raw,
    fmt_time,
    num,
    raw_parts,
    table,
    text_or_dash,
)
from simsa.report.labels import LABELS, LANGS, SEPARATOR, label, label_parts, pick, pick_parts
from simsa.report.markdown_blocks import md_escape, md_paragraphs, md_table
from simsa.report.panel_section import markdown as panel_markdown
from simsa.report.panel_section import panel_plots, panel_view

FORMATS = ("md", "html", "json")
REPORT_SCHEMA = "simsa.report/1"
GATE_MARK = {True: "✓", False: "✗", None: DASH}


@dataclass(frozen=True)
class ExtraSection:
    """A section built from records beside the decision (the programme's ecosystem signals), shown after the
    arena's: `html` is a fragment whose outside text is already escaped, `data` what the JSON report carries under
    `key`."""

    key: str
    html: str
    markdown: str
    data: dict


def render_report(
    decision: dict, appeals: list[dict], history: list[dict], fmt: str, lang: str = "both",
    timezone: str | None = None, extra: Sequence[ExtraSection] = (),
) -> str:
    """fmt in {"md","html","json"}; lang in {"en","ko","both"}. Returns the document text.

    Times are shown in `timezone` (an IANA name), else the zone the decision records, else UTC; the JSON format
    keeps every time in UTC and names the display zone.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if lang not in LANGS:
        raise InputError(f"unknown report language {lang!r}; expected one of {', '.join(LANGS)}")
    appeals, history = list(appeals or []), list(history or [])
    zone = timezone or decision.get("timezone") or "UTC"
    if fmt == "json":
        return render_json(decision, appeals, history, zone, extra)
    view = build_view(decision, appeals, history, lang, zone)
    view["extra"] = list(extra)
    if fmt == "md":
        return render_markdown(view)
    return render_html(view)


def render_json(decision: dict, appeals: list[dict], history: list[dict], timezone: str = "UTC",
                extra: Sequence[ExtraSection] = ()) -> str:
    """Machine-readable report: the inputs verbatim (times in UTC), so the published record can be diffed and
    re-checked; `timezone` names the zone the other formats display times in."""
    doc = {"schema": REPORT_SCHEMA, "timezone": timezone, "decision": decision, "appeals": appeals,
           "history": history, **{section.key: section.data for section in extra}}
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True)


# ---------------------------------------------------------------- labels


class _Text:
    """Label lookup bound to one language, shared by the Markdown builder and the HTML template."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **fields: Any) -> str:
        return label(key, self.lang, **fields)

    def parts(self, key: str, **fields: Any) -> list[str]:
        return label_parts(key, self.lang, **fields)


# ---------------------------------------------------------------- view model


def _ranked_teams(decision: dict) -> list[dict]:
    """Teams best first; the decision is already sorted, the sort only guards hand-edited input."""
    teams = [t for t in decision.get("teams") or [] if isinstance(t, dict)]
    order = {id(t): i for i, t in enumerate(teams)}
    return sorted(teams, key=lambda t: (num(t.get("rank")) or float("inf"), order[id(t)]))


def _criteria(decision: dict, lang: str) -> list[dict]:
    out = []
    for c in decision.get("criteria") or []:
        out.append({
            "id": c.get("id"),
            "name": pick(c.get("name"), c.get("name_ko"), lang) or str(c.get("id")),
            "name_parts": pick_parts(c.get("name"), c.get("name_ko"), lang) or [str(c.get("id"))],
            "names": (str(c.get("name") or c.get("id")),
                      str(c.get("name_ko") or c.get("name") or c.get("id"))),
            "max": c.get("points"),
            "depth": int(num(c.get("depth")) or 0),
            "top": c.get("parent") is None,
            "source": c.get("source"),
        })
    return out


def _gate_ids(decision: dict, teams: list[dict]) -> list[str]:
    """Gates in the program file's order where the decision lists them, then any others seen on teams."""
    ids: list[str] = [g.get("id") for g in decision.get("gate_definitions") or [] if g.get("id")]
    for t in teams:
        for gid in _gates(t):
            if gid not in ids:
                ids.append(gid)
    return ids


def gate_name(gate_id: str, lang: str) -> str:
    """Known gates get translated names; others show their id as written in the program file."""
    key = f"gate_{gate_id}"
    return label(key, lang) if key in LABELS else str(gate_id)


def gate_name_parts(gate_id: str, lang: str, titles: dict[str, list[str]] | None = None) -> list[str]:
    """A short gate name for table headers: a known label, else the program file's name, else the id."""
    key = f"gate_{gate_id}"
    if key in LABELS:
        return label_parts(key, lang)
    return (titles or {}).get(gate_id) or [str(gate_id)]


def _gates(team: dict) -> dict:
    gates = team.get("gates")
    return gates if isinstance(gates, dict) else {}


def _gate_state(team: dict, gate_id: str) -> bool | None:
    gate = _gates(team).get(gate_id)
    if not isinstance(gate, dict) or gate.get("passed") is None:
        return None
    return bool(gate.get("passed"))


def _failed_gates(team: dict) -> list[str]:
    return [gid for gid in _gates(team) if _gate_state(team, gid) is False]


def _reason_lines(team: dict, lang: str) -> list[str]:
    en, ko = team.get("reason"), team.get("reason_ko")
    lines = {"en": [en or ko], "ko": [ko or en], "both": [en, ko]}[lang]
    return [str(s) for i, s in enumerate(lines) if s and s not in lines[:i]]


class _Names:
    """Display names for team ids, tolerant of ids that no longer appear in the ranking."""

    def __init__(self, teams: list[dict], lang: str) -> None:
        self.by_id = {t.get("team"): t for t in teams}
        self.lang = lang

    def __call__(self, team_id: Any) -> str:
        return SEPARATOR.join(self.parts(team_id))

    def parts(self, team_id: Any) -> list[str]:
        team = self.by_id.get(team_id)
        if team is None:
            return [str(team_id)]
        return pick_parts(team.get("name"), team.get("name_ko"), self.lang) or [str(team_id)]

    def many(self, ids: Any) -> list[str]:
        return [self(i) for i in ids or []]


def _status_label(status: Any, lang: str) -> str:
    return label(status, lang) if status in ("advanced", "eliminated") else str(status or DASH)


def _header(decision: dict, lang: str, zone: str) -> dict:
    program = decision.get("program") or {}
    prog_en, prog_ko = program.get("name") or program.get("id") or DASH, program.get("name_ko")
    stage_en = decision.get("stage_name") or decision.get("stage") or DASH
    stage_ko = decision.get("stage_name_ko")
    lines = {
        "en": [f"{prog_en} — {stage_en}"],
        "ko": [f"{prog_ko or prog_en} — {stage_ko or stage_en}"],
        "both": [f"{prog_en} — {stage_en}", f"{prog_ko or prog_en} — {stage_ko or stage_en}"],
    }[lang]
    titles = [s for i, s in enumerate(lines) if s not in lines[:i]]
    return {"title": titles[0], "subtitles": titles[1:], "meta": _meta_rows(decision, lang, zone)}


def _deadline(decision: dict, zone: str) -> str:
    """The appeal deadline's day is a day of the zone the decision records (UTC for decisions made before
    decisions recorded one)."""
    return fmt_deadline(decision.get("appeal_deadline"), decision.get("timezone") or "UTC", zone)


def _meta_rows(decision: dict, lang: str, zone: str) -> list[tuple[str, str]]:
    program = decision.get("program") or {}
    did = decision.get("decision_id")
    rows = [
        (label("decision_id", lang), f"#{did}" if did is not None else label("dry_run", lang)),
        (label("decided_at", lang), fmt_time(decision.get("decided_at"), zone)),
        (label("appeal_deadline", lang), _deadline(decision, zone)),
        (label("timezone", lang), zone),
    ]
    if decision.get("supersedes") is not None:
        rows.append((label("supersedes", lang), f"#{decision['supersedes']}"))
    if decision.get("appeal_id") is not None:
        rows.append((label("caused_by_appeal", lang), f"#{decision['appeal_id']}"))
    rows.append((label("program", lang), str(program.get("id") or DASH)))
    rows.append((label("stage", lang), str(decision.get("stage") or DASH)))
    rows.append((label("program_sha256", lang), str(program.get("sha256") or DASH)))
    return rows


def _leaderboard(
    teams: list[dict], top: list[dict], gate_ids: list[str], names: _Names, lang: str
) -> list[dict]:
    rows = []
    for t in teams:
        breakdown = t.get("breakdown") or {}
        cells = []
        for c in top:
            b = breakdown.get(c["id"]) or {}
            cells.append(f"{fmt_points(b.get('points'))} / {fmt_max(b.get('max', c['max']))}")
        gates = [{"state": _gate_state(t, g), "mark": GATE_MARK[_gate_state(t, g)]} for g in gate_ids]
        rows.append({
            "rank": str(t.get("rank") if t.get("rank") is not None else DASH),
            "team_id": str(t.get("team")),
            "name": names(t.get("team")),
            "name_parts": names.parts(t.get("team")),
            "total": fmt_points(t.get("total")),
            "cells": cells,
            "gates": gates,
            "status": t.get("status"),
            "status_label": _status_label(t.get("status"), lang),
        })
    return rows


def _breakdown(teams: list[dict], criteria: list[dict]) -> list[dict]:
    rows = []
    for c in criteria:
        points = [fmt_points(((t.get("breakdown") or {}).get(c["id"]) or {}).get("points")) for t in teams]
        rows.append({**c, "max_text": fmt_max(c["max"]), "points": points})
    return rows


def _gate_titles(decision: dict, lang: str) -> dict[str, list[str]]:
    """Full gate names from the program file, when the decision carries them."""
    out = {}
    for g in decision.get("gate_definitions") or []:
        parts = pick_parts(g.get("name"), g.get("name_ko"), lang)
        if g.get("id") and parts:
            out[g["id"]] = parts
    return out


def _gate_details(teams: list[dict], titles: dict[str, list[str]], names: _Names, lang: str) -> list[dict]:
    out = []
    for t in teams:
        items = []
        for gid, g in _gates(t).items():
            g = g if isinstance(g, dict) else {}
            state = _gate_state(t, gid)
            evidence = _in_lang(g.get("evidence"), g.get("evidence_ko"), lang)
            items.append({
                "name": SEPARATOR.join(titles.get(gid) or gate_name_parts(gid, lang)),
                "name_parts": titles.get(gid) or gate_name_parts(gid, lang),
                "example": bool(g.get("example")),
                "state": state,
                "mark": GATE_MARK[state],
                "result": {True: label("passed", lang), False: label("failed", lang), None: DASH}[state],
                "evidence": SEPARATOR.join(evidence) or DASH,
                "evidence_parts": evidence or [DASH],
                "link": str(g["link"]) if g.get("link") else None,
                "source": _gate_source(g.get("source"), lang),
                "source_is_id": bool(g.get("source")) and str(g.get("source")) not in GATE_SOURCES,
                "grade": _grade_label(g.get("grade"), lang),
                "override_reason": str(g["override_reason"]) if g.get("override_reason") else None,
            })
        out.append({
            "name": names(t.get("team")),
            "name_parts": names.parts(t.get("team")),
            "rank": str(t.get("rank") or DASH),
            "items": items,
        })
    return out


def _grade_label(grade: Any, lang: str) -> str | None:
    """An evidence grade in the report's language (decisions made before grades carry none)."""
    return label(f"grade_{grade}", lang) if grade in GRADES else None


def _in_lang(en: Any, ko: Any, lang: str) -> list[str]:
    """A recorded text and its Korean variant as the language asks; "both" gives each when they differ."""
    return pick_parts(en, ko, lang)


GATE_SOURCES = {"recorded": "gate_source_recorded", "program file": "gate_source_program_file"}


def _gate_source(source: Any, lang: str) -> str | None:
    """Where a gate result came from: known kinds in words, a score source by its id."""
    if not source:
        return None
    key = GATE_SOURCES.get(str(source))
    return label(key, lang) if key else str(source)


def _rule_lines(elimination: dict, lang: str) -> list[list[str]]:
    """One entry per rule, each holding the sentence in every requested language."""
    rules = []
    pool = elimination.get("ranking_pool")
    if pool in ("all", "eligible"):
        rules.append(label_parts(f"pool_{pool}", lang))
    if elimination.get("advance_best") is not None:
        rules.append(label_parts("rule_advance_best", lang, n=elimination["advance_best"]))
    if elimination.get("cut_lowest") is not None:
        rules.append(label_parts("rule_cut_lowest", lang, n=elimination["cut_lowest"]))
    if elimination.get("min_total") is not None:
        rules.append(label_parts("rule_min_total", lang, x=fmt_points(elimination["min_total"])))
    tie = elimination.get("tie_at_cut")
    if tie:
        tie_text = LABELS["tie_advance_all"] if tie == "advance_all" else str(tie)
        rules.append(label_parts("rule_tie_at_cut", lang, v=tie_text))
    return rules


def _rules(decision: dict, criteria: list[dict], lang: str) -> list[list[str]]:
    rules = _rule_lines(decision.get("elimination") or {}, lang)
    tie_breakers = _tie_breaker_rule(decision.get("tie_breakers"), criteria, lang)
    return [*rules, tie_breakers] if tie_breakers else rules


def _tie_breaker_rule(tie_breakers: Any, criteria: list[dict], lang: str) -> list[str] | None:
    """The tie-breaker chain in words; criterion names come from the criteria tree."""
    if not isinstance(tie_breakers, list) or not tie_breakers:
        return None
    by_id = {c["id"]: c for c in criteria}
    en, ko = [], []
    for tb in map(str, tie_breakers):
        kind, _, ref = tb.partition(":")
        if kind == "criterion" and ref in by_id:
            c = by_id[ref]
            pair = tuple(LABELS["tb_criterion"][i].format(v=c["names"][i]) for i in (0, 1))
        elif f"tb_{tb}" in LABELS:
            pair = LABELS[f"tb_{tb}"]
        else:
            pair = (tb, tb)
        en.append(pair[0])
        ko.append(pair[1])
    return label_parts("rule_tie_breakers", lang, v=(", ".join(en), ", ".join(ko)))


def _decision(decision: dict, teams: list[dict], criteria: list[dict], names: _Names, lang: str, zone: str) -> dict:
    by_id = names.by_id
    advanced = decision.get("advanced")
    if advanced is None:
        advanced = [t.get("team") for t in teams if t.get("status") == "advanced"]
    eliminated_ids = decision.get("eliminated")
    if eliminated_ids is None:
        eliminated_ids = [t.get("team") for t in teams if t.get("status") == "eliminated"]
    eliminated = []
    for tid in eliminated_ids:
        t = by_id.get(tid) or {}
        eliminated.append({
            "name": names(tid),
            "name_parts": names.parts(tid),
            "rank": str(t.get("rank") or DASH),
            "total": fmt_points(t.get("total")),
            "reason": _reason_lines(t, lang),
        })
    tie_breaks = [(names(t.get("team")), SEPARATOR.join(_in_lang(t.get("tie_break"), t.get("tie_break_ko"), lang)))
                  for t in teams if t.get("tie_break") or t.get("tie_break_ko")]
    return {
        "advanced": names.many(advanced),
        "eliminated": eliminated,
        "title_holders": names.many(decision.get("title_holders")),
        "appeal_deadline": _deadline(decision, zone),
        "appeal_deadline_day": text_or_dash(decision.get("appeal_deadline")),
        "rules": _rules(decision, criteria, lang),
        "tie_breaks": tie_breaks,
    }


def _resampling(res: dict | None, teams: list[dict], names: _Names, lang: str) -> dict | None:
    if not isinstance(res, dict):
        return None
    per_team = res.get("teams") or {}
    rows = []
    for t in teams:
        r = per_team.get(t.get("team")) or {}
        rows.append({
            "name": names(t.get("team")),
            "name_parts": names.parts(t.get("team")),
            "status": t.get("status"),
            "status_label": _status_label(t.get("status"), lang),
            "p_flip": fmt_prob(r.get("p_status_flip")),
            "p_flip_value": num(r.get("p_status_flip")),
            "p_rank": fmt_prob(r.get("p_rank_change")),
        })
    facts = [(label(key, lang), text_or_dash(res.get(key)))
             for key in ("draws", "seed", "sources_with_uncertainty", "sources_without_uncertainty")]
    return {
        "p_decision": fmt_prob(res.get("p_decision_changes")),
        "facts": facts,
        "note": _resampling_note(res, lang),
        "teams": rows,
    }


def _resampling_note(res: dict, lang: str) -> str | None:
    """The analysis's caveat in the report's language, chosen from the recorded facts it states."""
    if not res.get("note"):
        return None
    if num(res.get("sources_with_uncertainty")) == 0:
        return label("note_no_stderr", lang)
    if num(res.get("draws")) == 0:
        return label("note_no_draws", lang)
    return label("note_held_fixed", lang)


def _smallest_change(cat: dict) -> tuple[float | None, str]:
    """The smaller of the two directions, with its sign, for the sensitivity chart and table."""
    both = ((num(cat.get("increase_pct")), "+"), (num(cat.get("decrease_pct")), "−"))
    options = [(abs(v), sign) for v, sign in both if v is not None]
    if not options:
        return None, ""
    value, sign = min(options)
    return value, sign


def _weights(w: dict | None, criteria: list[dict], names: _Names, lang: str) -> dict | None:
    if not isinstance(w, dict):
        return None
    crit_names = {c["id"]: c for c in criteria}
    searched = num(w.get("searched_up_to_pct"))
    searched_text = fmt_max(searched if searched is not None else 100.0)
    none_text = label("none_within", lang, pct=searched_text)
    rows = []
    for cat in w.get("categories") or []:
        value, sign = _smallest_change(cat)
        crit = crit_names.get(cat.get("criterion"))
        rows.append({
            "name": crit["name"] if crit else str(cat.get("criterion")),
            "name_parts": crit["name_parts"] if crit else [str(cat.get("criterion"))],
            "increase": fmt_change(cat.get("increase_pct"), "+"),
            "decrease": fmt_change(cat.get("decrease_pct"), "−"),
            "smallest_value": value,
            "smallest": fmt_change(value, sign) if value is not None else f"> {searched_text}%",
            "flips": ", ".join(names.many(cat.get("flips"))) or DASH,
        })
    min_abs = num(w.get("min_abs_pct"))
    return {
        "rows": rows,
        "min_abs": f"±{min_abs:.1f}%" if min_abs is not None else none_text,
        "searched": f"±{searched_text}%",
        "searched_value": searched if searched is not None else 100.0,
        "method": label("weights_method", lang) if w.get("method") else None,
    }


def _cuts(cuts: Any, names: _Names, lang: str) -> list[dict] | None:
    if not isinstance(cuts, list):
        return None
    rows = []
    for c in cuts:
        cause = c.get("cause")
        cause_text = label(f"cause_{cause}", lang) if cause in ("points", "gate") else str(cause or DASH)
        failed = [gate_name(g, lang) for g in c.get("gates_failed") or []]
        if failed:
            cause_text = f"{cause_text}: {', '.join(failed)}"
        change = num(c.get("min_weight_change_pct"))
        rows.append({
            "name": names(c.get("team")),
            "name_parts": names.parts(c.get("team")),
            "cause": cause_text,
            "margin": fmt_points(c.get("margin_points")),
            "p_changes": fmt_prob(c.get("p_changes")),
            "min_weight": f"±{change:.1f}%" if change is not None else DASH,
        })
    return rows


def _robustness(decision: dict, teams: list[dict], criteria: list[dict], names: _Names, lang: str) -> dict:
    rob = decision.get("robustness")
    rob = rob if isinstance(rob, dict) else {}
    view: dict[str, Any] = {
        "resampling": _resampling(rob.get("resampling"), teams, names, lang),
        "weights": _weights(rob.get("weights"), criteria, names, lang),
        "cuts": _cuts(rob.get("cuts"), names, lang),
    }
    view["available"] = any(v is not None for v in view.values())
    return view


def _fragile(decision: dict) -> dict | None:
    """The warning readers must see first: the decision says it is fragile under score uncertainty."""
    rob = decision.get("robustness")
    if not isinstance(rob, dict) or rob.get("fragile") is not True:
        return None
    res = table(rob.get("resampling"))
    return {"p": fmt_prob(res.get("p_decision_changes")), "threshold": fmt_prob(rob.get("fragile_above"))}


def _raw_scores(teams: list[dict], criteria: list[dict], lang: str) -> list[dict]:
    """Per leaf criterion (one score source each): every team's mean ± standard error (n), as recorded."""
    rows = []
    for c in criteria:
        if not c["source"]:
            continue
        cells = []
        for t in teams:
            b = (t.get("breakdown") or {}).get(c["id"]) or {}
            value, detail = raw_parts(b.get("raw"), b.get("stderr"), b.get("n"))
            cells.append({"text": fmt_raw(b.get("raw"), b.get("stderr"), b.get("n")), "value": value,
                          "detail": detail})
        grades = {((t.get("breakdown") or {}).get(c["id"]) or {}).get("grade") for t in teams} - {None}
        rows.append({"name": c["name"], "name_parts": c["name_parts"], "source": str(c["source"]),
                     "cells": cells, "grade": _grade_label(min(grades, key=GRADES.index), lang) if grades else None})
    return rows


def _appeals(appeals: list[dict], names: _Names, lang: str, zone: str) -> list[dict]:
    out = []
    for a in sorted(appeals, key=lambda a: (num(a.get("id")) or 0)):
        status = a.get("status")
        key = f"appeal_{status}"
        new_id = a.get("new_decision_id")
        out.append({
            "id": str(a.get("id")),
            "team": names(a.get("team")),
            "team_parts": names.parts(a.get("team")),
            "filed_at": fmt_time(a.get("filed_at"), zone),
            "status": str(status),
            "status_label": label(key, lang) if key in LABELS else str(status or DASH),
            "grounds": text_or_dash(a.get("grounds")),
            "resolved_at": fmt_time(a.get("resolved_at"), zone),
            "resolution": text_or_dash(a.get("resolution")),
            "new_decision": f"#{new_id}" if new_id is not None else DASH,
        })
    return out


def _voided(decision: dict, names: _Names, lang: str, zone: str) -> list[dict]:
    """Voids in force when the decision was made: what was voided, by whom, when and why."""
    out = []
    for v in decision.get("voided") or []:
        out.append({
            "record": f"{label('voided_kind_' + str(v.get('kind')), lang)} #{v.get('voids')}",
            "team": names(v.get("team")),
            "what": text_or_dash(v.get("what")) + (f" ({label('voided_rater', lang)} {v['rater']})"
                                                   if v.get("rater") else ""),
            "reason": text_or_dash(v.get("reason")),
            "at": fmt_time(v.get("at"), zone),
            "by": text_or_dash(v.get("by")),
        })
    return out


def _history(history: list[dict], decision: dict, teams: list[dict], names: _Names, lang: str,
             zone: str) -> list[dict]:
    current = set(decision.get("advanced") or [t.get("team") for t in teams if t.get("status") == "advanced"])
    out = []
    for h in sorted(history, key=lambda h: (num(h.get("decision_id")) or 0)):
        before = set(h.get("advanced") or [])
        known = before | set(h.get("eliminated") or [])
        gained = [tid for tid in names.by_id if tid in current and tid not in before and tid in known]
        lost = [tid for tid in names.by_id if tid in before and tid not in current]
        changes = [f"{names(t)}: {label('now_advancing', lang)}" for t in gained]
        changes += [f"{names(t)}: {label('now_eliminated', lang)}" for t in lost]
        appeal = h.get("appeal_id")
        out.append({
            "id": f"#{h.get('decision_id')}",
            "decided_at": fmt_time(h.get("decided_at"), zone),
            "advanced": ", ".join(names.many(h.get("advanced"))) or DASH,
            "eliminated": ", ".join(names.many(h.get("eliminated"))) or DASH,
            "appeal": f"#{appeal}" if appeal is not None else DASH,
            "changes": changes or [label("unchanged", lang)],
        })
    return out


def build_view(decision: dict, appeals: list[dict], history: list[dict], lang: str, zone: str = "UTC") -> dict:
    """Everything both document formats show, already localised and formatted, but not yet escaped."""
    teams = _ranked_teams(decision)
    names = _Names(teams, lang)
    criteria = _criteria(decision, lang)
    top = [c for c in criteria if c["top"]]
    gate_ids = _gate_ids(decision, teams)
    titles = _gate_titles(decision, lang)
    return {
        "lang": lang,
        "html_lang": "en" if lang == "en" else "ko",
        "example_data": bool(decision.get("example_data")),
        "header": _header(decision, lang, zone),
        "fragile": _fragile(decision),
        "top": top,
        "gate_names": [SEPARATOR.join(gate_name_parts(g, lang, titles)) for g in gate_ids],
        "gate_name_parts": [gate_name_parts(g, lang, titles) for g in gate_ids],
        "leaderboard": _leaderboard(teams, top, gate_ids, names, lang),
        "team_names": [names(t.get("team")) for t in teams],
        "team_name_parts": [names.parts(t.get("team")) for t in teams],
        "breakdown": _breakdown(teams, criteria),
        "raw_scores": _raw_scores(teams, criteria, lang),
        "gate_details": _gate_details(teams, titles, names, lang),
        "decision": _decision(decision, teams, criteria, names, lang, zone),
        "robustness": _robustness(decision, teams, criteria, names, lang),
        "voided": _voided(decision, names, lang, zone),
        "appeals": _appeals(appeals, names, lang, zone),
        "history": _history(history, decision, teams, names, lang, zone),
        "panel": panel_view(decision, names.parts, lang, [t.get("team") for t in teams]),
        "arena": arena_view(decision, names.parts, lang, zone),
        "schema": str(decision.get("schema") or "simsa.decision/1"),
        "_teams": teams,
    }


# ---------------------------------------------------------------- Markdown


def _md_header(v: dict, t: _Text) -> list[str]:
    h = v["header"]
    out = [f"# {md_escape(h['title'])}", ""]
    if h["subtitles"]:
        out += [*[f"**{md_escape(s)}**" for s in h["subtitles"]], ""]
    out += [f"*{t('report_title')}*", ""]
    if v["fragile"]:
        detail = t.parts("fragile_detail", **v["fragile"])
        out += [f"> **⚠ {t('fragile_title')}**", *[f">\n> {p}" for p in detail], ""]
    if v["example_data"]:
        out += [f"> **⚠ {t('example_notice')}**", *[f">\n> {p}" for p in t.parts("example_detail")], ""]
    out += [f"## {t('summary')}", ""]
    out += [f"- **{k}**: {md_escape(val)}" for k, val in h["meta"]]
    return [*out, ""]


def _md_leaderboard(v: dict, t: _Text) -> list[str]:
    header = [t("rank"), t("team"), t("total"), *[c["name"] for c in v["top"]], *v["gate_names"], t("status")]
    align = "rlr" + "r" * len(v["top"]) + "c" * len(v["gate_names"]) + "l"
    rows = [[r["rank"], r["name"], r["total"], *r["cells"], *[g["mark"] for g in r["gates"]],
             r["status_label"]] for r in v["leaderboard"]]
    note = md_paragraphs(t.parts("leaderboard_note"))
    return [f"## {t('leaderboard')}", "", *md_table(header, rows, align), "", *note]


def _md_breakdown(v: dict, t: _Text) -> list[str]:
    if not v["breakdown"]:
        return []
    header = [t("criterion"), t("max_points"), *v["team_names"]]
    rows = []
    for c in v["breakdown"]:
        indent = "\u00a0\u00a0" * max(c["depth"] - 1, 0) + ("↳ " if c["depth"] else "")
        rows.append([indent + c["name"], c["max_text"], *c["points"]])
    align = "lr" + "r" * len(v["team_names"])
    return [f"## {t('points_by_criterion')}", "", *md_table(header, rows, align), ""]


def _md_raw_scores(v: dict, t: _Text) -> list[str]:
    if not v["raw_scores"]:
        return []
    header = [t("criterion"), t("score_source"), *v["team_names"]]
    rows = [[r["name"], r["source"] + (f" ({r['grade']})" if r["grade"] else ""), *[c["text"] for c in r["cells"]]]
            for r in v["raw_scores"]]
    align = "ll" + "r" * len(v["team_names"])
    intro = md_paragraphs(t.parts("raw_scores_intro"))
    return [f"## {t('raw_scores')}", "", *intro, *md_table(header, rows, align), ""]


def _md_gates(v: dict, t: _Text) -> list[str]:
    out = [f"## {t('gate_results')}", "", *md_paragraphs(t.parts("grades_note"))]
    for team in v["gate_details"]:
        out += [f"### {md_escape(team['rank'])}. {md_escape(team['name'])}", ""]
        if not team["items"]:
            out += [t("no_gates"), ""]
            continue
        for g in team["items"]:
            name, evidence = md_escape(g["name"]), md_escape(g["evidence"])
            result = f"{g['result']}, {t('example_mark')}" if g["example"] else g["result"]
            out.append(f"- {g['mark']} **{name}** ({result}): {evidence}")
            extra = [f"{t('source')}: {md_escape(g['source'])}" if g["source"] else "",
                     f"{t('evidence_grade')}: {md_escape(g['grade'])}" if g["grade"] else "",
                     f"{t('link')}: {md_escape(g['link'])}" if g["link"] else "",
                     f"{t('override_reason')}: {md_escape(g['override_reason'])}" if g["override_reason"] else ""]
            if any(extra):
                out.append("  " + " · ".join(e for e in extra if e))
        out.append("")
    return out


def _md_decision(v: dict, t: _Text) -> list[str]:
    d = v["decision"]
    none = t("none")
    out = [f"## {t('decision')}", ""]
    out.append(f"- **{t('advancing_teams')}**: {md_escape(', '.join(d['advanced']) or none)}")
    out.append(f"- **{t('eliminated_teams')}**:{'' if d['eliminated'] else ' ' + none}")
    for e in d["eliminated"]:
        out.append(f"  - **{md_escape(e['name'])}** ({t('rank')} {md_escape(e['rank'])}, "
                   f"{t('total')} {e['total']})")
        out += [f"    - {md_escape(line)}" for line in e["reason"]]
    out.append(f"- **{t('title_holders')}**: {md_escape(', '.join(d['title_holders']) or none)}")
    out.append(f"- **{t('appeal_deadline')}**: {md_escape(d['appeal_deadline'])}")
    if d["rules"]:
        out.append(f"- **{t('elimination_rule')}**:")
        out += ["  - " + "\n    ".join(md_escape(line) for line in rule) for rule in d["rules"]]
    for name, text in d["tie_breaks"]:
        out.append(f"- **{t('tie_breaks')}** — {md_escape(name)}: {md_escape(text)}")
    return [*out, ""]


def _md_robustness(v: dict, t: _Text) -> list[str]:
    r = v["robustness"]
    out = [f"## {t('robustness')}", ""]
    if not r["available"]:
        return [*out, t("robustness_missing"), ""]
    out += [f"### {t('resampling')}", ""]
    res = r["resampling"]
    if res is None:
        out += [t("not_computed"), ""]
    else:
        out += [f"**{t('p_decision_changes')}: {res['p_decision']}**", ""]
        out += [f"- {k}: {md_escape(val)}" for k, val in res["facts"]]
        if res["note"]:
            out.append(f"- {t('note')}: {md_escape(res['note'])}")
        rows = [[x["name"], x["status_label"], x["p_flip"], x["p_rank"]] for x in res["teams"]]
        header = [t("team"), t("status"), t("p_status_flip"), t("p_rank_change")]
        out += ["", *md_table(header, rows, "llrr"), ""]
    out += _md_weights(r["weights"], t)
    out += [f"### {t('cuts')}", ""]
    if r["cuts"] is None:
        return [*out, t("not_computed"), ""]
    rows = [[c["name"], c["cause"], c["margin"], c["p_changes"], c["min_weight"]] for c in r["cuts"]]
    header = [t("team"), t("cause"), t("margin_points"), t("p_changes"), t("min_weight_change")]
    return [*out, *md_table(header, rows, "llrrr"), ""]


def _md_weights(w: dict | None, t: _Text) -> list[str]:
    out = [f"### {t('weights')}", ""]
    if w is None:
        return [*out, t("not_computed"), ""]
    out += [f"**{t('min_abs_pct')}: {w['min_abs']}**", "", *md_paragraphs(t.parts("weights_intro"))]
    rows = [[x["name"], x["increase"], x["decrease"], x["smallest"], x["flips"]] for x in w["rows"]]
    header = [t("criterion"), t("weight_increase"), t("weight_decrease"), t("smallest_change"), t("flips")]
    out += [*md_table(header, rows, "lrrrl"), "", f"- {t('searched_range')}: {w['searched']}"]
    if w["method"]:
        out.append(f"- {t('method')}: {md_escape(w['method'])}")
    return [*out, ""]


def _md_voided(v: dict, t: _Text) -> list[str]:
    if not v["voided"]:
        return []
    header = [t("voided_record"), t("team"), t("voided_what"), t("voided_reason"), t("voided_at")]
    rows = [[x["record"], x["team"], x["what"], x["reason"], f"{x['at']} ({x['by']})"] for x in v["voided"]]
    return [f"## {t('voided')}", "", md_escape(t("voided_note")), "", *md_table(header, rows, "lllll"), ""]


def _md_appeals(v: dict, t: _Text) -> list[str]:
    out = [f"## {t('appeals')}", ""]
    if not v["appeals"]:
        return [*out, t("no_appeals"), ""]
    for a in v["appeals"]:
        title = f"{t('appeal')} #{a['id']} — {a['team']} — {a['status_label']}"
        out += [f"### {md_escape(title)}", ""]
        out += [
            f"- **{t('filed_at')}**: {md_escape(a['filed_at'])}",
            f"- **{t('grounds')}**: {md_escape(a['grounds'])}",
            f"- **{t('resolved_at')}**: {md_escape(a['resolved_at'])}",
            f"- **{t('resolution')}**: {md_escape(a['resolution'])}",
            f"- **{t('new_decision')}**: {md_escape(a['new_decision'])}",
            "",
        ]
    return out


def _md_history(v: dict, t: _Text) -> list[str]:
    out = [f"## {t('history')}", ""]
    if not v["history"]:
        return [*out, t("no_history"), ""]
    header = [t("decision_id"), t("decided_at"), t("advancing_teams"), t("eliminated_teams"), t("appeal"),
              t("changes_since")]
    rows = [[h["id"], h["decided_at"], h["advanced"], h["eliminated"], h["appeal"], "; ".join(h["changes"])]
            for h in v["history"]]
    return [*out, *md_table(header, rows, "llllll"), ""]


def _md_extra(v: dict, t: _Text) -> list[str]:
    return [line for section in v.get("extra") or () for line in [section.markdown, ""]]


def render_markdown(view: dict) -> str:
    """Plain-text-readable Markdown: tables and lists only, so it reads the same raw or rendered."""
    t = _Text(view["lang"])
    parts = [_md_header, _md_leaderboard, _md_breakdown, _md_raw_scores, _md_gates, _md_decision, _md_robustness,
             panel_markdown, arena_markdown, _md_extra, _md_voided, _md_appeals, _md_history]
    lines: list[str] = []
    for part in parts:
        lines += part(view, t)
    lines += ["---", "", f"{t('generated_by')} · {md_escape(view['schema'])} → {REPORT_SCHEMA}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- HTML


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("simsa.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _plot_markup(view: dict) -> dict[str, Markup | None]:
    """Charts as inline SVG; matplotlib escapes every text node, so the markup is safe to embed.

    matplotlib is imported here, not at module level, so commands that never draw start quickly.
    """
    import simsa.report.plots as plots

    lang = view["lang"]
    points = plots.points_chart(_points_rows(view), [(c["name_parts"], c["max"]) for c in view["top"]], lang)
    rob = view["robustness"]
    flips = None
    if rob["resampling"] is not None:
        flips = [(x["name"], x["p_flip_value"]) for x in rob["resampling"]["teams"]]
    weights = None
    if rob["weights"] is not None:
        weights = [(x["name_parts"], x["smallest_value"], x["smallest"]) for x in rob["weights"]["rows"]]
    searched = rob["weights"]["searched_value"] if rob["weights"] else 100.0
    robustness = plots.robustness_chart(flips, weights, searched, lang)
    return {"points": Markup(points), "robustness": Markup(robustness) if robustness else None,
            **panel_plots(view), **arena_plots(view)}


def plot_markup(view: dict) -> dict[str, Markup | None]:
    """The report's charts for a view from `build_view` ("points" and "robustness", the latter None when nothing
    was computed), as inline SVG that is safe to embed in another page (the web's stage page shows them)."""
    return _plot_markup(view)


def _points_rows(view: dict) -> list[dict]:
    rows = []
    for team, row in zip(view["_teams"], view["leaderboard"], strict=True):
        breakdown = team.get("breakdown") or {}
        rows.append({
            "name": row["name"],
            "rank": row["rank"],
            "total": num(team.get("total")),
            "points": [num((breakdown.get(c["id"]) or {}).get("points")) or 0.0 for c in view["top"]],
            "eliminated": team.get("status") == "eliminated",
            "failed_gates": [gate_name(g, view["lang"]) for g in _failed_gates(team)],
        })
    return rows


def render_html(view: dict) -> str:
    """One offline page: inline CSS and SVG, no scripts, every untrusted string autoescaped."""
    template = _environment().get_template("report.html.j2")
    t = _Text(view["lang"])
    extra = [Markup(section.html) for section in view.get("extra") or ()]  # escaped where it was built
    return template.render(v=view, t=t, plots=_plot_markup(view), report_schema=REPORT_SCHEMA, extra=extra)
