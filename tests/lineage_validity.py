"""Checks of lineage results against what the zoo knows about each pair (shared by tests and bench).

Importable as ``tests.lineage_validity`` (bench) and ``lineage_validity`` (pytest); it imports no pytest.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

REQUIRED_LOG10 = -10.0  # every derived pair must reach −log10 p ≥ 10
DESCENT = ("derived", "identical")


def _component(result: dict, name: str) -> dict | None:
    return next((c for c in result["components"] if c["name"] == name), None)


def check_pair(pair: Any, result: dict) -> list[str]:
    """Every way ``result`` disagrees with what is known about ``pair``; empty when it is right."""
    problems: list[str] = []
    expect = pair.expect or {}
    if pair.kind == "negative":
        if result["verdict"] in DESCENT:
            problems.append(f"hard negative called {result['verdict']} (log10 p {result['log10_p']})")
        for c in result["components"]:
            if c["verdict"] in DESCENT:
                problems.append(f"hard negative: component {c['name']} called {c['verdict']}")
        return problems
    wanted = "identical" if pair.kind == "identical" else "derived"
    if result["verdict"] != wanted:
        problems.append(f"verdict {result['verdict']}, expected {wanted}")
    if result["log10_p"] > REQUIRED_LOG10 and pair.kind != "identical":
        problems.append(f"log10 p {result['log10_p']} > {REQUIRED_LOG10}")
    for name in expect.get("derived_components", []):
        c = _component(result, name)
        if c is None or c["verdict"] not in DESCENT:
            problems.append(f"component {name} is {c and c['verdict']}, expected derived")
    for name in expect.get("independent_components", []):
        c = _component(result, name)
        if c is not None and c["verdict"] in DESCENT:
            problems.append(f"component {name} is {c['verdict']}, expected no descent")
    layered = [c for c in result["components"]
               if c["name"] in expect.get("derived_components", []) and c.get("candidate_layers")
               and c["candidate_layers"] != [None] and c["verdict"] != "identical"]
    for c in layered:
        found = {(a, b) for a, b, _ in c["layer_map"]}
        for a, b in expect.get("layer_map", []):
            if (a, b) not in found:
                problems.append(f"{c['name']}: layer {a}←{b} not in map {sorted(found)}")
        for a in expect.get("new_layers", []):
            if a not in c["unmapped_layers"]:
                problems.append(f"{c['name']}: re-initialised layer {a} was mapped")
    return problems


def ks_uniform(log10_ps: list[float]) -> tuple[float, float]:
    """KS statistic and p-value of hard-negative p-values against the uniform distribution."""
    ps = [10.0 ** lp if lp > -300 else 0.0 for lp in log10_ps]
    res = stats.kstest(ps, "uniform")
    return float(res.statistic), float(res.pvalue)


def negative_pvalues(results: list[tuple[Any, dict]]) -> dict[str, list[float]]:
    """Hard-negative p-values: overall, and per tested component (each should be uniform under the null)."""
    out: dict[str, list[float]] = {"overall": []}
    for pair, result in results:
        if pair.kind != "negative":
            continue
        out["overall"].append(result["log10_p"])
        for c in result["components"]:
            if c["log10_p"] is not None:
                out.setdefault(c["name"], []).append(c["log10_p"])
    return out


def table_rows(results: list[tuple[Any, dict]], seconds: dict[str, float]) -> list[list[str]]:
    """One row per pair: name, kind, derivation, verdict, log10 p, layer map, ok."""
    rows = []
    for pair, result in results:
        maps = {c["name"].split(".", 1)[1]: c["layer_map"] for c in result["components"] if c["layer_map"]}
        lm = maps.get("mlp") or maps.get("experts") or maps.get("attention") or []
        problems = check_pair(pair, result)
        lp = result["log10_p"]
        rows.append([
            pair.name, pair.kind, pair.derivation, result["verdict"],
            "-inf" if lp <= -1e300 else f"{lp:.1f}",
            " ".join(f"{a}←{b}" for a, b, _ in lm) or "—",
            f"{seconds.get(pair.name, math.nan):.2f}",
            "ok" if not problems else "FAIL: " + "; ".join(problems),
        ])
    return rows
