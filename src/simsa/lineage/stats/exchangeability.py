"""Checking the null's assumption: which residual coordinates are exchangeable (pure numpy; no I/O).

The hidden-unit test draws its null by permuting the candidate's residual coordinates. That is exact only when, under
independent initialisation, the coordinates are exchangeable. A *layout* breaks it: coordinates that are zero or
constant in every unit (a zero-padded hidden size), coordinates that copy other coordinates, coordinates carried by a
few units with huge weights (the "massive activations" trained LLMs develop), or coordinates with an outlying scale.
Two unrelated models that share such a layout agree on those coordinates by construction, and permuting them away
from each other makes the observed alignment look exceptional — the false ``derived`` this module exists to prevent.

So before the test, each model's units are audited per residual coordinate, and every coordinate flagged in *either*
model is left out: the test then permutes only among coordinates that pass in both (one exchangeable class). The flags
are computed column by column, so they move with the coordinates under any permutation and conditioning on them keeps
the randomisation test exact.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

MIN_AUDIT_UNITS = 16  # fewer units than this say nothing reliable about a coordinate's spread
CONSTANT_RELATIVE_SD = 1e-3  # a coordinate whose spread is below this share of the typical spread is constant
SPIKE_RATIO = 4.0  # sd / (1.4826 · MAD): ≈1 for Gaussian, ≈1.4 for Laplace-tailed weights; a few huge units ≫ 4
SCALE_RATIO = 8.0  # a coordinate whose RMS is this many times above or below the typical RMS has an outlying scale
DUPLICATE_DECIMALS = 4  # standardised columns equal to this many decimals (up to sign) are duplicates
REASONS = ("constant", "duplicated", "spiked", "scale")


@dataclass(frozen=True)
class CoordinateAudit:
    """Flagged residual coordinates of one model's stack, by reason (a coordinate keeps its first reason)."""

    width: int
    flagged: dict[str, frozenset[int]] = field(default_factory=dict)
    matrices: int = 0  # unit matrices (unit group × view) examined

    @property
    def excluded(self) -> frozenset[int]:
        out: frozenset[int] = frozenset()
        for coords in self.flagged.values():
            out = out | coords
        return out

    def counts(self) -> dict[str, int]:
        return {reason: len(self.flagged.get(reason, ())) for reason in REASONS}

    def to_dict(self, examples: int = 16) -> dict:
        return {"width": self.width, "matrices": self.matrices, "excluded": len(self.excluded),
                "counts": self.counts(),
                "coordinates": {r: sorted(self.flagged[r])[:examples] for r in REASONS if self.flagged.get(r)}}


def _row_median(a: np.ndarray) -> np.ndarray:
    """The median of each row of ``a`` (exactly ``np.median(a, axis=1)``), partitioning ``a`` in place."""
    n = a.shape[1]
    k = n // 2
    a.partition(k, axis=1)  # a[:, :k] <= a[:, k] <= a[:, k + 1:]
    if n % 2:
        return a[:, k].copy()
    return (a[:, :k].max(axis=1) + a[:, k]) / 2


def _mad_sd(xt: np.ndarray) -> np.ndarray:
    """A robust spread per row: 1.4826 × the median absolute deviation (σ for Gaussian data)."""
    med = _row_median(xt.copy())
    dev = np.abs(xt - med[:, None])
    return 1.4826 * _row_median(dev)


def flag_matrix(x: np.ndarray) -> dict[str, set[int]]:
    """Flag the non-exchangeable columns of one ``(units, coordinates)`` matrix."""
    x = np.asarray(x)
    out: dict[str, set[int]] = {r: set() for r in REASONS}
    if x.ndim != 2 or x.shape[0] < MIN_AUDIT_UNITS or x.shape[1] < 2:
        return out
    # One row per coordinate: every statistic below is per coordinate, and reducing contiguous rows is fast.
    xt = np.ascontiguousarray(x.T, dtype=np.float64)
    bad = ~np.isfinite(xt)
    finite = ~bad.any(axis=1)
    if not finite.all():
        xt[bad] = 0.0
    sd = xt.std(axis=1)
    typical = float(np.median(sd[sd > 0])) if np.any(sd > 0) else 0.0
    constant = (sd <= CONSTANT_RELATIVE_SD * typical) | ~finite
    out["constant"] = set(np.nonzero(constant)[0].tolist())
    live = ~constant
    robust = _mad_sd(xt)
    with np.errstate(divide="ignore", invalid="ignore"):
        spiked = live & ((robust == 0) | (sd / np.where(robust > 0, robust, 1.0) > SPIKE_RATIO))
    out["spiked"] = set(np.nonzero(spiked)[0].tolist())
    rms = np.sqrt(np.einsum("ij,ij->i", xt, xt) / xt.shape[1])
    typical_rms = float(np.median(rms[live])) if np.any(live) else 0.0
    if typical_rms > 0:
        scale = live & ~spiked & ((rms > SCALE_RATIO * typical_rms) | (rms < typical_rms / SCALE_RATIO))
        out["scale"] = set(np.nonzero(scale)[0].tolist())
    out["duplicated"] = _duplicates(xt, live & ~spiked)
    return out


def _duplicates(xt: np.ndarray, candidates: np.ndarray) -> set[int]:
    """Coordinates (rows of ``xt``) equal to another after standardising, up to sign: every member of each tied set."""
    cols = np.nonzero(candidates)[0]
    if cols.size < 2:
        return set()
    z = xt[cols]
    z -= z.mean(axis=1, keepdims=True)
    sd = z.std(axis=1, keepdims=True)
    z /= np.where(sd > 0, sd, 1.0)
    first = z[np.arange(cols.size), np.argmax(np.abs(z) > 1e-9, axis=1)]
    z *= np.where(first < 0, -1.0, 1.0)[:, None]  # canonical sign, so j' = −j ties too
    keys = np.round(z, DUPLICATE_DECIMALS, out=z)
    keys += 0.0  # turns −0.0 into 0.0
    # Equal rows (bytewise) are tied coordinates. A wrapping integer hash of each row's bits finds the rows that may
    # be equal in one pass; only those are compared as whole byte strings.
    bits = keys.view(np.uint64)
    hashes = (bits * _hash_multipliers(bits.shape[1])).sum(axis=1)
    _, h_inverse, h_counts = np.unique(hashes, return_inverse=True, return_counts=True)
    maybe = np.nonzero(h_counts[h_inverse.ravel()] > 1)[0]
    if maybe.size == 0:
        return set()
    rows = np.ascontiguousarray(keys[maybe]).view(np.dtype((np.void, keys.shape[1] * keys.itemsize))).ravel()
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    return {int(c) for c in cols[maybe[counts[inverse.ravel()] > 1]]}


@functools.cache
def _hash_multipliers(n: int) -> np.ndarray:
    """Fixed odd 64-bit multipliers for the row hash (the same on every machine)."""
    return np.random.default_rng(0x5157).integers(1, 2**63, size=n, dtype=np.uint64) | np.uint64(1)


class Auditor:
    """Audits one model's stack matrix by matrix: a coordinate flagged in any matrix counts.

    Only the flags are kept, so a caller that reads a large model group by group never holds all its unit matrices
    at once (the fingerprint of a 7B audits about 2 GB of rows this way in bounded memory).
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.matrices = 0
        self._flagged: dict[str, set[int]] = {r: set() for r in REASONS}

    def add(self, x: np.ndarray) -> None:
        if x.shape[-1] != self.width:
            raise ValueError(f"unit matrix has {x.shape[-1]} coordinates, the stack has {self.width}")
        self.matrices += 1
        for reason, coords in flag_matrix(x).items():
            self._flagged[reason] |= coords

    def result(self) -> CoordinateAudit:
        seen: set[int] = set()
        final: dict[str, frozenset[int]] = {}
        for reason in REASONS:  # each coordinate under its first reason only
            final[reason] = frozenset(self._flagged[reason] - seen)
            seen |= self._flagged[reason]
        return CoordinateAudit(self.width, final, self.matrices)


def audit(matrices: Iterable[np.ndarray], width: int | None = None) -> CoordinateAudit:
    """Audit one model's stack from its unit matrices (each ``(units, width)``); a coordinate flagged in any counts.

    Matrices are consumed one at a time (pass a generator to keep only the flags). ``width`` None: the first
    matrix's (0 when there is none).
    """
    auditor = None if width is None else Auditor(width)
    for x in matrices:
        auditor = auditor or Auditor(x.shape[-1])
        auditor.add(x)
    return (auditor or Auditor(0)).result()


def clean_coordinates(width: int, *excluded: Iterable[int]) -> np.ndarray:
    """The coordinates of ``range(width)`` flagged in none of the ``excluded`` sets (sorted)."""
    drop: set[int] = set()
    for coords in excluded:
        drop.update(int(c) for c in coords)
    return np.array([c for c in range(width) if c not in drop], dtype=np.int64)


@dataclass(frozen=True)
class StackAudit:
    """The audit of one stack in one comparison: what each side flagged and how many coordinates the test kept."""

    stack: str
    width: int  # coordinates the candidate's units have in the comparison (the reference's basis)
    kept: int  # coordinates the test uses after leaving the flagged ones out (and sampling)
    candidate: CoordinateAudit
    reference: CoordinateAudit | None  # None: a fingerprint written before the audit existed

    @property
    def excluded(self) -> int:
        ref = self.reference.excluded if self.reference is not None else frozenset()
        return len(self.candidate.excluded | ref) if self.reference is None or (
            self.reference.width == self.candidate.width) else len(self.candidate.excluded) + len(ref)

    def to_dict(self) -> dict:
        return {"stack": self.stack, "width": self.width, "kept": self.kept, "excluded": self.excluded,
                "candidate": self.candidate.to_dict(),
                "reference": self.reference.to_dict() if self.reference is not None else None}
