"""Documents' OCR event streams built by hand for the renderers' tests: pages of
Vietnamese, Korean and English words at known boxes, and small input files (PDFs with
fpdf2 and pikepdf, images with Pillow) to render them onto."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pikepdf
from fpdf import FPDF
from PIL import Image, ImageDraw

from ocrmesh.rules.ocr_events import CompletedEvent, LineEvent, OcrEvent, PageEvent, StartedEvent, Word

# (texts of a line, ...) per page; lines 0-1 are one layout block, the rest another.
PAGE_TEXTS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (
        ("Tiếng", "Việt", "có", "dấu"),
        ("Xin", "chào", "thế", "giới"),
        ("한국어", "텍스트"),
        ("Hello", "world"),
    ),
    (("안녕하세요", "세계"), ("Đường", "phố", "Hà", "Nội")),
    (("Trang", "ba"), ("끝", "페이지", "Ổn")),
)
LINE_TOP, LINE_PITCH, LINE_HEIGHT = 60, 50, 30
WORD_LEFT, WORD_GAP = 60, 20


@dataclass(frozen=True)
class SampleWord:
    page: int
    text: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in upright page pixels
    confidence: float


def quad(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    left, top, right, bottom = box
    return [(left, top), (right, top), (right, bottom), (left, bottom)]


def word_width(text: str) -> int:
    return 22 * len(text) + 10


@dataclass(frozen=True)
class SamplePage:
    """One page's event: upright size in pixels, dpi, rotation, skew."""

    width: int = 1000
    height: int = 700
    dpi: float = 150.0
    rotation: int = 0
    skew: float = 0.0
    source: str = "ocr"


def document_events(
    pages: tuple[SamplePage, ...], *, document_format: str = "pdf", texts=PAGE_TEXTS
) -> tuple[list[OcrEvent], list[SampleWord]]:
    """The events of a document of `pages`, their lines from `texts`; and every word with
    its page and box."""
    events: list[OcrEvent] = [
        StartedEvent(
            engine="scripted",
            image_width=pages[0].width,
            image_height=pages[0].height,
            page_count=len(pages),
            document_format=document_format,
        )
    ]
    words: list[SampleWord] = []
    index = block = 0
    for number, (page, lines) in enumerate(zip(pages, texts, strict=False), start=1):
        events.append(
            PageEvent(
                page=number,
                width=page.width,
                height=page.height,
                rotation=page.rotation,
                skew=page.skew,
                dpi=page.dpi,
                source="text_layer" if page.source == "text_layer" else "ocr",
            )
        )
        for line_number, texts_of_line in enumerate(lines):
            top = LINE_TOP + line_number * LINE_PITCH
            left = WORD_LEFT
            line_words: list[Word] = []
            for position, text in enumerate(texts_of_line):
                box = (left, top, left + word_width(text), top + LINE_HEIGHT)
                confidence = round(0.5 + 0.1 * (position % 5), 2)
                words.append(SampleWord(number, text, box, confidence))
                line_words.append(Word(text=text, confidence=confidence, box=quad(box)))
                left = box[2] + WORD_GAP
            line_box = (WORD_LEFT, top, left - WORD_GAP, top + LINE_HEIGHT)
            events.append(
                LineEvent(
                    index=index,
                    block=block + (0 if line_number < 2 else 1),
                    text=" ".join(texts_of_line),
                    confidence=0.9,
                    box=quad(line_box),
                    page=number,
                    words=line_words,
                )
            )
            index += 1
        block += 2
    events.append(
        CompletedEvent(full_text="", line_count=index, page_count=len(pages)),
    )
    return events, words


def page_text(lines: tuple[tuple[str, ...], ...]) -> str:
    return "\n".join(" ".join(line) for line in lines)


def scanned_image(width: int, height: int, *, shade: int = 200) -> Image.Image:
    """A grey page with a dark frame: what a scan's pixels look like to the renderers."""
    image = Image.new("L", (width, height), shade)
    ImageDraw.Draw(image).rectangle((5, 5, width - 6, height - 6), outline=20, width=4)
    return image


def two_page_pdf() -> bytes:
    """A PDF of two pages of different sizes, each an image: page 1 is 420 x 595 pt;
    page 2 is 600 x 400 pt with /Rotate 90 (displayed 400 x 600) and a MediaBox whose
    origin is (-10, -20), not (0, 0)."""
    maker = FPDF(unit="pt")
    maker.add_page(format=(420, 595))
    maker.image(scanned_image(840, 1190, shade=180), x=0, y=0, w=420, h=595)
    maker.add_page(format=(600, 400))
    maker.image(scanned_image(1200, 800, shade=220), x=0, y=0, w=600, h=400)
    pdf = pikepdf.open(io.BytesIO(bytes(maker.output())))
    second = pdf.pages[1]
    second.obj.Rotate = 90
    # The visible box starts at (10, 20): everything the viewer shows is offset by it.
    second.obj.MediaBox = pikepdf.Array([-10, -20, 590, 380])
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def tiff_pages(sizes: tuple[tuple[int, int], ...], dpi: int) -> bytes:
    images = [
        scanned_image(width, height, shade=150 + 20 * index) for index, (width, height) in enumerate(sizes)
    ]
    out = io.BytesIO()
    images[0].save(out, format="TIFF", save_all=True, append_images=images[1:], dpi=(dpi, dpi))
    return out.getvalue()


async def stream(events: list[OcrEvent]) -> AsyncIterator[OcrEvent]:
    for event in events:
        yield event
