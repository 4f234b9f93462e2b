"""GGUF checkpoints (llama.cpp's format) read as Hugging Face tensors, and a writer for tests and the self-test.

A model published only as GGUF must be comparable with its Hugging Face parent, so `GGUFCheckpoint` offers the
interface of `simsa.lineage.checkpoint.Checkpoint` and undoes what llama.cpp's converter did:

* names: ``blk.3.attn_q.weight`` → ``model.layers.3.self_attn.q_proj.weight``, from the `gguf` package's own name
  tables (`gguf.tensor_mapping`) inverted with a per-family preference; names without a counterpart pass through;
* shapes: GGUF lists dimensions innermost first; they are reported in PyTorch order;
* values: the q/k row permutation of llama-type rotary embeddings is undone, Gemma's baked-in ``+1`` of norm
  gains is removed, stacked expert tensors (``ffn_gate_exps``) are exposed per expert as Hugging Face stores them,
  and every quantisation type the `gguf` package decodes is dequantised row by row (blocks run along rows, so a few
  rows cost a few rows);
* metadata becomes a Hugging Face style ``config`` and the token list a `Vocabulary`.

The header is parsed here, strictly, rather than by `gguf.GGUFReader`: a hostile file must fail with one line (that
reader loops on huge array counts and fails with tracebacks), and every size claim is checked against the file size
before anything is allocated.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import mmap
import os
import re
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, MODEL_ARCH_NAMES, MODEL_TENSORS, TENSOR_NAMES, GGMLQuantizationType
from gguf.tensor_mapping import TensorNameMap

from simsa.errors import CheckpointError
from simsa.lineage.dtypes import bf16_bits
from simsa.lineage.gguf_quant import quantize_q4_k
from simsa.lineage.safetensors_io import CHUNK_ELEMENTS, normalise_index, quote
from simsa.lineage.tokenizer_info import Vocabulary

__all__ = [
    "GGUF_SUFFIX",
    "WRITE_QUANTS",
    "GGUFCheckpoint",
    "gguf_name_table",
    "is_gguf",
    "permute_rows",
    "unpermute_index",
    "write_gguf",
]

GGUF_SUFFIX = ".gguf"
_MAGIC = b"GGUF"
_VERSIONS = (2, 3)
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_ARRAY_DEPTH = 4
_MAX_EXPERTS = 1 << 16  # stacked expert tensors are split per expert up to this many
_MAX_STRINGS = 1 << 24  # real token lists and merges have < 1M entries; bounds the parse time of a hostile file
_PRECISIONS = ("exact", "bf16")

# GGUF metadata value types (gguf.GGUFValueType): struct format of scalars, numpy dtype of arrays.
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
                            11: "<q", 12: "<d"}
_FLOAT32 = 6
_INTEGER_TYPES: dict[str, np.dtype] = {"I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"),
                                       "I64": np.dtype("<i8")}
_TOKEN_CONTROL, _TOKEN_UNKNOWN = 3, 2  # gguf.TokenType


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a regular file that starts with the GGUF magic (or is named ``.gguf``)."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.name.endswith(GGUF_SUFFIX):
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == _MAGIC
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------- header


@dataclass(frozen=True)
class _TensorInfo:
    """A GGUF tensor entry, validated: dims innermost first (ggml order), absolute byte range in the file."""

    name: str
    type_code: int
    type_name: str
    dims: tuple[int, ...]
    block: int
    type_size: int
    begin: int
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.dims))


@dataclass
class _Header:
    version: int
    metadata: dict[str, Any]
    value_types: dict[str, int]
    tensors: list[_TensorInfo]
    alignment: int
    data_start: int


class _Parser:
    """Walks the header with every read bounds-checked against the file size."""

    def __init__(self, label: str, buf: Any, size: int) -> None:
        self.label, self.buf, self.size, self.pos = label, buf, size, 0

    def fail(self, message: str) -> NoReturn:
        raise CheckpointError(f"{self.label}: {message}")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            self.fail(f"truncated GGUF header: {what} at byte {self.pos} needs {n} bytes, the file has "
                      f"{self.size - self.pos} left")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, what: str, *, strict: bool) -> str:
        n = self.scalar("<Q", what)
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if strict:
                self.fail(f"{what} is not valid UTF-8: {raw[:60]!r}")
            return raw.decode("utf-8", errors="backslashreplace")

    def value(self, vtype: int, what: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype], what)
        if vtype == _STRING:
            return self.string(what, strict=False)
        if vtype != _ARRAY:
            self.fail(f"{what}: unknown metadata value type {vtype}")
        if depth >= _MAX_ARRAY_DEPTH:
            self.fail(f"{what}: arrays nested deeper than {_MAX_ARRAY_DEPTH}")
        itype = self.scalar("<I", what)
        count = self.scalar("<Q", what)
        if itype in _SCALARS:
            itemsize = struct.calcsize(_SCALARS[itype])
            self.need(count * itemsize, f"{what} ({count} items)")
            dtype = np.dtype("u1") if itype == 7 else np.dtype(_SCALARS[itype])
            arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
            self.pos += count * itemsize
            return arr.astype(bool) if itype == 7 else arr
        if itype not in (_STRING, _ARRAY):
            self.fail(f"{what}: unknown array item type {itype}")
        # every item takes at least 8 bytes (a string length) or 12 (an array header): bound the count first
        self.need(count * (8 if itype == _STRING else 12), f"{what} ({count} items)")
        if itype == _STRING:
            if count > _MAX_STRINGS:
                self.fail(f"{what}: {count} strings, more than the {_MAX_STRINGS} this reader accepts")
            return self._strings(count, what)
        return [self.value(_ARRAY, what, depth + 1) for _ in range(count)]

    def _strings(self, count: int, what: str) -> list[str]:
        out: list[str] = []
        unpack, buf, size = struct.Struct("<Q").unpack_from, self.buf, self.size
        pos = self.pos
        for _ in range(count):
            if pos + 8 > size:
                self.pos = pos
                self.need(8, what)
            (n,) = unpack(buf, pos)
            pos += 8
            if pos + n > size:
                self.pos = pos
                self.need(n, what)
            raw = bytes(buf[pos:pos + n])
            pos += n
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(raw.decode("utf-8", errors="backslashreplace"))
        self.pos = pos
        return out


def _parse_header(label: str, buf: Any, size: int) -> _Header:
    p = _Parser(label, buf, size)
    if size < 4 or bytes(buf[:4]) != _MAGIC:
        head = bytes(buf[:4]) if size else b""
        p.fail(f"not a GGUF file (starts with {head!r}, expected {_MAGIC!r})")
    p.pos = 4
    version = p.scalar("<I", "version")
    if version & 0xFFFF == 0 and int.from_bytes(version.to_bytes(4, "little"), "big") in (1, 2, 3):
        p.fail("big-endian GGUF files are not supported")
    if version == 1:
        p.fail("GGUF version 1 is not supported (the 2023 draft format); re-convert with a current llama.cpp")
    if version not in _VERSIONS:
        p.fail(f"GGUF version {version} is not supported (this reader knows versions 2 and 3)")
    n_tensors = p.scalar("<Q", "tensor count")
    n_kv = p.scalar("<Q", "metadata count")
    if n_kv * 13 > size or n_tensors * 24 > size:  # a key/value takes >= 13 bytes, a tensor entry >= 24
        p.fail(f"header claims {n_kv} metadata entries and {n_tensors} tensors, impossible in {size} bytes")

    metadata: dict[str, Any] = {}
    value_types: dict[str, int] = {}
    for i in range(n_kv):
        key = p.string(f"metadata key {i}", strict=True)
        if key in metadata:
            p.fail(f"metadata key {quote(key)} appears twice")
        vtype = p.scalar("<I", f"type of {quote(key)}")
        metadata[key] = p.value(vtype, f"metadata {quote(key)}")
        value_types[key] = vtype

    alignment = 32  # GGUF_DEFAULT_ALIGNMENT
    if "general.alignment" in metadata:
        alignment = metadata["general.alignment"]
        if value_types["general.alignment"] != 4 or alignment <= 0 or alignment & (alignment - 1):
            p.fail(f"general.alignment must be a power of two stored as uint32, got {alignment!r}")

    raw: list[tuple[str, int, tuple[int, ...], int]] = []
    seen: set[str] = set()
    for i in range(n_tensors):
        name = p.string(f"name of tensor {i}", strict=True)
        if name in seen:
            p.fail(f"tensor {quote(name)} appears twice")
        seen.add(name)
        n_dims = p.scalar("<I", f"rank of tensor {quote(name)}")
        if n_dims > _MAX_DIMS:
            p.fail(f"tensor {quote(name)} has {n_dims} dimensions, more than {_MAX_DIMS}")
        dims = tuple(p.scalar("<Q", f"shape of tensor {quote(name)}") for _ in range(n_dims))
        type_code = p.scalar("<I", f"type of tensor {quote(name)}")
        offset = p.scalar("<Q", f"offset of tensor {quote(name)}")
        raw.append((name, type_code, dims, offset))
    data_start = -(-p.pos // alignment) * alignment

    tensors = []
    for name, type_code, dims, offset in raw:
        tensors.append(_check_tensor(p, name, type_code, dims, offset, data_start, alignment))
    previous: _TensorInfo | None = None
    for t in sorted(tensors, key=lambda t: (t.begin, t.nbytes)):
        if previous is not None and t.begin < previous.begin + previous.nbytes:
            p.fail(f"tensor {quote(t.name)} overlaps tensor {quote(previous.name)}")
        previous = t
    split = metadata.get("split.count")
    if isinstance(split, int) and split > 1:
        p.fail(f"is shard {int(metadata.get('split.no', 0)) + 1} of {split} of a split GGUF; merge the shards "
               "first (llama-gguf-split --merge)")
    return _Header(version, metadata, value_types, tensors, alignment, data_start)


def _check_tensor(p: _Parser, name: str, type_code: int, dims: tuple[int, ...], offset: int, data_start: int,
                  alignment: int) -> _TensorInfo:
    try:
        qtype = GGMLQuantizationType(type_code)
    except ValueError:
        p.fail(f"tensor {quote(name)} has unknown GGML type code {type_code}")
    if qtype not in GGML_QUANT_SIZES:
        p.fail(f"tensor {quote(name)} has GGML type {qtype.name} of unknown size")
    block, type_size = GGML_QUANT_SIZES[qtype]
    row = dims[0] if dims else 1
    if row % block:
        p.fail(f"tensor {quote(name)}: rows of {row} values are not a whole number of {qtype.name} blocks "
               f"of {block}")
    numel = math.prod(dims)
    nbytes = numel // block * type_size
    if offset % alignment:
        p.fail(f"tensor {quote(name)}: data offset {offset} is not a multiple of the alignment {alignment}")
    begin = data_start + offset
    if begin + nbytes > p.size:
        p.fail(f"tensor {quote(name)}: data (bytes {begin}..{begin + nbytes}) runs past the end of the file "
               f"({p.size} bytes; truncated?)")
    return _TensorInfo(name, type_code, qtype.name, dims, block, type_size, begin, nbytes)


# --------------------------------------------------------------------------------------------------- names


@dataclass(frozen=True)
class _Family:
    """How llama.cpp stores one Hugging Face family: name style, value transforms, table preferences."""

    model_type: str
    style: str = "decoder"  # "decoder": model.layers.N. / model.*, lm_head; "bert": encoder.layer.N. / embeddings.*
    permute_qk: bool = False  # llama.cpp's LlamaModel.permute on q_proj/k_proj rows
    norm_shift: float = 0.0  # Gemma: llama.cpp stores 1 + w for every *norm.weight
    overrides: tuple[tuple[str, str], ...] = ()  # GGUF base name → preferred Hugging Face module (within a block)


_QK_NORM = (("attn_q_norm", "self_attn.q_norm"), ("attn_k_norm", "self_attn.k_norm"))
_FAMILIES: dict[str, _Family] = {
    "llama": _Family("llama", permute_qk=True),
    "qwen2": _Family("qwen2"),
    "qwen2moe": _Family("qwen2_moe", overrides=(("ffn_gate_inp", "mlp.gate"),)),
    "qwen3": _Family("qwen3", overrides=_QK_NORM),
    "qwen3moe": _Family("qwen3_moe", overrides=(*_QK_NORM, ("ffn_gate_inp", "mlp.gate"))),
    "gemma": _Family("gemma", norm_shift=1.0),
    "gemma2": _Family("gemma2", norm_shift=1.0),
    "gemma3": _Family("gemma3_text", norm_shift=1.0, overrides=_QK_NORM),
    "phi3": _Family("phi3", overrides=(("attn_qkv", "self_attn.qkv_proj"), ("ffn_up", "mlp.gate_up_proj"))),
    "bert": _Family("bert", style="bert"),
}
# A llama-architecture GGUF with experts is a Mixtral conversion.
_MIXTRAL = _Family("mixtral", permute_qk=True, overrides=(
    ("ffn_gate_inp", "block_sparse_moe.gate"), ("ffn_gate_exps", "block_sparse_moe.experts.w1"),
    ("ffn_down_exps", "block_sparse_moe.experts.w2"), ("ffn_up_exps", "block_sparse_moe.experts.w3")))
_ARCH_BY_NAME = {name: arch for arch, name in MODEL_ARCH_NAMES.items()}
_BLOCK = "blk.{bid}."
_DECODER_TOP = ("model.embed_tokens", "model.norm", "lm_head")


def _family(arch: str, expert_count: int) -> _Family:
    if arch == "llama" and expert_count > 0:
        return _MIXTRAL
    return _FAMILIES.get(arch) or _Family(arch)


def _candidates(arch: Any, tensor: Any) -> tuple[str, ...]:
    arch_specific = TensorNameMap.arch_block_mappings_cfg.get(arch, {}).get(tensor)
    if arch_specific:
        return tuple(arch_specific)
    return tuple(TensorNameMap.mappings_cfg.get(tensor, ())) + tuple(TensorNameMap.block_mappings_cfg.get(tensor, ()))


def _choose(gguf_template: str, candidates: tuple[str, ...], family: _Family) -> str | None:
    """The Hugging Face template for a GGUF template: the family's override, else the first in its style."""
    candidates = tuple(c for c in candidates if "{" not in c.replace("{bid}", ""))  # only {bid} is filled in
    in_block = gguf_template.startswith(_BLOCK)
    base = gguf_template.removeprefix(_BLOCK)
    block_prefix = "encoder.layer.{bid}." if family.style == "bert" else "model.layers.{bid}."
    preferred = dict(family.overrides).get(base)
    if preferred is not None:
        want = block_prefix + preferred if in_block else preferred
        if want in candidates:
            return want
    if in_block:
        return next((c for c in candidates if c.startswith(block_prefix)), None)
    if family.style == "bert":
        return next((c for c in candidates if c.startswith("embeddings.")), None)
    return next((c for c in candidates if c in _DECODER_TOP), None) or next(
        (c for c in candidates if c.startswith("model.") and "{" not in c), None)


@functools.lru_cache(maxsize=64)
def _tables(arch_name: str, family: _Family) -> tuple[dict[str, str], dict[str, str]]:
    """(GGUF template → Hugging Face template, Hugging Face template → GGUF template) for one architecture."""
    arch = _ARCH_BY_NAME.get(arch_name)
    forward: dict[str, str] = {}
    backward: dict[str, str] = {}
    if arch is None:
        return forward, backward
    alternatives: list[tuple[str, str]] = []
    for tensor in MODEL_TENSORS[arch]:
        template = TENSOR_NAMES[tensor]
        if "{" in template.replace("{bid}", "") or ("{bid}" in template and not template.startswith(_BLOCK)):
            continue
        candidates = _candidates(arch, tensor)
        chosen = _choose(template, candidates, family)
        if chosen is not None:
            forward[template] = chosen
            backward[chosen] = template
        alternatives += [(c, template) for c in candidates]
    for hf, template in alternatives:  # other spellings convert too (writer side)
        backward.setdefault(hf, template)
    return forward, backward


def gguf_name_table(arch: str, expert_count: int = 0) -> dict[str, str]:
    """GGUF name template → Hugging Face name template for a GGUF architecture (``blk.{bid}.attn_q`` →
    ``model.layers.{bid}.self_attn.q_proj``), as the reader uses it. Empty for architectures gguf does not know."""
    return dict(_tables(arch, _family(arch, expert_count))[0])


_BLK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")
_SUFFIX_RE = re.compile(r"^(.+)\.(weight|bias)$")


def _hf_name(gguf_name: str, forward: dict[str, str]) -> tuple[str | None, int | None, str, str]:
    """(Hugging Face name or None, block index, GGUF base template, parameter suffix) of a GGUF tensor name."""
    m = _SUFFIX_RE.match(gguf_name)
    base, suffix = (m[1], m[2]) if m else (gguf_name, "")
    b = _BLK_RE.match(base)
    bid = int(b[1]) if b else None
    template = f"{_BLOCK}{b[2]}" if b else base
    hf = forward.get(template)
    if hf is None:
        return None, bid, template, suffix
    name = hf.format(bid=bid) if bid is not None else hf
    return (f"{name}.{suffix}" if suffix else name), bid, template, suffix


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: q/k rows from Hugging Face's rotary layout to GGML's (per head, the two
    halves interleaved)."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def unpermute_index(rows: int, n_head: int) -> np.ndarray:
    """For each Hugging Face row of a permuted q/k projection, the row that stores it in the GGUF file."""
    return np.arange(rows).reshape(n_head, rows // n_head // 2, 2).transpose(0, 2, 1).reshape(rows)


# --------------------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class _View:
    """One tensor as the reader exposes it: a whole GGUF tensor or one expert of a stacked one."""

    name: str
    info: _TensorInfo
    shape: tuple[int, ...]  # PyTorch order
    begin: int  # absolute offset of the view's first stored row
    nbytes: int
    perm: np.ndarray | None = field(default=None, compare=False)  # HF index along axis 0 → stored index
    shift: float = 0.0  # subtracted after decoding

    @property
    def cols(self) -> int:
        return self.shape[-1] if self.shape else 1

    @property
    def rows(self) -> int:
        return math.prod(self.shape[:-1]) if self.shape else 1

    @property
    def row_bytes(self) -> int:
        return self.cols // self.info.block * self.info.type_size

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _meta_int(value: Any) -> int | None:
    """An integer metadata value; per-layer arrays count when all layers agree."""
    if isinstance(value, np.ndarray) and value.size and value.dtype.kind in "iu" and (value == value.flat[0]).all():
        value = int(value.flat[0])
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and int(value) > 0:
        return int(value)
    return None


def _meta_float(value: Any, vtype: int | None) -> float | None:
    if isinstance(value, float | np.floating) and not isinstance(value, bool) and math.isfinite(value):
        return float(f"{value:.7g}") if vtype == _FLOAT32 else float(value)  # 1e-6 stored as float32 reads 1e-6
    return None


def _unphantom(tokens: list[str], types: Any) -> list[str]:
    """Undo llama.cpp's BERT "phantom space" vocabulary (``▁word`` = word, ``word`` = ``##word``)."""
    out = []
    for i, tok in enumerate(tokens):
        control = types is not None and i < len(types) and int(types[i]) == _TOKEN_CONTROL
        if tok.startswith("\u2581"):
            out.append(tok[1:])
        elif control or (len(tok) > 1 and tok.startswith("[") and tok.endswith("]")):
            out.append(tok)
        else:
            out.append("##" + tok)
    return out


class GGUFCheckpoint:
    """A GGUF file seen through `Checkpoint`'s interface with Hugging Face names, shapes and values."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.files: list[Path] = [self.path]
        self.tokenizer_files: dict[str, Path] = {}
        self.notes: list[str] = []
        self._fd: int | None = None
        label = str(self.path)
        if not self.path.exists():
            raise CheckpointError(f"{label}: does not exist")
        if not self.path.is_file():
            raise CheckpointError(f"{label}: is not a regular file")
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
            size = os.fstat(self._fd).st_size
            if size == 0:
                raise CheckpointError(f"{label}: not a GGUF file (empty)")
            with mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ) as mm:
                header = _parse_header(label, mm, size)
        except OSError as exc:
            self.close()
            raise CheckpointError(f"{label}: cannot read: {exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise
        self.version = header.version
        self.metadata: dict[str, Any] = header.metadata
        self._value_types = header.value_types
        self.architecture = str(self.metadata.get("general.architecture") or "")
        try:
            self._build(header)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening

    def _meta(self, key: str) -> Any:
        return self.metadata.get(key.format(arch=self.architecture))

    def _build(self, header: _Header) -> None:
        arch = self.architecture
        experts = _meta_int(self._meta(gguf.Keys.LLM.EXPERT_COUNT)) or 0
        self.family = _family(arch, experts)
        forward, _ = _tables(arch, self.family)
        if not arch:
            self.notes.append("no general.architecture in the metadata: tensor names kept as stored")
        elif arch not in _FAMILIES:
            known = "named with gguf's tables in the llama style" if forward else "kept as stored"
            self.notes.append(f"GGUF architecture {arch!r} has no dedicated mapping: tensor names {known}, values "
                              "as stored")
        self._views: dict[str, _View] = {}
        passthrough: list[str] = []
        permuted = per_expert = shifted = 0
        for info in header.tensors:
            hf, bid, template, suffix = _hf_name(info.name, forward)
            if hf is None:
                passthrough.append(info.name)
                hf = info.name
            base = template.removeprefix(_BLOCK)
            shift = self.family.norm_shift if info.name.endswith("norm.weight") else 0.0
            shifted += bool(shift)
            perm = None
            if self.family.permute_qk and base in ("attn_q", "attn_k") and suffix in ("weight", "bias"):
                perm = self._qk_perm(info, base, bid)
                permuted += perm is not None
            shape = info.shape
            if base.endswith("_exps") and ".experts." in hf and len(shape) in (2, 3) and \
                    0 < shape[0] <= _MAX_EXPERTS and info.nbytes:
                per_expert += 1
                head, _, tail = hf.rpartition(".experts.")
                inner = shape[1:]
                stride = info.nbytes // shape[0] if shape[0] else 0
                for e in range(shape[0]):
                    self._add(_View(f"{head}.experts.{e}.{tail}", info, inner, info.begin + e * stride, stride,
                                    shift=shift))
                continue
            self._add(_View(hf, info, shape, info.begin, info.nbytes, perm, shift))
        self._names = sorted(self._views)
        counts = Counter(t.type_name for t in header.tensors)
        kinds = ", ".join(f"{n} {k}" for k, n in counts.most_common())
        self.notes.insert(0, f"GGUF v{header.version}, architecture {arch or '?'} (read as "
                             f"{self.family.model_type or '?'}): {len(header.tensors)} tensors ({kinds})")
        if permuted:
            self.notes.append(f"{permuted} q/k projections: llama.cpp's rotary row permutation undone on read")
        if shifted:
            self.notes.append(f"{shifted} norm gains: llama.cpp's baked-in +1 removed on read")
        if per_expert:
            self.notes.append(f"{per_expert} stacked expert tensors exposed per expert (Hugging Face layout)")
        if passthrough and forward:
            self.notes.append(f"{len(passthrough)} tensors have no Hugging Face name and keep their llama.cpp "
                              f"names (e.g. {passthrough[0]})")
        self.config = self._make_config()

    def _add(self, view: _View) -> None:
        other = self._views.get(view.name)
        if other is not None:
            raise CheckpointError(f"{self.path}: tensors {quote(other.info.name)} and {quote(view.info.name)} both "
                                  f"map to {quote(view.name)}")
        self._views[view.name] = view

    def _qk_perm(self, info: _TensorInfo, base: str, bid: int | None) -> np.ndarray | None:
        heads = self._meta(gguf.Keys.Attention.HEAD_COUNT)
        kv_heads = self._meta(gguf.Keys.Attention.HEAD_COUNT_KV)
        if base == "attn_k" and kv_heads is not None:  # llama.cpp permutes k with the key/value head count
            heads = kv_heads
        if isinstance(heads, np.ndarray) and bid is not None and bid < heads.size:
            heads = heads[bid]
        n_head = _meta_int(heads)
        rows = info.shape[0] if info.shape and math.prod(info.dims) else 0
        if not n_head or not rows or rows % (2 * n_head) or len(info.shape) > 2:
            self.notes.append(f"{info.name}: cannot undo the rotary row permutation (head count unknown or not "
                              "dividing its rows); values are in llama.cpp's row order")
            return None
        return unpermute_index(rows, n_head)

    def _make_config(self) -> dict[str, Any]:
        K = gguf.Keys
        cfg: dict[str, Any] = {"model_type": self.family.model_type} if self.family.model_type else {}
        ints = {
            "hidden_size": K.LLM.EMBEDDING_LENGTH, "num_hidden_layers": K.LLM.BLOCK_COUNT,
            "num_attention_heads": K.Attention.HEAD_COUNT, "num_key_value_heads": K.Attention.HEAD_COUNT_KV,
            "intermediate_size": K.LLM.FEED_FORWARD_LENGTH, "max_position_embeddings": K.LLM.CONTEXT_LENGTH,
            "head_dim": K.Attention.KEY_LENGTH, "num_experts_per_tok": K.LLM.EXPERT_USED_COUNT,
            "moe_intermediate_size": K.LLM.EXPERT_FEED_FORWARD_LENGTH, "sliding_window": K.Attention.SLIDING_WINDOW,
        }
        for hf_key, key in ints.items():
            value = _meta_int(self._meta(key))
            if value is not None:
                cfg[hf_key] = value
        experts = _meta_int(self._meta(K.LLM.EXPERT_COUNT))
        if experts:
            cfg["num_local_experts" if self.family.model_type == "mixtral" else "num_experts"] = experts
        floats = {"rope_theta": K.Rope.FREQ_BASE, "rms_norm_eps": K.Attention.LAYERNORM_RMS_EPS,
                  "layer_norm_eps": K.Attention.LAYERNORM_EPS}
        for hf_key, key in floats.items():
            full = key.format(arch=self.architecture)
            value = _meta_float(self.metadata.get(full), self._value_types.get(full))
            if value is not None:
                cfg[hf_key] = value
        tokens = self.metadata.get(K.Tokenizer.LIST)
        vocab = len(tokens) if isinstance(tokens, list) and tokens else _meta_int(self._meta(K.LLM.VOCAB_SIZE))
        if vocab:
            cfg["vocab_size"] = vocab
        if self.family.style == "decoder" and self._names:
            cfg["tie_word_embeddings"] = "output.weight" not in {v.info.name for v in self._views.values()}
        if self.family.style == "bert":
            types = next((v for v in self._views.values() if v.info.name == "token_types.weight"), None)
            if types is not None and types.shape:
                cfg["type_vocab_size"] = types.shape[0]
        name = self.metadata.get("general.name")
        cfg["gguf"] = {"architecture": self.architecture, "version": self.version,
                       **({"name": name} if isinstance(name, str) else {})}
        return cfg

    # ------------------------------------------------------------------ header facts

    def _view(self, name: str) -> _View:
        try:
            return self._views[name]
        except KeyError:
            raise CheckpointError(f"{self.path}: no tensor named {quote(name)}") from None

    def names(self) -> list[str]:
        """Tensor names (Hugging Face spelling where one exists), sorted."""
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._views

    def shape(self, name: str) -> tuple[int, ...]:
        return self._view(name).shape

    def dtype(self, name: str) -> str:
        """The GGML storage type, e.g. ``Q4_K`` or ``F16`` (`read` returns float32)."""
        return self._view(name).info.type_name

    def nbytes(self, name: str) -> int:
        return self._view(name).nbytes

    def scale_name(self, name: str) -> str | None:
        """GGUF quantisation scales live inside the blocks: there is never a companion tensor."""
        self._view(name)
        return None

    def gguf_name(self, name: str) -> str:
        """The llama.cpp name of the tensor behind `name`."""
        return self._view(name).info.name

    def total_parameters(self) -> int:
        return sum(v.numel for v in self._views.values())

    # ------------------------------------------------------------------ tokenizer

    def vocabulary_tokens(self) -> list[str] | None:
        """Token strings by id (``tokenizer.ggml.tokens``), spelled as the Hugging Face tokenizer spells them."""
        tokens = self.metadata.get(gguf.Keys.Tokenizer.LIST)
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            return None
        if self.metadata.get(gguf.Keys.Tokenizer.MODEL) == "bert":
            types = self.metadata.get(gguf.Keys.Tokenizer.TOKEN_TYPE)
            usable = isinstance(types, np.ndarray) and types.dtype.kind in "iu"
            return _unphantom(tokens, types if usable else None)
        return list(tokens)

    @property
    def special_tokens(self) -> list[str]:
        """Control and unknown tokens (what Hugging Face marks special), sorted."""
        tokens = self.vocabulary_tokens() or []
        types = self.metadata.get(gguf.Keys.Tokenizer.TOKEN_TYPE)
        if not isinstance(types, np.ndarray) or types.dtype.kind not in "iu" or types.size != len(tokens):
            return []
        special = np.isin(types, (_TOKEN_CONTROL, _TOKEN_UNKNOWN))
        return sorted({tokens[i] for i in np.flatnonzero(special)})

    def vocabulary(self) -> Vocabulary | None:
        """The token list as a `Vocabulary` (what `tokenizer_info.load_vocabulary` gives for tokenizer.json)."""
        tokens = self.vocabulary_tokens()
        if tokens is None:
            return None
        ids: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            ids.setdefault(tok, i)
        merges = self.metadata.get(gguf.Keys.Tokenizer.MERGES)
        merges = [str(m) for m in merges] if isinstance(merges, list) else []
        model = str(self.metadata.get(gguf.Keys.Tokenizer.MODEL) or "")
        kind = {"gpt2": "BPE", "llama": "BPE", "bert": "WordPiece", "t5": "Unigram"}.get(model, model)
        return Vocabulary(ids, merges, self.special_tokens, kind, f"{self.path.name} (tokenizer.ggml)")

    # ------------------------------------------------------------------ values

    def _pread(self, offset: int, buf: np.ndarray) -> None:
        if self._fd is None:
            raise CheckpointError(f"{self.path}: file is closed")
        view = memoryview(buf.reshape(-1).view(np.uint8))
        done = 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise CheckpointError(f"{self.path}: file shrank while being read (truncated at {offset + done})")
            done += got

    def _check_decodable(self, v: _View, allow_integer: bool) -> None:
        name = v.info.type_name
        if name in _INTEGER_TYPES and not allow_integer:
            raise CheckpointError(f"{self.path}: tensor {quote(v.name)}: type {name} is an integer type, not "
                                  "weights; pass allow_integer=True to convert it to float32")

    def _decode(self, v: _View, raw: np.ndarray) -> np.ndarray:
        """[n, row_bytes] stored bytes → [n, cols] float32."""
        name = v.info.type_name
        if name in _INTEGER_TYPES:
            out = raw.view(_INTEGER_TYPES[name]).astype(np.float32)
        elif name == "F64":
            out = raw.view("<f8").astype(np.float32)
        elif name == "F32":
            out = raw.view("<f4")
        else:
            try:
                out = gguf.quants.dequantize(raw, GGMLQuantizationType(v.info.type_code))
            except NotImplementedError:
                raise CheckpointError(f"{self.path}: tensor {quote(v.name)}: GGML type {name} cannot be decoded "
                                      "(the gguf package has no dequantiser for it)") from None
        out = np.ascontiguousarray(out, dtype=np.float32).reshape(raw.shape[0], v.cols)
        if v.shift:
            out -= np.float32(v.shift)
        return out

    def _rows(self, v: _View, stored: np.ndarray) -> np.ndarray:
        """Decoded stored rows (absolute row numbers of the view), one positional read per run of rows."""
        buf = np.empty((stored.size, v.row_bytes), dtype=np.uint8)
        if stored.size:
            breaks = np.flatnonzero(np.diff(stored) != 1) + 1
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, stored.size], strict=True):
                self._pread(v.begin + int(stored[lo]) * v.row_bytes, buf[lo:hi])
        return self._decode(v, buf)

    def _step(self, v: _View) -> int:
        return max(1, CHUNK_ELEMENTS // max(v.cols, 1))

    @staticmethod
    def _stored(v: _View, rows: np.ndarray | slice) -> np.ndarray:
        """Stored row numbers of Hugging Face rows (an index array, or a slice of 0..rows)."""
        if v.perm is not None and len(v.shape) == 2:
            return v.perm[rows]
        if isinstance(rows, slice):
            return np.arange(*rows.indices(v.rows))
        return rows

    def _iter_rows(self, v: _View) -> Iterator[np.ndarray]:
        """The tensor as [rows, cols] float32 chunks in Hugging Face order."""
        if v.numel == 0:
            return
        if v.perm is not None and len(v.shape) == 1:
            yield self._rows(v, np.zeros(1, dtype=np.int64))[:, v.perm]
            return
        step = self._step(v)
        for r0 in range(0, v.rows, step):
            yield self._rows(v, self._stored(v, slice(r0, r0 + step)))

    def read(self, name: str, *, allow_integer: bool = False) -> np.ndarray:
        """The tensor as float32 in Hugging Face layout, dequantised. Integer tensors need allow_integer."""
        v = self._view(name)
        self._check_decodable(v, allow_integer)
        out = np.empty((v.rows, v.cols) if v.numel else v.shape, dtype=np.float32)
        pos = 0
        for chunk in self._iter_rows(v):
            out[pos:pos + chunk.shape[0]] = chunk
            pos += chunk.shape[0]
        return out.reshape(v.shape)

    def read_index(
        self, name: str, index: Any, axis: int = 0, expert: int | None = None, *, allow_integer: bool = False
    ) -> np.ndarray:
        """float32 rows (axis 0) or columns (axis 1) of a 2-D tensor, or of ``tensor[expert]`` of a 3-D one.

        Rows are independent runs of quantisation blocks, so a row read dequantises only those rows; a column read
        dequantises every row, a bounded chunk at a time. `index` is a slice, an int sequence or an int array
        (negative ints count from the end); the result is ``[len(index), cols]`` or ``[rows, len(index)]``.
        """
        v = self._view(name)
        self._check_decodable(v, allow_integer)
        if expert is None:
            if len(v.shape) != 2:
                raise ValueError(f"tensor {quote(name)} has shape {list(v.shape)}; read_index needs 2-D "
                                 "(or 3-D with expert=)")
            rows, first = v.shape[0], 0
        else:
            if len(v.shape) != 3:
                raise ValueError(f"tensor {quote(name)} has shape {list(v.shape)}; expert= needs a 3-D tensor")
            if isinstance(expert, bool) or not isinstance(expert, int | np.integer) or not 0 <= expert < v.shape[0]:
                raise IndexError(f"expert {expert} out of range for {v.shape[0]} experts")
            rows, first = v.shape[1], int(expert) * v.shape[1]
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 (rows) or 1 (columns), got {axis}")
        step = self._step(v)
        if axis == 0:
            idx = normalise_index(index, rows, "row")
            out = np.empty((idx.size, v.cols), dtype=np.float32)
            for j0 in range(0, idx.size if v.numel else 0, step):
                out[j0:j0 + step] = self._rows(v, self._stored(v, idx[j0:j0 + step]) + first)
            return out
        idx = normalise_index(index, v.cols, "column")
        out = np.empty((rows, idx.size), dtype=np.float32)
        for r0 in range(0, rows if v.numel else 0, step):
            out[r0:r0 + step] = self._rows(v, self._stored(v, slice(r0, min(r0 + step, rows))) + first)[:, idx]
        return out

    def digest(self, name: str, precision: str = "exact") -> str:
        """sha256 of a tensor, streamed, with `Checkpoint.digest`'s scheme so digests compare across formats.

        "exact": type name, shape and stored bytes, rows in Hugging Face order (a q/k row permutation does not count
        as a change, and an F16/BF16/F32 tensor digests like the same tensor in safetensors). "bf16": shape and the
        dequantised values rounded to bfloat16. Integer tensors: "bf16" equals "exact".
        """
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
        v = self._view(name)
        h = hashlib.sha256()
        if precision == "exact" or v.info.type_name in _INTEGER_TYPES:
            h.update(b"simsa-exact-v1\0")
            h.update(json.dumps([v.info.type_name, list(v.shape)]).encode() + b"\0")
            if v.numel == 0:
                return h.hexdigest()
            if v.perm is not None and len(v.shape) == 1:  # a q/k bias: unquantised, permute its elements
                raw = np.empty((1, v.row_bytes), dtype=np.uint8)
                self._pread(v.begin, raw)
                if v.info.block == 1:
                    raw = raw.reshape(v.cols, v.info.type_size)[v.perm]
                h.update(raw.tobytes())
                return h.hexdigest()
            step = max(1, (4 * CHUNK_ELEMENTS) // max(v.row_bytes, 1))
            for r0 in range(0, v.rows, step):
                rows = self._stored(v, slice(r0, r0 + step))
                buf = np.empty((rows.size, v.row_bytes), dtype=np.uint8)
                breaks = np.flatnonzero(np.diff(rows) != 1) + 1
                for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, rows.size], strict=True):
                    self._pread(v.begin + int(rows[lo]) * v.row_bytes, buf[lo:hi])
                h.update(buf.tobytes())
            return h.hexdigest()
        self._check_decodable(v, False)
        h.update(b"simsa-bf16-v1\0" + json.dumps(list(v.shape)).encode() + b"\0")
        for chunk in self._iter_rows(v):
            h.update(bf16_bits(chunk).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> GGUFCheckpoint:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GGUFCheckpoint({str(self.path)!r}, {len(self._names)} tensors, {self.architecture or '?'})"


# --------------------------------------------------------------------------------------------------- writer

WRITE_QUANTS = ("F32", "F16", "BF16", "Q8_0", "Q4_K")
_WRITE_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3_moe": "qwen3moe",
               "bert": "bert"}
WRITABLE_MODEL_TYPES = frozenset(_WRITE_ARCH)
_TOKENIZER_MODEL = {"llama": "llama", "qwen2": "gpt2", "qwen3": "gpt2", "qwen3moe": "gpt2", "bert": "bert"}
_FILE_TYPE = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
              "BF16": gguf.LlamaFileType.MOSTLY_BF16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "Q4_K": gguf.LlamaFileType.MOSTLY_Q4_K_S}
# llama.cpp's converter keeps these in float32 whatever the output type (besides 1-D tensors and norms).
_F32_BASES = ("ffn_gate_inp", "position_embd", "token_types")
_DROPPED_RE = re.compile(r"(?:^|\.)(?:inv_freq|position_ids)$|^(?:pooler|cls)\.")
_EXPERT_RE = re.compile(r"^(?P<pre>.+\.experts)\.(?P<e>\d+)\.(?P<rest>.+)$")
_STACKED_RE = re.compile(r"^(?P<pre>.+\.experts)\.(?P<p>gate_up_proj|gate_proj|up_proj|down_proj)(?:\.weight)?$")
_HF_BLOCK_RE = re.compile(r"^(model\.layers|encoder\.layer)\.(\d+)\.(.+)$")


def _stack_experts(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-expert and transformers-5 stacked expert weights → llama.cpp's stacked ``[experts, out, in]`` form."""
    out: dict[str, np.ndarray] = {}
    groups: dict[str, dict[int, np.ndarray]] = {}
    for name, value in tensors.items():
        m = _EXPERT_RE.match(name)
        s = _STACKED_RE.match(name)
        if m:
            groups.setdefault(f"{m['pre']}.{m['rest']}", {})[int(m["e"])] = value
        elif s and s["p"] == "gate_up_proj":
            half = value.shape[1] // 2
            out[f"{s['pre']}.gate_proj.weight"] = value[:, :half]
            out[f"{s['pre']}.up_proj.weight"] = value[:, half:]
        elif s:
            out[f"{s['pre']}.{s['p']}.weight"] = value
        else:
            out[name] = value
    for key, experts in groups.items():
        if sorted(experts) != list(range(len(experts))):
            raise CheckpointError(f"experts of {key} are not numbered 0..{len(experts) - 1}")
        out[key] = np.stack([experts[e] for e in range(len(experts))])
    return out


def _encode(data: np.ndarray, quant: str, base: str) -> tuple[np.ndarray, GGMLQuantizationType | None]:
    """Stored array and raw type for one tensor, with llama.cpp's choices of what stays F32/F16."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    if quant == "F32" or data.ndim <= 1 or base.endswith("_norm") or base in _F32_BASES:
        return data, None
    if quant == "F16":
        return data.astype(np.float16), None
    if quant == "BF16":
        return gguf.quants.quantize(data, GGMLQuantizationType.BF16), GGMLQuantizationType.BF16
    if quant == "Q8_0" and data.shape[-1] % 32 == 0:
        return gguf.quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    if quant == "Q4_K" and data.shape[-1] % 256 == 0:
        return quantize_q4_k(data), GGMLQuantizationType.Q4_K
    return data.astype(np.float16), None


def _phantom(tok: str) -> str:
    if len(tok) > 1 and tok.startswith("[") and tok.endswith("]"):
        return tok
    return tok[2:] if tok.startswith("##") else "\u2581" + tok


def _cfg_int(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def write_gguf(
    path: str | os.PathLike[str],
    tensors: dict[str, np.ndarray],
    config: dict[str, Any],
    tokens: list[str] | None = None,
    quant: str = "F16",
) -> Path:
    """Write Hugging Face tensors as llama.cpp's converter would: GGUF names, q/k rows permuted for llama,
    experts stacked, llama.cpp's metadata, 2-D weights quantised to `quant` where rows fit its blocks.

    For tests and the lineage self-test (disguised copies); supports llama/mistral/qwen2/qwen3/qwen3_moe and bert.
    """
    if quant not in WRITE_QUANTS:
        raise ValueError(f"quant must be one of {', '.join(WRITE_QUANTS)}, got {quant!r}")
    model_type = str(config.get("model_type") or "")
    arch = _WRITE_ARCH.get(model_type)
    if arch is None:
        raise CheckpointError(f"cannot write GGUF for model_type {model_type!r}: supported are "
                              f"{', '.join(sorted(_WRITE_ARCH))}")
    family = _family(arch, 0)
    _, backward = _tables(arch, family)
    heads = _cfg_int(config, "num_attention_heads")
    kv_heads = _cfg_int(config, "num_key_value_heads") or heads

    kept = {}
    for name, value in tensors.items():
        name = name.removeprefix("bert.") if arch == "bert" else name
        if not _DROPPED_RE.search(name):
            kept[name] = np.asarray(value, dtype=np.float32)
    staged: list[tuple[str, np.ndarray, GGMLQuantizationType | None]] = []
    unmapped: list[str] = []
    for name, value in _stack_experts(kept).items():
        m = _SUFFIX_RE.match(name)
        module, suffix = (m[1], m[2]) if m else (name, "")
        b = _HF_BLOCK_RE.match(module)
        template = backward.get(f"{b[1]}.{{bid}}.{b[3]}" if b else module)
        if template is None:
            unmapped.append(name)
            continue
        base = template.removeprefix(_BLOCK)
        gname = (template.format(bid=int(b[2])) if b else template) + (f".{suffix}" if suffix else "")
        if family.permute_qk and base in ("attn_q", "attn_k"):
            n = heads if base == "attn_q" else kv_heads
            if not n or value.shape[0] % (2 * n):
                raise CheckpointError(f"{name}: cannot apply llama.cpp's rotary permutation without a head count "
                                      "that divides its rows (config num_attention_heads/num_key_value_heads)")
            value = permute_rows(value, n)
        data, raw_type = _encode(value, quant, base)
        staged.append((gname, data, raw_type))
    if unmapped:
        shown = ", ".join(unmapped[:5]) + (f" and {len(unmapped) - 5} more" if len(unmapped) > 5 else "")
        raise CheckpointError(f"no llama.cpp name for {shown} (architecture {arch})")

    path = Path(path)
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(str(config.get("_name_or_path") or model_type))
    writer.add_file_type(int(_FILE_TYPE[quant]))
    if quant in ("Q8_0", "Q4_K"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _write_hparams(writer, arch, config)
    if tokens is not None:
        _write_tokens(writer, arch, tokens)
    for gname, data, raw_type in staged:
        writer.add_tensor(gname, data, raw_dtype=raw_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_hparams(writer: gguf.GGUFWriter, arch: str, config: dict[str, Any]) -> None:
    hidden, heads = _cfg_int(config, "hidden_size"), _cfg_int(config, "num_attention_heads")
    setters = (
        ("max_position_embeddings", writer.add_context_length), ("hidden_size", writer.add_embedding_length),
        ("num_hidden_layers", writer.add_block_count), ("intermediate_size", writer.add_feed_forward_length),
        ("num_attention_heads", writer.add_head_count), ("num_key_value_heads", writer.add_head_count_kv),
        ("head_dim", writer.add_key_length), ("head_dim", writer.add_value_length),
        ("num_experts", writer.add_expert_count), ("num_experts_per_tok", writer.add_expert_used_count),
        ("moe_intermediate_size", writer.add_expert_feed_forward_length), ("vocab_size", writer.add_vocab_size),
    )
    for key, setter in setters:
        value = _cfg_int(config, key)
        if value is not None:
            setter(value)
    if arch != "bert" and _cfg_int(config, "num_key_value_heads") is None and heads:
        writer.add_head_count_kv(heads)
    if arch == "llama" and hidden and heads:
        writer.add_rope_dimension_count(_cfg_int(config, "head_dim") or hidden // heads)
    theta = config.get("rope_theta")
    if isinstance(theta, int | float) and not isinstance(theta, bool):
        writer.add_rope_freq_base(float(theta))
    for key, setter in (("rms_norm_eps", writer.add_layer_norm_rms_eps), ("layer_norm_eps", writer.add_layer_norm_eps)):
        eps = config.get(key)
        if isinstance(eps, int | float) and not isinstance(eps, bool):
            setter(float(eps))
    if arch == "bert":
        writer.add_causal_attention(False)


def _write_tokens(writer: gguf.GGUFWriter, arch: str, tokens: list[str]) -> None:
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    if arch == "bert":
        types = [int(gguf.TokenType.CONTROL) if len(t) > 1 and t.startswith("[") and t.endswith("]")
                 else int(gguf.TokenType.NORMAL) for t in tokens]
        tokens = [_phantom(t) for t in tokens]
    writer.add_tokenizer_model(_TOKENIZER_MODEL[arch])
    writer.add_token_list(tokens)
    writer.add_token_types(types)
