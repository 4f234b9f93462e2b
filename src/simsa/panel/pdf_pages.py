"""PDF reports shown to experts as page images rendered on the server, with identifying terms blacked out.

Experts never receive the PDF itself: a page image carries no scripts, links, attachments or metadata (the PNG is
encoded here from raw pixels, so nothing but pixels can reach it), and the team's name can be painted over where the
text layer has it. Text drawn as curves or inside images has no text layer and cannot be found; the report on
identification ("could you identify the team?") covers what masking cannot.

PDFium is not thread-safe, so every call into it, here and in `files.sniff`, holds `PDFIUM_LOCK`.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pypdfium2 as pdfium

from simsa.errors import InputError
from simsa.panel.blinding import Masker

PDFIUM_LOCK = threading.RLock()
MAX_PAGES = 300
MAX_PIXELS = 8_000_000
MAX_HEIGHT_RATIO = 4
MIN_WIDTH_PX, MAX_WIDTH_PX = 100, 4000


@contextmanager
def open_pdf(data: bytes, what: str = "the file") -> Iterator[pdfium.PdfDocument]:
    """An open document under the lock; any PDFium failure becomes "… is not a readable PDF: <reason>"."""
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(bytes(data))
        except pdfium.PdfiumError as exc:
            reason = str(exc).strip().rstrip(".") or "PDFium could not open it"
            if "password" in reason.lower():
                reason = "it is encrypted (password-protected PDFs cannot be shown to experts)"
            raise InputError(f"{what} is not a readable PDF: {reason}") from None
        try:
            yield doc
        finally:
            doc.close()


def check_pdf(data: bytes, what: str = "the file") -> int:
    """The page count of a structurally sound PDF; InputError otherwise.

    PDFium repairs broken files silently, so a PDF cut short in transit would open with whatever pages survived; the
    end-of-file marker (which the format requires, and readers look for in the last 1024 bytes) and loading every
    page catch that.
    """
    if b"%%EOF" not in data[-1024:]:
        raise InputError(f"{what} is not a readable PDF: it has no end-of-file marker (truncated?)")
    with open_pdf(data, what) as doc:
        n = len(doc)
        if n < 1:
            raise InputError(f"{what} is not a readable PDF: it has no pages")
        if n > MAX_PAGES:
            raise InputError(f"{what} has {n} pages; reports are limited to {MAX_PAGES} pages")
        for i in range(n):
            try:
                page = doc[i]
            except pdfium.PdfiumError:
                raise InputError(f"{what} is not a readable PDF: page {i + 1} cannot be loaded") from None
            page.close()
        return n


def page_count(data: bytes) -> int:
    """The number of pages of a readable PDF."""
    with open_pdf(data) as doc:
        return len(doc)


def _scale(width_pt: float, height_pt: float, width_px: int) -> float:
    """Points → pixels so the page is `width_px` wide, unless that makes it taller than 4× wide or over 8 Mpx."""
    if width_pt <= 0 or height_pt <= 0:
        raise InputError("the page has no area")
    scale = min(width_px / width_pt, MAX_HEIGHT_RATIO * width_px / height_pt,
                (MAX_PIXELS / (width_pt * height_pt)) ** 0.5)
    return scale * (1 - 1e-9)  # PDFium rounds the canvas up; keep an exact fit from becoming one pixel wider


def _match_boxes(page: pdfium.PdfPage, masker: Masker) -> list[tuple[float, float, float, float]]:
    """(left, bottom, right, top) in PDF points of every character of every occurrence of every term.

    PDFium's search is case-insensitive and matches substrings; in an image over-masking costs a word, while a
    whole-word rule would miss `Upstage의`.
    """
    boxes = []
    textpage = page.get_textpage()
    try:
        for term in masker.terms:
            searcher = textpage.search(term, match_case=False)
            while (found := searcher.get_next()) is not None:
                start, count = found
                for index in range(start, start + count):
                    try:
                        boxes.append(textpage.get_charbox(index, loose=True))
                    except pdfium.PdfiumError:
                        continue
            searcher.close()
    finally:
        textpage.close()
    return boxes


def render_page(data: bytes, page: int, *, masker: Masker | None = None, width_px: int = 1100) -> bytes:
    """Page `page` (1-based) as a PNG on white, `width_px` wide, identifying terms painted solid black."""
    if not MIN_WIDTH_PX <= width_px <= MAX_WIDTH_PX:
        raise InputError(f"page width must be between {MIN_WIDTH_PX} and {MAX_WIDTH_PX} pixels, not {width_px}")
    with open_pdf(data) as doc:
        if not 1 <= page <= len(doc):
            raise InputError(f"page {page} does not exist; the document has {len(doc)} pages")
        pdf_page = doc[page - 1]
        try:
            scale = _scale(pdf_page.get_width(), pdf_page.get_height(), width_px)
            bitmap = pdf_page.render(scale=scale, fill_color=(255, 255, 255, 255), rev_byteorder=True,
                                     may_draw_forms=False)
            pixels = np.array(bitmap.to_numpy()[:, :, :3], dtype=np.uint8, copy=True)
            if masker is not None and masker.terms:
                conv = bitmap.get_posconv(pdf_page)
                for box in _match_boxes(pdf_page, masker):
                    _black_out(pixels, conv, box)
            bitmap.close()
        finally:
            pdf_page.close()
    return encode_png(pixels)


def _black_out(pixels: np.ndarray, conv, box: tuple[float, float, float, float]) -> None:
    """Paint a character box black; the converter handles the flipped y axis, the crop box and page rotation."""
    left, bottom, right, top = box
    corners = [conv.to_bitmap(x, y) for x in (left, right) for y in (bottom, top)]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    height, width = pixels.shape[:2]
    x0, x1 = max(int(min(xs)) - 1, 0), min(int(max(xs)) + 2, width)
    y0, y1 = max(int(min(ys)) - 1, 0), min(int(max(ys)) + 2, height)
    if x0 < x1 and y0 < y1:
        pixels[y0:y1, x0:x1] = 0


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG holding only the pixels: IHDR, IDAT, IEND and nothing else."""
    height, width = pixels.shape[:2]
    rows = np.empty((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = pixels.reshape(height, width * 3)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def page_texts(data: bytes) -> list[str]:
    """The text layer of each page, in page order (empty for scanned pages)."""
    texts = []
    with open_pdf(data) as doc:
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
    return texts


def identifying_mentions(data: bytes, masker: Masker) -> list[tuple[int, str]]:
    """(1-based page, term) for every term found in a page's text layer.

    The admin sees this before experts do, so a report that names its team where masking cannot reach (a logo, a
    scanned page) is noticed and can be sent back.
    """
    return [(number, term) for number, text in enumerate(page_texts(data), start=1) for term in masker.find(text)]
