"""The validity card: what an appeal panel needs to weigh a lineage verdict (pure; reads one packaged JSON file).

A verdict alone does not say how much it can be trusted. The card states the null hypothesis the p-value is computed
under, the assumptions the test relies on with the outcome of checking each one *for this pair*, and how often this
family of models was wrongly called ``derived`` at this threshold in the hard-negative calibration
(``benchmarks/lineage_calibration.py``), with the number of hard negatives behind the figure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from simsa.lineage.model.roles import ArchitectureMap
from simsa.lineage.stats.exchangeability import REASONS, StackAudit
from simsa.lineage.stats.verdict import Thresholds

CALIBRATION_FILE = "calibration.json"
CALIBRATION_COMMAND = "benchmarks/lineage_calibration.py"
ENCODER_ADAPTERS = {"bert", "vit", "clip", "clip_vision", "qwen2_vl_vision"}
NULL = ("the candidate's weights were initialised independently of the reference's; then, after leaving out the "
        "residual coordinates the audit flags, the candidate's residual coordinates are exchangeable, so permuting "
        "them draws the statistic's null distribution")
METHOD = ("randomisation test: each unit's best cosine with the reference's units, observed vs. under random "
          "permutations of the candidate's exchangeable residual coordinates; Student-t prediction interval over the "
          "draws per layer pair; Šidák over reference layers, the Cauchy combination over candidate layers (valid "
          "under the dependence the shared permutation creates), Šidák over components")


def family(amap: ArchitectureMap, components: list[str]) -> str:
    """The calibration family of a model: ``moe``, ``encoder`` or ``dense decoder``."""
    if any(c.endswith((".experts", ".shared_experts")) for c in components):
        return "moe"
    if amap.adapter in ENCODER_ADAPTERS:
        return "encoder"
    return "dense decoder"


@lru_cache(maxsize=1)
def calibration_table() -> dict | None:
    """The packaged calibration figures (None when the bench has not written them)."""
    try:
        text = resources.files("simsa.lineage.compare").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None
    data = json.loads(text)
    return data if isinstance(data, dict) and isinstance(data.get("families"), dict) else None


def calibration_for(fam: str, thresholds: Thresholds) -> dict | None:
    """The measured false-positive figures of ``fam`` at the verdict threshold, or None when there are none."""
    table = calibration_table()
    if table is None:
        return None
    entry = table["families"].get(fam)
    if not isinstance(entry, dict) or table.get("threshold_log10") != -thresholds.derived_log10:
        return None
    return {"family": fam, "threshold_log10": -thresholds.derived_log10,
            "hard_negatives": entry.get("hard_negatives"), "models": entry.get("models"),
            "derived": entry.get("derived"), "false_positive_rate": entry.get("false_positive_rate"),
            "upper_95": entry.get("upper_95"), "inconclusive_rate": entry.get("inconclusive_rate"),
            "adversarial_nulls": table.get("adversarial_nulls"),
            "source": f"{table.get('command', CALIBRATION_COMMAND)} ({table.get('created', 'undated')})"}


def _coordinate_check(a: StackAudit) -> dict:
    ref = a.reference
    counts = dict(a.candidate.counts())
    if ref is not None and ref.width == a.candidate.width:  # the union, each coordinate under its first reason
        seen: set[int] = set()
        for reason in REASONS:
            both = (a.candidate.flagged.get(reason, frozenset()) | ref.flagged.get(reason, frozenset())) - seen
            counts[reason] = len(both)
            seen |= both
    elif ref is not None:  # different bases (a mapped candidate against a fingerprint's kept coordinates)
        for reason, n in ref.counts().items():
            counts[reason] += n
    outcome = "corrected" if a.excluded else "passed"
    if a.excluded:
        detail = (f"{a.excluded} of {a.width} residual coordinates are not exchangeable in one or both models "
                  f"({', '.join(f'{n} {r}' for r, n in counts.items() if n)}) and were left out of the permutation; "
                  f"the test used {a.kept}")
    else:
        detail = f"no constant, duplicated, spiked or outlying coordinate in either model; the test used {a.kept}"
    if ref is None:
        detail += "; the reference fingerprint predates the audit, so only the candidate's coordinates were checked"
        outcome = "partly checked" if not a.excluded else outcome
    return {"check": "exchangeable residual coordinates", "stack": a.stack, "outcome": outcome, "detail": detail,
            "width": a.width, "kept": a.kept, "excluded": counts,
            "candidate": a.candidate.to_dict(), "reference": ref.to_dict() if ref is not None else None}


def _units_check(components: Sequence[Mapping[str, Any]], thresholds: Thresholds) -> dict:
    tested = [c for c in components if c.get("tested")]
    small = [c["name"] for c in tested if int(c.get("units", 0)) < thresholds.min_units]
    if not tested:
        return {"check": "enough units", "outcome": "failed", "detail": "no component could be tested"}
    if small:
        return {"check": "enough units", "outcome": "failed",
                "detail": f"fewer than {thresholds.min_units} units tested in: {', '.join(small)}"}
    least = min(int(c.get("units", 0)) for c in tested)
    return {"check": "enough units", "outcome": "passed",
            "detail": f"every tested component used at least {least} units (minimum {thresholds.min_units})"}


def _basis_check(stack: str, alignment: dict) -> dict:
    kind = alignment.get("kind")
    if kind == "identity":
        outcome, detail = "passed", "the two models share one residual basis (no map needed)"
    elif kind in (None, "none") and alignment.get("candidate_width") == alignment.get("reference_width"):
        outcome = "passed"
        detail = ("no basis map fitted (" + str(alignment.get("reason") or "no anchor rows") + "); units are "
                  "compared in the models' own coordinates")
    elif kind in (None, "none"):
        outcome, detail = "not checked", str(alignment.get("reason") or "no anchor rows to check the basis")
    else:
        outcome = "corrected"
        detail = (f"the candidate's residual basis was mapped into the reference's ({kind}, agreement "
                  f"{alignment.get('agreement')}) before testing")
    return {"check": "residual basis", "stack": stack, "outcome": outcome, "detail": detail}


def validity_card(audits: dict[str, StackAudit], components: Sequence[Mapping[str, Any]], alignment: dict[str, dict],
                  amap: ArchitectureMap, thresholds: Thresholds) -> dict:
    """The card of one comparison (``result["validity"]``)."""
    assumptions = [_coordinate_check(a) for _, a in sorted(audits.items())]
    assumptions.append(_units_check(components, thresholds))
    assumptions += [_basis_check(stack, a) for stack, a in sorted(alignment.items())]
    fam = family(amap, [c["name"] for c in components])
    return {"null": NULL, "method": METHOD, "family": fam, "assumptions": assumptions,
            "calibration": calibration_for(fam, thresholds)}
