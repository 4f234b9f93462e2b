"""The GGUF header, parsed strictly: metadata, tensor infos and every size claim checked against the file size
before anything is allocated, so a hostile file fails with one line rather than a huge allocation or a loop.
"""


from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from simsa.errors import CheckpointError
from simsa.lineage.formats.safetensors import quote

# GGUF metadata value types (gguf.GGUFValueType): struct format of scalars, numpy dtype of arrays.
_STRING, _ARRAY = 8, 9


_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
                            11: "<q", 12: "<d"}

GGUF_SUFFIX = ".gguf"


_MAGIC = b"GGUF"


_VERSIONS = (2, 3)


_MAX_DIMS = 4  # GGML_MAX_DIMS


_MAX_ARRAY_DEPTH = 4


_MAX_STRINGS = 1 << 24  # real token lists and merges have < 1M entries; bounds the parse time of a hostile file


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



@dataclass(frozen=True)
class GGUFTensorInfo:
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
class Header:
    version: int
    metadata: dict[str, Any]
    value_types: dict[str, int]
    tensors: list[GGUFTensorInfo]
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


def parse_header(label: str, buf: Any, size: int) -> Header:
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
    previous: GGUFTensorInfo | None = None
    for t in sorted(tensors, key=lambda t: (t.begin, t.nbytes)):
        if previous is not None and t.begin < previous.begin + previous.nbytes:
            p.fail(f"tensor {quote(t.name)} overlaps tensor {quote(previous.name)}")
        previous = t
    split = metadata.get("split.count")
    if isinstance(split, int) and split > 1:
        p.fail(f"is shard {int(metadata.get('split.no', 0)) + 1} of {split} of a split GGUF; merge the shards "
               "first (llama-gguf-split --merge)")
    return Header(version, metadata, value_types, tensors, alignment, data_start)


def _check_tensor(p: _Parser, name: str, type_code: int, dims: tuple[int, ...], offset: int, data_start: int,
                  alignment: int) -> GGUFTensorInfo:
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
    return GGUFTensorInfo(name, type_code, qtype.name, dims, block, type_size, begin, nbytes)
