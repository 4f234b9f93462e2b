"""GGUF checkpoints (llama.cpp's format) read as Hugging Face tensors.

A model published only as GGUF must be comparable with its Hugging Face parent, so `GGUFCheckpoint` is a
`TensorReader` (``simsa.lineage.formats.reader``) that undoes what llama.cpp's converter did:

* names: ``blk.3.attn_q.weight`` → ``model.layers.3.self_attn.q_proj.weight``, from the `gguf` package's own name
  tables (`gguf.tensor_mapping`) inverted with a per-family preference (``names``); names without a counterpart
  pass through;
* shapes: GGUF lists dimensions innermost first; they are reported in PyTorch order;
* values: the q/k row permutation of llama-type rotary embeddings is undone, Gemma's baked-in ``+1`` of norm
  gains is removed, stacked expert tensors (``ffn_gate_exps``) are exposed per expert as Hugging Face stores them,
  and every quantisation type the `gguf` package decodes is dequantised row by row (blocks run along rows, so a few
  rows cost a few rows);
* metadata becomes a Hugging Face style ``config`` and the token list a `Vocabulary`.

The header is parsed strictly (``header``), rather than by `gguf.GGUFReader`: a hostile file must fail with one
line (that reader loops on huge array counts and fails with tracebacks), and every size claim is checked against
the file size before anything is allocated.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import gguf
import numpy as np
from gguf.constants import GGMLQuantizationType

from simsa.errors import CheckpointError
from simsa.lineage.formats.dtypes import bf16_bits
from simsa.lineage.formats.gguf.header import GGUFTensorInfo, Header, parse_header
from simsa.lineage.formats.gguf.names import BLOCK, FAMILIES, family_for, hf_name, name_tables, unpermute_index
from simsa.lineage.formats.reader import IOStats
from simsa.lineage.formats.safetensors import CHUNK_ELEMENTS, normalise_index, quote
from simsa.lineage.model.tokenizer import Vocabulary

__all__ = ["GGUFCheckpoint"]


_MAX_EXPERTS = 1 << 16  # stacked expert tensors are split per expert up to this many


_PRECISIONS = ("exact", "bf16")


_FLOAT32 = 6


_INTEGER_TYPES: dict[str, np.dtype] = {"I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"),
                                       "I64": np.dtype("<i8")}


_TOKEN_CONTROL, _TOKEN_UNKNOWN = 3, 2  # gguf.TokenType





@dataclass(frozen=True)
class _View:
    """One tensor as the reader exposes it: a whole GGUF tensor or one expert of a stacked one."""

    name: str
    info: GGUFTensorInfo
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
    """A GGUF file as a `TensorReader`, with Hugging Face names, shapes and values."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd: int | None = None
        self._size = self._bytes_read = self._reads = 0
        self._count_lock = threading.Lock()  # several threads may read at once (a fingerprint's digests)
        self.path = Path(path)
        self.files: list[Path] = [self.path]
        self.tokenizer_files: dict[str, Path] = {}
        self.notes: list[str] = []
        label = str(self.path)
        if not self.path.exists():
            raise CheckpointError(f"{label}: does not exist")
        if not self.path.is_file():
            raise CheckpointError(f"{label}: is not a regular file")
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
            size = self._size = os.fstat(self._fd).st_size
            if size == 0:
                raise CheckpointError(f"{label}: not a GGUF file (empty)")
            with mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ) as mm:
                header = parse_header(label, mm, size)
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

    def _build(self, header: Header) -> None:
        arch = self.architecture
        experts = _meta_int(self._meta(gguf.Keys.LLM.EXPERT_COUNT)) or 0
        self.family = family_for(arch, experts)
        forward, _ = name_tables(arch, self.family)
        if not arch:
            self.notes.append("no general.architecture in the metadata: tensor names kept as stored")
        elif arch not in FAMILIES:
            known = "named with gguf's tables in the llama style" if forward else "kept as stored"
            self.notes.append(f"GGUF architecture {arch!r} has no dedicated mapping: tensor names {known}, values "
                              "as stored")
        self._views: dict[str, _View] = {}
        passthrough: list[str] = []
        permuted = per_expert = shifted = 0
        for info in header.tensors:
            hf, bid, template, suffix = hf_name(info.name, forward)
            if hf is None:
                passthrough.append(info.name)
                hf = info.name
            base = template.removeprefix(BLOCK)
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

    def _qk_perm(self, info: GGUFTensorInfo, base: str, bid: int | None) -> np.ndarray | None:
        heads = self._meta(gguf.Keys.Attention.HEAD_COUNT)
        kv_heads = self._meta(gguf.Keys.Attention.HEAD_COUNT_KV)
        if base == "attn_k" and kv_heads is not None:  # llama.cpp permutes k with the key/value head count
            heads = kv_heads
        if isinstance(heads, np.ndarray) and bid is not None and bid < heads.size:
            heads = heads[bid]
        n_head = _meta_int(heads)
        rows = info.shape[0] if info.shape and 0 not in info.dims else 0
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
            number = _meta_float(self.metadata.get(full), self._value_types.get(full))
            if number is not None:
                cfg[hf_key] = number
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
        view = buf.reshape(-1).view(np.uint8).data
        done = 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise CheckpointError(f"{self.path}: file shrank while being read (truncated at {offset + done})")
            done += got
            with self._count_lock:
                self._reads += 1
                self._bytes_read += got

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

    def io_stats(self) -> IOStats:
        """Bytes copied by positional reads so far (the header is parsed from a map and not counted); kept after
        close."""
        return IOStats(remote=False, bytes_read=self._bytes_read, bytes_total=self._size, requests=self._reads)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GGUFCheckpoint({str(self.path)!r}, {len(self._names)} tensors, {self.architecture or '?'})"


# llama.cpp's converter keeps these in float32 whatever the output type (besides 1-D tensors and norms).
F32_BASES = ("ffn_gate_inp", "position_embd", "token_types")
