"""Does a step-0 checkpoint look like the initialisation the team declared?

Each floating-point tensor is classified by kind (from the lineage role map) and tested against its kind's declared
distribution: a Kolmogorov–Smirnov test on a deterministic sample of its values for normal, truncated-normal and
uniform draws, exact equality for constants (norm gains of 1, biases of 0 unless declared otherwise). The p-values
are Holm-adjusted over all tensors tested, so a checkpoint of hundreds of honest tensors does not fail by chance,
while trained weights (a parent's, even re-noised) are far from any of these distributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from simsa.evidence.manifest import Init
from simsa.lineage.formats.reader import TensorReader
from simsa.lineage.model.roles import ArchitectureMap

SAMPLE = 20_000  # values tested per tensor
ALPHA = 0.01  # family-wise: the chance that an honest step 0 fails somewhere
MIN_VALUES = 50  # fewer values than this cannot be told apart from anything: such tensors are not tested
LOG10_FLOOR = -300.0
_KIND_OF_ROLE = {"embed": "embedding", "attn": "attention", "xattn": "attention", "mlp": "mlp", "moe": "experts",
                 "head": "output_head", "norm": "norm", "bias": "bias"}
DEFAULT_INIT = {"norm": Init(distribution="ones"), "bias": Init(distribution="zeros")}


def tensor_kinds(amap: ArchitectureMap, names: Iterable[str]) -> dict[str, str]:
    """Each tensor's initialisation kind: biases and norms by name and role, the rest by the role's component."""
    by_name: dict[str, str] = {}
    for t in amap.tensors:
        kind = t.role.kind
        head = "router" if kind == "moe.router" else _KIND_OF_ROLE.get(kind.split(".", 1)[0], "other")
        by_name.setdefault(t.name, head)
    out = {}
    for name in names:
        if name.endswith(".bias"):
            out[name] = "bias"
        else:
            out[name] = by_name.get(name, "other")
    return out


@dataclass(frozen=True)
class TensorFit:
    name: str
    kind: str
    declared: str
    values: int  # values tested
    mean: float
    std: float
    statistic: float | None  # KS distance; None for a constant
    log10_p: float | None  # None for a constant (exact check)
    mismatched: int = 0  # constants: values that differ from the declared constant
    adjusted_log10_p: float | None = None
    passed: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "declared": self.declared, "values": self.values,
                "mean": round(self.mean, 6), "std": round(self.std, 6),
                "ks_statistic": None if self.statistic is None else round(self.statistic, 5),
                "log10_p": None if self.log10_p is None else round(self.log10_p, 3),
                "adjusted_log10_p": None if self.adjusted_log10_p is None else round(self.adjusted_log10_p, 3),
                "mismatched": self.mismatched, "passed": self.passed}


def describe(init: Init) -> str:
    if init.distribution in ("zeros", "ones"):
        return init.distribution
    if init.distribution == "normal":
        return f"normal(mean {init.mean:g}, std {init.std:g})"
    low, high = init.bounds() or (0.0, 0.0)
    if init.distribution == "uniform":
        return f"uniform({low:g}, {high:g})"
    return f"truncated normal(mean {init.mean:g}, std {init.std:g}, cut at {low:g} and {high:g})"


def _cdf(init: Init) -> Callable[[np.ndarray], np.ndarray]:
    std = float(init.std or 1.0)
    if init.distribution == "normal":
        return stats.norm(loc=init.mean, scale=std).cdf
    low, high = init.bounds() or (0.0, 1.0)
    if init.distribution == "uniform":
        return stats.uniform(loc=low, scale=high - low).cdf
    return stats.truncnorm((low - init.mean) / std, (high - init.mean) / std, loc=init.mean, scale=std).cdf


def fit(name: str, kind: str, values: np.ndarray, init: Init) -> TensorFit:
    """One tensor's sampled values against its declared initialisation (unadjusted)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    mean, std = (float(v.mean()), float(v.std())) if v.size else (math.nan, math.nan)
    if init.distribution in ("zeros", "ones"):
        target = 0.0 if init.distribution == "zeros" else 1.0
        bad = int(np.count_nonzero(v != target))
        return TensorFit(name, kind, describe(init), int(v.size), mean, std, None, None, bad, passed=bad == 0)
    result = stats.kstest(v, _cdf(init))
    p = float(result.pvalue)
    log10_p = math.log10(p) if p > 0 else LOG10_FLOOR
    return TensorFit(name, kind, describe(init), int(v.size), mean, std, float(result.statistic), max(log10_p,
                                                                                                     LOG10_FLOOR))


def holm_adjust(fits: list[TensorFit], alpha: float = ALPHA) -> list[TensorFit]:
    """Holm step-down over the tested (non-constant) tensors; constants keep their exact verdict."""
    tested = sorted((f.log10_p, i) for i, f in enumerate(fits) if f.log10_p is not None)
    m = len(tested)
    adjusted: dict[int, float] = {}
    running = -math.inf
    for rank, (lp, i) in enumerate(tested):
        running = max(running, min(0.0, lp + math.log10(m - rank)))
        adjusted[i] = running
    out = []
    for i, f in enumerate(fits):
        if i in adjusted:
            a = adjusted[i]
            f = TensorFit(f.name, f.kind, f.declared, f.values, f.mean, f.std, f.statistic, f.log10_p, f.mismatched,
                          a, a > math.log10(alpha))
        out.append(f)
    return out


def sample_values(reader: TensorReader, name: str, rng: np.random.Generator, limit: int = SAMPLE) -> np.ndarray:
    """Up to ``limit`` values of a tensor, read in bounded memory: random whole rows of a matrix (of a few experts of
    a stacked expert tensor), the whole tensor when it is small, then a random subset of the values read."""
    shape = tuple(reader.shape(name))
    if math.prod(shape) <= limit or len(shape) not in (2, 3):
        values = reader.read(name).ravel()
    else:
        rows_of, cols = shape[-2], shape[-1]
        experts = [None] if len(shape) == 2 else sorted(int(e) for e in rng.choice(shape[0], min(4, shape[0]),
                                                                                    replace=False))
        rows = min(rows_of, max(1, -(-limit // max(cols, 1)) * 2 // len(experts)))
        values = np.concatenate([reader.read_index(name, np.sort(rng.choice(rows_of, rows, replace=False)),
                                                   axis=0, expert=e).ravel() for e in experts])
    if values.size > limit:
        values = values[np.sort(rng.choice(values.size, limit, replace=False))]
    return values
