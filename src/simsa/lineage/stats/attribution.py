"""Per-layer attribution of a candidate to several possible parents (merges, frankenmerges), from compare results.

Each ``compare`` result against one parent holds, per component, the evidence matrix (−log10 p of every candidate
layer against every parent layer). For each candidate layer this module lists every parent with significant
evidence (corrected over that parent's layers and over the parents), so a layer-wise merge reads "layers 0–1 from A,
2–3 from B" and a weight-averaged merge "every layer from A and B".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simsa.lineage.stats.localise import PAIR_ALPHA_LOG10
from simsa.lineage.stats.pvalues import sidak_log10

SCHEMA = "simsa.lineage.attribution/1"


def attribute(results: Mapping[str, Mapping[str, Any]]) -> dict:
    """Attribution table from ``{parent label: compare result}`` (all with the same candidate)."""
    parents = list(results)
    cut = PAIR_ALPHA_LOG10 - math.log10(max(1, len(parents)))
    components: dict[str, dict] = {}
    for label, res in results.items():
        for c in res["components"]:
            if not c.get("evidence"):
                continue
            comp = components.setdefault(c["name"], {"layers": {}})
            for i, layer in enumerate(c["candidate_layers"]):
                row = [v for v in c["evidence"][i] if v is not None]
                if not row:
                    continue
                best = min(row)
                j = c["evidence"][i].index(best)
                lp = sidak_log10(best, len(c["reference_layers"]))
                entry = comp["layers"].setdefault(str(layer), {"candidate_layer": layer, "parents": []})
                entry["parents"].append({"parent": label, "reference_layer": c["reference_layers"][j],
                                         "log10_p": round(lp, 3), "significant": lp <= cut})
    for comp in components.values():
        rows = sorted(comp["layers"].values(), key=lambda r: r["candidate_layer"])
        for r in rows:
            r["parents"].sort(key=lambda p: p["log10_p"])
            hits = {p["parent"] for p in r["parents"] if p["significant"]}
            r["from"] = [label for label in parents if label in hits]  # in the order the parents were given
        comp["layers"] = rows
        comp["summary"] = _summary(rows)
    whole = {label: {"verdict": res["verdict"], "log10_p": res["log10_p"]} for label, res in results.items()}
    return {"schema": SCHEMA, "parents": whole, "significance_log10": round(cut, 3), "components": components}


def _summary(rows: list[dict]) -> str:
    """"0–1 from A; 2–3 from B" style text (runs of consecutive layers with the same parents)."""
    parts: list[str] = []
    run: list[dict] = []

    def flush() -> None:
        if not run:
            return
        first, last = run[0]["candidate_layer"], run[-1]["candidate_layer"]
        span = f"{first}" if first == last else f"{first}–{last}"
        src = " + ".join(run[0]["from"]) or "no parent"
        parts.append(f"{span} from {src}")

    for r in rows:
        if run and r["from"] != run[-1]["from"]:
            flush()
            run = []
        run.append(r)
    flush()
    return "; ".join(parts)
