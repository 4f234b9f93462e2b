"""Exact and near-duplicate prompts: the same question asked again is refused.

A rater (or a team's friend among the raters) who resubmits a prompt on which one model shines multiplies that
prompt's weight in the ranking; a lightly edited copy does the same. Exact repeats are found by the SHA-256 of the
normalised text; near repeats by MinHash (128 hashes) over character 3-grams, which works the same for Hangul
syllables and Latin letters and ignores spacing (Korean spacing varies between writers). 3-grams rather than 4-grams
because a Hangul syllable carries more than a Latin letter: a one-word edit of a 40-syllable Korean prompt keeps a
Jaccard similarity of about 0.87 with 3-grams but only 0.82 with 4-grams.

The hash functions are fixed (derived from SHA-256 of constant labels), never Python's `hash()`, so a key computed
in one process and stored matches a key computed in another.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from simsa.errors import InputError

NUM_HASHES = 128
SHINGLE = 3
PRIME = (1 << 31) - 1
DEFAULT_THRESHOLD = 0.8


def _coefficients() -> tuple[np.ndarray, np.ndarray]:
    def draw(label: str) -> int:
        return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big") % (PRIME - 1) + 1
    a = np.array([draw(f"simsa.prompts.minhash.a.{k}") for k in range(NUM_HASHES)], dtype=np.uint64)
    b = np.array([draw(f"simsa.prompts.minhash.b.{k}") for k in range(NUM_HASHES)], dtype=np.uint64)
    return a, b


_A, _B = _coefficients()


def normalise_prompt(text: str) -> str:
    """NFKC, casefolded, punctuation and symbols dropped, whitespace collapsed to single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = [" " if ch.isspace() else ch for ch in folded if unicodedata.category(ch)[0] not in "PSC" or ch.isspace()]
    return " ".join("".join(kept).split())


def _shingles(normalised: str) -> list[str]:
    compact = normalised.replace(" ", "")
    if len(compact) <= SHINGLE:
        return [compact] if compact else []
    return list({compact[i:i + SHINGLE] for i in range(len(compact) - SHINGLE + 1)})


def _signature(shingles: list[str]) -> tuple[int, ...]:
    if not shingles:
        return tuple([PRIME] * NUM_HASHES)
    base = np.array([int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big") % PRIME
                     for s in shingles], dtype=np.uint64)
    hashed = (base[:, None] * _A[None, :] + _B[None, :]) % PRIME
    return tuple(int(x) for x in hashed.min(axis=0))


@dataclass(frozen=True)
class PromptKey:
    """What is stored per prompt: SHA-256 of the normalised text, its MinHash signature and its length."""

    sha256: str
    signature: tuple[int, ...]
    length: int

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "signature": list(self.signature), "length": self.length}

    @classmethod
    def from_dict(cls, data: dict) -> PromptKey:
        signature = tuple(int(x) for x in data["signature"])
        if len(signature) != NUM_HASHES:
            raise InputError(f"a prompt signature has {NUM_HASHES} hashes, got {len(signature)}")
        return cls(sha256=str(data["sha256"]), signature=signature, length=int(data["length"]))


def prompt_key(text: str) -> PromptKey:
    """The key of one prompt (see the module docstring)."""
    normalised = normalise_prompt(text)
    if not normalised:
        raise InputError("the prompt is empty once punctuation and spaces are removed")
    return PromptKey(sha256=hashlib.sha256(normalised.encode()).hexdigest(),
                     signature=_signature(_shingles(normalised)), length=len(normalised))


def similarity(k1: PromptKey, k2: PromptKey) -> float:
    """Estimated Jaccard similarity of the two prompts' 3-gram sets (1.0 for an exact duplicate)."""
    if k1.sha256 == k2.sha256:
        return 1.0
    return float(np.mean(np.asarray(k1.signature) == np.asarray(k2.signature)))


@dataclass(frozen=True)
class Duplicate:
    """A previous prompt that the new one repeats: exactly (after normalisation) or nearly."""

    kind: str  # "exact" or "near"
    index: int  # position of the previous key in the order given / added
    similarity: float
    sha256: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "index": self.index, "similarity": round(self.similarity, 4),
                "sha256": self.sha256}


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"the near-duplicate threshold must be in (0, 1], got {threshold}")


class PromptIndex:
    """Previous prompts' keys held as an array, so that a new prompt is checked against thousands at once."""

    def __init__(self, keys: Iterable[PromptKey] = ()) -> None:
        self._rows: list[tuple[int, ...]] = []
        self._shas: list[str] = []
        self._exact: dict[str, int] = {}
        self._array = np.empty((0, NUM_HASHES), dtype=np.uint32)
        self._pending = 0
        for key in keys:
            self.add(key)

    def __len__(self) -> int:
        return len(self._shas)

    def add(self, key: PromptKey) -> int:
        """Store a key; returns its index."""
        index = len(self._shas)
        self._rows.append(key.signature)
        self._shas.append(key.sha256)
        self._exact.setdefault(key.sha256, index)
        self._pending += 1
        return index

    def _matrix(self) -> np.ndarray:
        if self._pending:
            fresh = np.asarray(self._rows[len(self._array):], dtype=np.uint32).reshape(-1, NUM_HASHES)
            self._array = np.concatenate([self._array, fresh]) if len(self._array) else fresh
            self._pending = 0
        return self._array

    def similarities(self, key: PromptKey) -> np.ndarray:
        """Estimated similarity of `key` to every stored prompt, in index order."""
        matrix = self._matrix()
        if not len(matrix):
            return np.empty(0)
        return (matrix == np.asarray(key.signature, dtype=np.uint32)).mean(axis=1)

    def find(self, key: PromptKey, threshold: float = DEFAULT_THRESHOLD) -> Duplicate | None:
        """The earliest exact duplicate, else the most similar stored prompt at or above `threshold`, else None."""
        _check_threshold(threshold)
        if key.sha256 in self._exact:
            index = self._exact[key.sha256]
            return Duplicate("exact", index, 1.0, key.sha256)
        sims = self.similarities(key)
        if not len(sims):
            return None
        best = int(np.argmax(sims))
        if sims[best] < threshold:
            return None
        return Duplicate("near", best, float(sims[best]), self._shas[best])


def find_duplicate(key: PromptKey, previous: Iterable[PromptKey],
                   threshold: float = DEFAULT_THRESHOLD) -> Duplicate | None:
    """`PromptIndex(previous).find(key, threshold)`; keep a `PromptIndex` instead when checking many prompts."""
    return PromptIndex(previous).find(key, threshold)
