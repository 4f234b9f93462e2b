"""Fingerprints: what a comparison needs from a *reference*, kept without its weights.

A comparison never uses all of the reference: per unit group it keeps a seeded sample of units on a seeded subset of
residual coordinates, prepared (standardised, structure removed, normalised); per embedding a sample of token rows;
a few hundred anchor rows for basis alignment; a digest of every tensor for the identity check; the norm gains and
std profile for the naive section; config and vocabulary for the priors. A fingerprint stores exactly that, so a
later comparison against it gives the same statistics as against the checkpoint (with the fingerprint's sampling
sizes), and an agency can publish a registry of fingerprints instead of hundreds of gigabytes of weights.

Size: about ``units × coords × parts × 2`` bytes per unit group plus the vocabulary — see ``docs/lineage.md`` for
bytes per billion parameters. Stored as one safetensors file (arrays) whose header metadata holds the JSON
description; loading it never runs code.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import orjson
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from simsa.errors import CheckpointError
from simsa.lineage.formats.digest import values_digest
from simsa.lineage.formats.dtypes import ITEMSIZE
from simsa.lineage.formats.reader import NO_IO, IOStats, RowIndex
from simsa.lineage.formats.safetensors import SafetensorsFile, normalise_index
from simsa.lineage.formats.safetensors_write import TensorSpec, encode, write_safetensors
from simsa.lineage.model.adapters import map_architecture
from simsa.lineage.model.roles import ArchitectureMap
from simsa.lineage.model.tokenizer import MAX_TOKEN_ID, Vocabulary
from simsa.lineage.model.units import ComponentUnits, UnitGroup, unit_groups
from simsa.lineage.stats.correspondence import SamplingSettings
from simsa.lineage.stats.exchangeability import REASONS, CoordinateAudit

SCHEMA = "simsa.lineage.fingerprint/1"

# What a run measured rather than what the model is: kept in memory for the caller, never written, so two runs on
# the same model (on any machine, serial or spread over a cluster) write the same bytes.
RUN_KEYS = ("created", "seconds")


SUFFIX = ".simsa-fp"


META_KEY = "simsa"


AUDIT_UNITS = 512  # stored units per group that the reference's coordinate audit looks at



@dataclass(frozen=True)
class FingerprintSettings:
    """Sampling sizes of a fingerprint; they bound its size whatever the model size."""

    ref_units: int = 512  # reference units kept per unit group
    coords: int = 256  # residual coordinates kept
    paired: int = 1024  # embedding / head rows kept (paired by token string)
    seed: int = 0

    def sampling(self, units: int = 256, draws: int = 24) -> SamplingSettings:
        """The comparison settings that reproduce this fingerprint's reference sample."""
        return SamplingSettings(units=units, ref_units=self.ref_units, coords=self.coords, draws=draws,
                                seed=self.seed)


def group_id(comp: str, layer: int | None, group: UnitGroup) -> str:
    """A stable name for one unit group of one model."""
    return f"{comp}|{'-' if layer is None else layer}|{group.key}"



@dataclass
class Fingerprint:
    """A fingerprint's JSON description (`meta`) and arrays (held in memory, or read from its file on first use)."""

    meta: dict[str, Any]
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    # The role map and unit groups rebuilt from `meta` (see `fingerprint_units`): loading checks them, a comparison
    # uses them, and a scan would otherwise build them twice per reference.
    _units: tuple[ArchitectureMap, dict[str, ComponentUnits]] | None = field(
        default=None, init=False, repr=False, compare=False)

    @property
    def settings(self) -> FingerprintSettings:
        return FingerprintSettings(**self.meta["settings"])

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")

    def coords(self, stack: str) -> np.ndarray:
        return self.arrays[f"coords|{stack}"]

    def group(self, gid: str) -> np.ndarray | None:
        return self.arrays.get(f"units|{gid}")

    def paired_ids(self, gid: str) -> np.ndarray | None:
        return self.arrays.get(f"ids|{gid}")

    def excluded(self, stack: str) -> CoordinateAudit | None:
        """The reference's coordinate audit of ``stack`` (None: the fingerprint predates the audit)."""
        rows = self.arrays.get(f"excluded|{stack}")
        if rows is None:
            return None
        width = int(self.meta["stacks"][stack]["hidden_size"])
        flagged = {r: frozenset(int(c) for c, k in np.asarray(rows).reshape(-1, 2) if int(k) == i)
                   for i, r in enumerate(REASONS)}
        return CoordinateAudit(width, flagged, int(self.meta.get("audit_matrices", {}).get(stack, 0)))

    def anchors(self, stack: str) -> tuple[np.ndarray, np.ndarray] | None:
        ids, rows = self.arrays.get(f"anchor_ids|{stack}"), self.arrays.get(f"anchors|{stack}")
        return (ids, rows) if ids is not None and rows is not None else None

    def vocabulary(self) -> Vocabulary | None:
        v = self.meta.get("vocabulary")
        if not v:
            return None
        return Vocabulary(tokens=dict(v["tokens"]), merges=list(v.get("merges", [])),
                          special=list(v.get("special", [])), kind=v.get("kind", ""), source="fingerprint",
                          added=list(v.get("added", [])), pipeline=v.get("pipeline"))

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> int:
        """Write to ``path`` (one safetensors file); returns its size in bytes."""
        names = sorted(self.arrays)
        stored = {n: _storage_dtype(self.arrays[n]) for n in names}
        specs = [TensorSpec(n, stored[n], tuple(self.arrays[n].shape)) for n in names]

        def produce(spec: TensorSpec) -> np.ndarray:
            a = self.arrays[spec.name]
            return a.astype("<i8") if spec.dtype == "I64" else encode(a, spec.dtype)

        meta = {k: v for k, v in self.meta.items() if k not in RUN_KEYS}
        meta["arrays_sha256"] = _arrays_digest(self.arrays)
        return write_safetensors(path, specs, produce, {META_KEY: json.dumps(meta, ensure_ascii=False)})

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> Fingerprint:
        """Read a fingerprint written by ``save``; anything else is refused with one clear line.

        ``verify=False`` (a registry whose index digest already vouches for the file) opens it lazily: only the
        arrays a comparison touches are read, which is what lets a scan look at hundreds of references quickly.
        Structure is checked either way; array digests and values only when verifying.
        """
        f = SafetensorsFile(path)
        try:
            raw = f.metadata.get(META_KEY)
            if raw is None:
                raise CheckpointError(f"{path}: not a simsa fingerprint (no '{META_KEY}' metadata)")
            try:
                meta = _parse_meta(raw)
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{path}: fingerprint metadata is not valid JSON: {exc}") from None
            if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
                got = meta.get("schema") if isinstance(meta, dict) else None
                raise CheckpointError(f"{path}: fingerprint schema {got!r} is not {SCHEMA!r}")
            stored = _StoredArrays(f)
            if verify:
                want = meta.get("arrays_sha256")
                if want and want != _arrays_digest(stored):
                    raise CheckpointError(f"{path}: fingerprint arrays do not match their recorded digest (corrupted)")
            fp = cls(meta, stored)
            problem = _problem(fp, values=verify)
            if problem:
                raise CheckpointError(f"{path}: malformed fingerprint: {problem}")
        except BaseException:
            f.close()
            raise
        if verify:
            fp.arrays = dict(stored.items())
            f.close()
        return fp

    def close(self) -> None:
        if isinstance(self.arrays, _StoredArrays):
            self.arrays.close()


def _parse_meta(raw: str) -> Any:
    """The metadata JSON: orjson where it can (a scan parses one vocabulary-sized document per reference, at twice
    json's speed), the standard library for what orjson refuses (NaN, integers beyond 64 bits), and its errors."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


_NATIVE: dict[str, np.dtype[Any]] = {
    "I64": np.dtype(np.int64), "F16": np.dtype(np.float16), "F32": np.dtype(np.float32)}


class _StoredArrays(Mapping[str, np.ndarray]):
    """A fingerprint file's arrays, read on first use."""

    def __init__(self, file: SafetensorsFile) -> None:
        self._file = file
        self._names = file.names()
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            if key not in self._names:
                raise KeyError(key)
            dtype = self._file.info(key).dtype
            if dtype in _NATIVE:  # what `save` writes: read as stored (ids stay exact int64, F16 stays F16)
                self._cache[key] = self._file.read_stored(key).astype(_NATIVE[dtype], copy=False)
            else:
                self._cache[key] = self._file.read(key)
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._file.info(key).shape)

    def io_stats(self) -> IOStats:
        s = self._file.io_stats()
        return IOStats(s.remote, s.bytes_read, s.bytes_total, s.requests)

    def close(self) -> None:
        self._file.close()


def _shape(arrays: Mapping[str, np.ndarray], key: str) -> tuple[int, ...]:
    return arrays.shape(key) if isinstance(arrays, _StoredArrays) else tuple(arrays[key].shape)


def _is_int(v: object, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_token_table(tokens: object) -> bool:
    """A dict of token strings to non-negative integer ids (type checks in C: a scan validates one per reference)."""
    if not isinstance(tokens, dict):
        return False
    ids = tokens.values()
    return set(map(type, tokens)) <= {str} and set(map(type, ids)) <= {int} and (
        not ids or (min(ids) >= 0 and max(ids) <= MAX_TOKEN_ID))


def _problem(fp: Fingerprint, *, values: bool = True) -> str | None:
    """What is wrong with a fingerprint's contents (a well-formed file can still hold nonsense), or None."""
    meta, arrays = fp.meta, fp.arrays
    for key in ("settings", "shapes", "stacks"):
        if not isinstance(meta.get(key), dict):
            return f"metadata lacks '{key}'"
    settings = meta["settings"]
    if set(settings) - {"ref_units", "coords", "paired", "seed"} or not all(_is_int(v) for v in settings.values()):
        return "settings must be non-negative integers ref_units, coords, paired, seed"
    if not all(isinstance(n, str) and isinstance(v, list) and all(_is_int(d) for d in v)
               for n, v in meta["shapes"].items()):
        return "shapes must map tensor names to lists of non-negative integers"
    for key, expected in (("config", dict), ("dtypes", dict), ("identity_keys", dict), ("group_units", dict),
                          ("std_profile", list)):
        if key in meta and not isinstance(meta[key], expected):
            return f"'{key}' must be a {expected.__name__}"
    for name, key in meta.get("identity_keys", {}).items():
        if not (isinstance(key, list) and len(key) == 3 and isinstance(key[0], str)):
            return f"identity key of {name!r} is malformed"
    vocab = meta.get("vocabulary")
    if vocab is not None and not (isinstance(vocab, dict) and _is_token_table(vocab.get("tokens"))
                                  and all(isinstance(vocab.get(k, []), list) for k in ("merges", "special", "added"))):
        return "vocabulary must hold a token → id table and lists of merges and special tokens"
    for stack, info in meta["stacks"].items():
        if not (isinstance(info, dict) and _is_int(info.get("hidden_size"), 1) and _is_int(info.get("num_layers"))):
            return f"stack {stack!r} lacks a positive hidden_size"
        coords = arrays.get(f"coords|{stack}")
        if coords is None or coords.ndim != 1 or not np.issubdtype(coords.dtype, np.integer) or coords.size == 0:
            return f"no coordinate sample for stack {stack!r}"
        if coords.min() < 0 or coords.max() >= info["hidden_size"] or np.unique(coords).size != coords.size:
            return f"coordinate sample of stack {stack!r} is out of range or repeats"
        excluded = arrays.get(f"excluded|{stack}")
        if excluded is not None and (excluded.ndim != 2 or excluded.shape[1] != 2 or not np.issubdtype(
                excluded.dtype, np.integer) or (excluded.size and (
                excluded.min() < 0 or excluded[:, 0].max() >= info["hidden_size"]
                or excluded[:, 1].max() >= len(REASONS)))):
            return f"coordinate audit of stack {stack!r} is malformed"
        anchors, ids = arrays.get(f"anchors|{stack}"), arrays.get(f"anchor_ids|{stack}")
        if (anchors is None) != (ids is None):
            return f"anchors of stack {stack!r} come without their ids (or the reverse)"
        if anchors is not None and ids is not None and (
                anchors.ndim != 2 or anchors.shape != (ids.size, coords.size) or ids.min() < 0):
            return f"anchors of stack {stack!r} do not match their ids and coordinates"
    for key in arrays:
        kind, _, gid = key.partition("|")
        if kind == "units":
            stack = gid.split(".", 1)[0]
            coords = arrays.get(f"coords|{stack}")
            shape = _shape(arrays, key)
            if coords is None or len(shape) != 2 or shape[1] % coords.size or (
                    values and not np.isfinite(arrays[key]).all()):
                return f"unit group {gid!r} has a shape or values that do not fit its stack"
            if f"ids|{gid}" in arrays:
                ids = arrays[f"ids|{gid}"]
                if ids.ndim != 1 or ids.size != shape[0] or (ids.size and ids.min() < 0):
                    return f"paired rows of {gid!r} do not match their ids"
    try:
        fingerprint_units(fp)
    except Exception as exc:
        return f"its shapes and config do not map to an architecture ({type(exc).__name__})"
    return None


def _storage_dtype(a: np.ndarray) -> str:
    if np.issubdtype(a.dtype, np.integer):
        return "I64"
    return "F16" if a.dtype == np.float16 else "F32"


def _arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for n in sorted(arrays):
        a = arrays[n]
        h.update(n.encode())
        h.update(np.ascontiguousarray(a.astype("<i8") if np.issubdtype(a.dtype, np.integer)
                                      else a.astype(np.float16 if a.dtype == np.float16 else "<f4")).tobytes())
    return h.hexdigest()


class FingerprintCheckpoint:
    """A fingerprint as a `TensorReader`: names, shapes, dtypes, config and vocabulary as the model had them.

    Values exist only for the tensors a fingerprint keeps whole (norm gains, for the naive section); reading or
    digesting any other tensor raises `CheckpointError` saying so, just as a checkpoint refuses a tensor it lacks.
    The identity check uses the stored identity keys instead (`compare.identity`).
    """

    def __init__(self, fp: Fingerprint, path: str | Path | None = None) -> None:
        self.fingerprint = fp
        self.path = Path(path) if path else Path(fp.name or "fingerprint")
        self.config: dict[str, Any] = fp.meta.get("config") or {}
        self.tokenizer_files: dict[str, Path] = {}
        self.notes: list[str] = ["reference is a fingerprint: identity of large tensors is checked on sampled rows"]
        self._shapes = {n: tuple(s) for n, s in fp.meta["shapes"].items()}
        self._dtypes: dict[str, str] = fp.meta.get("dtypes", {})

    def _check(self, name: str) -> None:
        if name not in self._shapes:
            raise CheckpointError(f"{self.path}: no tensor named {name!r}")

    def names(self) -> list[str]:
        return sorted(self._shapes)

    def __contains__(self, name: object) -> bool:
        return name in self._shapes

    def shape(self, name: str) -> tuple[int, ...]:
        self._check(name)
        return self._shapes[name]

    def dtype(self, name: str) -> str:
        self._check(name)
        return self._dtypes.get(name, "BF16")

    def nbytes(self, name: str) -> int:
        """Bytes the tensor took in the fingerprinted model (its stored dtype and shape; GGML block types too)."""
        return stored_nbytes(f"{self.path}: tensor {name!r}", self.dtype(name), self.shape(name))

    def total_parameters(self) -> int:
        return int(self.fingerprint.meta.get("parameters", 0))

    def _kept(self, name: str, what: str) -> np.ndarray:
        self._check(name)
        a = self.fingerprint.arrays.get(f"tensor|{name}")
        if a is None:
            raise CheckpointError(f"{self.path}: the fingerprint does not keep tensor {name!r}, so it cannot give its "
                                  f"{what} (it keeps sampled units and digests of it)")
        return a.astype(np.float32)

    def read(self, name: str, *, allow_integer: bool = False) -> np.ndarray:
        return self._kept(name, "values")

    def read_index(
        self, name: str, index: RowIndex, axis: int = 0, expert: int | None = None, *, allow_integer: bool = False
    ) -> np.ndarray:
        """Rows or columns of a tensor the fingerprint keeps whole, with `Checkpoint.read_index`'s rules."""
        values = self._kept(name, "rows or columns")
        if expert is not None:
            if values.ndim != 3:
                raise ValueError(f"tensor {name!r} has shape {list(values.shape)}; expert= needs a 3-D tensor")
            if isinstance(expert, bool) or not 0 <= expert < values.shape[0]:
                raise IndexError(f"expert {expert} out of range for {values.shape[0]} experts")
            values = values[expert]
        if values.ndim != 2:
            raise ValueError(f"tensor {name!r} has shape {list(values.shape)}; read_index needs 2-D (or 3-D with "
                             "expert=)")
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 (rows) or 1 (columns), got {axis}")
        idx = normalise_index(index, values.shape[axis], "row" if axis == 0 else "column")
        return np.ascontiguousarray(np.take(values, idx, axis=axis))

    def digest(self, name: str, precision: str = "exact") -> str:
        """The digest `Checkpoint.digest` gives, for a tensor the fingerprint keeps whole ("exact" only where its
        float32 copy determines the stored bytes: F32, F16 and BF16)."""
        return values_digest(f"{self.path}: tensor {name!r}", self._kept(name, "digest"), self.dtype(name), precision)

    def io_stats(self) -> IOStats:
        """What reading the fingerprint file has cost: a lazily opened one reads arrays on first use; a verified
        one was read whole when loaded and reads nothing further (zeros)."""
        arrays = self.fingerprint.arrays
        return arrays.io_stats() if isinstance(arrays, _StoredArrays) else NO_IO

    def vocabulary(self) -> Vocabulary | None:
        return self.fingerprint.vocabulary()

    def close(self) -> None:
        self.fingerprint.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FingerprintCheckpoint({str(self.path)!r}, {len(self._shapes)} tensors)"


def stored_nbytes(label: str, dtype: str, shape: tuple[int, ...]) -> int:
    """Bytes a tensor of `dtype` (a safetensors dtype or a GGML type name) and `shape` occupies."""
    numel = math.prod(shape)
    if dtype in ITEMSIZE:
        return numel * ITEMSIZE[dtype]
    qtype = GGMLQuantizationType.__members__.get(dtype)
    if qtype is not None and qtype in GGML_QUANT_SIZES:
        block, type_size = GGML_QUANT_SIZES[qtype]
        return -(-numel // block) * type_size
    raise CheckpointError(f"{label}: unknown stored dtype {dtype!r}, so its size is unknown")


UNITS_CACHE_SIZE = 32  # architectures whose role maps are kept (a registry holds a few dozen model shapes)
_UNITS_BY_ARCHITECTURE: dict[str, tuple[ArchitectureMap, dict[str, ComponentUnits]]] = {}


def fingerprint_units(fp: Fingerprint) -> tuple[ArchitectureMap, dict[str, ComponentUnits]]:
    """The reference's role map and unit groups, rebuilt from the stored shapes and config.

    Built once per fingerprint, and once per architecture in a process: a registry holds many fingerprints of the
    same few shapes (model sizes of a family), and mapping one takes longer than the rest of a scan's screen of it.
    The map is pure in the shapes and config, so equal inputs share the result (which nothing mutates).
    """
    if fp._units is None:
        shapes, config = fp.meta["shapes"], fp.meta.get("config") or {}
        key = json.dumps([shapes, config], sort_keys=True, ensure_ascii=False)
        units = _UNITS_BY_ARCHITECTURE.pop(key, None)
        if units is None:
            amap = map_architecture({n: tuple(s) for n, s in shapes.items()}, config)
            units = amap, unit_groups(amap)
        _UNITS_BY_ARCHITECTURE[key] = units  # newest last
        while len(_UNITS_BY_ARCHITECTURE) > UNITS_CACHE_SIZE:
            del _UNITS_BY_ARCHITECTURE[next(iter(_UNITS_BY_ARCHITECTURE))]
        fp._units = units
    return fp._units
