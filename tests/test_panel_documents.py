"""Submitted documents: typing by content, hostile uploads, blinding, Markdown sanitising, PDF page images."""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from simsa.errors import InputError
from simsa.panel import pdf_pages
from simsa.panel.blinding import MASK, Masker
from simsa.panel.files import MAX_BYTES, safe_filename, sniff
from simsa.panel.markdown_view import render_markdown

TEAM = "Upstage"
MEMBER = "Kim Minsu"


def make_pdf(pages: int = 3) -> bytes:
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Author": f"{TEAM} AI Lab", "Title": f"{TEAM} technical report"}) as pdf:
        for i in range(pages):
            fig = Figure(figsize=(8.27, 11.69))
            fig.text(0.1, 0.8, f"Model trained by {TEAM} page {i + 1}", fontsize=20)
            if i == 1:
                fig.text(0.1, 0.5, f"Contact: {MEMBER}", fontsize=20)
            pdf.savefig(fig)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    return make_pdf()


def masker() -> Masker:
    return Masker.for_team(["team-07", TEAM, "업스테이지", MEMBER, "ab", "  ", "Solar"])


def decode_png(png: bytes) -> np.ndarray:
    """Our PNG encoder writes one IDAT with filter 0 rows; read it back to check pixels (and the chunk list)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, idat = 8, [], b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos: pos + 4])
        kind = png[pos + 4: pos + 8]
        body = png[pos + 8: pos + 8 + length]
        chunks.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]  # no text, time or other metadata chunks
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


# ---- typing by content ---------------------------------------------------------------------------------------------

def test_pdf_sniffed_by_content_with_pages(pdf_bytes):
    got = sniff(pdf_bytes, "whatever.bin", "report")
    assert (got.kind, got.media_type, got.pages, got.size) == ("pdf", "application/pdf", 3, len(pdf_bytes))
    assert sniff(pdf_bytes, "report.pdf", "report").to_dict()["pages"] == 3
    with pytest.raises(InputError, match="is a PDF document; training logs must be"):
        sniff(pdf_bytes, "run", "log")


def test_markdown_and_logs_sniffed():
    assert sniff("# 보고서\n\nWe trained a model.\n".encode(), "r.md", "report").kind == "markdown"
    csv_log = b"step,train/loss,lr\n1,2.5,0.001\n2,2.4,0.002\n"
    assert sniff(csv_log, "log.csv", "log").kind == "csv"
    assert sniff(b'{"step": 1, "loss": 2.0}\n\n{"step": 2, "loss": 1.9}\n', "log.jsonl", "log").kind == "jsonl"
    with pytest.raises(InputError, match="is a CSV table; reports must be PDF or Markdown"):
        sniff(csv_log, "notes.txt", "report")


@pytest.mark.parametrize(("data", "name", "purpose", "message"), [
    (b"  <!DOCTYPE html><html><script>alert(1)</script></html>", "report.pdf", "report",
     "report.pdf is named .pdf but its content is an HTML document"),
    (b"\n<HTML><body>x</body></HTML>", "report.md", "report", "is named .md but its content is an HTML document"),
    (b"<html>x</html>", "report", "report", "report is an HTML document; reports must be PDF or Markdown"),
    (b"\x7fELF\x02\x01\x01" + bytes(64), "report.md", "report", "is named .md but its content is an ELF executable"),
    (b"MZ\x90\x00" + bytes(200), "log.csv", "log", "its content is a Windows executable"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "r.md", "report", "a PNG image"),
    (b"\x1f\x8b\x08\x00" + bytes(20), "log.jsonl", "log", "gzip-compressed data"),
    (b"\xfd7zXZ\x00" + bytes(20), "events.out.tfevents.1", "log", "xz-compressed data"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>', "r.md", "report", "an SVG image"),
    (bytes(range(256)) * 4, "r.md", "report", "binary data of an unrecognised type"),
    (b"", "report.pdf", "report", "report.pdf is empty"),
    (b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n", "r.pdf", "report", "r.pdf is not a readable PDF: "),
    (b"# notes\n\njust prose\n", "log.md", "log", "log.md is not a training log: it is not a CSV log"),
    (b"epoch,acc\n1,0.5\n", "log.csv", "log", "log.csv is not a training log: it is not a CSV log: it has no step"),
    (b"# r\n\nstep,loss\n", "report.pdf", "report", "report.pdf is named .pdf but its content is Markdown text"),
    (b'{"step": 1}\n[1, 2]\n', "log.jsonl", "log", "line 2 is not a JSON object"),
])
def test_hostile_or_wrong_uploads_refused(data, name, purpose, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        sniff(data, name, purpose)


def test_zip_bomb_refused_without_decompressing(monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf, \
            zf.open("zeros.bin", "w", force_zip64=True) as member:
        chunk = bytes(1 << 20)
        for _ in range(200):
            member.write(chunk)
    bomb = buf.getvalue()
    assert len(bomb) < 1_000_000  # 200 MB inside

    def no_inflate(*args, **kwargs):
        raise AssertionError("something tried to decompress the upload")

    monkeypatch.setattr(zlib, "decompress", no_inflate)
    monkeypatch.setattr(zlib, "decompressobj", no_inflate)
    monkeypatch.setattr(zipfile, "ZipFile", no_inflate)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"log\.csv is named \.csv but its content is a ZIP archive"):
        sniff(bomb, "log.csv", "log")
    assert time.perf_counter() - start < 0.5


def test_truncated_real_pdf_refused(pdf_bytes):
    for cut in (len(pdf_bytes) // 2, len(pdf_bytes) - 200):
        with pytest.raises(InputError, match=r"report\.pdf is not a readable PDF"):
            sniff(pdf_bytes[:cut], "report.pdf", "report")


def test_oversized_refused_with_limit():
    too_big = b"# r\n" + b"a" * MAX_BYTES["report"]
    with pytest.raises(InputError, match=r"r\.md is 30\.0 MB; reports are limited to 30 MB"):
        sniff(too_big, "r.md", "report")
    assert MAX_BYTES["log"] > MAX_BYTES["report"]


def test_too_many_pdf_pages_refused():
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        fig = Figure(figsize=(1, 1))
        for _ in range(301):
            pdf.savefig(fig)
    with pytest.raises(InputError, match="has 301 pages; reports are limited to 300 pages"):
        sniff(buf.getvalue(), "r.pdf", "report")


def test_safe_filename():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert safe_filename("evil\u202efdp.exe") == "evil fdp.exe"
    assert safe_filename("a\x00b\nc.md") == "a b c.md"
    assert safe_filename("..") == "file"
    long = safe_filename("x" * 300 + ".pdf")
    assert len(long) == 120 and long.endswith("….pdf")


# ---- blinding ------------------------------------------------------------------------------------------------------

def test_masker_terms_and_rules():
    m = masker()
    assert m.terms[0] == MEMBER and "ab" not in m.terms and "" not in m.terms
    text = "UPSTAGE trained Solar; upstage-v2 and cabin crew; 업스테이지의 모델; by Kim\nMinsu; Upstaged?"
    masked = m.mask(text)
    assert masked == (f"{MASK} trained {MASK}; {MASK}-v2 and cabin crew; {MASK}의 모델; by {MASK}; Upstaged?")
    assert Masker.for_team(["cab"]).mask("cabin cab") == f"cabin {MASK}"  # ASCII terms on word boundaries
    assert Masker.for_team(["스테이"]).mask("업스테이지") == f"업{MASK}지"  # Hangul as substrings
    assert m.find(text) == [MEMBER, TEAM, "Solar", "업스테이지"]
    assert m.find("nothing here") == []
    assert m.mask_filename("UpstageSolar_report.pdf") == f"{MASK}{MASK}_report.pdf"
    assert Masker.for_team([]).mask("Upstage") == "Upstage"


def test_masker_longest_first():
    m = Masker.for_team(["Upstage", "Upstage AI Lab"])
    assert m.mask("the Upstage AI Lab team") == f"the {MASK} team"


# ---- Markdown ------------------------------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parsed(html: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(html)
    return p.tags


HOSTILE_MD = """# Report of Upstage
<script>alert(1)</script>
<img src=x onerror="alert(2)">
[x](javascript:alert(1)) [y](JaVaScRiPt:alert(3)) [rel](/admin/delete) [ok](https://example.org/a)
<iframe src="https://evil.example"></iframe>
<a href="data:text/html;base64,PHNjcmlwdD4=">d</a>
![logo of Upstage](https://tracker.example/pixel.png)
<div style="position:fixed" onclick="steal()">click</div>

| a | b |
|---|---|
| 1 | [Upstage](https://upstage.example) |
"""


def test_markdown_hostile_content_inert():
    html = render_markdown(HOSTILE_MD)
    tags = parsed(html)
    names = {t for t, _ in tags}
    assert names <= {"h1", "p", "a", "table", "thead", "tbody", "tr", "th", "td"}
    assert not names & {"script", "iframe", "img", "object", "embed", "form", "input", "div"}
    for _tag, attrs in tags:
        assert not any(k.startswith("on") or k == "style" for k in attrs)
    links = [a for t, a in tags if t == "a"]
    hrefs = [a["href"] for a in links if "href" in a]
    assert hrefs == ["https://example.org/a", "https://upstage.example"]  # javascript:, data: and /admin dropped
    assert all(a["rel"] == "noopener noreferrer nofollow" for a in links)
    assert "logo of Upstage" in html and "pixel.png" not in html  # image replaced by its alt text
    assert "<table>" in html


def test_markdown_masked_before_rendering():
    html = render_markdown(HOSTILE_MD, Masker.for_team([TEAM]))
    assert "upstage" not in html.lower()
    assert html.count(MASK) >= 3


def test_markdown_size_cap():
    with pytest.raises(InputError, match="over 2 MB"):
        render_markdown("a" * (2 * 1024 * 1024 + 1))


# ---- PDF pages -----------------------------------------------------------------------------------------------------

def test_pdf_pages_text_and_mentions(pdf_bytes):
    assert pdf_pages.page_count(pdf_bytes) == 3
    texts = pdf_pages.page_texts(pdf_bytes)
    assert len(texts) == 3 and f"{TEAM} page 2" in texts[1]
    mentions = pdf_pages.identifying_mentions(pdf_bytes, masker())
    assert mentions == [(1, TEAM), (2, MEMBER), (2, TEAM), (3, TEAM)]


def _text_box_px(pdf: bytes, page: int, term: str, width_px: int) -> tuple[int, int, int, int]:
    """Where pdfium says the term lies, in pixels, computed independently of render_page (unrotated page)."""
    import pypdfium2 as pdfium

    with pdf_pages.PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        p = doc[page - 1]
        scale = width_px / p.get_width()
        height = p.get_height()
        tp = p.get_textpage()
        start, count = tp.search(term).get_next()
        boxes = [tp.get_charbox(i) for i in range(start, start + count)]
        doc.close()
    left = min(b[0] for b in boxes) * scale
    right = max(b[2] for b in boxes) * scale
    top = (height - max(b[3] for b in boxes)) * scale
    bottom = (height - min(b[1] for b in boxes)) * scale
    return int(left) + 2, int(top) + 2, int(right) - 2, int(bottom) - 2


def test_render_page_masks_terms(pdf_bytes):
    plain = decode_png(pdf_pages.render_page(pdf_bytes, 2, width_px=800))
    assert plain.shape[1] == 800 and abs(plain.shape[0] - round(800 * 11.69 / 8.27)) <= 1
    masked = decode_png(pdf_pages.render_page(pdf_bytes, 2, masker=masker(), width_px=800))
    for term in (TEAM, MEMBER):
        x0, y0, x1, y1 = _text_box_px(pdf_bytes, 2, term, 800)
        assert x1 - x0 > 20 and y1 - y0 > 5
        assert (masked[y0:y1, x0:x1] == 0).all()
        assert not (plain[y0:y1, x0:x1] == 0).all() and (plain[y0:y1, x0:x1] == 255).any()
    assert (plain[:20] == 255).all()  # white background
    assert (masked[:20] == 255).all()  # and nothing but the matches blacked out


def test_render_page_bounds(pdf_bytes):
    with pytest.raises(InputError, match="page 4 does not exist; the document has 3 pages"):
        pdf_pages.render_page(pdf_bytes, 4)
    with pytest.raises(InputError, match="page 0 does not exist"):
        pdf_pages.render_page(pdf_bytes, 0)
    with pytest.raises(InputError, match="page width"):
        pdf_pages.render_page(pdf_bytes, 1, width_px=100_000)


def test_render_huge_page_capped():
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        pdf.savefig(Figure(figsize=(10, 200)))  # 720 x 14400 pt: 20x taller than wide
    img = decode_png(pdf_pages.render_page(buf.getvalue(), 1, width_px=1100))
    assert img.shape[0] <= 4 * 1100 + 1 and img.shape[0] * img.shape[1] <= pdf_pages.MAX_PIXELS
