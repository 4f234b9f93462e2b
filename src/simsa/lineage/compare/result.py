"""``simsa lineage compare``: candidate vs reference, end to end, assembled into the documented result.

The pieces live beside it: ``sides`` opens a model, ``identity`` finds copied tensors, ``evidence`` runs the hidden-unit
test per component, ``baselines`` computes the naive statistics people quote; the statistics themselves are in
``simsa.lineage.stats``. The result's schema is ``simsa.lineage.compare/1`` (docs/lineage.md).
"""



from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, cast

from simsa.lineage.compare.baselines import naive_baselines
from simsa.lineage.compare.evidence import Prepared, component_evidence, per_expert, upcycled_components
from simsa.lineage.compare.identity import identity_matches
from simsa.lineage.compare.reuse import relative_differences, reuse_label, reuse_summary
from simsa.lineage.compare.schema import CompareResult, ComponentResult, JSONObject, SideIO, SideSummary
from simsa.lineage.compare.sides import Progress, Side, open_side
from simsa.lineage.compare.summary import summarise
from simsa.lineage.compare.validity import validity_card
from simsa.lineage.model.priors import compare_configs
from simsa.lineage.model.tokenizer import compare_vocabularies
from simsa.lineage.stats.correspondence import SamplingSettings
from simsa.lineage.stats.pvalues import sidak_log10
from simsa.lineage.stats.verdict import (
    IDENTICAL,
    Thresholds,
    component_verdict,
    overall_verdict,
)

SCHEMA = "simsa.lineage.compare/1"
# What a component's unit test may add to its entry, in this order (see ``evidence.component_evidence``).
EVIDENCE_KEYS = ("units", "matched_fraction", "pair_threshold_log10", "candidate_layers", "reference_layers",
                 "evidence", "pairs_tested", "pairs", "segments", "reused_reference_layers", "parent_component",
                 "experts")


def _stack_reuse(components: list[ComponentResult], by_comp: dict[str, set[str]], identical: set[str],
                 diffs: dict[str, float]) -> dict[str, JSONObject]:
    """Per stack of the candidate (language model, vision tower, ...): was it reused, and how much was changed."""
    out: dict[str, JSONObject] = {}
    for stack in sorted({c["name"].split(".", 1)[0] for c in components}):
        comps = [c for c in components if c["name"].split(".", 1)[0] == stack]
        descended = [c for c in comps if c["verdict"] in (IDENTICAL, "derived")]
        if not descended:
            in_ref = any(c["tested"] or c["identity"]["identical"] for c in comps)
            out[stack] = {"reused": False, "label": None, "in_reference": in_ref}
            continue
        names = set().union(*(by_comp.get(c["name"], set()) for c in comps))
        summary = reuse_summary(names, identical & names, diffs)
        verdict = IDENTICAL if all(c["verdict"] == IDENTICAL for c in comps) else "derived"
        out[stack] = {"reused": True, "in_reference": True, "components": [c["name"] for c in descended], **summary,
                      "label": reuse_label(verdict, summary)}
    return out


def _io(side: Side) -> SideIO | None:
    """Bytes read vs held (exact for remote files, where it matters); none for a fingerprint, which holds no weights
    to measure a share of."""
    return None if side.fingerprint is not None else cast(SideIO, side.ckpt.io_stats().to_dict())


def _finite(x: float) -> float:
    """JSON has no -inf: a p-value below what a float can hold is reported as the smallest log10 a float can."""
    return -1e308 if math.isinf(x) else round(float(x), 3)


def compare(cand: Side, ref: Side, settings: SamplingSettings | None = None, thresholds: Thresholds | None = None,
            progress: Progress | None = None) -> CompareResult:
    """Compare two opened checkpoints; returns the documented JSON-ready result (typed: ``schema.CompareResult``)."""
    settings = settings or SamplingSettings()
    thresholds = thresholds or Thresholds()
    started = time.perf_counter()
    matches = identity_matches(cand, ref, progress)
    prep = Prepared(cand, ref, settings)
    common = sorted(set(cand.comps) & set(ref.comps))
    upcycled = upcycled_components(cand, ref)
    pairs = [(c, c) for c in common] + [(c, r) for c, (r, _) in upcycled.items()]
    total = sum(max(1, len([k for k in cand.comps[c].layers if k is not None]))
                * max(1, len([k for k in ref.comps[r].layers if k is not None])) for c, r in pairs)
    step = [0]
    unit_results = {name: component_evidence(prep, name, progress, step, total) for name in common}
    for name, (parent, key_map) in upcycled.items():
        ur = component_evidence(prep, name, progress, step, total, ref_name=parent, key_map=key_map)
        if ur.get("tested"):
            ur["parent_component"] = parent
            ur["experts"] = per_expert(prep, name, parent, key_map, ur)
        unit_results[name] = ur

    cand_by_comp = cand.amap.names_by_component()
    ref_by_comp = ref.amap.names_by_component()
    # A fingerprint keeps no full tensors to difference against (identity still comes from its digests).
    diffs = {} if ref.fingerprint is not None else relative_differences(cand.ckpt, cand.amap, ref.ckpt, ref.amap)

    components: list[ComponentResult] = []
    n_tested = sum(1 for ur in unit_results.values() if ur.get("tested"))
    verdicts: dict[str, str] = {}
    untestable: set[str] = set()
    for name in sorted(set(cand_by_comp) | set(unit_results)):
        names = cand_by_comp.get(name, set())
        equal = [n for n in names if n in matches]
        ident = [n for n in equal if matches[n][2]]
        share = len(ident) / len(names) if names else 0.0
        ref_names = ref_by_comp.get(name, set())
        complete = bool(ref_names) and {matches[n][0] for n in equal} == ref_names and len(names) == len(ref_names)
        if complete and ident:
            share = 1.0
        ur = unit_results.get(name, {"tested": False, "reason": "component absent from the reference"
                                     if name not in ref.comps and name not in ref_by_comp
                                     else "no hidden-unit test applies (norm gains, biases, kernels)"})
        lp = ur.get("log10_p") if ur.get("tested") else None
        verdict, rule = component_verdict(lp, int(ur.get("units", 0)), share, complete, thresholds,
                                          float(ur.get("matched_fraction", 0.0)), n_tested)
        if lp is None and verdict not in (IDENTICAL,) and share == 0:
            untestable.add(name)
        verdicts[name] = verdict
        reuse = reuse_summary(names, set(equal), diffs)
        reuse["label"] = reuse_label(verdict, reuse)
        entry: ComponentResult = {
            "name": name,
            "verdict": verdict,
            "rule": rule,
            "log10_p": None if lp is None else round(float(lp), 3),
            "layer_map": ur.get("layer_map", []),
            "unmapped_layers": ur.get("unmapped_layers", []),
            "identity": {"tensors": len(names), "identical": len(ident),
                         "bit_identical": sum(1 for n in ident if matches[n][1] == "bit")},
            "tested": bool(ur.get("tested")),
            "reuse": reuse,
        }
        if not ur.get("tested"):
            entry["reason"] = ur.get("reason")
        extra = {key: ur[key] for key in EVIDENCE_KEYS if key in ur}
        components.append(cast(ComponentResult, {**entry, **extra}) if extra else entry)

    all_identical = bool(matches) and len(matches) == len(cand.ckpt.names()) and len(
        {m[0] for m in matches.values()}) == len(ref.ckpt.names())
    tested = [c["log10_p"] for c in components if c["log10_p"] is not None]
    overall_lp = sidak_log10(min(tested), len(tested)) if tested else 0.0
    verdict, rule = overall_verdict(verdicts, untestable, all_identical, overall_lp, thresholds,
                                    {c["name"]: int(c.get("units", 0)) for c in components if c["tested"]})
    level: Literal["bit", "bf16"] | None = None
    if matches:
        level = "bit" if all(m[1] == "bit" for m in matches.values()) else "bf16"
    result: CompareResult = {
        "schema": SCHEMA,
        "candidate": cast(SideSummary, cand.describe()),
        "reference": cast(SideSummary, ref.describe()),
        "verdict": verdict,
        "rule": rule,
        "log10_p": _finite(overall_lp),
        "components": components,
        "identity": {
            "candidate_tensors": len(cand.ckpt.names()),
            "reference_tensors": len(ref.ckpt.names()),
            "identical": len(matches),
            "identical_informative": sum(1 for m in matches.values() if m[2]),
            "bit_identical": sum(1 for m in matches.values() if m[1] == "bit"),
            "level": level,
        },
        "reuse": _stack_reuse(components, cand_by_comp, set(matches), diffs),
        "alignment": {stack: a.as_dict() for stack, a in sorted(prep.alignments.items())},
        "io": {"candidate": _io(cand), "reference": _io(ref)},
        "tokenizer": compare_vocabularies(cand.vocab, ref.vocab, reasons={"candidate": cand.vocab_reason,
                                                                           "reference": ref.vocab_reason}),
        "architecture": compare_configs(cand.ckpt.config, ref.ckpt.config),
        "naive": naive_baselines(cand, ref),
        "thresholds": thresholds.as_dict(),
        "settings": asdict(settings),
        "unmapped": {"candidate": cand.amap.unmapped, "reference": ref.amap.unmapped},
        "validity": {},
        "summary": "",
        "seconds": 0.0,
    }
    result["validity"] = validity_card(prep.audits, components, result["alignment"], cand.amap, thresholds)
    result["summary"] = summarise(result)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def compare_paths(candidate: str | Path, reference: str | Path, **kwargs: Any) -> CompareResult:
    cand, ref = open_side(candidate), open_side(reference)
    try:
        return compare(cand, ref, **kwargs)
    finally:
        cand.ckpt.close()
        ref.ckpt.close()
