"""Opening uploads as documents: the format from the bytes, PDFs through their helper
process (page count, page sizes, text layer, rendering), multi-page TIFFs frame by frame,
and every hostile file refused with its reason before any page is read."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from PIL import Image

from harness import documents
from harness.images import render_text_image
from ocr_svc.documents.formats import sniff_format
from ocr_svc.documents.model import Document, DocumentLimits, DocumentRefused
from ocr_svc.documents.pdf import PdfDocument
from ocr_svc.documents.reader import open_document
from ocr_svc.images import ImageLimits, InvalidImage
from ocrmesh.rules.document_refusals import DocumentRefusal

T = TypeVar("T")
LIMITS = DocumentLimits(image=ImageLimits(max_bytes=8 * 1024 * 1024, max_pixels=40_000_000), max_pages=3)


async def offload(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(functools.partial(fn, *args))


async def opened(data: bytes, **kwargs: Any) -> Document:
    return await open_document(data, LIMITS, offload, **kwargs)


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff"), ("PDF", "pdf")],
)
def test_the_format_is_known_by_the_bytes(fmt: str, name: str) -> None:
    assert sniff_format(encoded(fmt)) == name


@pytest.mark.parametrize("data", [encoded("GIF"), b"hello world", b"\x00" * 64, b"<svg/>"])
def test_anything_else_is_an_unsupported_format(data: bytes) -> None:
    with pytest.raises(DocumentRefused) as refused:
        sniff_format(data)
    assert refused.value.refusal is DocumentRefusal.UNSUPPORTED_FORMAT
    assert "PDF, TIFF, PNG" in refused.value.reason


async def test_a_scanned_pdf_is_rendered_one_page_at_a_time_at_300_dpi() -> None:
    doc = documents.scanned_pdf(pages=2, lines=2)
    document = await opened(doc.data)
    try:
        assert (document.format, document.page_count) == ("pdf", 2)
        for index in range(2):
            page = await document.page(index)
            assert page.pixels is not None
            assert (page.number, page.width, page.height, page.dpi) == (index + 1, 2550, 1260, 300.0)
            assert page.pixels.shape == (1260, 2550, 3)
            # Paper is light, text is dark: the scan came through.
            assert page.pixels.mean() > 150
            assert page.pixels.min() < 60
    finally:
        await document.aclose()


async def test_a_text_layer_page_comes_back_as_its_lines_and_words_in_page_pixels() -> None:
    doc = documents.text_layer_pdf(pages=2)
    document = await opened(doc.data)
    try:
        pages = [await document.page(index) for index in range(2)]
    finally:
        await document.aclose()
    for page, truth in zip(pages, doc.page_texts, strict=True):
        assert page.has_text_layer
        assert (page.width, page.height, page.dpi) == (2550, 1500, 300.0)
        assert [line.text for line in page.lines] == truth.split("\n")
        for line in page.lines:
            assert " ".join(word.text for word in line.words) == line.text
    first = pages[0].lines[0]
    # fpdf2 wrote it at x = 54 pt, baseline 60 pt: 225 px from the left at 300 dpi, the
    # 13 pt glyphs (54 px) ending on the baseline at 250 px.
    (left, top), _, (_, bottom), _ = first.words[0].box
    assert left == pytest.approx(225, abs=3)
    assert 180 < top < 215
    assert 240 < bottom < 270
    assert first.words[0].text == "Quarterly"


async def test_force_ocr_renders_a_text_layer_page() -> None:
    document = await opened(documents.text_layer_pdf(pages=1).data, force_ocr=True)
    try:
        page = await document.page(0)
    finally:
        await document.aclose()
    assert page.pixels is not None
    assert not page.lines


async def test_a_multi_page_tiff_is_read_frame_by_frame() -> None:
    doc = documents.scanned_tiff(pages=3, lines=2)
    document = await opened(doc.data)
    try:
        assert (document.format, document.page_count) == ("tiff", 3)
        shapes = [(await document.page(index)) for index in range(3)]
    finally:
        await document.aclose()
    assert [(page.number, page.width, page.height, page.dpi) for page in shapes] == [
        (n, 2550, 1260, 300.0) for n in (1, 2, 3)
    ]


async def test_an_image_is_a_document_of_one_page() -> None:
    document = await opened(render_text_image(["one page"], size=24))
    assert (document.format, document.page_count) == ("png", 1)
    page = await document.page(0)
    assert page.pixels is not None
    assert page.pixels.shape[2] == 3


@pytest.mark.parametrize(
    "name", ["encrypted", "truncated", "fake", "many_pages", "huge_page", "tiff_bomb", "gif"]
)
async def test_a_hostile_file_is_refused_with_its_reason_before_any_page_is_read(name: str) -> None:
    hostile = documents.hostile_documents(max_pages=LIMITS.max_pages)[name]
    with pytest.raises(InvalidImage) as refused:
        await opened(hostile.data)
    assert refused.value.refusal is hostile.refusal, refused.value.reason


async def test_the_refusals_say_what_is_wrong() -> None:
    hostile = documents.hostile_documents(max_pages=3)
    reasons = {}
    for name in ("encrypted", "many_pages", "huge_page"):
        with pytest.raises(InvalidImage) as refused:
            await opened(hostile[name].data)
        reasons[name] = refused.value.reason
    assert "password" in reasons["encrypted"]
    assert "5 pages" in reasons["many_pages"]
    assert "at most 3 (OCR_MAX_PAGES)" in reasons["many_pages"]
    assert "the limit is 40000000 pixels" in reasons["huge_page"]


async def test_a_tiff_with_more_frames_than_the_limit_is_refused() -> None:
    doc = documents.scanned_tiff(pages=4, lines=2)
    with pytest.raises(DocumentRefused) as refused:
        await opened(doc.data)
    assert refused.value.refusal is DocumentRefusal.TOO_MANY_PAGES


async def test_a_helper_that_dies_costs_the_document_only() -> None:
    doc = documents.scanned_pdf(pages=2, lines=2)
    document = await opened(doc.data)
    assert isinstance(document, PdfDocument)
    try:
        await document.page(0)
        os.kill(document.pid, signal.SIGKILL)
        with pytest.raises(DocumentRefused) as refused:
            await document.page(1)
        assert refused.value.refusal is DocumentRefusal.UNREADABLE
    finally:
        await document.aclose()
    # The next document gets a helper of its own.
    again = await opened(doc.data)
    try:
        assert (await again.page(1)).pixels is not None
    finally:
        await again.aclose()


async def test_the_helper_is_gone_once_the_document_is_closed() -> None:
    document = await opened(documents.scanned_pdf(pages=1, lines=2).data)
    assert isinstance(document, PdfDocument)
    pid = document.pid
    await document.aclose()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_large_pages_are_rendered_at_a_lower_dpi_but_never_below_the_floor() -> None:
    assert LIMITS.render_dpi(612, 792) == 300.0  # Letter
    assert LIMITS.render_dpi(842, 1191) == pytest.approx(253.9, abs=0.1)  # A3: 4200 px long side
    assert LIMITS.render_dpi(14400, 14400) == 150.0
