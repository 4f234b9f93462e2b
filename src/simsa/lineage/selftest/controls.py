"""Generated controls for ``simsa lineage selftest``: independent models that share the tested model's *layout*.

A control is a model that did not descend from the tested one, so comparing the two must never say ``derived``. An
i.i.d. Gaussian model of the same shapes is the easiest control to pass: it shares nothing, not even the structure
that breaks the comparison's null (residual coordinates that are zero in both, coordinates with a planted large scale,
a few huge "massive activation" weights on the same coordinates, duplicated coordinates). The structured controls here
keep exactly that structure and draw everything else afresh, so a comparison that mistakes a shared layout for a
shared origin fails the self-test instead of a team's appeal.

- ``gaussian``: every tensor Gaussian at its own spread, norm gains one (shares only the shapes);
- ``layout_matched``: per residual coordinate of every residual-facing tensor, fresh Gaussian values at the model's
  robust scale for that coordinate; zero coordinates stay zero, a coordinate's few spike entries are re-planted with
  their magnitudes in randomly chosen units, duplicated coordinates stay duplicates (of fresh values); 1-D vectors
  (norm gains, biases) are kept when they hold few distinct values (ones, zeroed or damped coordinates), else keep
  their zeros and outlying entries and draw the rest around their median;
- ``zero_padded``: the Gaussian control with the coordinates that are (near-)constant across units in a tensor of the
  model set to that constant (zero for padding) in the same tensor; skipped when the model has none.

Pure per-array logic (``layout_matched_matrix``, ``layout_matched_vector``, ``constant_columns``) is kept apart from
writing (``write_controls``), so it can be tested on arrays.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsa.lineage.formats.digest import MIN_DISTINCT_VALUES
from simsa.lineage.model.roles import MappedTensor
from simsa.lineage.selftest.disguise import Model, write_model

GENERATED = ("gaussian", "layout_matched", "zero_padded")
DESCRIPTIONS = {
    "gaussian": "fresh Gaussian weights of the model's shapes (each tensor at its own spread, norm gains one)",
    "layout_matched": "fresh values with the model's per-coordinate scale profile: zero coordinates stay zero, large "
                      "ones large, spikes re-planted on the same coordinates in other units, duplicated coordinates "
                      "duplicated, outlying norm gains copied",
    "zero_padded": "the Gaussian control with the coordinates that are (near-)constant across units in the model "
                   "set to the same constant (zero for padding)",
}
MAD_TO_SD = 1.4826  # median absolute deviation of a Gaussian times this is its standard deviation
SPIKE_FACTOR = 8.0  # an entry beyond this many robust standard deviations of its coordinate is a spike
OUTLIER_FACTOR = 6.0  # a 1-D entry this many robust standard deviations from the median keeps its value
DISTINCT_VALUES = MIN_DISTINCT_VALUES  # fewer distinct values: the vector is all layout
CONSTANT_RELATIVE = 1e-3  # a coordinate whose spread across units is below this share of the median spread is constant


@dataclass(frozen=True)
class Control:
    """One control model: where it was written, or why it was not (``path`` None)."""

    name: str
    description: str
    path: Path | None
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "path": None if self.path is None else str(self.path), "reason": self.reason}


# --- pure per-array logic


def layout_matched_matrix(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fresh values for ``a`` (units × residual coordinates) that keep each coordinate's layout and nothing else.

    The scale of a coordinate is its robust spread (median absolute value, so its spikes do not inflate it); entries
    beyond ``SPIKE_FACTOR`` times that scale are spikes, re-planted with their magnitudes and random signs in randomly
    chosen units of the same coordinate; exactly duplicated non-zero coordinates stay duplicates of fresh values.
    """
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a non-empty units × coordinates matrix, got shape {a.shape}")
    n = a.shape[0]
    mag = np.abs(a)
    robust = MAD_TO_SD * np.median(mag, axis=0)
    spike = mag > SPIKE_FACTOR * robust[None, :]  # where robust is 0, every non-zero entry is a spike
    bulk = ~spike
    count = bulk.sum(axis=0)
    sq = np.where(bulk, a.astype(np.float64) ** 2, 0.0).sum(axis=0)
    scale = np.sqrt(np.divide(sq, count, out=np.zeros_like(sq), where=count > 0))
    fresh = (rng.standard_normal(a.shape) * scale[None, :]).astype(np.float32)
    rows, cols = np.nonzero(spike)
    if rows.size:
        signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=rows.size)
        fresh[rng.integers(0, n, size=rows.size), cols] = mag[rows, cols] * signs
    for dup, src in _duplicated_columns(a):
        fresh[:, dup] = fresh[:, src]
    return fresh


def _duplicated_columns(a: np.ndarray) -> Iterator[tuple[int, int]]:
    """(duplicate, original) pairs of non-zero columns of ``a`` that are exactly equal.

    One random projection puts equal columns next to each other; only neighbours with (nearly) equal projections are
    compared in full, so the cost stays linear in the tensor's size.
    """
    nonzero = np.flatnonzero(np.any(a != 0, axis=0))
    if nonzero.size < 2:
        return
    probe = np.random.default_rng(0).standard_normal(a.shape[0])
    key = probe @ a[:, nonzero].astype(np.float64)
    order = np.argsort(key, kind="stable")
    tol = 1e-9 * (float(np.abs(key).max()) + 1e-300)
    run: list[int] = []  # distinct columns of the current run of near-equal keys
    last = None
    for i in order:
        col = int(nonzero[i])
        if last is None or key[i] - last > tol:
            run = []
        last = key[i]
        same = next((r for r in run if np.array_equal(a[:, col], a[:, r])), None)
        if same is None:
            run.append(col)
        else:
            yield col, same


def layout_matched_vector(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fresh values for a 1-D tensor (norm gain, bias) that keep its layout and nothing else.

    A vector of few distinct values (ones, ones with zeroed or damped coordinates) *is* its layout and is kept as it
    is: equal vectors of that kind are no evidence of copying (the comparison's identity check ignores them). A vector
    of many values keeps its zeros and outlying entries where they are and draws the rest around its median.
    """
    v = np.asarray(v, dtype=np.float32)
    if np.unique(v).size < DISTINCT_VALUES:
        return v.copy()
    med = float(np.median(v))
    spread = MAD_TO_SD * float(np.median(np.abs(v - med)))
    keep = (np.abs(v - med) > OUTLIER_FACTOR * spread) | (v == 0)
    out = (med + spread * rng.standard_normal(v.shape)).astype(np.float32)
    out[keep] = v[keep]
    return out


def constant_columns(a: np.ndarray) -> np.ndarray:
    """Mask of the coordinates (columns of units × coordinates ``a``) whose values barely vary across units."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] < 2:
        return np.zeros(a.shape[-1] if a.ndim else 0, dtype=bool)
    sd = a.std(axis=0, dtype=np.float64)
    typical = float(np.median(sd))
    return sd <= CONSTANT_RELATIVE * typical if typical > 0 else sd == 0


# --- tensors of a model


def unit_views(x: np.ndarray, entries: list[MappedTensor]) -> list[np.ndarray]:
    """Writable units × coordinates views of ``x`` for each distinct residual-facing slice its entries describe."""
    views, seen = [], set()
    for t in entries:
        if t.residual_axis is None:
            continue
        key = (t.expert_index, t.unit_range, t.residual_axis)
        if key in seen:
            continue
        seen.add(key)
        view = x[t.expert_index] if t.expert_index is not None else x
        if view.ndim != 2:
            continue
        unit_axis = 1 - t.residual_axis
        if t.unit_range is not None:
            sl = [slice(None), slice(None)]
            sl[unit_axis] = slice(*t.unit_range)
            view = view[tuple(sl)]
        views.append(view if unit_axis == 0 else view.T)
    return views


def _is_gain(model: Model, name: str) -> bool:
    ents = model.entries.get(name)
    return ents is not None and bool(ents) and ents[0].role.kind == "norm" and not name.endswith("bias")


def _gaussian(model: Model, rng: np.random.Generator) -> Callable[[str, np.ndarray], np.ndarray]:
    def fresh(name: str, x: np.ndarray) -> np.ndarray:
        if _is_gain(model, name):
            return np.ones_like(x)
        sd = float(x.std()) if x.size > 1 else 0.0
        return (rng.standard_normal(x.shape) * sd).astype(np.float32)

    return fresh


def write_gaussian_control(model: Model, out: Path, seed: int) -> None:
    """An independent model of the same shapes: Gaussian weights at each tensor's own spread, unit norm gains."""
    write_model(model, out, _gaussian(model, np.random.default_rng([seed, 7919])))


def write_layout_matched_control(model: Model, out: Path, seed: int) -> None:
    """An independent model that shares the model's residual layout (see ``layout_matched_matrix``) and nothing else."""
    rng = np.random.default_rng([seed, 7927])
    plain = _gaussian(model, rng)

    def fresh(name: str, x: np.ndarray) -> np.ndarray:
        entries = model.entries.get(name, [])
        views = unit_views(x, entries)
        if not views:
            return layout_matched_vector(x, rng) if x.ndim == 1 and entries else plain(name, x)
        out = plain(name, x)  # parts no entry covers keep the plain Gaussian draw
        for src, dst in zip(views, unit_views(out, entries), strict=True):
            dst[...] = layout_matched_matrix(src, rng)
        return out

    write_model(model, out, fresh)


def write_zero_padded_control(model: Model, out: Path, seed: int) -> int:
    """The Gaussian control with the model's (near-)constant coordinates copied per tensor; returns how many
    (tensor slice, coordinate) cells were constant. Nothing is left at ``out`` when there were none."""
    rng = np.random.default_rng([seed, 7933])
    plain = _gaussian(model, rng)
    found = [0]

    def fresh(name: str, x: np.ndarray) -> np.ndarray:
        entries = model.entries.get(name, [])
        out_x = plain(name, x)
        for src, dst in zip(unit_views(x, entries), unit_views(out_x, entries), strict=True):
            mask = constant_columns(src)
            if mask.any():
                found[0] += int(mask.sum())
                dst[:, mask] = src[:, mask].mean(axis=0, dtype=np.float64).astype(np.float32)[None, :]
        return out_x

    write_model(model, out, fresh)
    if not found[0]:
        shutil.rmtree(out, ignore_errors=True)
    return found[0]


def write_controls(model: Model, root: Path, seed: int, names: list[str] | None = None) -> list[Control]:
    """Write the generated controls (all of ``GENERATED`` when ``names`` is None) under ``root``; the Gaussian one
    goes to ``root/control`` as it always has. Unknown names raise ValueError listing the known ones."""
    chosen = list(GENERATED) if names is None else list(dict.fromkeys(names))
    bad = [n for n in chosen if n not in GENERATED]
    if bad:
        raise ValueError(f"unknown control(s) {', '.join(bad)}; known: {', '.join(GENERATED)}")
    out: list[Control] = []
    for name in chosen:
        path = root / ("control" if name == "gaussian" else f"control-{name}")
        if name == "gaussian":
            write_gaussian_control(model, path, seed)
        elif name == "layout_matched":
            write_layout_matched_control(model, path, seed)
        elif not write_zero_padded_control(model, path, seed):
            out.append(Control(name, DESCRIPTIONS[name], None, "the model has no (near-)constant residual "
                                                             "coordinate; layout_matched covers its layout"))
            continue
        out.append(Control(name, DESCRIPTIONS[name], path))
    return out
