"""Generated documents for tests and benches: multi-page PDFs (scanned, image only, and
born digital, with a real text layer), multi-page TIFFs, pages scanned turned or crooked,
and the hostile files ocr_svc must refuse. Small and quick to make (a page is a strip of
a letter page at 300 dpi, a few lines), untidy like real scans (sensor noise, specks, a
figure, columns of unequal length), seeded: the same bytes every run.

Makers are cached (same arguments, same object): treat what they return as read-only.
Every maker returns a `Document`: the file's bytes and the truth text of each page, in
reading order (lines joined with "\\n"):

    doc = scanned_pdf(pages=3)
    doc.data, doc.page_texts, doc.format          # bytes, ("...", "...", "..."), "pdf"
    doc = text_layer_pdf()                        # English and Vietnamese, fpdf2 + DejaVu
    doc = turned_page(turn=90, skew=-4.0)         # expected rotation: doc.upright_rotation
    bad = encrypted_pdf()                         # a HostileDocument: bad.refusal

Page content comes from `harness.pages` (pseudo-English, DejaVu fonts) and the prose of
`harness.language_pages`.
"""

from __future__ import annotations

import functools
import io
import random
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.images import load_font
from harness.language_pages import PROSE
from harness.pages import pseudo_paragraph, wrap_by, wrap_words
from ocrmesh.rules.document_refusals import DocumentRefusal

DPI = 300
POINTS_PER_INCH = 72
# A strip of a letter page (8.5 x 4.2 in at 300 dpi): room for a heading and a few lines,
# so that a test reads a page in about a second.
PAGE_WIDTH, PAGE_HEIGHT = 2550, 1260
MARGIN = 150
BODY_PX, HEADING_PX = 42, 64
DEJAVU_SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@dataclass(frozen=True)
class Document:
    """A generated document: its bytes, its format ("pdf", "tiff", "png") and the truth
    text of each page in reading order. `upright_rotation` and `skew` are what ocr_svc
    should report for its pages (degrees clockwise to turn them upright; the skew it
    corrects, counter-clockwise positive)."""

    data: bytes
    page_texts: tuple[str, ...]
    format: str
    upright_rotation: int = 0
    skew: float = 0.0

    @property
    def page_count(self) -> int:
        return len(self.page_texts)

    @property
    def truth_text(self) -> str:
        """Every page's text, pages joined with "\\n" (as `Completed.full_text`)."""
        return "\n".join(self.page_texts)


@dataclass(frozen=True)
class HostileDocument:
    """A file ocr_svc must refuse, and the refusal it must give."""

    data: bytes
    refusal: DocumentRefusal
    what: str = field(default="")


@dataclass(frozen=True)
class ScanPage:
    """One page as a scanner delivered it (grey, `DPI`) and its truth lines."""

    image: Image.Image
    truth_lines: tuple[str, ...]

    @property
    def truth_text(self) -> str:
        return "\n".join(self.truth_lines)


def scan_page(seed: int = 0, *, columns: int = 2, lines: int = 5) -> ScanPage:
    """A page strip: a heading across the page, then `columns` columns of body text of
    unequal length (column k has `lines` - k lines, at least 2), a small bar chart under
    the last column, with sensor noise, blur and specks. Truth: heading, then each column."""
    rng = random.Random(seed)
    body = load_font("dejavu-serif", BODY_PX)
    heading_font = load_font("dejavu-sans-bold", HEADING_PX)
    image = Image.new("L", (PAGE_WIDTH, PAGE_HEIGHT), 255)
    draw = ImageDraw.Draw(image)
    heading = f"Page {seed + 1}: Harbour Council Notes"
    draw.text((MARGIN, MARGIN), heading, fill=0, font=heading_font)
    truth = [heading]
    top = MARGIN + round(HEADING_PX * 1.25) + BODY_PX
    gutter = 90
    column_width = (PAGE_WIDTH - 2 * MARGIN - (columns - 1) * gutter) / columns
    pitch = round(BODY_PX * 1.35)
    for column in range(columns):
        count = max(2, lines - column)
        text: list[str] = []
        while len(text) < count:
            text.extend(wrap_words(pseudo_paragraph(rng), column_width, draw, body))
        x = MARGIN + column * (column_width + gutter)
        for row, line in enumerate(text[:count]):
            draw.text((round(x), top + row * pitch), line, fill=0, font=body)
        truth.extend(text[:count])
        if column == columns - 1:
            _bar_chart(draw, rng, round(x), top + count * pitch + pitch // 2, round(column_width * 0.6))
    return ScanPage(image=_scanned(image, seed), truth_lines=tuple(truth))


def _bar_chart(draw: ImageDraw.ImageDraw, rng: random.Random, left: int, top: int, width: int) -> None:
    """A figure without text: a framed bar chart, grey bars on a baseline."""
    height = min(PAGE_HEIGHT - MARGIN - top, 220)
    if height < 60:
        return
    draw.rectangle((left, top, left + width, top + height), outline=0, width=3)
    bars = 7
    step = width // (bars + 1)
    for k in range(bars):
        bar = rng.randint(height // 5, height - 20)
        x = left + step // 2 + k * step
        draw.rectangle((x, top + height - bar, x + step // 2, top + height - 6), fill=110)


def _scanned(image: Image.Image, seed: int) -> Image.Image:
    """`image` as an office scanner delivers it: blur, paper not quite white, sensor noise,
    specks (seeded)."""
    rng = np.random.default_rng(seed + 500)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32) * 0.88 + 22.0
    pixels += rng.normal(0.0, 7.0, pixels.shape).astype(np.float32)
    pixels[rng.random(pixels.shape) < 0.0003] = 35.0
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def _images_pdf(images: list[Image.Image]) -> bytes:
    """Image-only PDF, one page per image, each page sized so the image is at `DPI`."""
    buffer = io.BytesIO()
    # JPEG at quality 60: about 300 KB a page, so 20 pages stay well under a 10 MiB upload.
    images[0].save(
        buffer, format="PDF", save_all=True, append_images=images[1:], resolution=float(DPI), quality=60
    )
    return buffer.getvalue()


@functools.cache
def scanned_pdf(pages: int = 3, *, seed: int = 0, columns: int = 2, lines: int = 5) -> Document:
    """A PDF of `pages` scanned pages (`scan_page`: JPEG images, no text layer)."""
    scans = [scan_page(seed + k, columns=columns, lines=lines) for k in range(pages)]
    return Document(
        data=_images_pdf([scan.image for scan in scans]),
        page_texts=tuple(scan.truth_text for scan in scans),
        format="pdf",
    )


@functools.cache
def scanned_tiff(pages: int = 3, *, seed: int = 0, columns: int = 2, lines: int = 5) -> Document:
    """A multi-page TIFF (grey, JPEG-compressed, 300 dpi) of `pages` scanned pages (`scan_page`)."""
    scans = [scan_page(seed + k, columns=columns, lines=lines) for k in range(pages)]
    buffer = io.BytesIO()
    first, *rest = [scan.image for scan in scans]
    first.save(
        buffer,
        format="TIFF",
        save_all=True,
        append_images=rest,
        compression="jpeg",
        quality=60,
        dpi=(DPI, DPI),
    )
    return Document(
        data=buffer.getvalue(), page_texts=tuple(scan.truth_text for scan in scans), format="tiff"
    )


TEXT_LAYER_ENGLISH = (
    "Quarterly report of the harbour council",
    "The winter market opened on Tuesday 3 November.",
    "Lanterns were lit on the bridge at dusk.",
)


@functools.cache
def text_layer_pdf(pages: int = 2, *, vietnamese: bool = True) -> Document:
    """A born-digital PDF (fpdf2, DejaVu Sans embedded): each page a few lines of English,
    and (`vietnamese`) the Vietnamese prose of `harness.language_pages` on the last page.
    Its text layer is exact: the truth is what was written."""
    from fpdf import FPDF  # the `ocr` extra; only this maker needs it

    pdf = FPDF(unit="pt", format=(612, 360))
    pdf.set_auto_page_break(False)
    pdf.add_font("DejaVu", fname=DEJAVU_SANS)
    texts: list[str] = []
    for number in range(pages):
        pdf.add_page()
        pdf.set_font("DejaVu", size=13)
        lines = [f"{TEXT_LAYER_ENGLISH[0]}, page {number + 1}", *TEXT_LAYER_ENGLISH[1:]]
        if vietnamese and number == pages - 1:
            prose = unicodedata.normalize("NFC", PROSE["vi"])
            lines += wrap_by(prose, 612 - 2 * 54, pdf.get_string_width)[:4]
        for row, line in enumerate(lines):
            pdf.text(54, 60 + row * 22, line)
        texts.append("\n".join(lines))
    return Document(data=bytes(pdf.output()), page_texts=tuple(texts), format="pdf")


def _turned(image: Image.Image, turn: int, skew: float) -> Image.Image:
    """`image` turned `turn` degrees clockwise, then rotated `skew` degrees counter-clockwise
    on a canvas grown to hold it (the new corners paper-coloured)."""
    if turn:
        image = image.rotate(-turn, expand=True)
    if skew:
        paper = int(0.88 * 255 + 22)
        image = image.rotate(skew, expand=True, resample=Image.Resampling.BILINEAR, fillcolor=paper)
    return image


@functools.cache
def turned_page(turn: int = 0, skew: float = 0.0, *, seed: int = 0, as_pdf: bool = False) -> Document:
    """One scanned page, turned `turn` degrees clockwise (0, 90, 180, 270) and then
    rotated `skew` degrees counter-clockwise (a crooked scan), as a PNG (or a one-page
    image-only PDF). The page has one column of 8 lines, so orientation detection has
    text to go on. `upright_rotation` is the clockwise turn that stands it upright."""
    scan = scan_page(seed, columns=1, lines=8)
    image = _turned(scan.image, turn, skew)
    if as_pdf:
        data, fmt = _images_pdf([image]), "pdf"
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", dpi=(DPI, DPI))
        data, fmt = buffer.getvalue(), "png"
    return Document(
        data=data, page_texts=(scan.truth_text,), format=fmt, upright_rotation=(360 - turn) % 360, skew=skew
    )


@dataclass(frozen=True)
class TurnedDocument:
    """A PDF of pages scanned turned and crooked: per page, the truth text and what ocr_svc
    should report (clockwise turn to stand it upright, skew corrected)."""

    data: bytes
    page_texts: tuple[str, ...]
    upright_rotations: tuple[int, ...]
    skews: tuple[float, ...]


@functools.cache
def turned_pdf(
    turns: tuple[tuple[int, float], ...] = ((90, 0.0), (180, 0.0), (270, 0.0), (0, 4.0), (0, -4.0)),
) -> TurnedDocument:
    """One image-only PDF page per (turn, skew) of `turns`, as `turned_page` draws them
    (seeds 0, 1, ...)."""
    images: list[Image.Image] = []
    texts: list[str] = []
    for seed, (turn, skew) in enumerate(turns):
        scan = scan_page(seed, columns=1, lines=8)
        image = _turned(scan.image, turn, skew)
        images.append(image)
        texts.append(scan.truth_text)
    return TurnedDocument(
        data=_images_pdf(images),
        page_texts=tuple(texts),
        upright_rotations=tuple((360 - turn) % 360 for turn, _ in turns),
        skews=tuple(skew for _, skew in turns),
    )


def _blank_pdf(pages: int, size: tuple[float, float] = (72.0, 72.0)) -> bytes:
    import pikepdf  # the `ocr` extra

    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=size)
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


@functools.cache
def encrypted_pdf(password: str = "s3cret") -> HostileDocument:
    """A scanned PDF that opens only with a user password (AES-256)."""
    import pikepdf

    with pikepdf.open(io.BytesIO(scanned_pdf(pages=1).data)) as source:
        buffer = io.BytesIO()
        source.save(buffer, encryption=pikepdf.Encryption(owner=password + "-owner", user=password, R=6))
    return HostileDocument(buffer.getvalue(), DocumentRefusal.ENCRYPTED, "password-protected PDF")


@functools.cache
def truncated_pdf() -> HostileDocument:
    """A PDF cut after its header and first object: no page can be found in it."""
    data = _blank_pdf(2)
    return HostileDocument(data[: len(data) // 4], DocumentRefusal.UNREADABLE, "truncated PDF")


@functools.cache
def fake_pdf(size: int = 4096) -> HostileDocument:
    """A PDF header followed by junk."""
    junk = random.Random(11).randbytes(size)
    return HostileDocument(b"%PDF-1.7\n" + junk, DocumentRefusal.UNREADABLE, "PDF header, then junk")


@functools.cache
def many_pages_pdf(pages: int) -> HostileDocument:
    """`pages` blank 1-inch pages: more than a small OCR_MAX_PAGES."""
    return HostileDocument(_blank_pdf(pages), DocumentRefusal.TOO_MANY_PAGES, f"{pages} pages")


@functools.cache
def huge_page_pdf() -> HostileDocument:
    """One blank page with a 200 x 200 inch MediaBox (the largest PDF allows): 30000 x
    30000 pixels even at 150 dpi."""
    return HostileDocument(
        _blank_pdf(1, (14400.0, 14400.0)), DocumentRefusal.PAGE_TOO_LARGE, "a 200 x 200 inch page"
    )


@functools.cache
def tiff_bomb(side: int = 6000) -> HostileDocument:
    """A blank bi-level G4 TIFF of `side` x `side` pixels (36 Mpx, under the pixel cap):
    a few KB that would decode to about 144 MB, refused for its compression ratio."""
    buffer = io.BytesIO()
    Image.new("1", (side, side), 1).save(buffer, format="TIFF", compression="group4")
    return HostileDocument(buffer.getvalue(), DocumentRefusal.UNREADABLE, f"{side}x{side} blank G4 TIFF")


@functools.cache
def not_a_document() -> HostileDocument:
    """A GIF: an image format ocr_svc does not take."""
    buffer = io.BytesIO()
    Image.new("L", (40, 20), 255).save(buffer, format="GIF")
    return HostileDocument(buffer.getvalue(), DocumentRefusal.UNSUPPORTED_FORMAT, "a GIF")


def hostile_documents(max_pages: int = 3) -> dict[str, HostileDocument]:
    """Every hostile file, by name (`many_pages`: `max_pages` + 2 pages, for a deployment
    with OCR_MAX_PAGES = `max_pages`)."""
    return {
        "encrypted": encrypted_pdf(),
        "truncated": truncated_pdf(),
        "fake": fake_pdf(),
        "many_pages": many_pages_pdf(max_pages + 2),
        "huge_page": huge_page_pdf(),
        "tiff_bomb": tiff_bomb(),
        "gif": not_a_document(),
    }
