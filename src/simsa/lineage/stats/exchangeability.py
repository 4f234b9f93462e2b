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


def _mad_sd(x: np.ndarray) -> np.ndarray:
    """A robust spread per column: 1.4826 × the median absolute deviation (σ for Gaussian data)."""
    med = np.median(x, axis=0)
    return 1.4826 * np.median(np.abs(x - med), axis=0)


def flag_matrix(x: np.ndarray) -> dict[str, set[int]]:
    """Flag the non-exchangeable columns of one ``(units, coordinates)`` matrix."""
    x = np.asarray(x, dtype=np.float64)
    out: dict[str, set[int]] = {r: set() for r in REASONS}
    if x.ndim != 2 or x.shape[0] < MIN_AUDIT_UNITS or x.shape[1] < 2:
        return out
    finite = np.isfinite(x).all(axis=0)
    x = np.where(np.isfinite(x), x, 0.0)
    sd = x.std(axis=0)
    typical = float(np.median(sd[sd > 0])) if np.any(sd > 0) else 0.0
    constant = (sd <= CONSTANT_RELATIVE_SD * typical) | ~finite
    out["constant"] = set(np.nonzero(constant)[0].tolist())
    live = ~constant
    robust = _mad_sd(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        spiked = live & ((robust == 0) | (sd / np.where(robust > 0, robust, 1.0) > SPIKE_RATIO))
    out["spiked"] = set(np.nonzero(spiked)[0].tolist())
    rms = np.sqrt((x * x).mean(axis=0))
    typical_rms = float(np.median(rms[live])) if np.any(live) else 0.0
    if typical_rms > 0:
        scale = live & ~spiked & ((rms > SCALE_RATIO * typical_rms) | (rms < typical_rms / SCALE_RATIO))
        out["scale"] = set(np.nonzero(scale)[0].tolist())
    out["duplicated"] = _duplicates(x, live & ~spiked)
    return out


def _duplicates(x: np.ndarray, candidates: np.ndarray) -> set[int]:
    """Columns equal to another column after standardising, up to sign: every member of each tied set."""
    cols = np.nonzero(candidates)[0]
    if cols.size < 2:
        return set()
    z = x[:, cols] - x[:, cols].mean(axis=0)
    z /= np.where(z.std(axis=0) > 0, z.std(axis=0), 1.0)
    first = z[np.argmax(np.abs(z) > 1e-9, axis=0), np.arange(cols.size)]
    z *= np.where(first < 0, -1.0, 1.0)  # canonical sign, so j' = −j ties too
    keys = np.round(z, DUPLICATE_DECIMALS) + 0.0  # + 0.0 turns −0.0 into 0.0
    seen: dict[bytes, list[int]] = {}
    for i, c in enumerate(cols):
        seen.setdefault(np.ascontiguousarray(keys[:, i]).tobytes(), []).append(int(c))
    return {c for group in seen.values() if len(group) > 1 for c in group}


def audit(matrices: Iterable[np.ndarray], width: int) -> CoordinateAudit:
    """Audit one model's stack from its unit matrices (each ``(units, width)``); a coordinate flagged in any counts."""
    flagged: dict[str, set[int]] = {r: set() for r in REASONS}
    n = 0
    for x in matrices:
        if x.shape[-1] != width:
            raise ValueError(f"unit matrix has {x.shape[-1]} coordinates, the stack has {width}")
        n += 1
        for reason, coords in flag_matrix(x).items():
            flagged[reason] |= coords
    seen: set[int] = set()
    final: dict[str, frozenset[int]] = {}
    for reason in REASONS:  # each coordinate under its first reason only
        final[reason] = frozenset(flagged[reason] - seen)
        seen |= flagged[reason]
    return CoordinateAudit(width, final, n)


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
