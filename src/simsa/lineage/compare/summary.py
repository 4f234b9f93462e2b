"""A compare result in a few human lines (the terminal's and the report's summary)."""


from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simsa.lineage.stats.verdict import (
    IDENTICAL,
    INDEPENDENT,
)

STACK_NAMES = {"text": "language model", "vision": "vision tower", "audio": "audio encoder",
               "projector": "multimodal projector"}


def _short(name: str) -> str:
    return name.split(".", 1)[1].replace("_", " ") if "." in name else name


def summarise(result: Mapping[str, Any]) -> str:
    """A plain-language paragraph a panel member can read aloud."""
    v = result["verdict"]
    comps = result["components"]
    lines = []
    if v == IDENTICAL:
        level = result["identity"]["level"]
        lines.append("The candidate is the reference: every tensor is identical"
                     + (" at bf16 precision (a dtype cast)." if level == "bf16" else ", bit for bit."))
    elif v == "derived":
        lines.append(f"The candidate was derived from the reference's weights (log10 p = {result['log10_p']:.1f}).")
        for c in comps:
            if c["verdict"] in ("derived", "identical"):
                where = ""
                if c["layer_map"]:
                    where = " — layers " + ", ".join(f"{a}←{b}" for a, b, _ in c["layer_map"][:12])
                    if len(c["layer_map"]) > 12:
                        where += ", …"
                ident = c["identity"]
                extra = f"; {ident['identical']} of {ident['tensors']} tensors identical" if ident["identical"] else ""
                lines.append(f"- {_short(c['name'])} ({c['name']}): {c['verdict']}{where}{extra}.")
                if c.get("unmapped_layers") and c["layer_map"]:
                    lines.append(f"  Layers with no evidence of descent (re-initialised or new): "
                                 f"{', '.join(map(str, c['unmapped_layers']))}.")
                if len(c.get("segments") or []) > 1:
                    runs = "; ".join(f"{a}–{b} ← {x}–{y}" for a, b, x, y in c["segments"])
                    lines.append(f"  Reference layers are used more than once (depth up-scaling): {runs}.")
                if c.get("parent_component"):
                    ex = c.get("experts") or {}
                    lines.append(f"  Upcycled from the reference's {c['parent_component']}"
                                 + (f": {ex['from_parent']} of {len(ex['experts'])} experts tested at layer "
                                    f"{ex['candidate_layer']} descend from it." if ex.get("tested") else "."))
        indep = [c["name"] for c in comps if c["verdict"] == INDEPENDENT]
        if indep:
            lines.append("Parts with no evidence of descent: " + ", ".join(indep) + ".")
    elif v == INDEPENDENT:
        lines.append("No evidence that the candidate was initialised from the reference's weights: the overall "
                     "p-value, corrected for the number of components tested, is consistent with independent "
                     f"initialisation (log10 p = {result['log10_p']:.2f}).")
    else:
        lines.append("The weights neither show descent nor clearly rule it out: " + result["rule"] + ".")
    for stack, info in (result.get("reuse") or {}).items():
        if info.get("reused") and info.get("label"):
            lines.append(f"The {STACK_NAMES.get(stack, stack)} is {info['label']}: {info['identical_share']:.0%} of "
                         f"its {info['tensors']} tensors identical, {info['within_10pct_share']:.0%} within 10 %.")
    tok = result["tokenizer"]
    if tok.get("available"):
        lines.append("Tokenizer (separate finding, never evidence): "
                     + str(tok.get("summary") or f"vocabulary overlap {tok['jaccard']:.0%}").rstrip(".") + ".")
    arch = result["architecture"]
    if arch.get("available"):
        lines.append(f"Architecture (separate finding, never evidence): {arch['summary']}.")
    nv = result["naive"]
    if nv.get("mean_raw_cosine") is not None:
        lines.append(f"Naive norm-gain cosine {nv['mean_raw_cosine']:.3f} vs centred {nv['mean_centred_cosine']:.3f}"
                     " — not evidence either way.")
    return "\n".join(lines)
