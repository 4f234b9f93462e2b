"""A training-evidence verification as one self-contained HTML page: the verdict, every check with its grade and
numbers, the loss curve against ln(vocabulary size), the distance from step 0, and the tensors that do not fit."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from simsa.report.plots import INK, MUTED, _quiet, standalone_page, to_inline_svg

STATUS_COLOR = {"passed": "#4f9a6e", "failed": "#c0504d", "not applicable": "#8a94a3"}
GRADE_NOTE = {
    "cryptographic": "a hash matches or not",
    "statistical": "a test with a p-value",
    "heuristic": "a rule of thumb; never enough alone",
    "declared": "the team's own record, checked for consistency",
}


def _badge(text: str, color: str) -> str:
    return f'<span class="badge" style="background:{color}">{html.escape(text)}</span>'


def loss_plot(details: Mapping[str, Any]) -> str:
    curve = details.get("loss_curve") or []
    if not curve:
        return ""
    with _quiet("evidence-loss"):
        fig = Figure(figsize=(7.5, 3.2))
        ax = fig.add_subplot()
        ax.plot([p[0] for p in curve], [p[1] for p in curve], color="#2f6fb0", linewidth=1.4, label="logged loss")
        ln_v = float(details["ln_vocab"])
        ax.axhline(ln_v, color=MUTED, linestyle="--", linewidth=1)
        ax.axhspan(ln_v - float(details["tolerance_nats"]), ln_v + float(details["tolerance_nats"]),
                   color="#4f9a6e", alpha=0.12, label="random initialisation: ln V ± 1 nat")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats)")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        ax.set_title("Training loss", color=INK, fontsize=10, loc="left")
        return to_inline_svg(fig, "Training loss against ln(vocabulary size)")


def distance_plot(details: Mapping[str, Any]) -> str:
    points = details.get("points") or []
    if len(points) < 2:
        return ""
    with _quiet("evidence-distance"):
        fig = Figure(figsize=(7.5, 3.0))
        ax = fig.add_subplot()
        ax.plot([p["step"] for p in points], [p["relative"] for p in points], marker="o", color="#8e5bb0",
                linewidth=1.4)
        ax.set_xlabel("step")
        ax.set_ylabel("‖θ − θ₀‖ / ‖θ₀‖")
        ax.set_title("Distance from step 0", color=INK, fontsize=10, loc="left")
        return to_inline_svg(fig, "Relative distance of each checkpoint from step 0")


def _misfits(details: Mapping[str, Any]) -> str:
    bad = [t for t in details.get("tensors", []) if not t.get("passed", True)]
    if not bad:
        return ""
    esc = html.escape
    rows = "".join(
        f"<tr><td><code>{esc(str(t['name']))}</code></td><td>{esc(str(t['kind']))}</td><td>{esc(str(t['declared']))}"
        f"</td><td>{t['mean']:.4g}</td><td>{t['std']:.4g}</td><td>"
        + (f"KS D {t['ks_statistic']}, adjusted log10 p {t['adjusted_log10_p']}" if t["ks_statistic"] is not None
           else f"{t['mismatched']} of {t['values']} values differ") + "</td></tr>" for t in bad[:40])
    more = f"<p class=note>… and {len(bad) - 40} more.</p>" if len(bad) > 40 else ""
    return ("<table><thead><tr><th>tensor</th><th>kind</th><th>declared</th><th>mean</th><th>std</th>"
            f"<th>misfit</th></tr></thead><tbody>{rows}</tbody></table>{more}")


def render_evidence_html(result: Mapping[str, Any]) -> str:
    """The whole page: inline CSS and SVG, every string from the package escaped."""
    esc = html.escape
    ok = bool(result["ok"])
    checks = result["checks"]
    rows = "".join(
        f"<tr><td>{esc(c['title'])}</td><td>{_badge(c['status'], STATUS_COLOR.get(c['status'], MUTED))}</td>"
        f"<td title=\"{esc(GRADE_NOTE.get(c['grade'], ''))}\">{esc(c['grade'])}</td><td>{esc(c['summary'])}</td></tr>"
        for c in checks)
    by_id = {c["id"]: c for c in checks}
    figures = ""
    if "first_loss" in by_id:
        figures += f"<figure>{loss_plot(by_id['first_loss'].get('details', {}))}</figure>"
    if "distance" in by_id:
        figures += f"<figure>{distance_plot(by_id['distance'].get('details', {}))}</figure>"
    misfits = _misfits(by_id["init"].get("details", {})) if "init" in by_id else ""
    verdict = ("<p class=big>" + _badge("passed", STATUS_COLOR["passed"]) + " every check passed or does not apply</p>"
               if ok else "<p class=big>" + _badge("failed", STATUS_COLOR["failed"]) + " "
               + esc(", ".join(by_id[i]["title"] for i in result["failed"])) + "</p>")
    team = f" — team {esc(str(result['team']))}" if result.get("team") else ""
    grades = "".join(f"<li><b>{esc(g)}</b>: {esc(n)}</li>" for g, n in GRADE_NOTE.items())
    body = f"""<p class=note>Package {esc(str(result['package']))}{team};
schema {esc(str(result['schema']))}; verified in {float(result['seconds']):.1f} s.</p>
{verdict}
<h2>Checks</h2>
<table><thead><tr><th>check</th><th>status</th><th>evidence grade</th><th>numbers</th></tr></thead>
<tbody>{rows}</tbody></table>
<ul class=note>{grades}</ul>
<h2>Curves</h2>
{figures or '<p class=note>No loss curve or distances to show.</p>'}
{'<h2>Tensors that do not fit the declared initialisation</h2>' + misfits if misfits else ''}
"""
    return standalone_page(f"simsa evidence: {result['model']}", f"Training evidence: {result['model']}", body)
