"""What a document is to the pipeline: its format, its page count and its pages, read one
at a time, in order; and why one is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ocr_svc.engines.base import RecognizedLine, RgbImage
from ocr_svc.images import ImageLimits, InvalidImage
from ocrmesh.rules.document_refusals import DocumentRefusal

# Runs a blocking function off the event loop (the pipeline's worker threads):
# `await offload(fn, *args)`.
Offload = Callable[..., Awaitable[Any]]

# Render resolution of PDF pages, and the bounds it is moved within (see `DocumentLimits`).
DEFAULT_DPI = 300.0
MIN_DPI = 150.0
# The long side of a rendered page at most (Legal at 300 dpi; A4 is 3508, Letter 3300):
# larger pages are rendered at a lower dpi, never below `MIN_DPI`.
MAX_LONG_SIDE = 4200


class DocumentRefused(InvalidImage):
    """A document ocr_svc will not read, `refusal` says why (`reason`: the sentence for
    the caller)."""

    refusal: DocumentRefusal

    def __init__(self, refusal: DocumentRefusal, reason: str) -> None:
        super().__init__(reason, refusal)
        self.refusal = refusal


@dataclass(frozen=True)
class DocumentLimits:
    """What a document may be: its bytes and each page's pixels (`image`), at most
    `max_pages` pages (OCR_MAX_PAGES), PDF pages rendered at `dpi` (OCR_PDF_DPI), lowered
    for a page whose long side would pass `max_long_side` pixels, but never below
    `min_dpi`: a page over the pixel cap even at `min_dpi` is refused."""

    image: ImageLimits
    max_pages: int = 200
    dpi: float = DEFAULT_DPI
    min_dpi: float = MIN_DPI
    max_long_side: int = MAX_LONG_SIDE

    def render_dpi(self, width_pt: float, height_pt: float) -> float:
        """The dpi a page of `width_pt` x `height_pt` points is rendered at."""
        long_pt = max(width_pt, height_pt, 1.0)
        capped = min(self.dpi, self.max_long_side * 72.0 / long_pt)
        return round(max(min(self.min_dpi, self.dpi), capped), 2)


@dataclass(frozen=True)
class SourcePage:
    """One page as the document holds it: `number` 1-based; `width` x `height` pixels at
    `dpi` (0.0: unknown); either its `pixels` (to be OCRed) or, for a PDF page with a
    text layer, its `lines` (pixels None), in page pixels at `dpi`."""

    number: int
    width: int
    height: int
    dpi: float
    pixels: RgbImage | None
    lines: tuple[RecognizedLine, ...] = ()

    @property
    def has_text_layer(self) -> bool:
        return self.pixels is None


class Document(Protocol):
    """An opened document: `pages` pages, read with `page(0)`, `page(1)`, ... in order;
    `aclose()` frees what it holds (a helper process, the upload)."""

    format: str
    page_count: int

    async def page(self, index: int) -> SourcePage: ...

    async def aclose(self) -> None: ...
