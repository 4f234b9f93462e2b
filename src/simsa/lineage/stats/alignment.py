"""Residual-basis alignment: undo a permutation, sign flip or rotation of the candidate's residual stream (pure).

A team that copied weights can rewrite them without changing what the model computes: permute or sign-flip the
residual coordinates, or rotate the whole residual stream by an orthogonal matrix (after folding the norm gains into
the matrices that read them), or prune residual coordinates. Every unit the test compares then lives in a different
basis, and a test that compares coordinates sees nothing. This module finds the basis change from *anchor rows*:
vectors of the residual stream whose identity does not depend on the basis — embedding rows paired by token string
(or position embeddings paired by position). A copied embedding gives rows ``e_c = Q e_r`` for one orthogonal ``Q``;
orthogonal Procrustes recovers it.

Validity. The unit test's null draws (coordinate permutations) assume no alignment was fitted, so an alignment is
used only when it is unmistakable, never to "improve" an ordinary comparison:

* the map is fitted on one half of the anchor tokens and judged on the other, held-out half;
* it is judged on each side's *unstructured* part (each model's own structured directions, above the Marchenko–Pastur
  edge, are projected out first), where two independently initialised models share nothing even when they were
  trained on the same data and their embeddings are semantically alike;
* it is accepted only when the median held-out cosine reaches ``ACCEPT_AGREEMENT``; the median cosine of unrelated
  rows is 0 with a spread of about ``1/√width`` per row, so no independent model comes near it.

When the rows already agree without any map (the common, undisguised case) nothing is fitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsa.lineage.stats.correspondence import remove_shared_structure

GRAM_ROWS = 512  # anchor rows whose inner products are compared before any map is fitted
MIN_GRAM_AGREEMENT = 0.1  # below this no map is even tried (unrelated rows: about 1/√(GRAM_ROWS²/2) ≈ 0.003)
ACCEPT_AGREEMENT = 0.25  # median held-out cosine of unstructured anchor parts needed to use a basis map
HELD_OUT_ROWS = 1024  # anchor rows kept out of the fit, to judge it
FIT_ROWS_PER_WIDTH = 2  # the fit uses up to this many anchor rows per residual coordinate
MIN_ANCHORS = 64
PERMUTATION_SLACK = 0.02  # prefer a signed permutation when its agreement is this close to the rotation's


@dataclass(frozen=True)
class Alignment:
    """How candidate residual vectors map into the reference basis: ``v_ref ≈ standardise(v_cand) @ matrix``."""

    kind: str  # "identity" (same basis), "signed_permutation", "orthogonal", or "none" (no usable map)
    candidate_width: int
    reference_width: int
    agreement: float  # median held-out cosine after the map (unstructured parts); NaN when not measured
    identity_agreement: float  # the same without any map
    anchors: int  # anchor rows used (fit + held out)
    reason: str
    matrix: np.ndarray | None = field(default=None, repr=False)  # (candidate_width, reference_width)
    gram_agreement: float = float("nan")  # basis-free pre-check: correlation of the anchors' inner products

    @property
    def transforms(self) -> bool:
        return self.matrix is not None

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """Candidate residual vectors ``(m, d_c)`` in the reference basis ``(m, d_r)``.

        Each candidate coordinate is first standardised across the units (when there are enough of them): a model
        whose norm gains were re-randomised after the rotation carries a per-coordinate scale in the *candidate*
        basis, which must go before rotating back; the reference-basis scale left after it is removed later, by the
        unit test's own standardisation.
        """
        if self.matrix is None:
            return rows
        x = np.asarray(rows, dtype=np.float32)
        if x.shape[0] >= 16:
            sd = x.std(axis=0, keepdims=True, dtype=np.float64)
            sd[(sd == 0) | ~np.isfinite(sd)] = 1.0
            x = ((x - x.mean(axis=0, keepdims=True)) / sd).astype(np.float32)
        return x @ self.matrix

    def as_dict(self) -> dict:
        def r(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 4)

        return {"kind": self.kind, "candidate_width": self.candidate_width, "reference_width": self.reference_width,
                "agreement": r(self.agreement), "identity_agreement": r(self.identity_agreement),
                "anchors": self.anchors, "accept_agreement": ACCEPT_AGREEMENT, "reason": self.reason,
                "gram_agreement": r(self.gram_agreement), "min_gram_agreement": MIN_GRAM_AGREEMENT}


class LazyRows:
    """Anchor rows read only when used, for `fit_alignment`.

    Its cheap checks look at the held-out rows and the Gram rows only; only fitting a map needs every anchor row. A
    comparison against a fingerprint of a 4096-wide model thus reads about 1.5 k embedding rows instead of 9 k, which
    matters when the rows come over HTTP. ``read`` gets row ids in ascending order and returns those rows
    ``(len(ids), width)``; ``ids[i]`` is the row behind position ``i``.
    """

    def __init__(self, ids: np.ndarray, width: int, read: Callable[[np.ndarray], np.ndarray]) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.shape = (int(self.ids.size), int(width))
        self._read = read
        self._all: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if self._all is not None:
            return self._all[index]
        pos = np.arange(self.shape[0])[index]
        wanted = self.ids[pos]
        order = np.argsort(wanted, kind="stable")
        rows = np.asarray(self._read(wanted[order]), dtype=np.float32)
        if rows.shape != (wanted.size, self.shape[1]):
            raise ValueError(f"anchor rows read as {rows.shape}, expected {(wanted.size, self.shape[1])}")
        out = np.empty_like(rows)
        out[order] = rows
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._all is None:
            self._all = self[:]
        return self._all if dtype is None else self._all.astype(dtype, copy=False)


def _centre(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)


def _agreement(cand: np.ndarray, ref: np.ndarray) -> float:
    """Median row cosine of the two sides' unstructured parts (rows paired)."""
    a = remove_shared_structure(cand)
    b = remove_shared_structure(ref)
    num = np.einsum("ij,ij->i", a, b, dtype=np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    ok = den > 0
    return float(np.median(num[ok] / den[ok])) if ok.any() else float("nan")


def anchor_gram(rows: np.ndarray) -> np.ndarray:
    """Cosines between anchor rows' unstructured parts: unchanged by any orthogonal map of the residual basis."""
    x = remove_shared_structure(_centre(np.asarray(rows, dtype=np.float32)))
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return (x @ x.T).astype(np.float32)


def gram_agreement(cand_gram: np.ndarray, ref_gram: np.ndarray) -> float:
    """Correlation of the off-diagonal entries of two anchor Gram matrices (rows paired).

    A rotated, permuted or sign-flipped copy has the same Gram matrix; unrelated models' unstructured parts give
    uncorrelated entries. Cheap (no width × width algebra), so it decides whether fitting a map is worth it.
    """
    n = min(len(cand_gram), len(ref_gram))
    if n < 16:
        return float("nan")
    iu = np.triu_indices(n, 1)
    a, b = cand_gram[:n, :n][iu].astype(np.float64), ref_gram[:n, :n][iu].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b / den) if den > 0 else float("nan")


def _signed_permutation(cross: np.ndarray, cand_sd: np.ndarray, ref_sd: np.ndarray) -> np.ndarray | None:
    """The signed (partial) permutation that the cross-covariance points to, if it is one-to-one.

    Each coordinate of the narrower side picks its best-correlated coordinate on the wider side (a pruned model
    keeps a subset of its parent's coordinates; a reference seen only on sampled coordinates maps to a subset of
    the candidate's).
    """
    corr = cross / np.outer(np.maximum(cand_sd, 1e-12), np.maximum(ref_sd, 1e-12))
    m = np.zeros(cross.shape, dtype=np.float32)
    if cross.shape[0] <= cross.shape[1]:
        rows = np.arange(cross.shape[0])
        cols = np.abs(corr).argmax(axis=1)
    else:
        cols = np.arange(cross.shape[1])
        rows = np.abs(corr).argmax(axis=0)
    if len(np.unique(rows)) != len(rows) or len(np.unique(cols)) != len(cols):
        return None
    m[rows, cols] = np.sign(corr[rows, cols])
    return m


def _least_squares(cand: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The linear map ``cand @ A ≈ ref`` (lightly ridge-regularised).

    Used when the reference is known only on a subset of its coordinates (a fingerprint): there the map is a few
    columns of the orthogonal matrix, which orthogonal Procrustes on the subset does not recover when the embedding
    is anisotropic, but least squares does.
    """
    c = cand.astype(np.float64)
    gram = c.T @ c
    gram[np.diag_indices_from(gram)] += 1e-6 * np.trace(gram) / max(1, gram.shape[0])
    return np.linalg.solve(gram, c.T @ ref.astype(np.float64)).astype(np.float32)


def _orthogonal(cross: np.ndarray) -> np.ndarray:
    """Orthogonal Procrustes: the (semi-)orthogonal ``Q`` maximising ``trace(Q^T cross)``."""
    u, _, vt = np.linalg.svd(cross.astype(np.float64), full_matrices=False)
    return (u @ vt).astype(np.float32)


def fit_alignment(cand: np.ndarray | LazyRows, ref: np.ndarray, rng: np.random.Generator,
                  ref_coords: np.ndarray | None = None, ref_width: int | None = None,
                  ref_gram: np.ndarray | None = None, cand_gram: np.ndarray | None = None) -> Alignment:
    """Find the map from the candidate's residual basis to the reference's from paired anchor rows.

    ``cand`` ``(n, d_c)`` and ``ref`` ``(n, d_r)`` hold the same n anchors (row i of both is the same token). When
    the reference is known only on some coordinates (``ref_coords`` of its ``ref_width``; a fingerprint), ``ref``
    holds just those columns and the map goes into them.
    """
    n, d_c = cand.shape
    d_r = ref.shape[1]
    full_width = ref_width or d_r
    if n < MIN_ANCHORS:
        return Alignment("none", d_c, full_width, float("nan"), float("nan"), n,
                         f"only {n} anchor rows in common (need {MIN_ANCHORS})")
    order = rng.permutation(n)
    n_test = min(HELD_OUT_ROWS, n // 4)
    test, fit = order[:n_test], order[n_test:n_test + FIT_ROWS_PER_WIDTH * max(d_c, d_r)]
    # The cheap checks look at the held-out rows only; the whole anchor set is touched only to fit a map.
    ct, rt = np.asarray(cand[test], dtype=np.float32), np.asarray(ref[test], dtype=np.float32)
    same = ct[:, ref_coords] if ref_coords is not None and d_c == full_width else (ct if d_c == d_r else None)
    identity = _agreement(_centre(same), _centre(rt)) if same is not None else float("nan")
    if identity >= ACCEPT_AGREEMENT:
        return Alignment("identity", d_c, full_width, identity, identity, n, "anchor rows agree in the same basis")
    # Rows 0..GRAM_ROWS are the anchors' first rows in the callers' (sorted) order on both sides.
    gram = gram_agreement(cand_gram if cand_gram is not None else anchor_gram(cand[:GRAM_ROWS]),
                          ref_gram if ref_gram is not None else anchor_gram(ref[:GRAM_ROWS]))
    if not gram >= MIN_GRAM_AGREEMENT:
        return Alignment("none", d_c, full_width, float("nan"), identity, n,
                         f"the anchor rows' inner products disagree (correlation {gram:.3f} < {MIN_GRAM_AGREEMENT}): "
                         "no basis map can relate them, none was fitted", gram_agreement=gram)
    c = _centre(np.asarray(cand, dtype=np.float32))
    r = _centre(np.asarray(ref, dtype=np.float32))
    cross = c[fit].T.astype(np.float64) @ r[fit].astype(np.float64)  # (d_c, d_r)
    options: list[tuple[float, str, np.ndarray]] = []
    perm = _signed_permutation(cross, c[fit].std(axis=0), r[fit].std(axis=0))
    if perm is not None:
        options.append((_agreement(c[test] @ perm, r[test]), "signed_permutation", perm))
    rot = _orthogonal(cross) if ref_coords is None else _least_squares(c[fit], r[fit])
    options.append((_agreement(c[test] @ rot, r[test]), "orthogonal", rot))
    best = max(options, key=lambda o: o[0])
    if perm is not None and options[0][0] >= best[0] - PERMUTATION_SLACK:
        best = options[0]
    agreement, kind, matrix = best
    if not agreement >= ACCEPT_AGREEMENT:
        return Alignment("none", d_c, full_width, agreement, identity, n,
                         f"no basis map makes the anchor rows agree (best held-out agreement {agreement:.3f} < "
                         f"{ACCEPT_AGREEMENT})", gram_agreement=gram)
    what = "a signed permutation" if kind == "signed_permutation" else "an orthogonal map"
    shape = "" if d_c == full_width else f" from width {d_c} into width {full_width}"
    return Alignment(kind, d_c, full_width, agreement, identity, n,
                     f"the candidate's residual stream is {what} of the reference's{shape}", matrix, gram)
