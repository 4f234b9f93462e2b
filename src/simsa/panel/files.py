"""What an uploaded document really is, decided by its bytes, and whether the panel accepts it.

The name a team gives a file is only checked against the content, never trusted: `report.pdf` that is HTML, or
`log.csv` that is a ZIP archive, is refused with a message naming both. Archives and compressed data are recognised by
their first bytes and refused without decompressing anything, so a zip bomb costs one comparison. A PDF must start
with `%PDF-` at byte 0 (readers tolerate up to 1024 bytes of junk before it, but that junk is how polyglot files are
made, and every PDF writer puts the header first).

Limits: reports 30 MB, logs 50 MB (1 MB = 2^20 bytes; callers read at most the limit plus one byte), 300 PDF pages,
2,000,000 rows and 200 columns in a CSV or JSONL log.
"""

from __future__ import annotations

import re
import struct
import unicodedata
from dataclasses import dataclass
from typing import Literal

from simsa.errors import InputError
from simsa.panel.pdf_pages import check_pdf
from simsa.panel.training_log import (
    MAX_COLUMNS,
    MAX_ROWS,
    ROLE_NAMES,
    column_role,
    csv_table,
    flatten,
    json_lines,
    parse_event,
    tfrecords,
)

Purpose = Literal["report", "log"]
Kind = Literal["pdf", "markdown", "csv", "jsonl", "tensorboard"]

MB = 1 << 20
MAX_BYTES: dict[Purpose, int] = {"report": 30 * MB, "log": 50 * MB}
"""Upload limits per purpose: a technical report with figures fits in 30 MB; a long run's event file in 50 MB."""

ACCEPTED: dict[Purpose, tuple[Kind, ...]] = {"report": ("pdf", "markdown"), "log": ("csv", "jsonl", "tensorboard")}
ACCEPTED_TEXT: dict[Purpose, str] = {"report": "reports must be PDF or Markdown",
                                     "log": "training logs must be CSV, JSONL or TensorBoard event files"}
MEDIA_TYPES: dict[Kind, str] = {
    "pdf": "application/pdf", "markdown": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson", "tensorboard": "application/octet-stream",
}
DESCRIPTIONS: dict[Kind, str] = {
    "pdf": "a PDF document", "markdown": "Markdown text", "csv": "a CSV table", "jsonl": "JSON lines",
    "tensorboard": "a TensorBoard event file",
}
# What a file's extension claims; a name with another extension (or none) claims nothing.
CLAIMS: dict[str, tuple[Kind, ...]] = {
    ".pdf": ("pdf",), ".md": ("markdown",), ".markdown": ("markdown",), ".csv": ("csv",), ".tsv": ("csv",),
    ".jsonl": ("jsonl",), ".ndjson": ("jsonl",), ".json": ("jsonl",), ".txt": ("markdown", "csv", "jsonl"),
}
MAX_NAME = 120
TF_VERIFY_BYTES = 4 * MB
CSV_SAMPLE_ROWS = 50
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "a ZIP archive"), (0, b"PK\x05\x06", "a ZIP archive"), (0, b"PK\x07\x08", "a ZIP archive"),
    (0, b"\x1f\x8b", "gzip-compressed data"), (0, b"BZh", "bzip2-compressed data"),
    (0, b"\xfd7zXZ\x00", "xz-compressed data"), (0, b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7z archive"), (0, b"Rar!\x1a\x07", "a RAR archive"), (257, b"ustar", "a tar archive"),
    (0, b"\x7fELF", "an ELF executable"), (0, b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (0, b"\xce\xfa\xed\xfe", "a Mach-O executable"), (0, b"\xca\xfe\xba\xbe", "a Mach-O or Java class file"),
    (0, b"\x00asm", "a WebAssembly module"), (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office document"),
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"), (0, b"\xff\xd8\xff", "a JPEG image"), (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"), (0, b"II*\x00", "a TIFF image"), (0, b"MM\x00*", "a TIFF image"),
)


@dataclass(frozen=True)
class Sniffed:
    """An accepted upload: its kind by content, the media type to store it under, and its page count (PDF only)."""

    kind: Kind
    media_type: str
    purpose: Purpose
    pages: int | None
    size: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, "media_type": self.media_type, "purpose": self.purpose, "pages": self.pages,
                "size": self.size}


def safe_filename(name: str) -> str:
    """A name fit to display: the last path component, no control or bidi-override characters, at most 120 chars."""
    text = unicodedata.normalize("NFC", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Zs") else c for c in text)
    text = " ".join(text.split()).lstrip(".").strip()
    if not text:
        return "file"
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        ext = "." + ext if dot and 0 < len(ext) <= 10 else ""
        text = (stem if ext else text)[: MAX_NAME - len(ext) - 1].rstrip() + "…" + ext
    return text


def _binary_type(data: bytes) -> str | None:
    """The refused type that the first bytes announce (archives, executables, images), if any."""
    for offset, magic, what in _SIGNATURES:
        if data[offset: offset + len(magic)] == magic:
            return what
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:8] == b"ftyp":
        return "an image or video (ISO media)"
    if head[:2] == b"MZ" and b"\x00" in data[:512]:
        return "a Windows executable"
    if head[:2] == b"BM" and b"\x00" in data[:64]:
        return "a BMP image"
    return None


def _markup_type(text: str) -> str | None:
    """HTML and SVG documents: text a browser would run, refused whatever its name says."""
    head = text.lstrip().lower()[:2048]
    if head.startswith(("<!doctype html", "<html")):
        return "an HTML document"
    if head.startswith("<svg") or (head.startswith("<?xml") and "<svg" in head):
        return "an SVG image"
    if head.startswith("<?xml") and ("<html" in head or "<!doctype html" in head):
        return "an HTML document"
    return None


def _is_tfrecord(data: bytes) -> bool:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    return len(data) >= 12 and masked_crc32c(data[:8]) == struct.unpack("<I", data[8:12])[0]


def _check_tensorboard(data: bytes) -> None:
    """Framing and checksums (data checksums of the first 4 MB), and a first event that names the file version."""
    records = tfrecords(data, verify_bytes=TF_VERIFY_BYTES)
    first = parse_event(records[0], 1)
    if not first.file_version.startswith("brain.Event:"):
        raise InputError("its first record is not a TensorBoard file-version event")


def _csv_problem(text: str) -> str | None:
    """None when the text is a CSV log (header, a step column, a numeric column); else why not."""
    header, rows = csv_table(text, limit=CSV_SAMPLE_ROWS)
    if len(header) < 2:
        return "it is not a table with a header row"
    if not rows:
        return "the table has a header but no rows"
    if len(header) > MAX_COLUMNS:
        return f"it has {len(header)} columns; logs are limited to {MAX_COLUMNS}"
    if not any(column_role(h) == "step" for h in header):
        steps = ", ".join(n.replace("/", "_") for n in ROLE_NAMES["step"][:4])
        return f"it has no step column (one of {steps}…); columns seen: {', '.join(header[:20])}"

    def numeric(j: int) -> bool:
        cells = [r[j].strip() for r in rows if j < len(r) and r[j].strip()]
        try:
            return bool([float(c) for c in cells])
        except ValueError:
            return False

    kinds = [numeric(j) for j in range(len(header))]
    if not any(ok for h, ok in zip(header, kinds, strict=True) if column_role(h) != "step"):
        return "it has no numeric column besides the step"
    return None


def _text_kind(text: str, purpose: Purpose) -> tuple[Kind, str | None]:
    """Markdown unless the text is JSON lines or a CSV log; the note says why a would-be log is not one."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if first.startswith("{"):
        try:
            objects = json_lines(text)
        except InputError as exc:
            return "markdown", f"it is not JSON lines: {exc}"
        keys = {k for obj in objects[:10_000] for k in flatten(obj)}
        if len(keys) > MAX_COLUMNS:
            raise InputError(f"the JSONL log has {len(keys)} fields; logs are limited to {MAX_COLUMNS}")
        return "jsonl", None
    problem = _csv_problem(text)
    if problem is None:
        rows = text.count("\n")
        if rows > MAX_ROWS:
            raise InputError(f"the CSV log has {rows:,} rows; logs are limited to {MAX_ROWS:,}")
        return "csv", None
    return "markdown", f"it is not a CSV log: {problem}"


def _refuse(shown: str, what: str, claimed: tuple[Kind, ...] | None, ext: str, purpose: Purpose) -> InputError:
    if claimed:
        return InputError(f"{shown} is named {ext} but its content is {what}; {ACCEPTED_TEXT[purpose]}")
    return InputError(f"{shown} is {what}; {ACCEPTED_TEXT[purpose]}")


def sniff(data: bytes, filename: str, purpose: Purpose) -> Sniffed:
    """The kind of an upload by its content; InputError (one line, naming the file) when it is refused."""
    if purpose not in MAX_BYTES:
        raise InputError(f"unknown upload purpose {purpose!r}; expected report or log")
    shown = safe_filename(filename)
    match = re.search(r"(\.[A-Za-z0-9]{1,10})$", shown)
    ext = match.group(1).lower() if match else ""
    claimed = CLAIMS.get(ext) or (("tensorboard",) if "tfevents" in shown.lower() else None)
    size = len(data)
    if size == 0:
        raise InputError(f"{shown} is empty")
    limit = MAX_BYTES[purpose]
    if size > limit:
        raise InputError(f"{shown} is {size / MB:.1f} MB; {purpose}s are limited to {limit // MB} MB")

    what = _binary_type(data)
    kind: Kind | None = None
    note = None
    if what is None:
        if data.startswith(b"%PDF-"):
            kind = "pdf"
        elif _is_tfrecord(data):
            kind = "tensorboard"
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = None
            if text is None or "\x00" in text:
                what = "binary data of an unrecognised type" if text is None or "\x00" in text[:8192] else \
                    "text containing NUL bytes"
            elif (what := _markup_type(text)) is None:
                kind, note = _text_kind(text, purpose)
    if kind is None:
        raise _refuse(shown, what or "of an unrecognised type", claimed, ext, purpose)
    if purpose == "log" and kind == "markdown" and note:
        raise InputError(f"{shown} is not a training log: {note}")
    if claimed and kind not in claimed:
        raise _refuse(shown, DESCRIPTIONS[kind], claimed, ext, purpose)
    if kind not in ACCEPTED[purpose]:
        raise InputError(f"{shown} is {DESCRIPTIONS[kind]}; {ACCEPTED_TEXT[purpose]}")

    pages = None
    if kind == "pdf":
        pages = check_pdf(data, shown)
    elif kind == "tensorboard":
        try:
            _check_tensorboard(data)
        except InputError as exc:
            raise InputError(f"{shown} is not a readable TensorBoard event file: {exc}") from None
    return Sniffed(kind, MEDIA_TYPES[kind], purpose, pages, size)
