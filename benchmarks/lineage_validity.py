"""Validity table of `simsa lineage compare` on the tiny-model zoo, with time and peak memory per pair.

    .venv/bin/python benchmarks/lineage_validity.py [--zoo DIR] [--derivations DIR] [--selftest] [--json]

Builds the zoo once (cached in DIR, default: simsa-lineage-zoo in the system temp directory), then runs every pair
through the real CLI in a fresh process, so each pair's peak RSS is its own (VmHWM), and prints one row per pair,
the KS test of the hard negatives' p-values against uniform, the largest basis-alignment agreement any hard negative
reached, and totals. ``--derivations`` adds the derivation-kind models (width/depth pruning, up-scaling, upcycling,
vocabulary changes, merges, reused vision encoders); ``--selftest`` runs every disguise on the three families.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.lineage_child import compare_in_child
from rich.console import Console
from rich.table import Table
from tests.lineage_validity import check_pair, ks_uniform, negative_pvalues, table_rows
from tests.lineage_zoo import build_zoo

CONTROL = {"llama": "llama-s2", "moe": "moe-s2", "bert": "bert-s2"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=Path(tempfile.gettempdir()) / "simsa-lineage-zoo")
    parser.add_argument("--derivations", type=Path, default=None, help="also build/run the derivation models here")
    parser.add_argument("--selftest", action="store_true", help="also run every disguise on the three families")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    console = Console(stderr=args.json, width=170)
    t0 = time.perf_counter()
    zoo = build_zoo(args.zoo, progress=lambda msg: console.print(f"[dim]{msg}[/]"))
    build_s = time.perf_counter() - t0
    pairs = [(pair, zoo.models[pair.candidate], zoo.models[pair.reference]) for pair in zoo.pairs]
    if args.derivations:
        from tests.lineage_derivations import build_derivations

        der = build_derivations(args.derivations, zoo, progress=lambda msg: console.print(f"[dim]{msg}[/]"))
        pairs += [(pair, der.path(pair.candidate), der.path(pair.reference)) for pair in der.pairs]
    results, walls, rss, compute = [], {}, {}, {}
    for pair, cand_path, ref_path in pairs:
        result, wall, peak = compare_in_child(cand_path, ref_path)
        results.append((pair, result))
        walls[pair.name], rss[pair.name], compute[pair.name] = wall, peak, result["seconds"]
    pvals = negative_pvalues(results)
    ks = {name: ks_uniform(v) for name, v in pvals.items() if len(v) >= 5}
    failures = {p.name: probs for p, r in results if (probs := check_pair(p, r))}
    derived = [(p, r) for p, r in results if p.kind != "negative"]
    summary = {
        "pairs": len(results),
        "hard_negatives": len(pvals["overall"]),
        "hard_negatives_called_derived": sum(1 for p, r in results if p.kind == "negative"
                                             and r["verdict"] in ("derived", "identical")),
        "derived_pairs": len(derived),
        "derived_pairs_correct": sum(1 for p, _ in derived if p.name not in failures),
        "min_derived_minus_log10_p": min((-r["log10_p"] for p, r in derived if p.kind == "derived"), default=None),
        "ks_overall": {"statistic": ks["overall"][0], "p": ks["overall"][1]},
        "ks_per_component": {k: {"statistic": v[0], "p": v[1], "n": len(pvals[k])} for k, v in ks.items()
                             if k != "overall"},
        "failures": failures,
        "alignment_agreement_max_negatives": max((a["agreement"] for p, r in results if p.kind == "negative"
                                                  for a in r.get("alignment", {}).values()
                                                  if a.get("agreement") is not None), default=None),
        "gram_agreement_max_negatives": max((a["gram_agreement"] for p, r in results if p.kind == "negative"
                                             for a in r.get("alignment", {}).values()
                                             if a.get("gram_agreement") is not None), default=None),
        "zoo_build_seconds": round(build_s, 1),
        "compute_seconds_per_pair_mean": round(sum(compute.values()) / len(compute), 3),
        "wall_seconds_per_pair_mean": round(sum(walls.values()) / len(walls), 3),
        "peak_rss_mib_max": round(max(rss.values()), 1),
    }
    if args.selftest:
        from simsa.lineage.selftest.run import selftest

        summary["selftest"] = {}
        for family, control in CONTROL.items():
            st = selftest(zoo.models[f"{family}-s0"], control=zoo.models[control])
            summary["selftest"][family] = {
                "passed": st["passed"], "seconds": st["seconds"], "control": st["control_baseline"],
                "disguises": {r["disguise"]: (r["disguised"]["verdict"], r["disguised"]["log10_p"],
                                              r["control"]["verdict"]) if r["applicable"] else "n/a"
                              for r in st["disguises"]}}
    if args.json:
        rows = [{"pair": p.name, "kind": p.kind, "derivation": p.derivation, "verdict": r["verdict"],
                 "log10_p": r["log10_p"], "seconds": compute[p.name], "wall_seconds": round(walls[p.name], 3),
                 "peak_rss_mib": round(rss[p.name], 1), "problems": failures.get(p.name, [])} for p, r in results]
        print(json.dumps({"summary": summary, "pairs": rows}, indent=2))
        return
    table = Table("pair", "kind", "derivation", "verdict", "log10 p", "layer map (cand←ref)", "compute s", "check",
                  title="Lineage validity (tiny models trained on CPU)")
    for row in table_rows(results, compute):
        table.add_row(*row)
    console.print(table)
    console.print(f"hard negatives: {summary['hard_negatives']}, called derived: "
                  f"{summary['hard_negatives_called_derived']}; KS vs uniform: D={ks['overall'][0]:.3f}, "
                  f"p={ks['overall'][1]:.3f}")
    for name, v in summary["ks_per_component"].items():
        console.print(f"  {name}: D={v['statistic']:.3f}, p={v['p']:.3f} over {v['n']} pairs")
    console.print(f"derived/identical pairs correct: {summary['derived_pairs_correct']}/{summary['derived_pairs']}; "
                  f"weakest derived −log10 p = {summary['min_derived_minus_log10_p']}")
    console.print(f"time per pair: {summary['compute_seconds_per_pair_mean']} s compute, "
                  f"{summary['wall_seconds_per_pair_mean']} s wall (process start included); "
                  f"peak RSS max {summary['peak_rss_mib_max']} MiB; zoo build {summary['zoo_build_seconds']} s")
    console.print(f"basis alignment, hard negatives: largest anchor-Gram correlation "
                  f"{summary['gram_agreement_max_negatives']} (a map is tried from 0.1), largest held-out agreement of "
                  f"a fitted map {summary['alignment_agreement_max_negatives']} (used from 0.25)")
    for family, st in summary.get("selftest", {}).items():
        table = Table("disguise", "disguised copy", "control", title=f"selftest {family} ({st['seconds']} s, "
                      f"{'passed' if st['passed'] else 'FAILED'})")
        for name, row in st["disguises"].items():
            table.add_row(name, *(("not applicable", "") if row == "n/a" else (f"{row[0]} ({row[1]:.1f})", row[2])))
        console.print(table)
    if failures or not all(st["passed"] for st in summary.get("selftest", {}).values()):
        console.print(f"[red]{len(failures)} pair(s) wrong[/]")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
