"""The searchable PDF, read back by independent readers: pypdf (pages, sizes, text, the
original page's objects) and PDFium (where each word's characters are on the page)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os

import pikepdf
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from ocr_svc.rendering import CHUNK_BYTES, RenderingFailed, render
from tests.unit.ocr.rendering.sample_documents import (
    PAGE_TEXTS,
    SamplePage,
    SampleWord,
    document_events,
    scanned_image,
    stream,
    tiff_pages,
    two_page_pdf,
)

Box = tuple[float, float, float, float]  # left, bottom, right, top in user space


async def rendered_pdf(events, document: bytes, tmp_path) -> bytes:
    chunks = [chunk async for chunk in render(stream(events), document, "pdf", spool_dir=str(tmp_path))]
    assert all(0 < len(chunk) <= CHUNK_BYTES for chunk in chunks)
    assert spooled_files(tmp_path) == []  # the spooled files are closed, so deleted
    return b"".join(chunks)


def spooled_files(directory) -> list[str]:
    """Files this process has open in `directory`: an anonymous temporary file has no
    name there to list, but its descriptor links to "<directory>/#<inode> (deleted)"."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [path for path in paths if path.startswith(f"{directory}/")]


def word_extent(textpage: pdfium.PdfTextPage, text: str) -> Box:
    """The union of PDFium's boxes of the characters of `text` (its first occurrence)."""
    found = textpage.search(text, match_case=True).get_next()
    assert found is not None, f"{text!r} is not in the page's text"
    start, count = found
    boxes = [textpage.get_charbox(index) for index in range(start, start + count)]
    return (
        min(box[0] for box in boxes),
        min(box[1] for box in boxes),
        max(box[2] for box in boxes),
        max(box[3] for box in boxes),
    )


def assert_word_placed(extent: Box, expected: Box, *, along_x: bool, tolerance: float = 1.5) -> None:
    left, bottom, right, top = expected
    assert extent[0] >= left - tolerance, (extent, expected)
    assert extent[2] <= right + tolerance, (extent, expected)
    assert extent[1] >= bottom - tolerance, (extent, expected)
    assert extent[3] <= top + tolerance, (extent, expected)
    # The glyphs are scaled to the box: they span most of it along the text.
    span, full = (extent[2] - extent[0], right - left) if along_x else (extent[3] - extent[1], top - bottom)
    assert span >= 0.8 * full, (extent, expected)


def image_digests(reader: PdfReader, page: int) -> list[str]:
    return sorted(hashlib.sha256(image.data).hexdigest() for image in reader.pages[page].images)


async def test_a_pdf_keeps_its_pages_and_gets_each_word_where_its_box_is(tmp_path) -> None:
    document = two_page_pdf()
    # Read at 144 dpi (half a point a pixel): page 1 is 840 x 1190 px; page 2 is shown
    # turned by its /Rotate 90, 800 x 1200 px.
    events, words = document_events((SamplePage(840, 1190, 144.0), SamplePage(800, 1200, 144.0)))

    output = await rendered_pdf(events, document, tmp_path)

    original, result = PdfReader(io.BytesIO(document)), PdfReader(io.BytesIO(output))
    assert len(result.pages) == 2
    for index in range(2):
        assert list(result.pages[index].mediabox) == list(original.pages[index].mediabox)
        assert result.pages[index].get("/Rotate") == original.pages[index].get("/Rotate")
        # The original page's image is still there, byte for byte: the page is not re-rendered.
        assert image_digests(result, index) == image_digests(original, index)
        text = result.pages[index].extract_text()
        for word in (w for w in words if w.page == index + 1):
            assert word.text in text
    assert "Trang" not in result.pages[0].extract_text() + result.pages[1].extract_text()
    assert "한국어" not in result.pages[1].extract_text()

    def expected_box(word: SampleWord) -> Box:
        left, top, right, bottom = (value * 0.5 for value in word.box)  # points from the top-left as shown
        if word.page == 1:
            return (left, 595 - bottom, right, 595 - top)
        # /Rotate 90 with the MediaBox at (-10, -20): shown rightwards is user space's +y,
        # shown downwards is its +x.
        return (-10 + top, -20 + left, -10 + bottom, -20 + right)

    pdf = pdfium.PdfDocument(output)
    try:
        for word in words:
            textpage = pdf[word.page - 1].get_textpage()
            assert_word_placed(word_extent(textpage, word.text), expected_box(word), along_x=word.page == 1)
    finally:
        pdf.close()


async def test_pypdf_finds_the_words_of_an_unturned_page_inside_their_boxes(tmp_path) -> None:
    events, words = document_events((SamplePage(840, 1190, 144.0), SamplePage(800, 1200, 144.0)))
    output = await rendered_pdf(events, two_page_pdf(), tmp_path)

    origins: dict[str, tuple[float, float]] = {}

    def visit(text, cm, tm, font, size) -> None:
        if text.strip() and text.strip() not in origins:
            origins[text.strip()] = (
                tm[4] * cm[0] + tm[5] * cm[2] + cm[4],
                tm[4] * cm[1] + tm[5] * cm[3] + cm[5],
            )

    PdfReader(io.BytesIO(output)).pages[0].extract_text(visitor_text=visit)
    for word in (w for w in words if w.page == 1):
        left, top, _right, bottom = (value * 0.5 for value in word.box)
        x, y = origins[word.text]  # the start of the word's baseline
        assert left - 0.5 <= x <= left + 0.5
        assert 595 - bottom <= y <= 595 - top


async def test_a_page_with_its_own_text_layer_gets_no_second_one(tmp_path) -> None:
    events, _ = document_events(
        (SamplePage(840, 1190, 144.0), SamplePage(800, 1200, 144.0, source="text_layer"))
    )
    output = await rendered_pdf(events, two_page_pdf(), tmp_path)

    with pikepdf.open(io.BytesIO(output)) as pdf:
        names = [set(page.resources.get("/XObject", {}).keys()) for page in pdf.pages]
    assert any(name.startswith("/OCR") for name in names[0])
    assert not any(name.startswith("/OCR") for name in names[1])


async def test_an_image_becomes_a_page_of_its_size_at_its_dpi_with_its_words(tmp_path) -> None:
    document = tiff_pages(((1000, 700), (800, 1000)), dpi=200)
    events, words = document_events(
        (SamplePage(1000, 700, 200.0), SamplePage(800, 1000, 200.0)), document_format="tiff"
    )

    output = await rendered_pdf(events, document, tmp_path)

    result = PdfReader(io.BytesIO(output))
    assert len(result.pages) == 2
    for index, (width, height) in enumerate(((1000, 700), (800, 1000))):
        box = result.pages[index].mediabox
        assert (float(box.width), float(box.height)) == pytest.approx((width * 72 / 200, height * 72 / 200))
        assert len(result.pages[index].images) == 1
        for word in (w for w in words if w.page == index + 1):
            assert word.text in result.pages[index].extract_text()
    pdf = pdfium.PdfDocument(output)
    try:
        scale = 72 / 200
        for word in words:
            height = 700 if word.page == 1 else 1000
            left, top, right, bottom = word.box
            expected = (left * scale, (height - bottom) * scale, right * scale, (height - top) * scale)
            assert_word_placed(
                word_extent(pdf[word.page - 1].get_textpage(), word.text), expected, along_x=True
            )
    finally:
        pdf.close()


async def test_an_image_without_a_resolution_is_a_point_a_pixel(tmp_path) -> None:
    buffer = io.BytesIO()
    scanned_image(600, 400).save(buffer, format="PNG")
    events, _ = document_events((SamplePage(600, 400, 0.0),), document_format="png", texts=(PAGE_TEXTS[1],))

    result = PdfReader(io.BytesIO(await rendered_pdf(events, buffer.getvalue(), tmp_path)))

    assert [float(v) for v in result.pages[0].mediabox] == [0, 0, 600, 400]
    assert "Đường" in result.pages[0].extract_text()


async def test_a_page_the_document_does_not_have_is_refused(tmp_path) -> None:
    events, _ = document_events((SamplePage(840, 1190, 144.0),) * 3)

    with pytest.raises(RenderingFailed, match="page 3"):
        await rendered_pdf(events, two_page_pdf(), tmp_path)
    assert spooled_files(tmp_path) == []


async def test_a_pdf_stream_abandoned_after_its_first_chunk_leaves_no_file_open(tmp_path) -> None:
    document = tiff_pages(((1000, 700), (800, 1000)), dpi=200)
    events, _ = document_events(
        (SamplePage(1000, 700, 200.0), SamplePage(800, 1000, 200.0)), document_format="tiff"
    )
    stream_ = render(stream(events), document, "pdf", spool_dir=str(tmp_path))

    first = await anext(stream_)
    assert first.startswith(b"%PDF")
    assert spooled_files(tmp_path)  # the result and the image pages, open meanwhile
    await stream_.aclose()

    assert spooled_files(tmp_path) == []


async def test_a_jpeg_is_embedded_as_it_is_not_encoded_again(tmp_path) -> None:
    buffer = io.BytesIO()
    scanned_image(1000, 700).convert("RGB").save(buffer, format="JPEG", quality=80, dpi=(150, 150))
    events, _ = document_events(
        (SamplePage(1000, 700, 150.0),), document_format="jpeg", texts=(PAGE_TEXTS[0],)
    )

    output = await rendered_pdf(events, buffer.getvalue(), tmp_path)

    with pikepdf.open(io.BytesIO(output)) as pdf:
        found = pdf.pages[0].get_images()
        images = [found[name] for name in found]
        assert [image.read_raw_bytes() for image in images] == [buffer.getvalue()]
        assert [float(v) for v in pdf.pages[0].mediabox] == [0, 0, 480, 336]
