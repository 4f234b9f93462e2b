"""A strict, lazy, torch-free reader of one safetensors file.

Checkpoints handed to a lineage audit may be malformed or hostile, and may be far larger than memory. So:

* the header is validated completely before anything sized by the file's claims is allocated (sizes are computed
  with Python ints, so a shape such as ``[2**40, 2**40]`` fails as arithmetic, not as a ``MemoryError``);
* every problem raises one `CheckpointError` naming the file, the tensor and what is wrong;
* tensor data is never copied wholesale: `raw` is a read-only view of a memory map, and decoding reads only the
  byte ranges it needs, in bounded chunks, so reading a few rows of a huge tensor costs a few rows of memory.

Bytes come from a `ByteSource`: `LocalSource` (positional reads, a memory map for `raw`) or a remote one that fetches
byte ranges over HTTP (``simsa.lineage.formats.remote``). Validation is the same whichever source the bytes come from.
"""

from __future__ import annotations

import array
import contextlib
import io
import json
import json.scanner
import math
import mmap
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Protocol, cast, runtime_checkable

import numpy as np

from simsa.errors import CheckpointError
from simsa.lineage.formats.dtypes import INTEGER_DTYPES, ITEMSIZE, KNOWN_UNSUPPORTED, STORAGE, decode
from simsa.lineage.formats.reader import NO_IO, IOStats

DEFAULT_MAX_HEADER_BYTES = 100 * 2**20  # the limit the reference implementation uses
MAX_RANK = 8
CHUNK_ELEMENTS = 1 << 20  # elements decoded per step: bounds intermediate memory to a few MiB
_WILLNEED: int | None = getattr(os, "POSIX_FADV_WILLNEED", None)  # absent on macOS and Windows
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
_FAST_ITEMSIZE = {k: v for k, v in ITEMSIZE.items() if k not in KNOWN_UNSUPPORTED}
_INTS_ONLY = frozenset({int})  # `type(True) is bool`, so booleans fail this as they fail `_is_int`
_WS = re.compile(r"[ \t\n\r]*")  # JSON whitespace
# String tokens of a canonical entry: three keys and the dtype value, each between two unescaped quotes.
_ENTRY_QUOTES = 8


@dataclass(frozen=True)
class TensorInfo:
    """What the header says about one tensor; offsets are relative to the start of the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def quote(name: str, limit: int = 200) -> str:
    """A tensor name for a message: quoted, escaped and cut short, since names come from untrusted files."""
    return repr(name) if len(name) <= limit else repr(name[:limit]) + "..."


def _describe(dtype: str, shape: Sequence[int]) -> str:
    return f"{dtype}[{', '.join(str(d) for d in shape)}]"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _DuplicateKey(ValueError):
    pass


class _Malformed(ValueError):
    """The header's top-level object breaks JSON syntax where the header scanner itself reads it."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _only_check_duplicates(pairs: list[tuple[str, Any]]) -> None:
    """Object hook for a syntax-only pass: checks keys, keeps nothing, so memory stays bounded by the text."""
    _no_duplicates(pairs)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One JSON value at a position -> (value, end), by the json module's C scanner. Both reject NaN/Infinity; the plain
# one builds dicts directly (fast), the strict one also refuses duplicate keys.
_Scan = Callable[[str, int], tuple[Any, int]]
_PLAIN_SCAN: _Scan = json.scanner.make_scanner(cast(Any, json.JSONDecoder(parse_constant=_reject_constant)))
_STRICT_SCAN: _Scan = json.scanner.make_scanner(
    cast(Any, json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant))
)


def _skip_ws(text: str, pos: int) -> int:
    """Position of the first character at or after `pos` that is not JSON whitespace."""
    match = _WS.match(text, pos)
    return match.end() if match is not None else pos


class _TensorTable:
    """What the header says about every tensor, held as columns rather than one object per tensor.

    A fine-grained MoE may list hundreds of thousands of tensors; a `TensorInfo` (and the parsed JSON behind it) per
    tensor would cost a kilobyte each. Here a tensor costs its name, a dict slot and ~21 bytes of columns; shapes and
    dtypes are stored once per distinct value. `TensorInfo` objects are made on request.
    """

    def __init__(self) -> None:
        self.index: dict[str, int] = {}  # name -> row, in header order
        self.dtypes: list[str] = []
        self.shapes: list[tuple[int, ...]] = []
        self.dtype_ids = array.array("B")
        self.shape_ids = array.array("I")
        self.begin = array.array("q")
        self.end = array.array("q")
        self.dtype_rows: dict[str, int] = {}
        self.shape_rows: dict[tuple[int, ...], int] = {}

    def add(self, name: str, dtype: str, shape: Sequence[int], begin: int, end: int) -> None:
        """Append a validated tensor (its name must be new)."""
        d = self.dtype_rows.get(dtype)
        if d is None:
            d = self.dtype_rows[dtype] = len(self.dtypes)
            self.dtypes.append(dtype)
        key = tuple(shape)
        k = self.shape_rows.get(key)
        if k is None:
            k = self.shape_rows[key] = len(self.shapes)
            self.shapes.append(key)
        self.index[name] = len(self.begin)
        self.dtype_ids.append(d)
        self.shape_ids.append(k)
        self.begin.append(begin)
        self.end.append(end)

    def info(self, name: str, row: int) -> TensorInfo:
        return TensorInfo(name, self.dtypes[self.dtype_ids[row]], self.shapes[self.shape_ids[row]], self.begin[row],
                          self.end[row])

    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """The begin and end columns as int64 arrays (copies: the table stays appendable)."""
        return np.array(self.begin, dtype=np.int64), np.array(self.end, dtype=np.int64)

    def rows_of_dtypes(self, dtypes: frozenset[str] | set[str]) -> np.ndarray:
        """Rows (header order) of the tensors whose dtype is one of `dtypes`."""
        codes = [i for i, d in enumerate(self.dtypes) if d in dtypes]
        if not codes:
            return np.zeros(0, dtype=np.intp)
        return np.flatnonzero(np.isin(np.array(self.dtype_ids, dtype=np.uint8), codes))


def row_chunks(shape: Sequence[int], chunk_elements: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Split a C-ordered tensor, seen as ``[M, C]`` (C = last dim), into chunks of at most ~chunk_elements.

    Yields ``(m0, m1, c0, c1)``: rows m0..m1 and columns c0..c1 of that view; either whole rows, or a piece of a single
    row when one row alone exceeds the chunk. Flat element range: ``m0*C + c0`` to ``(m1-1)*C + c1``.
    """
    chunk_elements = chunk_elements or CHUNK_ELEMENTS
    numel = math.prod(shape)
    if numel == 0:
        return
    cols = shape[-1] if shape else 1
    rows = numel // cols
    if cols <= chunk_elements:
        step = max(1, chunk_elements // cols)
        for m0 in range(0, rows, step):
            yield m0, min(rows, m0 + step), 0, cols
    else:
        for m in range(rows):
            for c0 in range(0, cols, chunk_elements):
                yield m, m + 1, c0, min(cols, c0 + chunk_elements)


def normalise_index(index: Any, length: int, what: str) -> np.ndarray:
    """A 1-D intp array of in-range, non-negative positions from a slice, a sequence of ints or an int array."""
    if isinstance(index, slice):
        return np.arange(*index.indices(length), dtype=np.intp)
    arr = np.asarray(index)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise IndexError(f"{what} index must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.intp)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{what} index must hold integers, got {arr.dtype}")
    if arr.min() < -length or arr.max() >= length:
        raise IndexError(f"{what} index out of range for length {length}")
    return np.where(arr < 0, arr + length, arr).astype(np.intp, copy=False)


@runtime_checkable
class ByteSource(Protocol):
    """Random access to the bytes of one file, wherever they live.

    `read_at` fills `out` (a C-contiguous uint8 array of exactly `nbytes`) with bytes offset..offset+nbytes, or raises
    `CheckpointError`; `read_many` does several such reads at once, so a remote source can batch and overlap them.
    """

    @property
    def label(self) -> str: ...

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, nbytes: int, out: np.ndarray) -> None: ...

    def read_many(self, reads: Sequence[tuple[int, np.ndarray]]) -> None: ...

    def stats(self) -> IOStats: ...

    def close(self) -> None: ...


class LocalSource:
    """A local file read with positional reads; `map` gives the read-only memory map behind `SafetensorsFile.raw`.

    Opening only takes the size; the map is made by `map`, which `SafetensorsFile` calls once the header has passed
    validation. OSErrors propagate so the caller can word them.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._label = str(path)
        self._mm: mmap.mmap | None = None
        self._lock = threading.Lock()  # only for the seek+read fallback on platforms without pread
        self._bytes = self._reads = 0
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 -- kept open for positional reads until close()
        try:
            self._size = os.fstat(fh.fileno()).st_size
        except BaseException:
            fh.close()
            raise
        self._fh: io.FileIO | None = fh

    @property
    def label(self) -> str:
        return self._label

    @property
    def size(self) -> int:
        return self._size

    def map(self) -> mmap.mmap:
        """The file's read-only memory map, made on first use; fails if the file no longer has its opening size."""
        if self._mm is None:
            fh = self._handle()
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            if len(mm) != self._size:
                mm.close()
                raise CheckpointError(
                    f"{self._label}: file changed size while being opened ({self._size} -> {len(mm)} bytes)"
                )
            self._mm = mm
        return self._mm

    def _handle(self) -> io.FileIO:
        if self._fh is None:
            raise CheckpointError(f"{self._label}: file is closed")
        return self._fh

    def read_at(self, offset: int, nbytes: int, out: np.ndarray) -> None:
        """Copy file bytes into `out` without mapping them (a mapped read can fault in whole page-cache folios)."""
        fh = self._handle()
        with self._lock:  # several threads may read one file (the digests of a fingerprint build)
            self._reads += 1
            self._bytes += nbytes
        if not hasattr(os, "preadv"):
            if self._mm is not None:
                out[:] = np.frombuffer(self._mm, dtype=np.uint8, count=nbytes, offset=offset)
                return
            with self._lock:
                fh.seek(offset)
                got = fh.readinto(out.data)
            if got != nbytes:
                at = offset + (got or 0)
                raise CheckpointError(f"{self._label}: file shrank while being read (truncated at {at})")
            return
        done = 0
        while done < nbytes:
            got = os.preadv(fh.fileno(), [out[done:].data], offset + done)
            if got <= 0:
                raise CheckpointError(f"{self._label}: file shrank while being read (truncated at {offset + done})")
            done += got

    def read_many(self, reads: Sequence[tuple[int, np.ndarray]]) -> None:
        """Read scattered ranges; on a cold cache the kernel is told about all of them first.

        A sample of rows is many small reads at scattered offsets, which the kernel's sequential read-ahead does not
        anticipate: read one after another, each waits for the disk alone. ``POSIX_FADV_WILLNEED`` on every range
        first queues them all at once, so the disk serves them in parallel and the reads then find them in memory.
        """
        if len(reads) > 1 and _WILLNEED is not None and self._fh is not None:
            fd = self._fh.fileno()
            for offset, out in reads:
                os.posix_fadvise(fd, offset, out.size, _WILLNEED)
        for offset, out in reads:
            self.read_at(offset, out.size, out)

    def stats(self) -> IOStats:
        return IOStats(remote=False, bytes_read=self._bytes, bytes_total=self._size, requests=self._reads)

    def close(self) -> None:
        """Close the file and unmap it; views of the map keep it alive until they are dropped."""
        mm, self._mm = self._mm, None
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()
        if mm is not None:
            with contextlib.suppress(BufferError):
                mm.close()

    @property
    def closed(self) -> bool:
        return self._fh is None


class SafetensorsFile:
    """One safetensors file, header validated at open, data decoded on demand.

    `path` is a local file (read through `LocalSource`) or any `ByteSource` (a remote file, say). For a local file
    `raw` gives zero-copy views of a memory map. The decoding reads (`read`, `read_flat`, `read_index`, `iter_bytes`)
    instead copy just the needed byte ranges into small buffers, so the process never maps more of the file than it
    asked for (the kernel may map whole large page-cache folios on a single mmap fault, which would make a sparse row
    read look like a whole-file read) and a remote file is fetched only where it is read. Reads may run concurrently;
    `close` may not.
    """

    def __init__(
        self, path: str | os.PathLike[str] | ByteSource, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    ) -> None:
        given = path if isinstance(path, ByteSource) else None
        self._label = given.label if given is not None else str(path)
        self.path = Path(self._label)
        self._source: ByteSource | None = None
        self._closed_stats = NO_IO
        self._table = _TensorTable()
        self.metadata: dict[str, str] = {}
        source = given
        try:
            if source is None:
                source = LocalSource(self.path)
            size = source.size
            header = self._read_header(source, size, max_header_bytes)
            self._header_len = len(header)
            self._data_start = 8 + self._header_len
            self._data_size = size - self._data_start
            text = self._decode_header(header)
            del header  # the bytes are not needed once decoded: peak memory is the text plus the columns
            self._parse_header(text)
            del text  # before the coverage check's sort, which needs a few arrays of its own
            self._check_coverage()
            # The header checks are done; only now map a local file. Mapping costs address space, not memory.
            if isinstance(source, LocalSource):
                source.map()
            self._source = source
        except IsADirectoryError:
            self._fail("is a directory, not a safetensors file")
        except FileNotFoundError:
            self._fail("file does not exist")
        except OSError as exc:
            self._fail(f"cannot read file: {exc.strerror or exc}")
        finally:
            if source is not None and self._source is None:
                source.close()

    # ------------------------------------------------------------------ validation

    def _fail(self, message: str, tensor: str | None = None) -> NoReturn:
        where = f"{self._label}: tensor {quote(tensor)}: " if tensor is not None else f"{self._label}: "
        raise CheckpointError(where + message)

    def _read_header(self, source: ByteSource, size: int, limit: int) -> np.ndarray:
        if size < 8:
            self._fail(f"file is {size} bytes, shorter than the 8-byte header length of a safetensors file")
        prefix = np.empty(8, dtype=np.uint8)
        source.read_at(0, 8, prefix)
        length = int.from_bytes(prefix.tobytes(), "little")
        if length > limit:
            self._fail(f"header length {length} bytes exceeds the limit of {limit} bytes")
        if 8 + length > size:
            self._fail(f"header length {length} bytes extends beyond the end of the file ({size} bytes)")
        header = np.empty(length, dtype=np.uint8)  # only now: the length passed both checks
        if length:
            source.read_at(8, length, header)
        return header

    def _decode_header(self, header: np.ndarray) -> str:
        try:
            return str(header.data, "utf-8")
        except UnicodeDecodeError as exc:
            self._fail(f"header is not valid UTF-8 (byte {exc.start})")

    def _parse_header(self, text: str) -> None:
        """Validate the header and fill the tensor table, never holding the whole parsed JSON tree.

        The top-level object is walked here and each value decoded on its own by the json module's C scanner, so
        memory is the text plus compact columns however many tensors the header lists. What is reported and in which
        order is what a whole-document parse would give: JSON errors (syntax, duplicate keys, NaN) first, then
        ``__metadata__``, then the first bad entry in header order, then the coverage of the data section.
        """
        try:
            problem = self._scan_header(text)
        except _Malformed:
            problem = None
            self._json_errors(text)  # the top level breaks JSON syntax: let the json module word it
        except _DuplicateKey as exc:
            self._fail(f"header is not valid: duplicate key {quote(str(exc.args[0]))}")
        except RecursionError:
            self._fail("header is not valid JSON: nested too deeply")
        except ValueError as exc:
            self._fail(f"header is not valid JSON: {exc}")
        if problem is not None:
            raise problem

    def _json_errors(self, text: str) -> NoReturn:
        """Parse the header for syntax only (nothing kept) and report its first JSON error or its top-level type."""
        try:
            parsed = json.loads(text, object_pairs_hook=_only_check_duplicates, parse_constant=_reject_constant)
        except _DuplicateKey as exc:
            self._fail(f"header is not valid: duplicate key {quote(str(exc.args[0]))}")
        except RecursionError:
            self._fail("header is not valid JSON: nested too deeply")
        except ValueError as exc:
            self._fail(f"header is not valid JSON: {exc}")
        start = _skip_ws(text, 0)
        if text[start:start + 1] != "{":
            self._fail(f"header must be a JSON object, got a JSON {type(parsed).__name__}")
        self._fail("header is not valid JSON")  # pragma: no cover - the scanner only gives up on invalid JSON

    def _scan_header(self, text: str) -> CheckpointError | None:
        """Walk the top-level object, validating entries into the table; return the first entry error (deferred).

        Raises `_Malformed` where the top level itself breaks JSON syntax (or is not an object), json's own errors
        from inside values, and `_DuplicateKey` for a name listed twice (after the whole object has been read, as a
        whole-document parse would). A canonical entry — exactly the three keys, checked by type and value — takes a
        fast path; anything else goes through `_check_entry`, which words the error.
        """
        ws, plain, strict, table = _skip_ws, _PLAIN_SCAN, _STRICT_SCAN, self._table
        index, add, itemsizes, data_size = table.index, table.add, _FAST_ITEMSIZE, self._data_size
        dtype_rows, shape_rows, begins = table.dtype_rows, table.shape_rows, table.begin
        put_dtype, put_shape, put_begin, put_end = (
            table.dtype_ids.append, table.shape_ids.append, table.begin.append, table.end.append)
        problem: CheckpointError | None = None
        duplicate: str | None = None
        metadata: Any = None
        pos = ws(text, 0)
        if text[pos:pos + 1] != "{":
            raise _Malformed
        pos = ws(text, pos + 1)
        if text[pos:pos + 1] == "}":
            pos += 1
        else:
            while True:
                if text[pos:pos + 1] != '"':
                    raise _Malformed
                name, pos = plain(text, pos)  # a JSON string: the key
                if text[pos:pos + 1] != ":":
                    pos = ws(text, pos)
                    if text[pos:pos + 1] != ":":
                        raise _Malformed
                pos += 1
                if text[pos:pos + 1] in " \t\n\r":
                    pos = ws(text, pos)
                start = pos
                try:
                    entry, pos = plain(text, start)
                except StopIteration:
                    raise _Malformed from None
                if name == "__metadata__":
                    value, _ = strict(text, start)
                    if metadata is not None:
                        duplicate = duplicate if duplicate is not None else name
                    # a null __metadata__ counts as absent, but a second one is still a duplicate key
                    metadata = value if value is not None else ...
                elif name in index or problem is not None:
                    # An error is already due; JSON errors (reported first) can still change which one.
                    strict(text, start)
                    if name in index:
                        duplicate = duplicate if duplicate is not None else name
                    index[name] = -1
                elif (
                    type(entry) is dict
                    and entry.keys() == _ENTRY_KEYS
                    and text.count('"', start, pos) == _ENTRY_QUOTES  # so no key can repeat (see _ENTRY_QUOTES)
                    and type(dtype := entry["dtype"]) is str
                    and (itemsize := itemsizes.get(dtype)) is not None
                    and type(shape := entry["shape"]) is list
                    and len(shape) <= MAX_RANK
                    and _INTS_ONLY.issuperset(map(type, shape))
                    and min(shape, default=0) >= 0
                    and type(offsets := entry["data_offsets"]) is list
                    and len(offsets) == 2
                    and type(begin := offsets[0]) is int
                    and type(end := offsets[1]) is int
                    and 0 <= begin <= end <= data_size
                    and end - begin == math.prod(shape) * itemsize
                ):
                    # `add`, inlined for the common case of a dtype and shape seen before (the loop runs per tensor)
                    d, k = dtype_rows.get(dtype), shape_rows.get(key := tuple(shape))
                    if d is None or k is None:
                        add(name, dtype, key, begin, end)
                    else:
                        index[name] = len(begins)
                        put_dtype(d)
                        put_shape(k)
                        put_begin(begin)
                        put_end(end)
                else:
                    entry, _ = strict(text, start)  # raises on a duplicate key inside the entry
                    try:
                        info = self._check_entry(name, entry)
                    except CheckpointError as exc:
                        problem = exc
                        index[name] = -1
                    else:
                        add(name, info.dtype, info.shape, info.begin, info.end)
                if text[pos:pos + 1] in " \t\n\r":
                    pos = ws(text, pos)
                closing = text[pos:pos + 1]
                pos += 1
                if text[pos:pos + 1] in " \t\n\r":
                    pos = ws(text, pos)
                if closing == "}":
                    break
                if closing != ",":
                    raise _Malformed
        if duplicate is not None:
            raise _DuplicateKey(duplicate)
        if ws(text, pos) != len(text):
            raise _Malformed
        if metadata is not None and metadata is not ...:
            if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
                self._fail("__metadata__ must be an object mapping strings to strings")
            self.metadata = dict(metadata)
        return problem

    def _check_entry(self, name: str, entry: Any) -> TensorInfo:
        if not isinstance(entry, dict):
            self._fail("entry must be an object with dtype, shape and data_offsets", name)
        missing = sorted(_ENTRY_KEYS - entry.keys())
        if missing:
            self._fail(f"entry lacks {', '.join(missing)}", name)
        extra = sorted(entry.keys() - _ENTRY_KEYS)
        if extra:
            self._fail(f"entry has unexpected keys {', '.join(quote(k) for k in extra)}", name)
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            self._fail("dtype must be a string", name)
        if dtype in KNOWN_UNSUPPORTED:
            self._fail(f"dtype {quote(dtype)} is not supported by this reader", name)
        if dtype not in ITEMSIZE:
            self._fail(f"unknown dtype {quote(dtype)}", name)
        if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
            self._fail(f"shape must be a list of integers, got {json.dumps(shape)[:100]}", name)
        if len(shape) > MAX_RANK:
            self._fail(f"shape has rank {len(shape)}, more than {MAX_RANK}", name)
        if any(d < 0 for d in shape):
            self._fail(f"shape {shape} has a negative dimension", name)
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
            self._fail(f"data_offsets must be two integers, got {json.dumps(offsets)[:100]}", name)
        begin, end = offsets
        if begin < 0 or begin > end:
            self._fail(f"data_offsets [{begin}, {end}] must satisfy 0 <= begin <= end", name)
        if end > self._data_size:
            self._fail(
                f"data_offsets [{begin}, {end}] end beyond the data section ({self._data_size} bytes; "
                "file truncated?)",
                name,
            )
        needed = math.prod(shape) * ITEMSIZE[dtype]  # Python ints: no overflow, no allocation
        if end - begin != needed:
            self._fail(
                f"data_offsets [{begin}, {end}] give {end - begin} bytes but {_describe(dtype, shape)} needs {needed}",
                name,
            )
        return TensorInfo(name, dtype, tuple(shape), begin, end)

    def _check_coverage(self) -> None:
        """Tensors must tile the data section exactly: no overlap, no gap, no trailing bytes.

        Checked on the offset columns at once: sorted by (begin, end), each tensor must begin where the previous one
        ended; the first that does not is reported, as a walk in that order would.
        """
        table = self._table
        begin, end = table.offsets()
        order = np.lexsort((end, begin))
        begin, end = begin[order], end[order]
        previous_end = np.concatenate((np.zeros(1, np.int64), end[:-1]))
        broken = np.flatnonzero(begin != previous_end)
        if broken.size:
            k = int(broken[0])
            at, position = int(begin[k]), int(previous_end[k])
            if at < position:  # k > 0 here: the first tensor cannot begin before 0
                names = list(table.index)
                this, previous = names[order[k]], names[order[k - 1]]
                self._fail(
                    f"data_offsets [{at}, {int(end[k])}] overlap tensor {quote(previous)} "
                    f"[{int(begin[k - 1])}, {position}]",
                    this,
                )
            self._fail(f"bytes {position}..{at} of the data section are not covered by any tensor")
        position = int(end[-1]) if end.size else 0
        if position != self._data_size:
            self._fail(f"bytes {position}..{self._data_size} of the data section are not covered by any tensor")

    # ------------------------------------------------------------------ access

    def names(self) -> list[str]:
        """Tensor names in header order."""
        return list(self._table.index)

    def names_of_dtypes(self, dtypes: frozenset[str] | set[str]) -> list[str]:
        """Names (header order) of the tensors stored as one of `dtypes`: a column scan, no per-tensor objects."""
        names = self.names()
        return [names[row] for row in self._table.rows_of_dtypes(dtypes)]

    def __contains__(self, name: object) -> bool:
        return name in self._table.index

    def info(self, name: str) -> TensorInfo:
        """dtype, shape and data offsets of a tensor."""
        try:
            row = self._table.index[name]
        except KeyError:
            raise CheckpointError(f"{self._label}: no tensor named {quote(name)}") from None
        return self._table.info(name, row)

    def _open_source(self) -> ByteSource:
        if self._source is None:
            raise CheckpointError(f"{self._label}: file is closed")
        return self._source

    @property
    def source(self) -> ByteSource:
        """Where the bytes come from (a `LocalSource` for a file on disk)."""
        return self._open_source()

    def io_stats(self) -> IOStats:
        """Bytes read from the source so far, and the file's size (exact for remote sources); kept after close."""
        source = self._source
        return source.stats() if source is not None else self._closed_stats

    def raw(self, name: str) -> np.ndarray:
        """Read-only view of the stored elements (BF16 as uint16, 8-bit floats and BOOL as uint8), no copy.

        Local files only: a view of a remote file would have to download it whole.
        """
        info = self.info(name)
        storage = STORAGE[info.dtype]
        source = self._open_source()
        if not isinstance(source, LocalSource):
            raise CheckpointError(f"{self._label}: raw() needs a local file; this one is read remotely (use read)")
        mm = source.map()
        if info.numel == 0:
            empty = np.empty(info.shape, dtype=storage)
            empty.flags.writeable = False
            return empty
        flat = np.frombuffer(mm, dtype=storage, count=info.numel, offset=self._data_start + info.begin)
        return flat.reshape(info.shape)

    @staticmethod
    def _bytes_of(out: np.ndarray | None, nbytes: int) -> np.ndarray:
        """`out` as a flat uint8 view of exactly `nbytes` (or a new buffer)."""
        if out is not None and not out.flags.c_contiguous:
            raise ValueError("read buffer must be C-contiguous")
        buf = np.empty(nbytes, dtype=np.uint8) if out is None else out.reshape(-1).view(np.uint8)
        if buf.size != nbytes:
            raise ValueError("buffer size does not match the byte count")
        return buf

    def _pread(self, offset: int, nbytes: int, out: np.ndarray | None = None) -> np.ndarray:
        """Copy file bytes offset..offset+nbytes into `out` (or a new uint8 array) without mapping them."""
        buf = self._bytes_of(out, nbytes)
        self._open_source().read_at(offset, nbytes, buf)
        return buf

    def _read_elements(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        """Stored elements start..stop (flat) of a tensor as a fresh array of its storage dtype."""
        storage = STORAGE[info.dtype]
        out = np.empty(stop - start, dtype=storage)
        if stop > start:
            self._pread(self._data_start + info.begin + start * storage.itemsize, (stop - start) * storage.itemsize,
                        out)
        return out

    def iter_bytes(self, name: str, chunk_bytes: int | None = None) -> Iterator[memoryview]:
        """The tensor's stored bytes in bounded chunks (for hashing). Each chunk is only valid until the next."""
        chunk_bytes = chunk_bytes or 4 * CHUNK_ELEMENTS
        info = self.info(name)
        start = self._data_start + info.begin
        buf = np.empty(min(chunk_bytes, info.nbytes), dtype=np.uint8)
        for pos in range(start, start + info.nbytes, chunk_bytes):
            n = min(start + info.nbytes, pos + chunk_bytes) - pos
            yield self._pread(pos, n, buf[:n]).data

    def read_stored(self, name: str) -> np.ndarray:
        """A copy of the whole tensor in its storage dtype (BF16 as uint16, I64 as int64), undecoded, in its shape."""
        info = self.info(name)
        return self._read_elements(info, 0, info.numel).reshape(info.shape)

    def read_flat(self, name: str, start: int, stop: int, *, allow_integer: bool = False) -> np.ndarray:
        """float32 copy of flat (C-order) elements start..stop, decoded in chunks."""
        info = self.info(name)
        self._check_decodable(info, allow_integer)
        if not 0 <= start <= stop <= info.numel:
            raise IndexError(f"flat range {start}..{stop} out of range for {info.numel} elements")
        out = np.empty(stop - start, dtype=np.float32)
        for pos in range(start, stop, CHUNK_ELEMENTS):
            end = min(stop, pos + CHUNK_ELEMENTS)
            decode(self._read_elements(info, pos, end), info.dtype, out=out[pos - start:end - start],
                   allow_integer=allow_integer)
        return out

    def read(self, name: str, *, allow_integer: bool = False) -> np.ndarray:
        """The whole tensor as a float32 copy (integer/bool tensors only with allow_integer)."""
        info = self.info(name)
        return self.read_flat(name, 0, info.numel, allow_integer=allow_integer).reshape(info.shape)

    def read_index(
        self,
        name: str,
        index: Any,
        axis: int = 0,
        expert: int | None = None,
        *,
        allow_integer: bool = False,
    ) -> np.ndarray:
        """float32 rows (axis 0) or columns (axis 1) of a 2-D tensor, or of ``tensor[expert]`` for a 3-D one.

        Only the selected rows are read (columns need every row, read a chunk at a time); `index` is a slice, an int
        sequence or an int array (negative ints count from the end, as in numpy). The result is 2-D:
        ``[len(index), cols]`` or ``[rows, len(index)]``.
        """
        info = self.info(name)
        self._check_decodable(info, allow_integer)
        rows, cols, first = self._matrix(info, expert)
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 (rows) or 1 (columns), got {axis}")
        storage = STORAGE[info.dtype]
        row_bytes = cols * storage.itemsize
        base = self._data_start + info.begin + first * storage.itemsize
        step = max(1, CHUNK_ELEMENTS // max(cols, 1))
        if axis == 0:
            idx = normalise_index(index, rows, "row")
            out = np.empty((idx.size, cols), dtype=np.float32)
            for j0 in range(0, idx.size, step):
                part = idx[j0:j0 + step]
                buf = np.empty((part.size, cols), dtype=storage)
                # one positional read per run of consecutive rows, handed over together so they can be batched
                breaks = np.flatnonzero(np.diff(part) != 1) + 1
                reads = [
                    (base + int(part[lo]) * row_bytes, self._bytes_of(buf[lo:hi], int(hi - lo) * row_bytes))
                    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, part.size], strict=True)
                ]
                if row_bytes:
                    self._open_source().read_many(reads)
                decode(buf, info.dtype, out=out[j0:j0 + part.size], allow_integer=allow_integer)
        else:
            idx = normalise_index(index, cols, "column")
            out = np.empty((rows, idx.size), dtype=np.float32)
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                buf = np.empty((r1 - r0, cols), dtype=storage)
                self._pread(base + r0 * row_bytes, (r1 - r0) * row_bytes, buf)
                decode(buf[:, idx], info.dtype, out=out[r0:r1], allow_integer=allow_integer)
        return out

    def _matrix(self, info: TensorInfo, expert: int | None) -> tuple[int, int, int]:
        """Rows and columns of the 2-D matrix read_index works on, and its first element's flat position."""
        shape = info.shape
        if expert is None:
            if len(shape) != 2:
                raise ValueError(f"tensor {quote(info.name)} has shape {list(shape)}; read_index needs 2-D "
                                 "(or 3-D with expert=)")
            return shape[0], shape[1], 0
        if len(shape) != 3:
            raise ValueError(f"tensor {quote(info.name)} has shape {list(shape)}; expert= needs a 3-D tensor")
        if not _is_int(expert) or not 0 <= expert < shape[0]:
            raise IndexError(f"expert {expert} out of range for {shape[0]} experts")
        return shape[1], shape[2], expert * shape[1] * shape[2]

    def _check_decodable(self, info: TensorInfo, allow_integer: bool) -> None:
        if info.dtype in INTEGER_DTYPES and not allow_integer:
            raise CheckpointError(
                f"{self._label}: tensor {quote(info.name)}: dtype {info.dtype} is an integer type, not weights; "
                "pass allow_integer=True to convert it to float32"
            )

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the source. Views returned by `raw` keep the map alive until they are dropped."""
        source, self._source = self._source, None
        if source is not None:
            self._closed_stats = source.stats()
            source.close()

    @property
    def closed(self) -> bool:
        return self._source is None

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SafetensorsFile({self._label!r}, {len(self._table.index)} tensors)"
