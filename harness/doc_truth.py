"""Documents with a known text for `bench.documents`: an English page drawn like the
language pages, scanned PDFs of generated pages, a PDF with a text layer, and pages turned
90/180/270 degrees or skewed.

    page = english_page()                       # .png, .truth_text, like language_page("vi")
    pdf = scanned_pdf([render_page(PageSpec(columns=2, seed=s)).image for s in range(20)])
    pdf, truth = text_layer_pdf(pages=1)
    turned = rotated_png(page.image, 90)

Everything is seeded or fixed text: every run makes the same bytes' worth of content. The
PDFs are made with well-kept libraries (Pillow for image-only pages, fpdf2 for real text),
never by writing PDF syntax by hand.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from harness.pages import DPI, PageSpec, pseudo_paragraph, render_page, wrap_words

# The language pages' look (harness/language_pages.py): Letter width at 300 dpi, 11 pt.
PAGE_WIDTH, PAGE_HEIGHT, MARGIN, TEXT_PX = 2550, 1400, 300, 46
DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
ENGLISH_PROSE = (
    "Microservice architecture has become common in recent years. Each service takes on a "
    "function of its own and talks to the others over the network. Teams can therefore deploy "
    "every part on its own, scale it as needed and replace a technology without putting the "
    "whole system at risk. Tracing errors and keeping the data consistent across services, "
    "however, become harder to guarantee."
)


@dataclass(frozen=True)
class ProsePage:
    """A rendered page of prose: its truth lines and the scanned-looking image (mode L)."""

    language: str
    truth_lines: tuple[str, ...]
    image: Image.Image

    @property
    def truth_text(self) -> str:
        return "\n".join(self.truth_lines)

    @cached_property
    def png(self) -> bytes:
        return png_bytes(self.image)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def english_page(seed: int = 7) -> ProsePage:
    """English prose drawn exactly as `harness.language_pages` draws the other languages
    (DejaVu Sans 46 px, a light scan), so the five language rows compare like with like."""
    font = ImageFont.truetype(str(DEJAVU_SANS), TEXT_PX)
    text = unicodedata.normalize("NFC", ENGLISH_PROSE)
    image = Image.new("L", (PAGE_WIDTH, PAGE_HEIGHT), 255)
    draw = ImageDraw.Draw(image)
    lines = wrap_words(text, PAGE_WIDTH - 2 * MARGIN, draw, font)
    pitch = round(TEXT_PX * 1.6)
    for row, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + row * pitch), line, fill=0, font=font)
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32) * 0.9 + 18.0
    pixels += rng.normal(0.0, 6.0, pixels.shape).astype(np.float32)
    pixels[rng.random(pixels.shape) < 0.0002] = 40.0
    scanned = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    return ProsePage(language="en", truth_lines=tuple(lines), image=scanned)


@dataclass(frozen=True)
class ScannedDocument:
    """An image-only PDF (one 300 dpi bi-level page per generated page), the same pages as
    G4 TIFF files' bytes (for Tesseract's CLI), and the truth text of each page."""

    pdf: bytes
    tiffs: tuple[bytes, ...]
    truths: tuple[str, ...]


def document_pages(pages: int, *, columns: int = 2, lines_per_column: int = 20) -> list[PageSpec]:
    """The specs of a `pages`-page document: Letter, 300 dpi, a heading over `columns`
    columns of `lines_per_column` lines, a different seed per page."""
    return [PageSpec(columns=columns, seed=500 + n, lines_per_column=lines_per_column) for n in range(pages)]


def scanned_document(pages: int, *, columns: int = 2, lines_per_column: int = 20) -> ScannedDocument:
    """A `pages`-page scanned document as an image-only PDF."""
    rendered = [
        render_page(spec)
        for spec in document_pages(pages, columns=columns, lines_per_column=lines_per_column)
    ]
    return ScannedDocument(
        pdf=scanned_pdf([page.image for page in rendered]),
        tiffs=tuple(page.tiff for page in rendered),
        truths=tuple(page.truth_text for page in rendered),
    )


def scanned_pdf(images: list[Image.Image], dpi: int = DPI) -> bytes:
    """`images` as the pages of an image-only PDF at `dpi` (what a scanner's "scan to PDF"
    makes: no text layer), written by Pillow."""
    buffer = io.BytesIO()
    first, *rest = images
    first.save(buffer, format="PDF", save_all=True, append_images=rest, resolution=float(dpi))
    return buffer.getvalue()


def text_layer_pdf(pages: int = 1, *, seed: int = 42) -> tuple[bytes, list[str]]:
    """A born-digital PDF of `pages` Letter pages of seeded pseudo-English in DejaVu Sans
    11 pt (fpdf2), and each page's text as the truth."""
    import random

    rng = random.Random(seed)
    pdf = FPDF(unit="pt", format="letter")
    pdf.set_auto_page_break(False)
    pdf.add_font("DejaVu", "", str(DEJAVU_SANS))
    pdf.set_font("DejaVu", size=11)
    truths: list[str] = []
    for _ in range(pages):
        pdf.add_page()
        lines: list[str] = []
        y = 72.0
        while y < 792 - 72 - 14:
            for line in _wrap_pdf(pdf, pseudo_paragraph(rng), 612 - 144):
                if y >= 792 - 72 - 14:
                    break
                pdf.text(72, y, line)
                lines.append(line)
                y += 14
            y += 7
        truths.append("\n".join(lines))
    return bytes(pdf.output()), truths


def _wrap_pdf(pdf: FPDF, text: str, width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and pdf.get_string_width(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def rotated_png(image: Image.Image, degrees: float) -> bytes:
    """`image` turned counter-clockwise by `degrees` (90/180/270: a page scanned sideways or
    upside down; a few degrees: a crooked scan, white where the page ran out), as PNG."""
    grey = image.convert("L")
    if degrees % 90 == 0:
        return png_bytes(grey.rotate(degrees, expand=True))
    return png_bytes(grey.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255))
