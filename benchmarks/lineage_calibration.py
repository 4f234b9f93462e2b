"""Calibration of `simsa lineage compare` on hard negatives and adversarial nulls.

    .venv/bin/python benchmarks/lineage_calibration.py [--root DIR] [--steps N] [--quick] [--json] [--write]

Builds (or reuses, cached in DIR, default: simsa-lineage-hardneg in the system temp directory) the hard negatives of
``tests/lineage_hardneg.py`` — independently initialised models of three families at two widths, every pair within a
(family, width) group — and the adversarial nulls of ``tests/lineage_nulls.py`` (independent models sharing a
residual layout), compares every pair in this process with default settings, and prints:

- the false-positive table: for α ∈ {0.05, 0.01, 0.001}, overall and per component, how many hard negatives have
  p ≤ α, with the exact (Clopper–Pearson) 95 % interval and whether α lies inside it;
- verdict counts (``derived`` must never happen) and the inconclusive rate with its interval, for the hard
  negatives and, separately, the adversarial nulls (8 llama-shaped pairs per layout kind at hidden sizes 128 and 256,
  the shared layout touching 1/32, 1/8, 1/4 or 1/2 of the residual coordinates);
- the tail: on a few hard negatives, one component-layer pair each, ≥ 10,000 coordinate permutations drawn exactly
  as the test draws its null, against the Student-t approximation the test uses (24 draws, ``sd·√(1 + 1/B)``,
  B − 1 degrees of freedom): for each tail probability q, the share of the other draws beyond the t-quantile that
  24 draws give, averaged over disjoint 24-draw subsets, as a ratio to q;
- seconds for building and comparing.

``--write`` stores the figures the validity card quotes in ``src/simsa/lineage/compare/calibration.json``.
``--quick`` (one width, 4 models per group, 100 steps, fewer nulls and tail draws) is for
iterating, not for calibration.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simsa.lineage.compare.evidence import comparable, view_parts
from simsa.lineage.compare.result import compare_paths
from simsa.lineage.compare.sides import open_side
from simsa.lineage.model.tokenizer import token_alignment
from simsa.lineage.model.units import read_units
from simsa.lineage.stats.correspondence import (
    CoordinateDraws,
    SamplingSettings,
    best_match,
    coordinate_draws,
    prepare_candidate,
    prepare_reference,
)
from simsa.lineage.stats.correspondence import paired_match as paired_scores
from simsa.lineage.stats.exchangeability import clean_coordinates
from simsa.lineage.stats.pvalues import monte_carlo_p, t_log10_sf
from simsa.lineage.stats.sampling import sample_rng, sample_units

SCHEMA = "simsa.lineage.calibration/1"
CALIBRATION_PATH = ROOT / "src" / "simsa" / "lineage" / "compare" / "calibration.json"
ALPHAS = (0.05, 0.01, 0.001)
TAIL_QS = (1e-2, 1e-3, 1e-4)
THRESHOLD_LOG10 = -6.0
LEVEL = 0.95
INCONCLUSIVE_GOAL = 0.05
NULL_KINDS = ("zero_pad", "scale_outliers", "massive", "duplicated")
NULL_WIDTHS = (128, 256)
NULL_PAIRS_PER_KIND = 8
NULL_FRACTIONS = (1 / 32, 1 / 8, 1 / 4, 1 / 2)  # share of the residual coordinates a null's layout touches, cycled
TAIL_PAIRS = 12
TAIL_SUBSET = 24  # the test's B
TAIL_DRAWS = 1000 * TAIL_SUBSET  # ≥ 10,000 and a whole number of disjoint 24-draw subsets
TAIL_CHUNK = 500  # draws prepared at once: bounds memory (a 128-wide MLP group: ~0.4 GB per chunk)
FAMILY_LABELS = {"llama": "dense decoder", "moe": "moe", "bert": "encoder"}
TAIL_COMPONENTS = {"llama": ("attention", "mlp", "embedding", "output_head"),
                   "moe": ("attention", "experts", "router", "embedding"),
                   "bert": ("attention", "mlp", "embedding", "output_head")}


# --------------------------------------------------------------------------- pure statistics and tables


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact two-sided binomial confidence interval for k successes in n trials."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    tail = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1.0 - tail, k + 1, n - k))
    return low, high


@dataclass(frozen=True)
class RateRow:
    """How often p ≤ α among n null p-values, with its exact interval; ``ok`` when α lies inside it."""

    label: str
    alpha: float
    n: int
    k: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def ok(self) -> bool:
        return self.low <= self.alpha <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "alpha": self.alpha, "n": self.n, "k": self.k, "rate": round(self.rate, 6),
                "low": round(self.low, 6), "high": round(self.high, 6), "ok": self.ok}


def short_component(name: str) -> str:
    """``text.attention`` → ``attention`` (other stacks keep their prefix)."""
    return name.split(".", 1)[1] if name.startswith("text.") else name


def collect_pvalues(results: Iterable[dict]) -> dict[str, list[float]]:
    """log10 p-values by ``overall`` and by every component that was tested, from compare results."""
    out: dict[str, list[float]] = {"overall": []}
    for r in results:
        out["overall"].append(float(r["log10_p"]))
        for c in r["components"]:
            if c.get("tested") and c.get("log10_p") is not None:
                out.setdefault(short_component(c["name"]), []).append(float(c["log10_p"]))
    return out


def false_positive_table(pvalues: dict[str, Sequence[float]], alphas: Sequence[float] = ALPHAS,
                         level: float = LEVEL) -> list[RateRow]:
    """One row per (label, α): the count of log10 p ≤ log10 α, its rate and Clopper–Pearson interval."""
    rows = []
    for label, values in pvalues.items():
        n = len(values)
        if n == 0:
            continue
        arr = np.asarray(values, dtype=float)
        for alpha in alphas:
            k = int(np.count_nonzero(arr <= math.log10(alpha)))
            rows.append(RateRow(label, alpha, n, k, *clopper_pearson(k, n, level)))
    return rows


@dataclass(frozen=True)
class VerdictCounts:
    """Verdicts over a set of null pairs; ``derived`` counts ``identical`` too (both claim descent)."""

    n: int
    derived: int
    inconclusive: int
    independent: int
    below_threshold: int  # overall log10 p at or below the verdict threshold

    @property
    def inconclusive_interval(self) -> tuple[float, float]:
        return clopper_pearson(self.inconclusive, self.n) if self.n else (0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.inconclusive_interval
        return {**asdict(self), "inconclusive_rate": round(self.inconclusive / self.n, 6) if self.n else None,
                "inconclusive_low": round(low, 6), "inconclusive_high": round(high, 6)}


def verdict_counts(results: Sequence[dict], threshold_log10: float = THRESHOLD_LOG10) -> VerdictCounts:
    verdicts = [r["verdict"] for r in results]
    return VerdictCounts(
        n=len(verdicts),
        derived=sum(v in ("derived", "identical") for v in verdicts),
        inconclusive=verdicts.count("inconclusive"),
        independent=verdicts.count("independent"),
        below_threshold=sum(float(r["log10_p"]) <= threshold_log10 for r in results),
    )


def t_threshold(sample: np.ndarray, q: float) -> float:
    """The statistic value whose Student-t approximation p-value is q, from B null draws (the test's formula)."""
    b = sample.size
    sd = float(sample.std(ddof=1))
    return float(sample.mean()) + float(stats.t.isf(q, b - 1)) * sd * math.sqrt(1.0 + 1.0 / b)


@dataclass(frozen=True)
class TailRow:
    """Observed share of null draws beyond the t-approximation's q-quantile, over disjoint B-draw subsets."""

    q: float
    subsets: int
    comparisons: int  # (subset, other draw) pairs looked at
    exceed: int

    @property
    def observed(self) -> float:
        return self.exceed / self.comparisons if self.comparisons else float("nan")

    @property
    def ratio(self) -> float:
        return self.observed / self.q

    def to_dict(self) -> dict[str, Any]:
        return {"q": self.q, "subsets": self.subsets, "comparisons": self.comparisons, "exceed": self.exceed,
                "observed": self.observed, "ratio": round(self.ratio, 4)}


def tail_agreement(null: np.ndarray, qs: Sequence[float] = TAIL_QS, b: int = TAIL_SUBSET) -> list[TailRow]:
    """Compare the exact permutation tail with the t approximation, on one pair's null draws.

    The draws are cut into disjoint subsets of ``b``; each subset gives, for each q, the threshold the test's t
    approximation puts at p = q, and the other draws (all but that subset) say how often the exact null exceeds it.
    """
    null = np.asarray(null, dtype=np.float64).ravel()
    n_sub = null.size // b
    if n_sub < 2:
        raise ValueError(f"need at least {2 * b} draws, got {null.size}")
    ordered = np.sort(null)
    rows = []
    for q in qs:
        exceed = comparisons = 0
        for s in range(n_sub):
            sub = null[s * b:(s + 1) * b]
            thr = t_threshold(sub, q)
            beyond = null.size - int(np.searchsorted(ordered, thr, side="right"))
            beyond -= int(np.count_nonzero(sub > thr))  # the subset's own draws are not "other" draws
            exceed += beyond
            comparisons += null.size - b
        rows.append(TailRow(q, n_sub, comparisons, exceed))
    return rows


def pooled_tail(per_pair: Sequence[Sequence[TailRow]]) -> list[TailRow]:
    """Tail rows summed over pairs (each pair's comparisons weigh equally per draw)."""
    out = []
    for rows in zip(*per_pair, strict=True):
        out.append(TailRow(rows[0].q, sum(r.subsets for r in rows), sum(r.comparisons for r in rows),
                           sum(r.exceed for r in rows)))
    return out


def rate_entry(k: int, n: int, alpha: float | None = None) -> dict[str, Any]:
    low, high = clopper_pearson(k, n) if n else (0.0, 1.0)
    out = {"n": n, "k": k, "rate": round(k / n, 6) if n else None, "low": round(low, 6), "high": round(high, 6)}
    return out if alpha is None else {**out, "ok": low <= alpha <= high}


def family_entry(results: Sequence[dict], models: int, threshold_log10: float = THRESHOLD_LOG10) -> dict[str, Any]:
    """One family's line of calibration.json (overall p-values only; components are in the bench's --json)."""
    vc = verdict_counts(results, threshold_log10)
    n = vc.n
    overall = [float(r["log10_p"]) for r in results]
    return {
        "hard_negatives": n,
        "models": models,
        "derived": vc.derived,
        "inconclusive": vc.inconclusive,
        "inconclusive_rate": round(vc.inconclusive / n, 6) if n else None,
        "false_positive_rate": round(vc.below_threshold / n, 6) if n else None,
        "upper_95": round(clopper_pearson(vc.below_threshold, n)[1], 6) if n else None,
        "alpha": {str(a): rate_entry(sum(p <= math.log10(a) for p in overall), n) for a in ALPHAS},
    }


def calibration_document(by_family: dict[str, tuple[Sequence[dict], int]], nulls: Sequence[dict], command: str,
                         created: str) -> dict[str, Any]:
    """The calibration.json the validity card reads: per family, all families, and the adversarial nulls."""
    families = {label: family_entry(res, models) for label, (res, models) in by_family.items()}
    everything = [r for res, _ in by_family.values() for r in res]
    families["all"] = family_entry(everything, sum(m for _, m in by_family.values()))
    vc = verdict_counts(nulls)
    return {
        "schema": SCHEMA,
        "created": created,
        "command": command,
        "threshold_log10": int(THRESHOLD_LOG10),
        "interval": f"Clopper-Pearson, two-sided {LEVEL:.0%}",
        "families": families,
        "adversarial_nulls": {"pairs": vc.n, "derived": vc.derived, "inconclusive": vc.inconclusive},
    }


# --------------------------------------------------------------------------- the tail: many coordinate permutations


@dataclass(frozen=True)
class TailSample:
    """The statistic of one component-layer pair: observed, and under many exact null draws."""

    pair: str
    family: str
    component: str
    layer: int | None
    groups: tuple[str, ...]
    units: int
    coords: int  # exchangeable coordinates the null permutes
    width: int
    observed: float
    null: np.ndarray
    seconds: float

    @property
    def exact_log10_p(self) -> float:
        return math.log10(monte_carlo_p(self.observed, self.null))

    @property
    def t_log10_p(self) -> float:
        """The test's approximation from the first B draws only."""
        sub = self.null[:TAIL_SUBSET]
        scale = float(sub.std(ddof=1)) * math.sqrt(1.0 + 1.0 / sub.size)
        return t_log10_sf((self.observed - float(sub.mean())) / scale, sub.size - 1) if scale > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"pair": self.pair, "family": self.family, "component": self.component, "layer": self.layer,
                "groups": list(self.groups), "units": self.units, "coords": self.coords, "width": self.width,
                "draws": int(self.null.size), "observed": round(self.observed, 6),
                "null_mean": round(float(self.null.mean()), 6), "null_sd": round(float(self.null.std(ddof=1)), 6),
                "exact_log10_p": round(self.exact_log10_p, 3), "t_log10_p": round(self.t_log10_p, 3),
                "seconds": round(self.seconds, 1)}


def exchangeable_coordinates(cand: Any, ref: Any, stack: str, width: int, settings: SamplingSettings) -> np.ndarray:
    """The residual coordinates the test permutes for this pair: those its exchangeability audit passed in both.

    Taken from the comparison's own preparation (the same unit samples, the same audit), so the tail is drawn over
    exactly the coordinates a comparison of this pair permutes.
    """
    from simsa.lineage.compare.evidence import Prepared

    prep = Prepared(cand, ref, settings)
    prep.coords(stack, width)
    found = prep.audits[stack]
    return clean_coordinates(width, found.candidate.excluded, found.reference.excluded if found.reference else ())


def tail_sample(cand_path: Path, ref_path: Path, component: str, layer: int | None, *, pair: str = "",
                family: str = "", draws: int = TAIL_DRAWS, chunk: int = TAIL_CHUNK, seed: int = 0,
                progress: Callable[[int], None] | None = None) -> TailSample:
    """``draws`` exact null draws of one component's statistic at layer pair (``layer``, ``layer``).

    The statistic is the test's: per unit group the mean over sampled candidate units of the best (or, for token
    rows, the paired) cosine with the reference's units, averaged over the component's comparable groups. Units are
    sampled as the test samples them; the candidate is compared in its own basis (the hard negatives share the
    reference's width and no basis map is fitted between independent models). Draws are prepared ``chunk`` at a time.
    """
    settings = SamplingSettings()
    t0 = time.perf_counter()
    cand, ref = open_side(cand_path), open_side(ref_path)
    try:
        stack = component.split(".", 1)[0]
        width = int(ref.amap.stacks[stack].hidden_size)
        pool = exchangeable_coordinates(cand, ref, stack, width, settings)
        cgroups, rgroups = cand.comps[component].layers[layer], ref.comps[component].layers[layer]
        keys = [k for k, g in sorted(cgroups.items()) if comparable(g, rgroups.get(k), settings)]
        if not keys:
            raise ValueError(f"{component} layer {layer}: no comparable unit groups")
        rng = np.random.default_rng([seed, zlib.crc32(f"{pair}|{component}|{layer}".encode())])
        ref_row = coordinate_draws(width, replace(settings, draws=0), rng, pool).index[0]
        prepared = [_group_inputs(cand, ref, component, layer, cgroups[k], rgroups[k], ref_row, settings)
                    for k in keys]
        totals: list[np.ndarray] = []
        observed = math.nan
        done = 0
        while done < draws:
            n = min(chunk, draws - done)
            null_rows = coordinate_draws(width, replace(settings, draws=n), rng, pool).index[1:]
            index = CoordinateDraws(np.concatenate([ref_row[None, :], null_rows]))
            per_group = []
            for paired, ref_units, cand_parts in prepared:
                cand_units = prepare_candidate(cand_parts, index)
                scores = paired_scores(ref_units, cand_units) if paired else best_match(ref_units, cand_units)
                per_group.append(scores.mean(axis=1, dtype=np.float64))
                del cand_units, scores
            total = np.mean(per_group, axis=0)
            observed = float(total[0])
            totals.append(total[1:])
            done += n
            if progress:
                progress(n)
        units = sum(int(p[2][0].shape[0]) for p in prepared)
    finally:
        cand.ckpt.close()
        ref.ckpt.close()
    return TailSample(pair, family, component, layer, tuple(keys), units, int(pool.size), width, observed,
                      np.concatenate(totals), time.perf_counter() - t0)


def _group_inputs(cand: Any, ref: Any, comp: str, layer: int | None, cg: Any, rg: Any, ref_row: np.ndarray,
                  settings: SamplingSettings) -> tuple[bool, np.ndarray, list[np.ndarray]]:
    """(paired?, prepared reference units on ``ref_row``, raw candidate parts) of one unit group, sampled as the
    test samples them."""
    views = view_parts(cg, settings)
    if cg.paired:
        nc, nr = cg.n_units, rg.n_units
        if cg.key in ("embed.tokens", "head") and cand.vocab is not None and ref.vocab is not None:
            pairs = np.array([(c, r) for c, r in token_alignment(cand.vocab, ref.vocab) if c < nc and r < nr],
                             dtype=np.int64)
        else:
            pairs = np.stack([np.arange(min(nc, nr))] * 2, axis=1)
        if len(pairs) > settings.units:
            pick = sample_rng(settings, "pairs", comp, layer, cg.key).choice(len(pairs), settings.units, replace=False)
            pairs = pairs[np.sort(pick)]
        ci, ri = pairs[:, 0], pairs[:, 1]
        parts_c, parts_r = cg.parts, rg.parts
    else:
        ci = sample_units(cg.n_units, settings.units, settings, "cand", comp, layer, cg.key)
        ri = sample_units(rg.n_units, settings.ref_units, settings, "ref", comp, layer, rg.key)
        parts_c, parts_r = [cg.parts[i] for i in views], [rg.parts[i] for i in views]
    reference = prepare_reference([read_units(ref.ckpt, p, ri)[:, ref_row] for p in parts_r])
    if not cg.paired:  # the test keeps searched reference units in float16 (compare.Prepared.reference)
        reference = reference.astype(np.float16)
    return cg.paired, reference, [read_units(cand.ckpt, p, ci) for p in parts_c]


def tail_plan(pairs: Sequence[Any], count: int) -> list[tuple[Any, str, int | None]]:
    """(pair, component, layer) for ``count`` pairs spread over families and widths, components and layers."""
    by_family: dict[str, list[Any]] = {}
    for p in pairs:
        by_family.setdefault(p.family, []).append(p)
    plan = []
    families = sorted(by_family)
    for i in range(count):
        family = families[i % len(families)]
        k = i // len(families)
        pool = by_family[family]
        widths = sorted({p.width for p in pool})
        same_width = [p for p in pool if p.width == widths[k % len(widths)]]
        pair = same_width[(7 * k) % len(same_width)]
        comp = TAIL_COMPONENTS.get(family, ("attention",))[k % len(TAIL_COMPONENTS.get(family, ("attention",)))]
        layer = None if comp in ("embedding", "output_head") else k % 4
        plan.append((pair, f"text.{comp}", layer))
    return plan


# --------------------------------------------------------------------------- running


def _slim(result: dict) -> dict:
    """What the tables need of a compare result (the full results are large)."""
    return {"verdict": result["verdict"], "rule": result["rule"], "log10_p": result["log10_p"],
            "seconds": result["seconds"],
            "components": [{"name": c["name"], "tested": c["tested"], "log10_p": c["log10_p"], "verdict": c["verdict"]}
                           for c in result["components"]]}


def null_pairs(root: Path, per_kind: int, widths: Sequence[int]) -> list[tuple[str, str, Path, Path]]:
    """(kind, name, candidate, reference) adversarial nulls: every layout kind at every width."""
    from tests.lineage_nulls import Shape, null_pair

    out = []
    for w_i, width in enumerate(widths):
        shape = Shape(hidden=width)
        for k_i, kind in enumerate(NULL_KINDS):
            for i in range(per_kind):
                count = max(1, round(width * NULL_FRACTIONS[i % len(NULL_FRACTIONS)]))
                seed = 1000 * w_i + 100 * k_i + i
                a, b, _layout = null_pair(root / f"w{width}", kind, count, seed, shape)
                out.append((kind, f"{kind}-w{width}-{count}-{seed}", b, a))
    return out


def _command(argv: Sequence[str]) -> str:
    """The command line as run, without the cache directory (a machine's path says nothing about the result)."""
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--root":
            skip = True
            continue
        if a.startswith("--root="):
            continue
        args.append(a)
    return " ".join(["python benchmarks/lineage_calibration.py", *args])


def derived_recall(console: Any) -> dict[str, Any]:
    """Every derivation of the validity zoo and the derivation suite compared: verdict and localisation kept?

    The calibration must not buy its false-positive rate with power, so the same code's recall is measured here
    (models cached in the system temp directory, as ``benchmarks/lineage_validity.py`` does).
    """
    from tests.lineage_derivations import build_derivations
    from tests.lineage_validity import check_pair
    from tests.lineage_zoo import build_zoo

    tmp = Path(tempfile.gettempdir())

    def say(msg: str) -> None:
        console.print(f"[dim]{msg}[/]")

    zoo = build_zoo(tmp / "simsa-lineage-zoo", progress=say)
    der = build_derivations(tmp / "simsa-lineage-derivations", zoo, progress=say)
    pairs = [(p, zoo.models[p.candidate], zoo.models[p.reference]) for p in zoo.positives()]
    pairs += [(p, der.path(p.candidate), der.path(p.reference)) for p in der.pairs if p.kind != "negative"]
    failures: dict[str, list[str]] = {}
    weakest = math.inf
    for pair, cand, ref in pairs:
        result = compare_paths(cand, ref)
        problems = check_pair(pair, result)
        if problems:
            failures[pair.name] = problems
        if pair.kind == "derived":
            weakest = min(weakest, -float(result["log10_p"]))
    return {"pairs": len(pairs), "correct": len(pairs) - len(failures), "failures": failures,
            "weakest_minus_log10_p": None if math.isinf(weakest) else round(weakest, 1)}


def _short_pair(name: str) -> str:
    """``llama-w64-03-mup~llama-w64-00-normal`` → ``llama-w64 03~00``."""
    cand, _, ref = name.partition("~")
    c, r = cand.split("-"), ref.split("-")
    return f"{c[0]}-{c[1]} {c[2]}~{r[2]}" if len(c) > 2 and len(r) > 2 else name


def _fmt_rate(row: RateRow) -> list[str]:
    return [row.label, f"{row.alpha:g}", str(row.n), str(row.k), f"{row.rate:.4f}", f"[{row.low:.4f}, {row.high:.4f}]",
            "ok" if row.ok else "FAIL"]


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from tests.lineage_hardneg import FAMILIES, MODELS_PER_GROUP, STEPS, WIDTHS, build_hardneg

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="cache directory of the hard negatives")
    parser.add_argument("--steps", type=int, default=None, help=f"training steps per model (default {STEPS})")
    parser.add_argument("--quick", action="store_true", help="1 width, 4 models per group, 100 steps (iteration)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON (the tables go to stderr)")
    parser.add_argument("--write", action="store_true", help=f"write {CALIBRATION_PATH.relative_to(ROOT)}")
    parser.add_argument("--no-recall", action="store_true",
                        help="skip the derived recall (the validity zoo's and derivation suite's positives)")
    args = parser.parse_args(argv)
    quick = args.quick
    root = args.root or Path(tempfile.gettempdir()) / ("simsa-lineage-hardneg-quick" if quick else
                                                       "simsa-lineage-hardneg")
    widths = WIDTHS[:1] if quick else WIDTHS
    per_group = 4 if quick else MODELS_PER_GROUP
    steps = args.steps or (100 if quick else STEPS)
    null_widths, null_per_kind = (NULL_WIDTHS[:1], 2) if quick else (NULL_WIDTHS, NULL_PAIRS_PER_KIND)
    tail_pairs, tail_draws = (3, 40 * TAIL_SUBSET) if quick else (TAIL_PAIRS, TAIL_DRAWS)
    console = Console(stderr=args.json, width=150)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    t0 = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("building hard negatives", total=len(FAMILIES) * len(widths) * per_group)

        def built(msg: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"building: {msg[:60]}")

        zoo = build_hardneg(root, families=FAMILIES, widths=widths, models_per_group=per_group, steps=steps,
                            progress=built)
    build_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    results: list[tuple[Any, dict]] = []
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("comparing hard negatives", total=len(zoo.pairs))
        for pair in zoo.pairs:
            results.append((pair, _slim(compare_paths(zoo.models[pair.candidate], zoo.models[pair.reference]))))
            bar.advance(task)
    compare_s = time.perf_counter() - t1

    t2 = time.perf_counter()
    nulls: list[tuple[str, str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="simsa-nulls-") as tmp:
        plan = null_pairs(Path(tmp), null_per_kind, null_widths)
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("comparing adversarial nulls", total=len(plan))
            for kind, name, cand, ref in plan:
                nulls.append((kind, name, _slim(compare_paths(cand, ref))))
                bar.advance(task)
    nulls_s = time.perf_counter() - t2

    t3 = time.perf_counter()
    tails: list[TailSample] = []
    plan_t = tail_plan(zoo.pairs, tail_pairs)
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("tail: coordinate permutations", total=len(plan_t) * tail_draws)
        for pair, comp, layer in plan_t:
            tails.append(tail_sample(zoo.models[pair.candidate], zoo.models[pair.reference], comp, layer,
                                     pair=pair.name, family=pair.family, draws=tail_draws,
                                     progress=lambda n: bar.advance(task, n)))
    tail_s = time.perf_counter() - t3

    t4 = time.perf_counter()
    recall = None if args.no_recall else derived_recall(console)
    recall_s = time.perf_counter() - t4

    all_results = [r for _, r in results]
    fp_rows = false_positive_table(collect_pvalues(all_results))
    by_family_rows = {FAMILY_LABELS[f]: false_positive_table(collect_pvalues([r for p, r in results if p.family == f]))
                      for f in FAMILIES}
    hard = verdict_counts(all_results)
    null_counts = verdict_counts([r for _, _, r in nulls])
    null_by_kind = {k: verdict_counts([r for kk, _, r in nulls if kk == k]) for k in NULL_KINDS}
    tail_rows = [tail_agreement(t.null) for t in tails]
    pooled = pooled_tail(tail_rows)
    models_by_family = {f: sum(1 for m in zoo.info.values() if m["family"] == f) for f in FAMILIES}
    created = datetime.now(UTC).isoformat(timespec="seconds")
    document = calibration_document(
        {FAMILY_LABELS[f]: ([r for p, r in results if p.family == f], models_by_family[f]) for f in FAMILIES},
        [r for _, _, r in nulls], _command(argv), created)
    timing = {"build_seconds": round(build_s, 1), "zoo_build_seconds": zoo.build_seconds,
              "compare_seconds": round(compare_s, 1), "compare_seconds_per_pair": round(compare_s / len(results), 2),
              "null_seconds": round(nulls_s, 1), "tail_seconds": round(tail_s, 1)}
    loss_by_family = {FAMILY_LABELS[f]: [m["training"]["loss_end"] for m in zoo.info.values() if m["family"] == f]
                      for f in FAMILIES}

    if args.write:
        CALIBRATION_PATH.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {CALIBRATION_PATH.relative_to(ROOT)}")

    losses = ", ".join(f"{f} {min(v):.2f}–{max(v):.2f}" for f, v in loss_by_family.items())
    console.print(f"hard negatives: {len(zoo.models)} models ({', '.join(FAMILY_LABELS[f] for f in FAMILIES)}; widths "
                  f"{', '.join(map(str, widths))}; {per_group} per group; {steps} steps), {len(results)} "
                  f"within-group pairs; held-out loss at the end: {losses}")
    table = Table("p-value", "α", "n", "p ≤ α", "rate", "95 % interval (Clopper–Pearson)", "α inside",
                  title="False positives on hard negatives: P(p ≤ α), overall and per component")
    for row in fp_rows:
        table.add_row(*_fmt_rate(row))
    console.print(table)

    table = Table("set", "pairs", "derived", "inconclusive", "independent", "inconclusive rate (95 % interval)",
                  f"overall p ≤ 1e{THRESHOLD_LOG10:.0f}", title="Verdicts")
    for label, vc in [("hard negatives", hard),
                      *((f"  {FAMILY_LABELS[f]}", verdict_counts([r for p, r in results if p.family == f]))
                        for f in FAMILIES),
                      ("adversarial nulls", null_counts), *((f"  {k}", v) for k, v in null_by_kind.items())]:
        low, high = vc.inconclusive_interval
        table.add_row(label, str(vc.n), str(vc.derived), str(vc.inconclusive), str(vc.independent),
                      f"{vc.inconclusive / vc.n:.3f} [{low:.3f}, {high:.3f}]", str(vc.below_threshold))
    console.print(table)
    goal = "met" if hard.inconclusive / hard.n <= INCONCLUSIVE_GOAL else "NOT met"
    console.print(f"inconclusive on hard negatives: {hard.inconclusive}/{hard.n} (goal ≤ {INCONCLUSIVE_GOAL:.0%}: "
                  f"{goal}); derived: {hard.derived} hard negatives, {null_counts.derived} adversarial nulls "
                  f"(goal: 0)")

    table = Table("pair", "component", "layer", "units", "coords", "draws", "exact log10 p", "t log10 p (24)",
                  *(f"ratio q={q:g}" for q in TAIL_QS), title="Tail: exact permutation null vs the Student-t "
                  "approximation (observed / nominal share beyond the t-quantile)")
    for t, rows in zip(tails, tail_rows, strict=True):
        layer = "-" if t.layer is None else str(t.layer)
        table.add_row(_short_pair(t.pair), short_component(t.component), layer, str(t.units), str(t.coords),
                      str(t.null.size), f"{t.exact_log10_p:.2f}", f"{t.t_log10_p:.2f}",
                      *(f"{r.ratio:.2f}" for r in rows))
    table.add_row("pooled", "", "", "", "", str(sum(t.null.size for t in tails)), "", "",
                  *(f"{r.ratio:.2f}" for r in pooled))
    table.columns[0].no_wrap = True
    console.print(table)
    console.print("tail, pooled over pairs: " + "; ".join(
        f"q={r.q:g}: {r.exceed} of {r.comparisons} (draw, subset) comparisons beyond the t-quantile, "
        f"{r.observed:.2e} observed" for r in pooled))
    if recall is not None:
        console.print(f"derived recall (validity zoo and derivation suite): {recall['correct']} of "
                      f"{recall['pairs']} derivations keep their verdict and localisation"
                      + (f"; failures: {recall['failures']}" if recall["failures"] else "")
                      + f"; weakest derived -log10 p {recall['weakest_minus_log10_p']} ({recall_s:.0f} s)")
    console.print(f"seconds: build {timing['build_seconds']} (zoo recorded {zoo.build_seconds}), compare "
                  f"{timing['compare_seconds']} ({timing['compare_seconds_per_pair']} per pair), adversarial nulls "
                  f"{timing['null_seconds']}, tail {timing['tail_seconds']}")
    if args.json:
        print(json.dumps({
            "recipe": zoo.recipe, "models": len(zoo.models), "pairs": len(results), "quick": quick,
            "false_positives": [r.to_dict() for r in fp_rows],
            "false_positives_by_family": {f: [r.to_dict() for r in rows] for f, rows in by_family_rows.items()},
            "hard_negatives": hard.to_dict(),
            "hard_negatives_by_family": {FAMILY_LABELS[f]: verdict_counts([r for p, r in results if p.family == f])
                                         .to_dict() for f in FAMILIES},
            "adversarial_nulls": null_counts.to_dict(),
            "derived_recall": recall,
            "adversarial_nulls_by_kind": {k: v.to_dict() for k, v in null_by_kind.items()},
            "adversarial_null_pairs": [{"kind": k, "pair": n, "verdict": r["verdict"], "log10_p": r["log10_p"]}
                                       for k, n, r in nulls],
            "tail": {"pooled": [r.to_dict() for r in pooled],
                     "pairs": [{**t.to_dict(), "agreement": [r.to_dict() for r in rows]}
                               for t, rows in zip(tails, tail_rows, strict=True)]},
            "calibration": document, "seconds": timing,
            "loss_end": {f: {"min": min(v), "max": max(v)} for f, v in loss_by_family.items()},
            "hard_negative_pairs": [{"pair": p.name, "family": FAMILY_LABELS[p.family], "width": p.width, **r}
                                    for p, r in results],
        }, indent=2))
    if hard.derived or null_counts.derived:
        console.print("[red]a null pair was called derived[/]")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
