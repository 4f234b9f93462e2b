"""Byte ranges of a file over HTTP: the `ByteSource` behind safetensors files read straight from the hub.

A lineage audit of a 600 GB model needs its headers and a few MiB of sampled rows, so shards are never downloaded:
each read becomes an HTTP range request. To keep that cheap and safe:

* small reads go through an LRU cache of aligned blocks (the header and neighbouring small tensors share a fetch);
  batched reads (`read_many`: the row runs of one `read_index`) are coalesced when close together and fetched
  concurrently; large reads go straight into the caller's buffer, split into bounded parts. Nothing reads a file whole.
  A comparison reads the same sampled rows twice (the coordinate audit, then the test), so the ranges of recent
  batched reads are remembered (a bounded LRU) and a repeated range costs no request.
* the hub answers LFS files with a redirect to a CDN. Redirects are followed by hand so the token is only ever sent to
  the origin it was meant for; the signed target is remembered (one round trip per read) and re-resolved if it expires.
* every answer is checked: status, Content-Range against the range asked for and the file's size, body length, and
  the ETag (a file that changes between reads is an error, not a silent mix). Connection errors, 429 and 5xx are
  retried a bounded number of times with backoff; a server that ignores Range is refused before its body is read.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import numpy as np
from huggingface_hub import constants
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import get_session

from simsa.errors import CheckpointError
from simsa.lineage.formats.reader import IOStats

try:  # huggingface_hub >= 2 ships httpx2; 1.x uses httpx, whose API it mirrors
    import httpx2 as _http
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    import httpx as _http  # type: ignore[no-redef]

TransportError = _http.TransportError  # connection-level failures of huggingface_hub's HTTP client

BLOCK_BYTES = 256 * 2**10  # small reads fetch the aligned block(s) around them
CACHE_BYTES = 32 * 2**20  # blocks kept per file (LRU)
PART_BYTES = 16 * 2**20  # largest single request; bigger reads are split and fetched concurrently
COALESCE_GAP = 128 * 2**10  # batched ranges closer than this may be fetched as one request (see `_gap_allowed`)
RECENT_BYTES = 256 * 2**20  # batched ranges remembered per file (LRU): a comparison reads its sampled rows twice
RECENT_ITEM_BYTES = 2**20  # larger batched ranges are not remembered (they would push the rows out)
GAP_SHARE = 4  # ...but only across a gap of at most a quarter of the smaller of the two reads it joins
WORKERS = 16  # concurrent requests per batched read
RETRIES = 4
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One shared pool for concurrent range requests; its threads only fetch, so nested use cannot deadlock."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="simsa-range")
        return _pool


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _short(text: str | None, limit: int = 200) -> str:
    """A server-provided string for a one-line message: single line, cut short."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class _Span:
    """Byte range start..stop fetched in one request, and the reads (start, stop, buffer) it serves."""

    start: int
    stop: int
    items: list[tuple[int, int, np.ndarray]]


def _gap_allowed(before: tuple[int, int, np.ndarray], after: tuple[int, int, np.ndarray]) -> int:
    """Unread bytes worth fetching to join two reads into one request.

    Sized to the reads, not fixed: the rows of one `read_index` are its reads, so a gap of whole skipped rows is
    never fetched (sampled rows spread over a matrix would otherwise pull in most of it), while small neighbouring
    reads, a tensor's few bytes say, still share a request. At most `COALESCE_GAP`.
    """
    return min(COALESCE_GAP, min(before[1] - before[0], after[1] - after[0]) // GAP_SHARE)


class _Retry(Exception):
    """A failed attempt worth repeating (5xx, 429, dropped connection, truncated body)."""


class _Stale(Exception):
    """The remembered redirect target refused us (signature expired?): resolve through the hub again."""


class RemoteSource:
    """A file served over HTTP(S) with byte-range support, read in ranges; see the module docstring.

    `headers` (authorization included) go to `url`'s origin only; redirect targets on other hosts get them without
    ``Authorization``. `expected_size`, when the listing knows it, is checked against what the server reports.
    Opening fetches the first block, which holds a safetensors header in all but huge files.
    """

    def __init__(
        self,
        url: str,
        *,
        label: str,
        headers: Mapping[str, str] | None = None,
        expected_size: int | None = None,
        block_bytes: int = BLOCK_BYTES,
        cache_bytes: int = CACHE_BYTES,
        recent_bytes: int = RECENT_BYTES,
        part_bytes: int = PART_BYTES,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        if block_bytes <= 0 or part_bytes < block_bytes:
            raise ValueError("need 0 < block_bytes <= part_bytes")
        self._url = url
        self._label = label
        self._headers = {k: v for k, v in (headers or {}).items() if k.lower() != "range"}
        self._headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets into the file itself
        self._block = block_bytes
        self._max_blocks = max(1, cache_bytes // block_bytes)
        self._part = part_bytes
        self._timeout = timeout if timeout is not None else float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
        self._retries = RETRIES if retries is None else retries
        self._backoff = BACKOFF_SECONDS if backoff is None else backoff
        self._lock = threading.Lock()
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._recent: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._recent_bytes = 0
        self._recent_limit = recent_bytes
        self._location: str | None = None  # where the last redirect chain ended (a signed CDN url)
        self._etag: str | None = None
        self._linked_etag: str | None = None
        self._size: int | None = expected_size
        self._bytes = self._requests = 0
        self._closed = False
        first = np.empty(block_bytes if expected_size is None else min(block_bytes, expected_size), dtype=np.uint8)
        if first.size:
            got = self._fetch(0, first.size, first, probe=True)
            self._store(0, first[:got])
        elif self._size is None:
            self._size = 0
        if self._size is None:  # pragma: no cover - _fetch(probe=True) always sets it
            self._fail("server did not report the file size")

    # ------------------------------------------------------------------ ByteSource

    @property
    def label(self) -> str:
        return self._label

    @property
    def size(self) -> int:
        assert self._size is not None
        return self._size

    def stats(self) -> IOStats:
        with self._lock:
            return IOStats(remote=True, bytes_read=self._bytes, bytes_total=self.size, requests=self._requests)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._blocks.clear()
            self._recent.clear()
            self._recent_bytes = 0

    def read_at(self, offset: int, nbytes: int, out: np.ndarray) -> None:
        """Fill `out` with bytes offset..offset+nbytes: from cached blocks, one block fetch, or direct parts."""
        self._check(offset, nbytes, out)
        if nbytes == 0:
            return
        if nbytes < self._block:
            self._read_small(offset, nbytes, out)
        else:
            self._read_large(offset, nbytes, out)

    def read_many(self, reads: Sequence[tuple[int, np.ndarray]]) -> None:
        """Several reads at once: cached ones served, the rest coalesced into spans fetched concurrently."""
        pending: list[tuple[int, int, np.ndarray]] = []
        for offset, out in reads:
            self._check(offset, out.size, out)
            if out.size and not self._from_recent(offset, out) and \
                    not (out.size < self._block and self._from_cache(offset, out.size, out)):
                pending.append((offset, offset + out.size, out))
        pending.sort(key=lambda item: item[0])
        spans: list[_Span] = []
        for item in pending:
            span = spans[-1] if spans else None
            if span is not None and item[0] - span.stop <= _gap_allowed(span.items[-1], item) \
                    and max(span.stop, item[1]) - span.start <= self._part:
                span.stop = max(span.stop, item[1])
                span.items.append(item)
            else:
                spans.append(_Span(item[0], item[1], [item]))
        if len(spans) == 1:
            self._fetch_span(spans[0])
        elif spans:
            list(_executor().map(self._fetch_span, spans))
        for lo, _, out in pending:
            self._remember(lo, out)

    def _from_recent(self, offset: int, out: np.ndarray) -> bool:
        with self._lock:
            kept = self._recent.get((offset, out.size))
            if kept is None:
                return False
            self._recent.move_to_end((offset, out.size))
        out[:] = kept
        return True

    def _remember(self, offset: int, data: np.ndarray) -> None:
        if data.size > RECENT_ITEM_BYTES or data.size > self._recent_limit:
            return
        with self._lock:
            if (offset, data.size) in self._recent:
                return
            self._recent[(offset, data.size)] = data.copy()
            self._recent_bytes += data.size
            while self._recent_bytes > self._recent_limit:
                _, dropped = self._recent.popitem(last=False)
                self._recent_bytes -= dropped.size

    # ------------------------------------------------------------------ reading

    def _check(self, offset: int, nbytes: int, out: np.ndarray) -> None:
        if self._closed:
            raise CheckpointError(f"{self._label}: file is closed")
        if out.dtype != np.uint8 or out.ndim != 1 or out.size != nbytes or not out.flags.c_contiguous:
            raise ValueError("read buffer must be a C-contiguous 1-D uint8 array of nbytes")
        if offset < 0 or offset + nbytes > self.size:
            raise CheckpointError(
                f"{self._label}: read of bytes {offset}..{offset + nbytes} is beyond the end of the file "
                f"({self.size} bytes)"
            )

    def _cached(self, index: int) -> np.ndarray | None:
        with self._lock:
            block = self._blocks.get(index)
            if block is not None:
                self._blocks.move_to_end(index)
            return block

    def _store(self, offset: int, data: np.ndarray) -> None:
        """Cache whole aligned blocks of `data` (which starts at a block boundary)."""
        with self._lock:
            for pos in range(0, data.size, self._block):
                self._blocks[(offset + pos) // self._block] = data[pos:pos + self._block].copy()
                self._blocks.move_to_end((offset + pos) // self._block)
            while len(self._blocks) > self._max_blocks:
                self._blocks.popitem(last=False)

    def _from_cache(self, offset: int, nbytes: int, out: np.ndarray) -> bool:
        """Copy offset..offset+nbytes from cached blocks if they are all there."""
        first, last = offset // self._block, (offset + nbytes - 1) // self._block
        blocks = [self._cached(i) for i in range(first, last + 1)]
        if any(b is None for b in blocks):
            return False
        self._copy_blocks(first, blocks, offset, nbytes, out)  # type: ignore[arg-type]
        return True

    def _copy_blocks(self, first: int, blocks: list[np.ndarray], offset: int, nbytes: int, out: np.ndarray) -> None:
        pos = offset
        for k, block in enumerate(blocks):
            base = (first + k) * self._block
            lo, hi = pos - base, min(offset + nbytes, base + block.size) - base
            out[pos - offset:pos - offset + hi - lo] = block[lo:hi]
            pos += hi - lo

    def _read_small(self, offset: int, nbytes: int, out: np.ndarray) -> None:
        if self._from_cache(offset, nbytes, out):
            return
        first, last = offset // self._block, (offset + nbytes - 1) // self._block
        start, stop = first * self._block, min((last + 1) * self._block, self.size)
        data = np.empty(stop - start, dtype=np.uint8)
        self._fetch(start, stop, data)
        self._store(start, data)
        out[:] = data[offset - start:offset - start + nbytes]

    def _read_large(self, offset: int, nbytes: int, out: np.ndarray) -> None:
        head = self._cached(offset // self._block)
        if head is not None:  # e.g. a header longer than a block: its first bytes came with the first fetch
            take = min(nbytes, (offset // self._block) * self._block + head.size - offset)
            self._copy_blocks(offset // self._block, [head], offset, take, out)
            offset, nbytes, out = offset + take, nbytes - take, out[take:]
        parts = [(pos, min(offset + nbytes, pos + self._part)) for pos in range(offset, offset + nbytes, self._part)]

        def one(part: tuple[int, int]) -> None:
            self._fetch(part[0], part[1], out[part[0] - offset:part[1] - offset])

        if len(parts) == 1:
            one(parts[0])
        elif parts:
            list(_executor().map(one, parts))

    def _fetch_span(self, span: _Span) -> None:
        if len(span.items) == 1:
            if span.stop - span.start > self._part:
                self._read_large(span.start, span.stop - span.start, span.items[0][2])
            else:
                self._fetch(span.start, span.stop, span.items[0][2])
            return
        data = np.empty(span.stop - span.start, dtype=np.uint8)
        self._fetch(span.start, span.stop, data)
        for lo, hi, out in span.items:
            out[:] = data[lo - span.start:hi - span.start]

    # ------------------------------------------------------------------ HTTP

    def _fail(self, message: str) -> NoReturn:
        raise CheckpointError(f"{self._label}: {message}")

    def _fetch(self, start: int, stop: int, out: np.ndarray, *, probe: bool = False) -> int:
        """Bytes start..stop into `out`, retrying transient failures; returns the count (short only when probing)."""
        last: BaseException | None = None
        attempt = 0
        while attempt <= self._retries:
            if attempt and last is not None:
                time.sleep(min(MAX_BACKOFF_SECONDS, self._backoff * 2 ** (attempt - 1)))
            attempt += 1
            try:
                return self._attempt(start, stop, out, probe)
            except _Stale:  # not the server's fault: go through the hub again at once
                last = None
            except _Retry as exc:
                last = exc
            except OfflineModeIsEnabled:
                self._fail("offline mode (HF_HUB_OFFLINE) is set, so it cannot be read remotely")
            except _http.TransportError as exc:
                last = exc
        if last is None:
            what = "the redirect target kept refusing access"
        elif isinstance(last, _Retry):
            what = str(last)
        else:
            what = f"{type(last).__name__}: {_short(str(last))}"
        self._fail(f"reading bytes {start}..{stop} failed after {self._retries + 1} attempts ({what})")

    def _headers_for(self, url: str) -> dict[str, str]:
        if _origin(url) == _origin(self._url):
            return dict(self._headers)
        return {k: v for k, v in self._headers.items() if k.lower() != "authorization"}

    def _attempt(self, start: int, stop: int, out: np.ndarray, probe: bool) -> int:
        with self._lock:
            remembered = self._location
        url = remembered or self._url
        for _ in range(MAX_REDIRECTS + 1):
            headers = self._headers_for(url)
            headers["Range"] = f"bytes={start}-{stop - 1}"
            with get_session().stream(
                "GET", url, headers=headers, timeout=self._timeout, follow_redirects=False
            ) as response:
                with self._lock:
                    self._requests += 1
                status = response.status_code
                if status in _REDIRECTS and "location" in response.headers:
                    self._check_hub_headers(response.headers)
                    url = urljoin(url, response.headers["location"])
                    continue
                if url == remembered and status in (401, 403, 404, 410):
                    with self._lock:
                        self._location = None
                    raise _Stale
                got = self._receive(response, start, stop, out, probe)
            if url != self._url:
                with self._lock:
                    self._location = url
            return got
        self._fail(f"more than {MAX_REDIRECTS} redirects")

    def _check_hub_headers(self, headers: Mapping[str, str]) -> None:
        """The hub's redirect names the file's size and content hash: both must stay what they were."""
        linked = headers.get("x-linked-etag")
        size = headers.get("x-linked-size")
        with self._lock:
            if linked:
                if self._linked_etag is not None and linked != self._linked_etag:
                    self._fail(f"file changed on the server between reads (ETag {self._linked_etag} -> {linked})")
                self._linked_etag = linked
        if size is not None and size.isdigit() and self._size is not None and int(size) != self._size:
            self._fail(f"file size changed between requests ({self._size} -> {size} bytes)")

    def _status_error(self, response: Any) -> NoReturn:
        status = response.status_code
        detail = _short(response.headers.get("x-error-message"))
        detail = f": {detail}" if detail else ""
        if status == 404:
            self._fail(f"file or revision not found (HTTP 404{detail})")
        if status in (401, 403):
            self._fail(
                f"access denied (HTTP {status}{detail}): the repository is private or gated; pass a token that has "
                "access (token=, HF_TOKEN or `hf auth login`) and accept its conditions on the hub if gated"
            )
        if status == 416:
            self._fail(
                f"range not satisfiable (HTTP 416; server says {_short(response.headers.get('content-range'))}): "
                "the file on the server is shorter than expected (changed or truncated?)"
            )
        self._fail(f"unexpected HTTP {status}{detail}")

    def _receive(self, response: Any, start: int, stop: int, out: np.ndarray, probe: bool) -> int:
        status = response.status_code
        if status in _RETRY_STATUS:
            raise _Retry(f"HTTP {status}")
        headers = response.headers
        length = headers.get("content-length")
        length = int(length) if length is not None and length.isdigit() else None
        if status == 200:
            # Range ignored: the body is the whole file. Accept it only if that is no more than was asked for.
            if not (start == 0 and length is not None and length <= stop - start and (probe or length == self._size)):
                size = f"{length}-byte " if length is not None else ""
                self._fail(
                    f"server ignored the byte-range request (HTTP 200 with the whole {size}file); refusing to "
                    "download the file whole"
                )
            end, total = length, length
        elif status == 206:
            match = _CONTENT_RANGE.fullmatch(headers.get("content-range", "").strip())
            if match is None or match.group(3) == "*":
                self._fail(f"bad Content-Range {_short(headers.get('content-range'))!r} for bytes {start}..{stop}")
            first, end, total = int(match.group(1)), int(match.group(2)) + 1, int(match.group(3))
            expected_end = min(stop, total) if probe else stop
            if first != start or end != expected_end or end > total:
                self._fail(
                    f"Content-Range mismatch: asked for bytes {start}..{stop}, server sent "
                    f"{_short(headers.get('content-range'))!r}"
                )
        else:
            self._status_error(response)
        if headers.get("content-encoding", "identity").lower() != "identity":
            encoding = _short(headers.get("content-encoding"))
            self._fail(f"server compressed the range ({encoding}), so its offsets are not file offsets")
        self._check_identity(total, headers.get("etag"))
        want = end - start
        if length is not None and length != want:
            self._fail(f"Content-Length {length} does not match the {want} bytes of the range")
        got = 0
        try:
            for chunk in response.iter_raw():
                if got + len(chunk) > want:
                    self._fail(f"server sent more than the {want} bytes asked for")
                out[got:got + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                got += len(chunk)
                with self._lock:
                    self._bytes += len(chunk)
        except _http.TransportError as exc:
            raise _Retry(f"response truncated: received {got} of {want} bytes ({type(exc).__name__})") from exc
        if got != want:
            raise _Retry(f"response truncated: received {got} of {want} bytes")
        return got

    def _check_identity(self, total: int, etag: str | None) -> None:
        """Every answer must describe the same file: same total size, same ETag."""
        with self._lock:
            if self._size is not None and total != self._size:
                self._fail(f"file size changed between requests ({self._size} -> {total} bytes)")
            self._size = total
            if etag:
                etag = etag.removeprefix("W/")
                if self._etag is not None and etag != self._etag:
                    self._fail(f"file changed on the server between reads (ETag {self._etag} -> {etag})")
                self._etag = etag

    def __repr__(self) -> str:
        return f"RemoteSource({self._label!r}, {self._size} bytes)"

