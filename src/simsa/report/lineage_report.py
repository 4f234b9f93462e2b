"""The lineage comparison as one self-contained HTML page: summary, validity card, verdicts, evidence heatmaps, side
findings."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from simsa.errors import InputError
from simsa.program.originality import Validity
from simsa.report.plots import INK, MUTED, _quiet, standalone_page, to_inline_svg

if TYPE_CHECKING:
    from matplotlib.patches import Rectangle

VERDICT_COLOR = {"identical": "#8e2c2c", "derived": "#c0504d", "independent": "#4f9a6e", "inconclusive": "#b3963c"}
OUTCOME_COLOR = {"passed": "#4f9a6e", "corrected": "#b3963c", "failed": "#c0504d"}


def evidence_heatmap(component: dict) -> str:
    """−log10 p for every (candidate layer, reference layer) pair, with the chosen layer map outlined."""
    matrix = -np.array([[np.nan if v is None else v for v in row] for row in component["evidence"]], dtype=float)
    cand, ref = component["candidate_layers"], component["reference_layers"]
    with _quiet(component["name"]):
        fig = Figure(figsize=(min(9.0, 2.2 + 0.32 * len(ref)), min(9.0, 1.6 + 0.3 * len(cand))))
        ax = fig.add_subplot()
        shown = np.log10(1.0 + np.clip(matrix, 0, None))
        # The scale always reaches −log10 p = 20, so chance-level cells (p ~ 0.01–0.5) stay pale.
        floor = float(np.log10(21.0))
        top = max(floor, float(np.nanmax(shown))) if np.isfinite(shown).any() else floor
        im = ax.imshow(shown, cmap="Reds", aspect="auto", vmin=0, vmax=top,
                       interpolation="nearest")
        ax.set_xticks(range(len(ref)), [str(r) for r in ref], fontsize=8)
        ax.set_yticks(range(len(cand)), [str(c) for c in cand], fontsize=8)
        ax.set_xlabel("reference layer")
        ax.set_ylabel("candidate layer")
        pos_c = {c: i for i, c in enumerate(cand)}
        pos_r = {r: j for j, r in enumerate(ref)}
        for a, b, _ in component["layer_map"]:
            ax.add_patch(_box(pos_r[b], pos_c[a]))
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        values = [v for v in (0, 1, 10, 100, 1000, 10000) if np.log10(1 + v) <= top + 1e-9]
        bar.set_ticks([float(np.log10(1 + v)) for v in values], labels=[str(v) for v in values])
        bar.set_label("−log10 p", color=INK)
        ax.set_title(component["name"], color=INK, fontsize=10, loc="left")
        return to_inline_svg(fig, f"Evidence heatmap for {component['name']}")


def _box(x: int, y: int) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="#2f9ad0", linewidth=1.6)


def _fmt_p(lp: float | None) -> str:
    if lp is None:
        return "—"
    return f"{lp:.1f}" if lp > -1e300 else "< −1e308"


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _badge(verdict: str) -> str:
    color = VERDICT_COLOR.get(verdict, MUTED)
    return f'<span class="badge" style="background:{color}">{html.escape(verdict)}</span>'


def validity_section(result: Mapping[str, Any], h: str = "h2") -> str:
    """The validity card: the null, the method, the assumptions checked with their outcome, and how often this
    family's unrelated pairs were called derived at this threshold — what an appeal panel weighs the verdict by.
    Every string is escaped; a result without a card (or with an unreadable one) says so instead of failing."""
    esc = html.escape
    head = f'<{h} id="validity">Validity</{h}>'
    try:
        card = Validity.from_result(result)
    except InputError as exc:
        return f"{head}<p class=warn>The validity card is unreadable: {esc(str(exc))}</p>"
    if card is None:
        return (f"{head}<p class=note>Validity card: not recorded (this result was written before simsa recorded "
                "the null's assumption checks and calibration).</p>")
    rows = [[esc(a.check), esc(a.stack or "—"), _outcome(a.outcome), esc(a.detail) or "—",
             esc(a.excluded_text()) or "—"] for a in card.assumptions]
    table = (_table(rows, ["assumption", "stack", "outcome", "detail", "coordinates excluded"]) if rows
             else "<p>No assumption was checked.</p>")
    cal = card.calibration
    source = f" <span class=note>Source: {esc(cal.source)}.</span>" if cal is not None and cal.source else ""
    return (f"{head}<p><b>Null hypothesis:</b> {esc(card.null) or 'not stated'}</p>"
            f"<p><b>Method:</b> {esc(card.method) or 'not stated'}</p>{table}"
            f"<p><b>Calibration:</b> {esc(card.calibration_line)}{source}</p>")


def _outcome(outcome: str) -> str:
    color = OUTCOME_COLOR.get(outcome, MUTED)
    return f'<span class="badge" style="background:{color}">{html.escape(outcome)}</span>'


def render_lineage_html(result: Mapping[str, Any]) -> str:
    """The whole page. Everything is inline (SVG plots, CSS), so the file can be archived or mailed as it is."""
    return standalone_page(f"simsa lineage: {result['verdict']}", "Weight lineage report", render_lineage_body(result))


def render_lineage_body(result: Mapping[str, Any], heading: int = 2) -> str:
    """The report's content without the document around it, for embedding in another page (the web's gate page);
    sections are headed <h`heading`>. Every string from the result is escaped, numbers included, so a hand-edited
    result cannot inject markup; a result missing parts raises KeyError or TypeError."""
    esc = html.escape

    def txt(value: object) -> str:
        return esc(str(value))

    h = f"h{min(max(int(heading), 1), 6)}"
    comps = result["components"]
    comp_rows = []
    for c in comps:
        lm = ", ".join(f"{a}←{b}" for a, b, _ in c["layer_map"][:16]) + (" …" if len(c["layer_map"]) > 16 else "")
        ident = c["identity"]
        comp_rows.append([
            esc(c["name"]), _badge(c["verdict"]), _fmt_p(c["log10_p"]), esc(lm) or "—",
            esc(", ".join(map(str, c.get("unmapped_layers", [])))) or "—",
            f"{txt(ident['identical'])}/{txt(ident['tensors'])}",
            f"{c['matched_fraction']:.0%}" if "matched_fraction" in c else "—",
            esc(c["rule"]),
        ])
    heatmaps = "".join(f"<figure>{evidence_heatmap(c)}</figure>" for c in comps if c.get("evidence"))
    tok = result["tokenizer"]
    tok_html = "<p>Not available: " + esc(str(tok.get("note", ""))) + "</p>"
    if tok.get("available"):
        rows = [["vocabulary sizes", f"{tok['candidate']['size']} / {tok['reference']['size']}"],
                ["shared tokens", str(tok["shared_tokens"])], ["Jaccard", f"{tok['jaccard']:.3f}"],
                ["same-id agreement", f"{tok['same_id_agreement']:.3f}"]]
        if "merges" in tok:
            rows.append(["identical merge prefix", str(tok["merges"]["identical_prefix"])])
        tok_html = (_table([[esc(a), esc(b)] for a, b in rows], ["", "value"])
                    + f"<p class=note>{esc(str(tok['note']))}</p>")
    arch = result["architecture"]
    arch_html = f"<p>{esc(str(arch.get('summary') or arch.get('note', '')))}</p>"
    if arch.get("available") and arch["different"]:
        arch_html += _table([[esc(k), esc(json.dumps(v["candidate"])), esc(json.dumps(v["reference"]))]
                             for k, v in arch["different"].items()], ["field", "candidate", "reference"])
    nv = result["naive"]
    naive_rows = [[esc(r["tensor"]), f"{r['raw_cosine']:.4f}", f"{r['centred_cosine']:.4f}"]
                  for r in nv["norm_gains"][:40]]
    naive_html = (f"<p class=warn><b>{esc(nv['label'].upper())}.</b> {esc(nv['explanation'])}</p>"
                  + (_table(naive_rows, ["norm gain", "raw cosine (naive)", "centred cosine"]) if naive_rows else "")
                  + f"<p>Std-profile correlation: {esc(str(nv['std_profile']['correlation']))}</p>")
    reuse_rows = [[esc(stack), esc(info.get("label") or ("not in the reference" if not info.get("in_reference", True)
                                                        else "not reused")),
                   f"{info['identical_share']:.0%}" if info.get("reused") else "—",
                   f"{info['within_10pct_share']:.0%}" if info.get("reused") else "—",
                   esc(str(info.get("median_relative_difference"))) if info.get("reused") else "—"]
                  for stack, info in (result.get("reuse") or {}).items()]
    reuse_html = _table(reuse_rows, ["stack", "reuse", "tensors identical", "within 10 %",
                                     "median relative difference"]) if reuse_rows else ""
    align_rows = [[esc(stack), esc(a["kind"]), f"{txt(a['candidate_width'])} → {txt(a['reference_width'])}",
                   esc(str(a.get("agreement"))), esc(a["reason"])]
                  for stack, a in (result.get("alignment") or {}).items()]
    align_html = (_table(align_rows, ["stack", "basis map", "widths", "held-out agreement", "why"])
                  + "<p class=note>A map is used only when the held-out agreement of the anchor rows reaches "
                  f"{esc(str(next(iter(result['alignment'].values()))['accept_agreement']))}.</p>"
                  if align_rows else "<p>No layered component needed a basis.</p>")
    if tok.get("summary"):
        tok_html = f"<p>{esc(str(tok['summary']))}</p>" + tok_html
    ident = result["identity"]
    summary = "".join(f"<p>{esc(line)}</p>" for line in str(result["summary"]).splitlines())
    cand, ref = result["candidate"], result["reference"]
    return f"""<p class="big">Verdict: {_badge(result['verdict'])} &nbsp; log10 p = {_fmt_p(result['log10_p'])}</p>
<p>Candidate <code>{txt(cand['path'])}</code> ({txt(cand['model_type'])},
{cand['parameters']:,} parameters) against reference <code>{txt(ref['path'])}</code>
({txt(ref['model_type'])}, {ref['parameters']:,} parameters).</p>
<{h}>In plain words</{h}>{summary}
<p class=note>Rule: {txt(result['rule'])}. Thresholds: {esc('; '.join(map(str, result['thresholds'].values())))}.
{"" if result.get("validity") else "Null hypothesis: the models were initialised independently."}</p>
{validity_section(result, h)}
<{h}>Components</{h}>
{_table(comp_rows, ["component", "verdict", "log10 p", "layer map (candidate←reference)", "no evidence",
                    "identical tensors", "units matched", "rule"])}
<p>Identical tensors overall: {txt(ident['identical'])} of {txt(ident['candidate_tensors'])}
({txt(ident['bit_identical'])} bit for bit).</p>
<{h}>Reuse by stack</{h}>{reuse_html}
<{h}>Residual basis</{h}>{align_html}
<{h} id="evidence">Layer-by-layer evidence</{h}>
<p class=note>Each cell is −log10 p of the hidden-unit test for a candidate layer against a reference layer;
outlined cells are the layer map (monotone runs; a depth-upscaled model restarts a run).</p>
{heatmaps or "<p>No layered component was tested.</p>"}
<{h}>Tokenizer (separate finding)</{h}>{tok_html}
<{h}>Architecture (separate finding)</{h}>{arch_html}
<{h}>Naive statistics</{h}>{naive_html}"""
