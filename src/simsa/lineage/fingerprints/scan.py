"""``simsa lineage scan``: test a candidate against every reference in a registry, with multiple-testing control.

Two stages, both valid tests on their own:

1. **Screen** (every reference): a small unit test — a few candidate layers spread over the depth, each against the
   reference layers at the same relative depth, few units and null draws, plus the embedding rows paired by token —
   combined by the Cauchy combination (valid under the dependence the shared coordinate permutation creates). Its
   p-value is calibrated exactly like ``compare``'s (coordinate-permutation null), it is just less powerful.
   Candidate units are read and prepared once and reused for every reference that shares the
   coordinate sample (same width and seed), so a registry of hundreds costs little more than one comparison.
2. **Full comparison** against the fingerprint for the most significant few (``keep``): per-component verdicts and
   layer maps.

A reference's p-value is twice the smaller of its two (Bonferroni over the stages, so choosing which references get
stage 2 cannot bias it). Holm (family-wise error) or Benjamini–Hochberg (false discovery rate) then adjusts over all
references tested.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from simsa.lineage.compare.evidence import Prepared, comparable, pair_evidence
from simsa.lineage.compare.result import compare
from simsa.lineage.compare.sides import Side, fingerprint_side
from simsa.lineage.fingerprints.registry import Registry
from simsa.lineage.stats.correspondence import SamplingSettings
from simsa.lineage.stats.pvalues import cauchy_log10, sidak_log10
from simsa.lineage.stats.verdict import Thresholds

SCHEMA = "simsa.lineage.scan/1"
SCREEN_LAYERS = 3  # candidate layers tested in the screen (quartiles of depth)
SCREEN_WINDOW = 1  # reference layers either side of the same relative depth
SCREEN = SamplingSettings(units=64, ref_units=128, coords=256, draws=8, seed=0)
LOG10_2 = math.log10(2.0)
# Candidate units prepared for one reference's coordinate draws are reused by every reference with the same draws;
# references whose audits leave out other coordinates need their own, so the shared cache keeps the newest this much.
SHARED_CACHE_BYTES = 256 * 2**20


def holm(log10_ps: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (log10), in the input order."""
    m = len(log10_ps)
    order = sorted(range(m), key=lambda i: log10_ps[i])
    out = [0.0] * m
    running = -math.inf
    for rank, i in enumerate(order):
        running = max(running, min(0.0, log10_ps[i] + math.log10(m - rank)))
        out[i] = running
    return out


def benjamini_hochberg(log10_ps: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (log10), in the input order."""
    m = len(log10_ps)
    order = sorted(range(m), key=lambda i: log10_ps[i], reverse=True)
    out = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        rank = m - k
        running = min(running, min(0.0, log10_ps[i] + math.log10(m / rank)))
        out[i] = running
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}


def _screen_layers(n: int) -> list[int]:
    if n <= SCREEN_LAYERS:
        return list(range(n))
    return sorted({round((k + 1) * (n - 1) / (SCREEN_LAYERS + 1)) for k in range(SCREEN_LAYERS)})


def screen(prep: Prepared) -> dict:
    """The stage-1 test of one reference: Cauchy combination of the screened pairs' per-layer (Šidák) p-values."""
    per_layer: list[float] = []
    detail = []
    for name in sorted(set(prep.cand.comps) & set(prep.ref.comps)):
        cc, rc = prep.cand.comps[name], prep.ref.comps[name]
        stack = name.split(".", 1)[0]
        wc = prep.ref.amap.stacks.get(stack)
        if wc is None or prep.cand.amap.stacks.get(stack) is None:
            continue
        width = int(wc.hidden_size)
        if int(prep.cand.amap.stacks[stack].hidden_size) != width and not prep.stack_alignment(stack).transforms:
            continue
        cand_layers: list[int | None] = [*sorted(k for k in cc.layers if k is not None)] or [None]
        ref_layers: list[int | None] = [*sorted(k for k in rc.layers if k is not None)] or [None]
        for i in _screen_layers(len(cand_layers)):
            a = cand_layers[i]
            window: list[int | None]
            if a is None:
                window = [None]
            else:
                centre = round(i * (len(ref_layers) - 1) / max(1, len(cand_layers) - 1))
                window = ref_layers[max(0, centre - SCREEN_WINDOW):centre + SCREEN_WINDOW + 1]
            best = 0.0
            for b in window:
                groups = {k: g for k, g in cc.layers[a].items() if comparable(g, rc.layers[b].get(k), prep.settings)}
                if not groups:
                    continue
                ev = pair_evidence(prep, name, stack, width, a, groups, b, rc.layers[b])
                if ev is not None:
                    best = min(best, ev.log10_p)
            if window:
                # "descends from one of the window's layers": Šidák over the window, chosen without looking.
                lp = sidak_log10(best, len(window))
                per_layer.append(lp)
                detail.append({"component": name, "candidate_layer": a, "log10_p": round(lp, 3)})
    return {"log10_p": cauchy_log10(per_layer) if per_layer else 0.0, "tests": detail}


def _bound(cache: dict[tuple, np.ndarray], limit: int) -> None:
    """Drop the oldest entries until ``cache`` holds at most ``limit`` bytes."""
    total = sum(a.nbytes for a in cache.values())
    for key in list(cache):
        if total <= limit:
            break
        total -= cache.pop(key).nbytes


def scan(cand: Side, registry: Registry, *, correction: str = "holm", keep: int = 3,
         settings: SamplingSettings | None = None, thresholds: Thresholds | None = None,
         progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Compare ``cand`` with every fingerprint in ``registry``; matches best first with adjusted p-values."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    thresholds = thresholds or Thresholds()
    started = time.perf_counter()
    names = sorted(registry.entries)
    shared: dict[tuple, dict] = {}  # candidate unit caches, per coordinate sample
    standardised: dict[tuple, dict] = {}  # candidate units read and standardised, whatever the draws
    rows = []
    skipped = []
    for i, name in enumerate(names):
        if progress:
            progress("screen", i, len(names))
        fp = registry.load(name)
        ref = fingerprint_side(fp, name)
        common = set(cand.amap.stacks) & set(ref.amap.stacks)
        if not common:
            skipped.append({"reference": name, "reason": "no stack in common (e.g. a vision tower vs a text model)"})
            continue
        prep = Prepared(cand, ref, replace(SCREEN, seed=fp.settings.seed))
        prep.settings = replace(prep.settings, ref_units=min(SCREEN.ref_units, fp.settings.ref_units))
        if not any(prep.stack_alignment(s).transforms for s in common):
            key = (fp.settings.seed, fp.settings.coords, tuple(sorted(
                (s, int(cand.amap.stacks[s].hidden_size)) for s in common)))
            prep.cand_cache = shared.setdefault(key, {})
            prep.std_cache = standardised.setdefault(key, {})
        try:
            result = screen(prep)
        finally:
            fp.close()
        for k in [k for k in prep.cand_cache if k[0] == "paired"]:  # paired rows depend on the reference
            del prep.cand_cache[k]
        _bound(prep.cand_cache, SHARED_CACHE_BYTES)
        rows.append({"reference": name, "source": fp.meta.get("source"), "model_type": fp.meta.get("model_type"),
                     "screen_log10_p": result["log10_p"], "screen": result["tests"],
                     "alignment": {s: a.as_dict() for s, a in prep.alignments.items()}})
    screened = time.perf_counter() - started
    shared.clear()  # the full comparisons below prepare their own units: keep peak memory to one comparison's
    standardised.clear()
    rows.sort(key=lambda r: r["screen_log10_p"])
    for rank, row in enumerate(rows[:keep]):
        if progress:
            progress("compare", rank, min(keep, len(rows)))
        if row["screen_log10_p"] > -thresholds.independent_log10:
            continue  # nothing to localise
        fp = registry.load(row["reference"])
        try:
            full = compare(cand, fingerprint_side(fp, row["reference"]), settings or fp.settings.sampling(),
                           thresholds)
        finally:
            fp.close()
        row["compare"] = {"verdict": full["verdict"], "log10_p": full["log10_p"], "summary": full["summary"],
                          "components": [{k2: c.get(k2) for k2 in ("name", "verdict", "log10_p", "layer_map",
                                                                     "unmapped_layers")}
                                         for c in full["components"]]}
    for row in rows:
        full_lp = row.get("compare", {}).get("log10_p", 0.0)
        row["log10_p"] = min(0.0, min(row["screen_log10_p"], full_lp) + LOG10_2)
    adjusted = CORRECTIONS[correction]([r["log10_p"] for r in rows]) if rows else []
    for row, adj in zip(rows, adjusted, strict=True):
        row["adjusted_log10_p"] = round(adj, 3)
        row["log10_p"] = round(row["log10_p"], 3)
        row["screen_log10_p"] = round(row["screen_log10_p"], 3)
        if row.get("compare", {}).get("verdict") == "identical" and adj <= -thresholds.derived_log10:
            row["verdict"] = "identical"
        elif adj <= -thresholds.derived_log10:
            row["verdict"] = "derived"
        elif adj > -thresholds.independent_log10:
            row["verdict"] = "independent"
        else:
            row["verdict"] = "inconclusive"
    rows.sort(key=lambda r: (r["adjusted_log10_p"], r["reference"]))
    if progress:
        progress("done", 1, 1)
    return {
        "schema": SCHEMA,
        "candidate": cand.describe(),
        "registry": str(registry.root),
        "correction": correction,
        "references": len(names),
        "tested": len(rows),
        "skipped": skipped,
        "matches": rows,
        "derived": [r["reference"] for r in rows if r["verdict"] in ("derived", "identical")],
        "thresholds": thresholds.as_dict(),
        "seconds": {"screen": round(screened, 3), "total": round(time.perf_counter() - started, 3)},
        "io": None if cand.fingerprint is not None else cand.ckpt.io_stats().to_dict(),
    }

