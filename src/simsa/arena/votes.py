"""Arena votes as arrays: who met whom, who won, and the style difference of the two answers.

Everything statistical (Bradley–Terry fits, bootstrap, sandwich intervals, style control) reads a `Votes`; the one
function here that touches a file is `read_votes_csv`, so the statistics stay pure and testable on arrays.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsa.errors import InputError

from .style import STYLE_COVARIATES

OUTCOMES = ("model_a", "model_b", "tie", "both_bad")
# FastChat's logs spell "both bad" as a kind of tie; accepted so its exports read without editing.
OUTCOME_ALIASES = {"tie (bothbad)": "both_bad", "bothbad": "both_bad", "both bad": "both_bad"}
# Ties and both-bad count half a win for each side (arena-rank's and FastChat's convention).
OUTCOME_VALUE = np.array([1.0, 0.0, 0.5, 0.5])
STYLE_COLUMNS = STYLE_COVARIATES


def outcome_kind(winner: str) -> int:
    """The index into OUTCOMES of a winner label; InputError for anything else."""
    label = winner.strip().lower()
    label = OUTCOME_ALIASES.get(label, label)
    try:
        return OUTCOMES.index(label)
    except ValueError:
        raise InputError(f"unknown winner {winner!r}: expected one of {', '.join(OUTCOMES)}") from None


def count_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a − b)/(a + b + 1): the style difference FastChat and arena-rank use, bounded in (−1, 1) and 0 for equal."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return (a - b) / (a + b + 1.0)


@dataclass(frozen=True, eq=False)
class Votes:
    """A set of pairwise votes; `a`, `b` index into `models` (sorted), `kind` indexes OUTCOMES.

    `style`, when present, is the (n, 4) per-vote difference (a−b)/(a+b+1) of length, headers, lists and bold —
    raw, not z-scored (the fit z-scores over the vote set it is given).
    """

    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    kind: np.ndarray
    style: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.kind)
        if len(self.a) != n or len(self.b) != n:
            raise InputError("votes: model_a, model_b and winner arrays differ in length")
        if self.style is not None and np.shape(self.style) != (n, len(STYLE_COLUMNS)):
            raise InputError(f"votes: style must have shape ({n}, {len(STYLE_COLUMNS)}), got {np.shape(self.style)}")
        if n and (np.any(self.a == self.b)):
            raise InputError("votes: a model cannot meet itself")

    @property
    def outcome(self) -> np.ndarray:
        """Score of model_a per vote: 1 won, 0 lost, 0.5 tie or both bad."""
        return OUTCOME_VALUE[self.kind]

    def __len__(self) -> int:
        return len(self.kind)

    def subset(self, mask_or_indices: np.ndarray | Sequence[int] | Sequence[bool]) -> Votes:
        """The votes selected by a boolean mask or indices, over the same model list (indices stay valid)."""
        sel = np.asarray(mask_or_indices)
        if sel.dtype == bool and sel.shape != (len(self),):
            raise InputError(f"votes: mask has shape {sel.shape}, expected ({len(self)},)")
        return Votes(self.models, self.a[sel], self.b[sel], self.kind[sel],
                     None if self.style is None else self.style[sel])

    def counts(self) -> np.ndarray:
        """Votes each model took part in."""
        k = len(self.models)
        return np.bincount(self.a, minlength=k) + np.bincount(self.b, minlength=k)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str]], style: np.ndarray | None = None,
                  models: Sequence[str] | None = None) -> Votes:
        """Votes from (model_a, model_b, winner) triples; `models` fixes the model list (e.g. declared entrants,
        some perhaps without votes yet), otherwise it is every name seen, sorted."""
        triples = [(str(ma), str(mb), str(w)) for ma, mb, w in rows]
        names = sorted(set(models) if models is not None else {m for t in triples for m in t[:2]})
        index = {m: i for i, m in enumerate(names)}
        a = np.empty(len(triples), dtype=np.int64)
        b = np.empty(len(triples), dtype=np.int64)
        kind = np.empty(len(triples), dtype=np.int8)
        for i, (ma, mb, w) in enumerate(triples):
            for name in (ma, mb):
                if name not in index:
                    raise InputError(f"vote {i + 1}: model {name!r} is not among the declared models")
            if ma == mb:
                raise InputError(f"vote {i + 1}: model {ma!r} cannot meet itself")
            a[i], b[i], kind[i] = index[ma], index[mb], outcome_kind(w)
        if style is not None:
            style = np.asarray(style, dtype=float)
            if style.shape != (len(triples), len(STYLE_COLUMNS)):
                raise InputError(f"style must have shape ({len(triples)}, {len(STYLE_COLUMNS)}), got {style.shape}")
            if not np.all(np.isfinite(style)):
                raise InputError("style differences must be finite numbers")
        return cls(tuple(names), a, b, kind, style)


def _count(value: str, column: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where}: {column} {value!r} is not a number") from None
    if not np.isfinite(number) or number < 0:
        raise InputError(f"{where}: {column} must be a non-negative count, got {value!r}")
    return number


def read_votes_csv(path: str | Path) -> Votes:
    """Votes from a CSV with columns model_a, model_b, winner and optionally the eight style count columns
    (length_a, length_b, headers_a, headers_b, lists_a, lists_b, bold_a, bold_b: all or none).

    A UTF-8 BOM and CRLF line ends are accepted; any bad row is an InputError naming file:line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path}: empty file; expected a header model_a,model_b,winner") from None
    except csv.Error as exc:
        raise InputError(f"{path}:1: {exc}") from None
    columns = [h.strip().lower() for h in header]
    missing = [c for c in ("model_a", "model_b", "winner") if c not in columns]
    if missing:
        raise InputError(f"{path}:1: missing column(s) {', '.join(missing)} (header: {','.join(header)})")
    style_cols = [f"{s}_{side}" for s in STYLE_COLUMNS for side in ("a", "b")]
    present = [c for c in style_cols if c in columns]
    if present and len(present) != len(style_cols):
        absent = [c for c in style_cols if c not in columns]
        raise InputError(f"{path}:1: style columns come all eight or none; missing {', '.join(absent)}")
    pos = {c: columns.index(c) for c in ("model_a", "model_b", "winner", *present)}
    triples: list[tuple[str, str, str]] = []
    counts: list[list[float]] = []
    seen: set[str] = set()
    try:
        for row in reader:
            line = reader.line_num
            where = f"{path}:{line}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(f"{where}: {len(row)} fields, the header has {len(header)}")
            ma, mb, w = (row[pos[c]].strip() for c in ("model_a", "model_b", "winner"))
            if not ma or not mb:
                raise InputError(f"{where}: empty model name")
            if ma == mb:
                raise InputError(f"{where}: model {ma!r} cannot meet itself")
            try:
                outcome_kind(w)
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
            triples.append((ma, mb, w))
            seen.update((ma, mb))
            if present:
                counts.append([_count(row[pos[c]].strip(), c, where) for c in style_cols])
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: {exc}") from None
    if not triples:
        raise InputError(f"{path}: no votes")
    style = None
    if present:
        raw = np.asarray(counts, dtype=float).reshape(len(triples), len(STYLE_COLUMNS), 2)
        style = count_diff(raw[:, :, 0], raw[:, :, 1])
    return Votes.from_rows(triples, style=style)
